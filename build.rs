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
    git_commit();
    let served = protox::compile(SERVED, ["proto"])?;
    tonic_prost_build::configure().compile_fds(served)?;
    let etcd = protox::compile(ETCD, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(etcd)?;
    Ok(())
}

/// The commit being built, for `dlockd --build-info` (`DLOCK_GIT_COMMIT`; empty outside a git
/// checkout, as in a source archive). Built again when HEAD moves.
fn git_commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).unwrap_or_default();
    for path in ["HEAD", "packed-refs", branch.as_str()] {
        if let Some(path) = git(&["rev-parse", "--git-path", path]).filter(|_| !path.is_empty()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=DLOCK_GIT_COMMIT={commit}");
}
