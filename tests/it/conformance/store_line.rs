//! Item 9, across sidecars: where the store keeps its own line of waiters (WAIT_QUEUE), blocking
//! acquires on several sidecars are served in arrival order; a waiter that gives up (its wait
//! runs out, or its client goes away) leaves the line at once; a waiter whose sidecar dies is
//! skipped once its session or lease ends.
//!
//! The three line items run for the backends whose suite names the `store_line` group. The
//! capability check runs for every backend: a store reports WAIT_QUEUE exactly when
//! `Backend::skips_a_dead_waiter_within` says it keeps a line and its suite runs the line
//! items, so a store that lost the capability, or a suite that left the items out, fails
//! rather than skipping silently. Stores without a line keep one per sidecar (items in
//! blocking.rs), where whoever retries first after a release wins across sidecars.

use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::Dlockd;
use crate::support::locks::acquire;

use super::blocking::{served_in_turn, served_order};

/// How soon a line moves past a waiter that gave up: a leave is one delete, so well under
/// any session timeout or lease.
const PROMPTLY: Duration = Duration::from_millis(500);

/// How long a test waits between two arrivals, so that each is in line before the next.
const APART: Duration = Duration::from_millis(100);

/// The store reports WAIT_QUEUE exactly where the backend keeps a line of waiters, and where
/// its suite runs the line items (`runs_the_line_items`).
pub async fn reports_a_line_exactly_where_it_keeps_one(
    backend: Backend,
    runs_the_line_items: bool,
) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let capabilities = crate::support::api::capabilities(&sidecar, "store").await;
    let line = capabilities.iter().any(|c| c == "WAIT_QUEUE");
    assert_eq!(
        line,
        backend.skips_a_dead_waiter_within().is_some(),
        "{capabilities:?}"
    );
    assert_eq!(
        line, runs_the_line_items,
        "a store that keeps a line runs the store_line items: {capabilities:?}"
    );
}

/// A blocking acquire on its own task; it answers when it was granted.
async fn waiter(sidecar: &Dlockd, key: &str, owner: &str, wait: Duration) -> Waiter {
    let (key, owner, locks) = (key.to_string(), owner.to_string(), sidecar.locks().await);
    tokio::spawn(async move {
        let got = acquire(&locks, &key, &owner, 30, wait).await;
        got.ok().flatten().map(|_| Instant::now())
    })
}

type Waiter = tokio::task::JoinHandle<Option<Instant>>;

pub async fn arrival_order_across_sidecars(backend: Backend) {
    let sidecars: Vec<Dlockd> = (0..3)
        .map(|_| backend.sidecar("app", &[("store", None)]))
        .collect();
    let mut apis = Vec::new();
    for sidecar in &sidecars {
        apis.push(Api::new(sidecar).await);
    }
    let key = unique("c9");
    // A first call through each sidecar, so that no arrival below waits for a connection to
    // warm up: a fresh sidecar's first call to a Redis Cluster takes about 170 ms, longer
    // than the arrivals' spacing.
    for sidecar in &sidecars {
        crate::support::locks::inspect(&sidecar.locks().await, &key).await;
    }
    assert_eq!(
        apis[0]
            .lock(Protocol::Grpc, "store", &key, "holder", 30)
            .await,
        Ok(true)
    );

    // Five waiters arrive in order, spread over the three sidecars; each, once served, holds
    // the lock a moment and releases it through its own sidecar.
    let (order_tx, order) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..5 {
        let at = i % sidecars.len();
        let (locks, api, key, order_tx) = (
            sidecars[at].locks().await,
            apis[at].clone(),
            key.clone(),
            order_tx.clone(),
        );
        waiters.push(tokio::spawn(served_in_turn(locks, api, key, i, order_tx)));
        tokio::time::sleep(APART).await;
    }
    // Released through the first sidecar, whose own waiters came first and fourth.
    assert_eq!(
        apis[0]
            .unlock(Protocol::Grpc, "store", &key, "holder")
            .await,
        Ok(SUCCESS)
    );
    let served = served_order(waiters, order).await;
    assert_eq!(served, [0, 1, 2, 3, 4], "served out of arrival order");
}

pub async fn waiters_that_give_up_leave_the_line(backend: Backend) {
    let sidecars: Vec<Dlockd> = (0..3)
        .map(|_| backend.sidecar("app", &[("store", None)]))
        .collect();
    let api = Api::new(&sidecars[0]).await;
    let key = unique("c9");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "holder", 30).await,
        Ok(true)
    );
    // Ahead in line: one whose client goes away, one whose wait runs out; behind them, one
    // that waits on.
    let dropped = waiter(&sidecars[1], &key, "dropped", Duration::from_secs(30)).await;
    tokio::time::sleep(APART).await;
    let timed_out = waiter(&sidecars[2], &key, "timed-out", Duration::from_millis(600)).await;
    tokio::time::sleep(APART).await;
    let patient = waiter(&sidecars[0], &key, "patient", Duration::from_secs(20)).await;
    tokio::time::sleep(APART).await;
    dropped.abort();
    assert_eq!(timed_out.await.unwrap(), None);

    let released = Instant::now();
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    let granted = patient
        .await
        .unwrap()
        .expect("the patient waiter timed out");
    assert!(
        granted - released < PROMPTLY,
        "the line stalled {:?} on waiters that gave up",
        granted - released
    );
    for quitter in ["dropped", "timed-out"] {
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &key, quitter).await,
            Ok(LOCK_BELONGS_TO_OTHERS),
            "{quitter}"
        );
    }
}

pub async fn a_dead_sidecars_waiter_is_skipped(backend: Backend) {
    let within = backend
        .skips_a_dead_waiter_within()
        .expect("a store that keeps a line skips a dead sidecar's waiter");
    let holder = backend.sidecar("app", &[("store", None)]);
    let doomed = backend.sidecar("app", &[("store", None)]);
    let survivor = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&holder).await;
    let key = unique("c9");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "holder", 30).await,
        Ok(true)
    );
    let _doomed_waiter = waiter(&doomed, &key, "doomed", Duration::from_secs(60)).await;
    tokio::time::sleep(APART * 3).await;
    let next = waiter(&survivor, &key, "next", Duration::from_secs(30)).await;
    tokio::time::sleep(APART * 3).await;
    doomed.kill();
    let released = Instant::now();
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    let granted = next.await.unwrap().expect("the next waiter timed out");
    // ZooKeeper ends a session between one and two ticks past its timeout; etcd checks leases
    // every half second or so.
    let limit = within + Duration::from_secs(2);
    assert!(
        granted - released < limit,
        "the dead sidecar's waiter held the line for {:?}",
        granted - released
    );
}
