//! Start-up and shutdown as an operator sees them: the ready line, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dlock::proto::dlock::InspectRequest;

use crate::support::api::{Api, Protocol};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{Dlockd, Options, DLOCK};

#[tokio::test]
async fn prints_a_ready_line_and_exits_cleanly_on_sigterm() {
    let sidecar = Dlockd::start(Options {
        app_id: "bpm-server".into(),
        ..Options::default()
    });
    let ready = sidecar.logs();
    for part in [
        "dlockd ready",
        "gRPC on 127.0.0.1:",
        "HTTP on 127.0.0.1:",
        "app id 'bpm-server'",
        "lockstore (lock.in-memory, in process)",
    ] {
        assert!(ready.contains(part), "'{part}' missing from: {ready}");
    }
    let (status, output) = sidecar.terminate();
    assert!(status.success(), "{status:?}");
    assert!(output.contains("stopped"), "{output}");
}

/// SIGTERM with a session held on a shared store: the sidecar releases the lock, tells the
/// client why, and exits 0 at once, not after its grace period with the lock left behind.
#[tokio::test]
async fn shutdown_releases_held_sessions_tells_their_clients_and_exits_cleanly() {
    let sidecar = Backend::Redis.sidecar("shut", &[("lockstore", None)]);
    let key = unique("shut");
    let client = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, &key, "30", "--", "sleep", "20"])
        .env_remove("DAPR_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let other = Backend::Redis.sidecar("shut", &[("lockstore", None)]);
    let api = Api::new(&other).await;
    // Seen held through the other sidecar, without taking it (a probe that took the lock
    // would make dlock wait behind it).
    let mut locks = other.locks().await;
    let inspect = InspectRequest {
        store_name: "lockstore".into(),
        resource_id: key.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !locks
        .inspect(inspect.clone())
        .await
        .unwrap()
        .into_inner()
        .held
    {
        assert!(Instant::now() < deadline, "dlock never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    let stopped = std::thread::spawn(move || {
        let (status, output) = sidecar.terminate();
        (status, output, stopping.elapsed())
    });
    let told = tokio::task::spawn_blocking(move || {
        let output = client.wait_with_output().unwrap();
        (output, stopping.elapsed())
    })
    .await
    .unwrap();
    let (status, output, exited_after) = stopped.join().unwrap();
    assert!(status.success(), "{status:?}: {output}");
    assert!(
        exited_after < Duration::from_secs(1),
        "dlockd took {exited_after:?}: {output}"
    );
    let (client, told_after) = told;
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(
        told_after < Duration::from_secs(1),
        "dlock heard after {told_after:?}: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "dlock: lost '{key}': the sidecar is shutting down"
        )),
        "{stderr}"
    );
    // The lock is free in Redis for everyone else at once.
    assert_eq!(
        api.lock(Protocol::Http, "lockstore", &key, "next", 10)
            .await,
        Ok(true)
    );
}
