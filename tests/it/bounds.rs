//! What one client can keep open on a sidecar, and what the sidecar does about a client host
//! that vanished: a cap on waiters, a stream limit per connection, and keepalive that ends a
//! silent client's session and releases its lock.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dlock::proto::dlock::{AcquireRequest, InspectRequest};

use crate::support::api::{Api, Failure};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options, DLOCK};

fn sidecar_with(args: &[&str]) -> Dlockd {
    Dlockd::start(Options {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..Options::in_memory()
    })
}

fn acquire(resource: &str, owner: &str, wait: Duration) -> AcquireRequest {
    AcquireRequest {
        store_name: "store".into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: 60,
        wait_timeout_ms: wait.as_millis() as i64,
        require_fencing: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_waiter_past_the_cap_is_refused_with_a_clear_error() {
    let sidecar = sidecar_with(&["--max-waiters", "1"]);
    let api = Api::new(&sidecar).await;
    let key = unique("capped");
    assert_eq!(
        api.lock(
            crate::support::api::Protocol::Http,
            "store",
            &key,
            "holder",
            60
        )
        .await,
        Ok(true)
    );
    let first = api.wait_in_background("store", &key, "w1");
    // The first waiter is counted once Inspect sees it.
    let mut locks = sidecar.locks().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = locks
            .inspect(InspectRequest {
                store_name: "store".into(),
                resource_id: key.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if seen.lock.is_some_and(|l| l.waiting_here == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "the first waiter never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = serde_json::json!({"resourceId": key, "lockOwner": "w2",
                                  "expiryInSeconds": 60, "waitTimeoutMs": 60_000});
    let refused = api.post("/dlock/v1/acquire/store", body.to_string()).await;
    match refused {
        Err(Failure::Http {
            status,
            error_code,
            message,
        }) => {
            assert_eq!((status, error_code.as_str()), (429, "ERR_TOO_MANY_WAITERS"));
            assert!(message.contains("--max-waiters"), "{message}");
        }
        other => panic!("a waiter past the cap was not refused: {other:?}"),
    }
    // Over gRPC, the same refusal is RESOURCE_EXHAUSTED.
    let refused = locks
        .acquire(acquire(&key, "w3", Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    first.abort();
}

#[tokio::test]
async fn one_connection_keeps_at_most_its_stream_limit_open() {
    let sidecar = sidecar_with(&["--max-streams-per-connection", "2"]);
    let api = Api::new(&sidecar).await;
    let key = unique("streams");
    assert_eq!(
        api.lock(
            crate::support::api::Protocol::Grpc,
            "store",
            &key,
            "holder",
            60
        )
        .await,
        Ok(true)
    );
    let locks = sidecar.locks().await;
    let mut waiters = Vec::new();
    for owner in ["w1", "w2"] {
        let mut client = locks.clone();
        let request = acquire(&key, owner, Duration::from_secs(60));
        waiters.push(tokio::spawn(async move { client.acquire(request).await }));
    }
    let inspect = InspectRequest {
        store_name: "store".into(),
        resource_id: key.clone(),
    };
    // Both waiters counted, seen over a connection of its own.
    let mut other = sidecar.locks().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = other.inspect(inspect.clone()).await.unwrap().into_inner();
        if seen.lock.is_some_and(|l| l.waiting_here == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the waiters never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A third request on the waiters' connection waits for a free stream.
    let mut third = locks.clone();
    let queued = tokio::spawn(async move { third.inspect(inspect).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !queued.is_finished(),
        "a third stream was opened past the limit"
    );
    // One waiter gives up: its stream closes, and the third request goes through.
    waiters.remove(0).abort();
    let answered = tokio::time::timeout(Duration::from_secs(5), queued).await;
    assert!(matches!(answered, Ok(Ok(Ok(_)))), "{answered:?}");
}

#[tokio::test]
async fn a_client_that_stops_answering_loses_its_session_and_its_lock_within_twice_the_keepalive() {
    let sidecar = sidecar_with(&["--client-keepalive", "1s"]);
    let key = unique("silent");
    let mut client = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "--store", "store", &key, "60"])
        .args(["--", "sleep", "60"])
        .env_remove("DAPR_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut locks = sidecar.locks().await;
    let inspect = InspectRequest {
        store_name: "store".into(),
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
    // The client's host goes silent: the connection stays open (the kernel still answers
    // TCP) but nothing answers HTTP/2's pings, as with a hung or unplugged host.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(client.id() as libc::pid_t, libc::SIGSTOP) };
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(10);
    while locks
        .inspect(inspect.clone())
        .await
        .unwrap()
        .into_inner()
        .held
    {
        assert!(Instant::now() < deadline, "a silent client's lock was kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A ping every second, answered within a second: released within about two, plus the
    // time to a ping's first tick.
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(4), "released after {took:?}");
    let _ = client.kill();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(client.id() as libc::pid_t, libc::SIGCONT) };
    let _ = client.wait();
}
