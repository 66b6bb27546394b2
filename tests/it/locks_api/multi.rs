//! Multi-locks (`resourceIds`) through a real sidecar: all or none on both doors, released as
//! a whole, bad requests refused, opposite-order multi-locks all finishing, and a held session
//! that renews every key and loses the whole when one key goes. The stores' own rules are the
//! contract suite's (`contract::*::multi`).

use std::time::Duration;

use dlock::cli::connect::Locks;
use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::{AcquireRequest, ReleaseRequest};
use serde_json::{json, Value};

use super::{with_admin, ADMIN};
use crate::support::api::{Api, Failure, Protocol, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{force_release, inspect, request, Session};

/// `owner`'s multi-lock over `resources`, for `expiry` seconds, waiting up to `wait`.
fn multi_request(resources: &[&str], owner: &str, expiry: i32, wait: Duration) -> AcquireRequest {
    AcquireRequest {
        resource_ids: resources.iter().map(|r| r.to_string()).collect(),
        ..request("", owner, expiry, wait)
    }
}

async fn acquired(locks: &Locks, request: AcquireRequest) -> bool {
    let answer = locks.clone().acquire(request).await;
    answer
        .expect("the acquire is answered")
        .into_inner()
        .acquired
}

async fn release(locks: &Locks, resources: &[&str], owner: &str) -> i32 {
    let request = ReleaseRequest {
        store_name: "store".into(),
        lock_owner: owner.into(),
        resource_ids: resources.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    let answer = locks.clone().release(request).await;
    answer.expect("the release is answered").into_inner().status
}

async fn owner_of(locks: &Locks, resource: &str) -> Option<String> {
    inspect(locks, resource).await.map(|info| info.lock_owner)
}

async fn post(api: &Api, path: &str, body: Value) -> Result<Value, Failure> {
    api.post(path, body.to_string()).await
}

#[tokio::test]
async fn all_or_none_on_both_doors_and_released_as_a_whole() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let (a, b, c) = (unique("multi-a"), unique("multi-b"), unique("multi-c"));
    let all = [c.as_str(), a.as_str(), b.as_str()];

    assert_eq!(
        api.lock(Protocol::Grpc, "store", &b, "other", 30).await,
        Ok(true)
    );
    let tried = multi_request(&all, "x", 30, Duration::ZERO);
    assert!(!acquired(&locks, tried).await);
    assert_eq!(owner_of(&locks, &a).await, None);
    assert_eq!(owner_of(&locks, &c).await, None);
    assert_eq!(
        api.unlock(Protocol::Http, "store", &b, "other").await,
        Ok(SUCCESS)
    );

    let body = json!({"resourceIds": all, "lockOwner": "x", "expiryInSeconds": 30});
    let answer = post(&api, "/dlock/v1/acquire/store", body).await.unwrap();
    assert_eq!(answer["acquired"], json!(true), "{answer}");
    for resource in all {
        assert_eq!(owner_of(&locks, resource).await.as_deref(), Some("x"));
    }
    // Dapr's try on any key finds it held; a release by another owner changes nothing.
    assert_eq!(
        api.lock(Protocol::Http, "store", &c, "y", 30).await,
        Ok(false)
    );
    assert_eq!(release(&locks, &all, "y").await, 2);
    let body = json!({"resourceIds": [b, c, a], "lockOwner": "x"});
    let released = post(&api, "/dlock/v1/release/store", body).await.unwrap();
    assert_eq!(released["status"], json!(SUCCESS), "{released}");
    for resource in all {
        assert_eq!(owner_of(&locks, resource).await, None, "{resource}");
    }
}

#[tokio::test]
async fn a_bad_multi_lock_is_refused_naming_what_is_wrong() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let both = json!({"resourceId": "r", "resourceIds": ["a", "b"], "lockOwner": "x", "expiryInSeconds": 5});
    let twice = json!({"resourceIds": ["a", "b", "a"], "lockOwner": "x", "expiryInSeconds": 5});
    let empty = json!({"resourceIds": ["a", ""], "lockOwner": "x", "expiryInSeconds": 5});
    let cases = [
        (
            "/dlock/v1/acquire/store",
            both.clone(),
            "ResourceId and ResourceIds are both set",
        ),
        (
            "/dlock/v1/release/store",
            both,
            "ResourceId and ResourceIds are both set",
        ),
        (
            "/dlock/v1/acquire/store",
            twice.clone(),
            "ResourceIds names a twice",
        ),
        (
            "/dlock/v1/release/store",
            twice,
            "ResourceIds names a twice",
        ),
        ("/dlock/v1/acquire/store", empty, "ResourceId is empty"),
    ];
    for (path, body, says) in cases {
        match post(&api, path, body.clone()).await {
            Err(Failure::Http {
                status: 400,
                error_code,
                message,
            }) => {
                assert_eq!(error_code, "ERR_MALFORMED_REQUEST", "{body}");
                assert!(message.contains(says), "{body}: {message}");
            }
            other => panic!("{path} {body}: {other:?}"),
        }
    }
}

/// Two owners take overlapping multi-locks naming their resources in opposite orders, each
/// again and again with a blocking acquire: every acquire is granted, none waits forever.
#[tokio::test]
async fn opposite_order_multi_locks_all_finish() {
    const ROUNDS: usize = 20;
    let sidecar = Dlockd::start(Options::in_memory());
    let locks = sidecar.locks().await;
    let (a, b) = (unique("opposite-a"), unique("opposite-b"));
    let run = |owner: &'static str, order: [String; 2]| {
        let locks = locks.clone();
        tokio::spawn(async move {
            let resources = [order[0].as_str(), order[1].as_str()];
            for round in 0..ROUNDS {
                let asked = multi_request(&resources, owner, 5, Duration::from_secs(10));
                assert!(acquired(&locks, asked).await, "{owner} round {round}");
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(release(&locks, &resources, owner).await, SUCCESS);
            }
        })
    };
    let forward = run("p", [a.clone(), b.clone()]);
    let backward = run("q", [b, a]);
    let both = async { (forward.await, backward.await) };
    let finished = tokio::time::timeout(Duration::from_secs(30), both).await;
    let (forward, backward) = finished.expect("opposite-order multi-locks finish");
    forward.unwrap();
    backward.unwrap();
}

/// A held session keeps every key past its expiry; when one key is taken away, the session
/// hears it lost, and the sidecar releases the other keys at once rather than at their expiry.
#[tokio::test]
async fn a_session_renews_every_key_and_losing_one_loses_the_whole() {
    let sidecar = Dlockd::start(with_admin());
    let locks = sidecar.locks().await;
    let (a, b) = (unique("session-a"), unique("session-b"));
    let resources = [a.as_str(), b.as_str()];
    let mut session =
        Session::open(&locks, multi_request(&resources, "x", 3, Duration::ZERO)).await;
    assert!(matches!(session.next(Duration::from_secs(5)).await, Event::Acquired(a) if a.acquired));
    assert!(
        session.quiet_for(Duration::from_secs(4)).await,
        "the session ended"
    );
    for resource in resources {
        assert_eq!(owner_of(&locks, resource).await.as_deref(), Some("x"));
    }
    assert_eq!(force_release(&locks, &b, Some(ADMIN)).await, Ok(true));
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Lost(_)
    ));
    let freed = async {
        while owner_of(&locks, &a).await.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let freed = tokio::time::timeout(Duration::from_secs(1), freed).await;
    assert!(
        freed.is_ok(),
        "the other key stayed held after the session lost the lock"
    );
}
