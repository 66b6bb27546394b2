//! dlock's own API and Dapr's TryLockAlpha1/UnlockAlpha1 work on the same locks: each sees
//! what the other took, and a waiter in dlock's acquire is woken promptly by Dapr's unlock.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{acquire_grpc, inspect_grpc, renew_grpc};
use crate::support::locks_http::{acquire_http, granted_token, inspect_http, inspected};

/// How soon a waiter must hear of a release. The waiting room's fallback poll backs off to
/// 200 ms, so a bound of 200 ms could not tell a real wake-up from polling; the unlocks below
/// also land just after a poll would have run (at about 310 and 510 ms into the wait).
const PROMPT: Duration = Duration::from_millis(100);

#[tokio::test]
async fn locks_taken_through_dapr_are_the_same_locks() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;

    for dapr in [Protocol::Grpc, Protocol::Http] {
        // Taken with TryLockAlpha1: our acquire, renew and inspect see it.
        let resource = unique("dapr-first");
        assert_eq!(
            api.lock(dapr, "store", &resource, "dapr", 30).await,
            Ok(true)
        );
        let grpc = acquire_grpc(&locks, "store", &resource, "x", 30, 0)
            .await
            .unwrap();
        assert!(!grpc.acquired, "{dapr:?}: {grpc:?}");
        let http = acquire_http(&api, &resource, "x", 30, 0).await.unwrap();
        assert_eq!(http["acquired"], json!(false), "{dapr:?}: {http}");
        let held = inspected(&inspect_http(&api, &resource).await.unwrap()).expect("held");
        assert_eq!(held.lock_owner, "dapr");
        let held = inspect_grpc(&locks, "store", &resource)
            .await
            .unwrap()
            .expect("held");
        assert_eq!(held.lock_owner, "dapr");
        assert_eq!(
            renew_grpc(&locks, "store", &resource, "dapr", 60).await,
            Ok(SUCCESS)
        );
        assert!(
            inspect_grpc(&locks, "store", &resource)
                .await
                .unwrap()
                .unwrap()
                .expires_in_ms
                > 30_000,
            "renewed through dlock.v1"
        );
        assert_eq!(
            api.unlock(dapr, "store", &resource, "dapr").await,
            Ok(SUCCESS)
        );
        assert_eq!(inspect_grpc(&locks, "store", &resource).await, Ok(None));

        // Taken with our acquire: TryLockAlpha1 and UnlockAlpha1 see it.
        let resource = unique("dlock-first");
        let token = match dapr {
            Protocol::Grpc => {
                acquire_grpc(&locks, "store", &resource, "x", 30, 0)
                    .await
                    .unwrap()
                    .fencing_token
            }
            Protocol::Http => {
                granted_token(&acquire_http(&api, &resource, "x", 30, 0).await.unwrap())
            }
        };
        assert!(token > 0);
        for door in [Protocol::Grpc, Protocol::Http] {
            assert_eq!(
                api.lock(door, "store", &resource, "dapr", 30).await,
                Ok(false),
                "TryLock over {door:?} of a lock taken with dlock.v1"
            );
        }
        assert_eq!(
            api.unlock(dapr, "store", &resource, "dapr").await,
            Ok(LOCK_BELONGS_TO_OTHERS)
        );
        assert_eq!(api.unlock(dapr, "store", &resource, "x").await, Ok(SUCCESS));
        assert_eq!(
            api.lock(dapr, "store", &resource, "dapr", 30).await,
            Ok(true)
        );
        let held = inspect_grpc(&locks, "store", &resource)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.lock_owner, "dapr");
        assert!(held.fencing_token > token, "{held:?} after {token}");
    }

    // A waiter blocked in our acquire is woken promptly by Dapr's unlock.
    for (dapr, waiter) in [
        (Protocol::Grpc, Protocol::Grpc),
        (Protocol::Http, Protocol::Http),
        (Protocol::Grpc, Protocol::Http),
        (Protocol::Http, Protocol::Grpc),
    ] {
        for before_unlock in [Duration::from_millis(330), Duration::from_millis(530)] {
            let resource = unique("wake");
            assert_eq!(
                api.lock(dapr, "store", &resource, "dapr", 30).await,
                Ok(true)
            );
            let (api2, locks2, resource2) = (api.clone(), locks.clone(), resource.clone());
            let started = Instant::now();
            let waiting = tokio::spawn(async move {
                let acquired = match waiter {
                    Protocol::Grpc => {
                        acquire_grpc(&locks2, "store", &resource2, "w", 30, 10_000)
                            .await
                            .unwrap()
                            .acquired
                    }
                    Protocol::Http => {
                        let answer = acquire_http(&api2, &resource2, "w", 30, 10_000)
                            .await
                            .unwrap();
                        answer["acquired"].as_bool().unwrap()
                    }
                };
                (acquired, Instant::now())
            });
            tokio::time::sleep_until((started + before_unlock).into()).await;
            assert!(!waiting.is_finished(), "the waiter waits for the holder");
            let unlocking = Instant::now();
            assert_eq!(
                api.unlock(dapr, "store", &resource, "dapr").await,
                Ok(SUCCESS)
            );
            let (acquired, done) = waiting.await.unwrap();
            let latency = done.saturating_duration_since(unlocking);
            assert!(acquired, "{waiter:?} waiter after a {dapr:?} unlock");
            assert!(
                latency < PROMPT,
                "{waiter:?} waiter woke {latency:?} after a {dapr:?} unlock"
            );
            let held = inspect_grpc(&locks, "store", &resource)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(held.lock_owner, "w");
        }
    }
}
