//! The load tool (`miniloki load`): pushes protobuf batches at a running
//! server from several connections and reports lines/s, MB/s and the
//! server's peak RSS.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:3100")]
    pub url: String,
}

/// Runs the load tool.
pub fn run(_args: LoadArgs) -> anyhow::Result<()> {
    anyhow::bail!("the load tool is not implemented yet")
}
