//! The official Dapr SDKs, unmodified, against a running dlockd: the Python `dapr` package over
//! gRPC and the JavaScript `@dapr/dapr` package over HTTP and gRPC. The SDKs and their scripts
//! live in tests/sdk/; scripts/install-sdks.sh installs them (scripts/test.sh runs it first).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::dlockd::{Dlockd, Options};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python; a missing install is a failure that says how to fix it, never a skip.
pub(crate) fn python() -> PathBuf {
    let python = std::env::var_os("DLOCK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/sdk/venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-sdks.sh",
        python.display()
    );
    python
}

pub(crate) fn node_modules_ready() {
    let sdk = root().join("tests/sdk/js/node_modules/@dapr/dapr");
    assert!(
        sdk.exists(),
        "{} is missing: run scripts/install-sdks.sh",
        sdk.display()
    );
}

pub(crate) fn run(sidecar: &Dlockd, program: &Path, script: &str, env: &[(&str, &str)]) {
    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let output = Command::new(program)
        .arg(root().join(script))
        .env("DAPR_GRPC_PORT", port(&sidecar.grpc))
        .env("DAPR_HTTP_PORT", port(&sidecar.http))
        .env("DLOCK_STORE", "lockstore")
        .env_remove("DAPR_API_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\nsidecar:\n{}",
        output.status,
        sidecar.logs()
    );
    assert!(
        stdout.contains("PASS") && !stdout.contains("FAIL"),
        "{stdout}"
    );
}

#[tokio::test]
async fn python_sdk_locks_and_unlocks() {
    let sidecar = Dlockd::start(Options::default());
    run(&sidecar, &python(), "tests/sdk/python/sdk_lock.py", &[]);
}

#[tokio::test]
async fn python_sdk_with_an_api_token() {
    let token = [("DAPR_API_TOKEN", "sdk-token-123")];
    let sidecar = Dlockd::start(Options {
        env: vec![("DAPR_API_TOKEN".into(), "sdk-token-123".into())],
        ..Options::default()
    });
    run(&sidecar, &python(), "tests/sdk/python/sdk_lock.py", &token);
}

#[tokio::test]
async fn javascript_sdk_locks_and_unlocks_over_http_and_grpc() {
    node_modules_ready();
    let sidecar = Dlockd::start(Options::default());
    run(
        &sidecar,
        Path::new("node"),
        "tests/sdk/js/sdk_lock.mjs",
        &[],
    );
}
