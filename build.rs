//! Compiles the protobuf files under `proto/` with protox, a pure-Rust protobuf compiler, so a
//! fresh machine builds with nothing but the Rust toolchain (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/dapr/proto/runtime/v1/dapr.proto",
        "proto/dlock/v1/locks.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
