//! Shared, limited and reentrant locks through a real sidecar, on both doors: the kinds'
//! fields and errors as clients see them, Dapr's calls on a key held in another kind, and a
//! held session of a shared lock. The stores' own rules are the contract suite's
//! (`contract::*::kinds`); this is the API around them.

use std::time::Duration;

use dlock::cli::connect::Locks;
use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::{AcquireRequest, LockMode, ReleaseRequest};
use serde_json::{json, Value};
use tonic::Code;

use crate::support::api::{Api, Failure, Protocol, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{request, Session};
use crate::support::locks_http::{inspect_http, inspected};

const LOCK_DOES_NOT_EXIST: i32 = 1;

fn kind_request(
    resource: &str,
    owner: &str,
    mode: LockMode,
    limit: u32,
    reentrant: bool,
) -> AcquireRequest {
    AcquireRequest {
        mode: mode.into(),
        limit,
        reentrant,
        ..request(resource, owner, 30, Duration::ZERO)
    }
}

async fn acquire(locks: &Locks, request: AcquireRequest) -> Result<(bool, u64, u32), Failure> {
    let answer = locks.clone().acquire(request).await?.into_inner();
    Ok((answer.acquired, answer.fencing_token, answer.holds))
}

async fn acquire_http(api: &Api, body: Value) -> Result<Value, Failure> {
    api.post("/dlock/v1/acquire/store", body.to_string()).await
}

async fn release_http(api: &Api, resource: &str, owner: &str, all: bool) -> Result<Value, Failure> {
    let body = json!({"resourceId": resource, "lockOwner": owner, "allHolds": all});
    api.post("/dlock/v1/release/store", body.to_string()).await
}

#[tokio::test]
async fn a_semaphore_through_both_doors_and_dapr_sees_it_held() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let resource = unique("semaphore");

    let a = acquire(
        &locks,
        kind_request(&resource, "a", LockMode::Shared, 2, false),
    )
    .await;
    assert!(matches!(a, Ok((true, _, 1))), "{a:?}");
    let b = acquire_http(
        &api,
        json!({"resourceId": resource, "lockOwner": "b", "expiryInSeconds": 30, "mode": "SHARED", "limit": 2}),
    )
    .await
    .unwrap();
    assert_eq!(
        (b["acquired"].clone(), b["holds"].clone()),
        (json!(true), json!(1)),
        "{b}"
    );
    // Full: a third is not granted; another limit is refused, on either door.
    let c = acquire(
        &locks,
        kind_request(&resource, "c", LockMode::Shared, 2, false),
    )
    .await;
    assert!(matches!(c, Ok((false, 0, 0))), "{c:?}");
    let other_limit = acquire(
        &locks,
        kind_request(&resource, "c", LockMode::Shared, 3, false),
    )
    .await;
    match other_limit {
        Err(Failure::Grpc {
            code: Code::FailedPrecondition,
            message,
        }) => {
            assert!(
                message.contains("limit 2") && message.contains(&resource),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let body = json!({"resourceId": resource, "lockOwner": "c", "expiryInSeconds": 30, "mode": "SHARED", "limit": 3});
    match acquire_http(&api, body).await {
        Err(Failure::Http {
            status: 409,
            error_code,
            ..
        }) => assert_eq!(error_code, "ERR_LIMIT_MISMATCH"),
        other => panic!("{other:?}"),
    }
    // Dapr's TryLock is exclusive: it finds the key held; Inspect shows both holders.
    for dapr in [Protocol::Grpc, Protocol::Http] {
        assert_eq!(
            api.lock(dapr, "store", &resource, "w", 30).await,
            Ok(false),
            "{dapr:?}"
        );
    }
    let held = inspected(&inspect_http(&api, &resource).await.unwrap()).expect("held");
    assert_eq!((held.mode(), held.limit), (LockMode::Shared, 2));
    let owners: Vec<_> = held.holders.iter().map(|h| h.lock_owner.as_str()).collect();
    assert_eq!(owners, ["a", "b"]);
    assert_eq!(held.lock_owner, "a");
    // Dapr's Unlock by a shared holder releases its place, which a waiter then gets.
    let waiter = {
        let locks = locks.clone();
        let request = AcquireRequest {
            wait_timeout_ms: 10_000,
            ..kind_request(&resource, "c", LockMode::Shared, 2, false)
        };
        tokio::spawn(async move { acquire(&locks, request).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        api.unlock(Protocol::Http, "store", &resource, "a").await,
        Ok(SUCCESS)
    );
    let waited = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert!(matches!(waited, Ok(Ok(Ok((true, _, 1))))), "{waited:?}");
}

#[tokio::test]
async fn bad_kinds_are_refused_with_dapr_shaped_errors() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let resource = unique("bad-kind");
    let exclusive_with_limit = kind_request(&resource, "o", LockMode::Exclusive, 3, false);
    match acquire(&locks, exclusive_with_limit).await {
        Err(Failure::Grpc {
            code: Code::InvalidArgument,
            message,
        }) => {
            assert!(
                message.contains("Limit") && message.contains("SHARED"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let bodies = [
        json!({"resourceId": resource, "lockOwner": "o", "expiryInSeconds": 30, "limit": 3}),
        json!({"resourceId": resource, "lockOwner": "o", "expiryInSeconds": 30, "mode": "READ"}),
    ];
    for body in bodies {
        match acquire_http(&api, body.clone()).await {
            Err(Failure::Http {
                status: 400,
                error_code,
                ..
            }) => {
                assert_eq!(error_code, "ERR_MALFORMED_REQUEST", "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // Nothing was granted by the refused requests.
    assert_eq!(
        inspect_http(&api, &resource).await.unwrap(),
        json!({"held": false})
    );
}

#[tokio::test]
async fn reentrant_holds_and_release_through_both_doors() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let resource = unique("reentrant");
    let reentrant = kind_request(&resource, "o", LockMode::Exclusive, 0, true);

    let (_, token, holds) = acquire(&locks, reentrant.clone()).await.unwrap();
    assert_eq!(holds, 1);
    let again = acquire_http(
        &api,
        json!({"resourceId": resource, "lockOwner": "o", "expiryInSeconds": 30, "reentrant": true}),
    )
    .await
    .unwrap();
    assert_eq!(again["holds"], json!(2), "{again}");
    assert_eq!(again["fencingToken"], json!(token.to_string()), "{again}");
    // A re-entry in the other mode is refused at once.
    let shared_again = acquire(
        &locks,
        kind_request(&resource, "o", LockMode::Shared, 0, true),
    )
    .await;
    match shared_again {
        Err(Failure::Grpc {
            code: Code::FailedPrecondition,
            message,
        }) => {
            assert!(
                message.contains("EXCLUSIVE") && message.contains("SHARED"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let body = json!({"resourceId": resource, "lockOwner": "o", "expiryInSeconds": 30, "reentrant": true, "mode": "SHARED"});
    match acquire_http(&api, body).await {
        Err(Failure::Http {
            status: 409,
            error_code,
            ..
        }) => assert_eq!(error_code, "ERR_MODE_CONFLICT"),
        other => panic!("{other:?}"),
    }
    // One hold back over HTTP, saying the two it had: resent (an answer lost), it takes no
    // second hold; a count that is neither is refused. Then the rest at once over gRPC.
    let checked = json!({"resourceId": resource, "lockOwner": "o", "holds": 2}).to_string();
    for _ in 0..2 {
        let one = api.post("/dlock/v1/release/store", checked.clone()).await;
        assert_eq!(
            one.unwrap(),
            json!({"status": SUCCESS, "holdsRemaining": 1})
        );
    }
    let wrong = json!({"resourceId": resource, "lockOwner": "o", "holds": 5}).to_string();
    match api.post("/dlock/v1/release/store", wrong).await {
        Err(Failure::Http {
            status: 409,
            error_code,
            message,
        }) => {
            assert_eq!(error_code, "ERR_HOLDS_MISMATCH");
            assert!(
                message.contains("are 1, the release expected 5"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "p", 30).await,
        Ok(false)
    );
    let all = locks
        .clone()
        .release(ReleaseRequest {
            store_name: "store".into(),
            resource_id: resource.clone(),
            lock_owner: "o".into(),
            all_holds: true,
            holds: 0,
            resource_ids: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.status, all.holds_remaining), (SUCCESS, 0));
    let again = release_http(&api, &resource, "o", false).await.unwrap();
    assert_eq!(
        again,
        json!({"status": LOCK_DOES_NOT_EXIST, "holdsRemaining": 0})
    );
    assert_eq!(
        api.lock(Protocol::Http, "store", &resource, "p", 30).await,
        Ok(true)
    );
}

#[tokio::test]
async fn held_sessions_of_a_semaphore_each_hold_a_place() {
    let sidecar = Dlockd::start(Options::in_memory());
    let locks = sidecar.locks().await;
    let resource = unique("sessions");
    let place = |owner: &str, wait_ms: i64| AcquireRequest {
        wait_timeout_ms: wait_ms,
        expiry_in_seconds: 3,
        ..kind_request(&resource, owner, LockMode::Shared, 2, false)
    };
    let mut first = Session::open(&locks, place("first", 0)).await;
    let mut second = Session::open(&locks, place("second", 0)).await;
    for session in [&mut first, &mut second] {
        assert!(
            matches!(session.next(Duration::from_secs(5)).await, Event::Acquired(a) if a.acquired)
        );
    }
    let mut third = Session::open(&locks, place("third", 20_000)).await;
    // Renewed by the sidecar past their 3 s expiry, the two keep their places.
    assert!(
        third.quiet_for(Duration::from_secs(4)).await,
        "the third got a place while two held"
    );
    first.release().await;
    assert!(matches!(
        first.next(Duration::from_secs(5)).await,
        Event::Released(_)
    ));
    assert!(matches!(third.next(Duration::from_secs(5)).await, Event::Acquired(a) if a.acquired));
    let api = Api::new(&sidecar).await;
    let held = inspected(&inspect_http(&api, &resource).await.unwrap()).expect("held");
    let owners: Vec<_> = held.holders.iter().map(|h| h.lock_owner.as_str()).collect();
    assert_eq!(owners, ["second", "third"]);
}

/// examples/python/nightly_import.py, five runs at once against a real sidecar: never more
/// than three import at once, all five finish.
#[tokio::test]
async fn the_nightly_import_example_runs_three_at_a_time() {
    let sidecar = Dlockd::start(Options::in_memory());
    let port = sidecar.http.rsplit(':').next().unwrap().to_string();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/python/nightly_import.py"
    );
    let runs: Vec<_> = (0..5)
        .map(|_| {
            std::process::Command::new("python3")
                .arg(example)
                .env("DAPR_HTTP_PORT", &port)
                .env("WORK_SECONDS", "1.5")
                .env("LOCK_STORE", "store")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3 runs")
        })
        .collect();
    let mut spans = Vec::new();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{text}");
        let at = |word: &str| -> i64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(word))
                .unwrap_or_else(|| panic!("{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(text.contains("released: status 0"), "{text}");
        spans.push((at("START "), at("END ")));
    }
    // The most imports running at any instant: at every start, count the spans open then.
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 3, "{spans:?}");
}
