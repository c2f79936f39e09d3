//! The `miniloki` binary: parses flags, sets up logging, and runs the server
//! (the default command) or the load tool.

use clap::Parser;
use miniloki::config::{Cli, Command, Config, ServeArgs};

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    // A file size limit (RLIMIT_FSIZE) must surface as EFBIG write errors
    // that the WAL reports and recovers from, not kill the process.
    // Safety: called before any thread starts; SIG_IGN needs no handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Load(args)) => miniloki::loadgen::run(args),
        Some(Command::Demo(args)) => miniloki::demo::run(args),
        Some(Command::Check(args)) => miniloki::loadgen::check(args),
        Some(Command::Fuzz(args)) => miniloki::fuzz::run(args),
        Some(Command::Soak(args)) => miniloki::soak::run(args),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

/// Caps glibc malloc at four arenas (unless `MALLOC_ARENA_MAX` says
/// otherwise). By default glibc gives each of the many threads that append
/// (pushes run on Tokio's blocking pool) an arena of its own, up to eight per
/// core, and memory freed in one arena is not reused by the others: under a
/// sustained push load this kept 50–100 MB more resident, and growing. Two
/// arenas saved a little more memory but slowed pushes to 10,000 streams by
/// ~15 % (`docs/benchmarks.md`, "Memory under sustained load").
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // Safety: called first thing in main, before any other thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cfg.log_format.eq_ignore_ascii_case("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::resolve(&args)?;
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if !cfg.listen.ip().is_loopback() && !cfg.auth_enabled {
            tracing::warn!(message = "Listening beyond loopback without auth: anyone who can reach this address can read and write every log.", listen = %cfg.listen);
        }
        let started = std::time::Instant::now();
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let grpc = match cfg.otlp_grpc_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen for OTLP/gRPC on {addr}: {e}"))?),
            None => None,
        };
        let data_dir = cfg.storage.data_dir.clone();
        let state = tokio::task::spawn_blocking(move || miniloki::api::build_state(cfg)).await??;
        tracing::info!(
            message = "miniloki is ready.",
            http = %listener.local_addr()?,
            otlp_grpc = %grpc.as_ref().and_then(|g| g.local_addr().ok()).map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
            data_dir = %data_dir.display(),
            startup_ms = started.elapsed().as_millis() as u64,
        );
        miniloki::api::serve(state, listener, grpc, shutdown_signal()).await
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!(message = "Shutdown signal received; draining requests.");
}
