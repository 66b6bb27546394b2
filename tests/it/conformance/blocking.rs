//! Item 9: blocking acquire. It returns within its wait plus a small margin; waiters on one
//! sidecar are served first come, first served; a cancelled waiter leaves no trace; a
//! release wakes a waiter promptly, without the waiter polling.

use std::time::{Duration, Instant};

use dlock::cli::connect::Locks;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::locks::{acquire, request, try_acquire};

const MARGIN: Duration = Duration::from_millis(300);

pub async fn wait_bounds(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let key = unique("c9");
    assert!(try_acquire(&locks, &key, "a", 30).await.is_some());

    // A wait of 0 is a try; a wait of 500 ms returns after 500 ms.
    assert_eq!(try_acquire(&locks, &key, "b", 30).await, None);
    let started = Instant::now();
    assert_eq!(
        acquire(&locks, &key, "b", 30, Duration::from_millis(500))
            .await
            .unwrap(),
        None
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(500) + MARGIN,
        "{took:?}"
    );

    // The call's own deadline bounds the wait too, and the answer is "not acquired", not an
    // error.
    let mut call = tonic::Request::new(request(&key, "b", 30, Duration::from_secs(30)));
    call.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let answer = locks.clone().acquire(call).await.unwrap().into_inner();
    assert!(!answer.acquired);
    assert!(started.elapsed() < Duration::from_millis(400) + MARGIN);
}

/// Waiter `i` of an arrival-order test: acquires as `waiter-{i}`, reports `i` once served,
/// holds the lock a moment and releases it.
pub async fn served_in_turn(
    locks: Locks,
    api: Api,
    key: String,
    i: usize,
    order: UnboundedSender<usize>,
) {
    let owner = format!("waiter-{i}");
    let got = acquire(&locks, &key, &owner, 30, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(got.is_some(), "{owner} timed out");
    order.send(i).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, &owner).await,
        Ok(SUCCESS)
    );
}

/// The order in which the `served_in_turn` waiters were served, once all are done.
pub async fn served_order(
    waiters: Vec<JoinHandle<()>>,
    mut order: UnboundedReceiver<usize>,
) -> Vec<usize> {
    for waiter in waiters {
        waiter.await.unwrap();
    }
    let mut served = Vec::new();
    while let Ok(i) = order.try_recv() {
        served.push(i);
    }
    served
}

pub async fn first_come_first_served(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let key = unique("c9");
    assert!(try_acquire(&locks, &key, "holder", 30).await.is_some());

    let (order_tx, order) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..4 {
        let (locks, api, key, order_tx) =
            (locks.clone(), api.clone(), key.clone(), order_tx.clone());
        waiters.push(tokio::spawn(served_in_turn(locks, api, key, i, order_tx)));
        // Each waiter is in line before the next arrives.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    let served = served_order(waiters, order).await;
    assert_eq!(served, [0, 1, 2, 3]);
}

pub async fn cancelled_waiter_leaves_no_trace(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let key = unique("c9");
    assert!(try_acquire(&locks, &key, "holder", 30).await.is_some());
    // A waiter that gives up (its task and call dropped) ahead of everyone else.
    let quitter = {
        let (locks, key) = (locks.clone(), key.clone());
        tokio::spawn(
            async move { acquire(&locks, &key, "quitter", 30, Duration::from_secs(30)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    quitter.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    // Nobody is left in line: a try gets the lock, and the quitter holds nothing.
    assert!(try_acquire(&locks, &key, "next", 30).await.is_some());
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "quitter").await,
        Ok(crate::support::api::LOCK_BELONGS_TO_OTHERS)
    );
}

pub async fn release_wakes_a_waiter(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;

    // An unlock hands the lock over within a few milliseconds.
    let key = unique("c9");
    assert!(try_acquire(&locks, &key, "holder", 30).await.is_some());
    let waiter = {
        let (locks, key) = (locks.clone(), key.clone());
        tokio::spawn(async move {
            acquire(&locks, &key, "waiter", 30, Duration::from_secs(20))
                .await
                .unwrap();
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    assert_eq!(
        api.unlock(Protocol::Http, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    let granted = waiter.await.unwrap();
    assert!(
        granted - released < Duration::from_millis(100),
        "{:?}",
        granted - released
    );

    // An expiry hands it over on time too.
    let key = unique("c9");
    let taken = Instant::now();
    assert!(try_acquire(&locks, &key, "holder", 1).await.is_some());
    assert!(acquire(&locks, &key, "waiter", 30, Duration::from_secs(10))
        .await
        .unwrap()
        .is_some());
    let waited = taken.elapsed();
    // Free within a second after the expiry, as item 3 asks.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
}

/// A release through one sidecar wakes a waiter on another through the store's release
/// signal: five hand-overs, each within 80 ms. The releases come at different points of the
/// waiter's poll schedule (its polls fall 10, 30, 70, 150, 310, 510, 710, 910… ms after it
/// starts), so a waiter that only polled would be late for at least two of them.
pub async fn release_on_another_sidecar_wakes_a_waiter(backend: Backend) {
    let holder = backend.sidecar("app", &[("store", None)]);
    let waiter = backend.sidecar("app", &[("store", None)]);
    let holder_api = Api::new(&holder).await;
    let waiter_locks = waiter.locks().await;
    let capabilities = crate::support::api::capabilities(&waiter, "store").await;
    assert!(
        capabilities.iter().any(|c| c == "RELEASE_SIGNAL"),
        "{capabilities:?}"
    );
    for round in 0..5 {
        let key = unique("c9");
        assert_eq!(
            holder_api
                .lock(Protocol::Grpc, "store", &key, "holder", 30)
                .await,
            Ok(true)
        );
        let waiting = {
            let (locks, key) = (waiter_locks.clone(), key.clone());
            tokio::spawn(async move {
                acquire(&locks, &key, "waiter", 30, Duration::from_secs(20))
                    .await
                    .unwrap();
                Instant::now()
            })
        };
        // Long enough for the waiter's poll interval to have grown to its 200 ms maximum.
        tokio::time::sleep(Duration::from_millis(720 + 37 * round)).await;
        let released = Instant::now();
        assert_eq!(
            holder_api
                .unlock(Protocol::Grpc, "store", &key, "holder")
                .await,
            Ok(SUCCESS)
        );
        let granted = waiting.await.unwrap();
        assert!(
            granted - released < Duration::from_millis(80),
            "round {round}: woken {:?} after the release",
            granted - released
        );
    }
}

/// A store shared between sidecars runs the cross-sidecar wake-up item exactly when it reports
/// RELEASE_SIGNAL, so a store that loses its signal fails rather than skipping the item.
pub async fn reports_a_release_signal_exactly_where_it_runs_the_item(
    backend: Backend,
    runs_the_signal_item: bool,
) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let capabilities = crate::support::api::capabilities(&sidecar, "store").await;
    let signal = capabilities.iter().any(|c| c == "RELEASE_SIGNAL");
    if backend.shared_between_sidecars() {
        assert_eq!(
            signal, runs_the_signal_item,
            "a shared store with a release signal runs the release_signal items: \
             {capabilities:?}"
        );
    } else {
        assert!(!runs_the_signal_item, "nothing to signal across sidecars");
    }
}
