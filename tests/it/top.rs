//! `dlock top` (issue 13, item 4), run for two refreshes as a script would: each frame shows
//! the stores, the held lock with its owner and the waiter this sidecar has for it.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::api::{Api, Protocol};
use crate::support::dlockd::{Dlockd, Options, DLOCK};

#[tokio::test]
async fn top_shows_the_held_locks_and_their_waiters_each_refresh() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let taken = api
        .lock(Protocol::Grpc, "store", "topped", "watcher", 60)
        .await;
    assert_eq!(taken, Ok(true));
    let waiter = api.wait_in_background("store", "topped", "patient");
    // The waiter is counted from when its acquire starts waiting: ask until Inspect says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = json!({ "resourceId": "topped" }).to_string();
        let held = api.post("/dlock/v1/inspect/store", body).await.unwrap();
        if held["lock"]["waitingHere"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no waiter: {held}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let run = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "top", "--iterations", "2"])
        .env_remove("DAPR_API_TOKEN")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{:?}: {out}", run.status);
    assert_eq!(out.matches("dlock top · app id 'app'").count(), 2, "{out}");
    assert!(out.contains("store\tlock.in-memory\tin process\t"), "{out}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|cells: &Vec<&str>| {
            cells.first() == Some(&"store") && cells.get(1) == Some(&"topped")
        })
        .collect();
    assert_eq!(lines.len(), 2, "one line a frame: {out}");
    for cells in lines {
        assert_eq!(cells[2], "watcher", "{out}");
        assert!(cells[3].ends_with('s'), "{out}");
        assert_eq!(cells[5], "1", "the waiter: {out}");
    }
    assert!(
        out.contains("1 held, 1 waiting through this sidecar"),
        "{out}"
    );
    waiter.abort();
}
