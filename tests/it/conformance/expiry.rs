//! Item 3: a lock is held until shortly before its expiry and free within a second after; an
//! expired holder can't unlock the next holder's lock.

use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST};
use crate::support::backend::{unique, Backend};

const BEFORE: Duration = Duration::from_millis(300);
const AFTER: Duration = Duration::from_secs(1);

pub async fn expiry(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    // The three expiries run side by side, over both protocols.
    let mut checks = tokio::task::JoinSet::new();
    for seconds in 1..=3 {
        let api = api.clone();
        let protocol = if seconds % 2 == 0 {
            Protocol::Http
        } else {
            Protocol::Grpc
        };
        checks.spawn(async move { one_expiry(&api, protocol, seconds).await });
    }
    while let Some(done) = checks.join_next().await {
        done.expect("an expiry check failed");
    }
}

async fn one_expiry(api: &Api, protocol: Protocol, seconds: i32) {
    let key = unique("c3");
    let taken = Instant::now();
    assert_eq!(
        api.lock(protocol, "store", &key, "a", seconds).await,
        Ok(true)
    );
    let expiry = Duration::from_secs(seconds as u64);

    tokio::time::sleep_until((taken + expiry - BEFORE).into()).await;
    assert_eq!(
        api.lock(protocol, "store", &key, "b", 30).await,
        Ok(false),
        "{seconds}s lock still held {BEFORE:?} before its expiry"
    );
    // Free within a second after the expiry: b gets it.
    loop {
        if api.lock(protocol, "store", &key, "b", 30).await == Ok(true) {
            break;
        }
        assert!(
            taken.elapsed() < expiry + AFTER,
            "{seconds}s lock not free 1s after expiry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(taken.elapsed() >= expiry - BEFORE);
    // The expired holder can't release b's lock.
    assert_eq!(
        api.unlock(protocol, "store", &key, "a").await,
        Ok(LOCK_BELONGS_TO_OTHERS)
    );
    assert_eq!(api.lock(protocol, "store", &key, "a", 30).await, Ok(false));
    // And once b's own lock expires, a's stale unlock finds nothing.
    let key2 = unique("c3b");
    assert_eq!(api.lock(protocol, "store", &key2, "a", 1).await, Ok(true));
    tokio::time::sleep(Duration::from_millis(1100) + AFTER / 2).await;
    assert_eq!(
        api.unlock(protocol, "store", &key2, "a").await,
        Ok(LOCK_DOES_NOT_EXIST)
    );
}
