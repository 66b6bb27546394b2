//! Start-up and shutdown as an operator sees them: the ready line, and a clean exit on SIGTERM.

use crate::support::dlockd::{Dlockd, Options};

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
