//! Item 5: mutual exclusion under contention. Fifty owners, split over the sidecars (two when
//! the backend is shared between sidecars) and over both protocols, loop over take /
//! read-modify-write of a counter / release. No update may be lost and no two holders may
//! ever overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};

const OWNERS: usize = 50;
const ROUNDS: usize = 10;

pub async fn mutual_exclusion(backend: Backend) {
    let sidecars: Vec<_> = (0..if backend.shared_between_sidecars() {
        2
    } else {
        1
    })
        .map(|_| backend.sidecar("app", &[("store", None)]))
        .collect();
    let mut apis = Vec::new();
    for sidecar in &sidecars {
        apis.push(Api::new(sidecar).await);
    }
    let key = unique("c5");
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let mut owners = tokio::task::JoinSet::new();
    for i in 0..OWNERS {
        let api = apis[i % apis.len()].clone();
        let protocol = if i % 4 < 2 {
            Protocol::Grpc
        } else {
            Protocol::Http
        };
        let (key, counter, inside) = (key.clone(), counter.clone(), inside.clone());
        owners.spawn(async move {
            let owner = format!("owner-{i}");
            for _ in 0..ROUNDS {
                while !api.lock(protocol, "store", &key, &owner, 30).await.unwrap() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                // A read-modify-write with a pause in the middle: only exclusion keeps it whole.
                let seen = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(seen + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                assert_eq!(
                    api.unlock(protocol, "store", &key, &owner).await,
                    Ok(SUCCESS)
                );
            }
        });
    }
    while let Some(done) = owners.join_next().await {
        done.expect("an owner failed");
    }
    assert_eq!(
        counter.load(Ordering::SeqCst),
        (OWNERS * ROUNDS) as u64,
        "lost updates"
    );
}
