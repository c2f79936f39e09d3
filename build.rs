//! Compiles the wire schemas in `schema/` with protox, a pure-Rust protobuf
//! compiler, so that a fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "schema/push.proto",
        "schema/opentelemetry/proto/collector/logs/v1/logs_service.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=schema");
    let fds = protox::compile(protos, ["schema"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
