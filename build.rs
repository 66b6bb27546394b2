//! Compiles the protobuf files under `proto/` with protox, a pure-Rust protobuf compiler, so a
//! fresh machine builds with nothing but the Rust toolchain (no system `protoc`).

/// The APIs dlockd serves (Dapr's and its own): clients and servers.
const SERVED: &[&str] = &[
    "proto/dapr/proto/runtime/v1/dapr.proto",
    "proto/dlock/v1/locks.proto",
];

/// The subset of etcd's API that lock.etcd calls: clients only.
const ETCD: &[&str] = &[
    "proto/etcd/etcdserverpb/rpc.proto",
    "proto/etcd/mvccpb/kv.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in SERVED.iter().chain(ETCD) {
        println!("cargo:rerun-if-changed={file}");
    }
    let served = protox::compile(SERVED, ["proto"])?;
    tonic_prost_build::configure().compile_fds(served)?;
    let etcd = protox::compile(ETCD, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(etcd)?;
    Ok(())
}
