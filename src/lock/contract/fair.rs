//! One fair line across sidecars (KINDS.md, rule 3): grants follow arrival across two
//! instances of the store, checked from the history they recorded; on a store whose line
//! takes every kind (`LockStore::line_takes`), a waiting writer waits for the readers ahead of
//! it and holds back the readers behind it; and where each waiter holds its place on a lease,
//! a waiter that stops renewing (its sidecar died) frees the line at the lease's expiry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::subject::{Subject, LATE, LONG, SETTLE};
use crate::lock::{Kind, LockStore, OwnerChecked, Place, TryLockOutcome};

/// Checks that the store's line takes every kind exactly when its suite declares `fair_line`,
/// so a store that loses it fails instead of skipping the checks of kinds in the line.
pub fn assert_fair_line(s: &Subject, declared: bool) {
    for kind in [Kind::shared(0), Kind::shared(2), Kind::PLAIN.reentrant()] {
        assert_eq!(
            s.store.line_takes(kind),
            declared,
            "the store's line takes {kind:?} exactly when its suite says fair_line"
        );
    }
}

/// How long each waiter holds the lock before it releases it.
const HOLD: Duration = Duration::from_millis(30);

/// How long a waiter waits for its turn between two tries, as the core's longest poll.
const POLL: Duration = Duration::from_millis(200);

async fn join(store: &Arc<dyn LockStore>, key: &str, owner: &str, kind: Kind) -> Box<dyn Place> {
    store
        .join(key, owner, LONG, kind)
        .await
        .unwrap_or_else(|e| panic!("{owner} can't join the line of {key}: {e}"))
}

async fn granted(place: &mut Box<dyn Place>) -> bool {
    match place.try_take().await {
        Ok(TryLockOutcome::Granted(_)) => true,
        Ok(TryLockOutcome::Held) => false,
        other => panic!("a place's try failed: {other:?}"),
    }
}

async fn release(store: &Arc<dyn LockStore>, key: &str, owner: &str) {
    assert_eq!(
        store.unlock(key, owner).await,
        Ok(OwnerChecked::Applied),
        "{owner} did not hold {key}"
    );
}

/// Six waiters join one after the other, alternately through the two instances of the store
/// (two sidecars), behind a holder; each drives its place as the core does and, once granted,
/// writes its name in the history, holds the lock a moment and releases it. The history is the
/// order of arrival.
pub async fn grants_follow_arrival_across_sidecars(s: &Subject) {
    let key = s.key("fair-order");
    s.grant(&key, "holder", LONG).await;
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut arrivals = Vec::new();
    let mut waiters = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { &s.store } else { &s.peer }.clone();
        let owner = format!("waiter-{i}");
        let mut place = join(&store, &key, &owner, Kind::PLAIN).await;
        arrivals.push(owner.clone());
        let (key, history) = (key.clone(), history.clone());
        waiters.push(tokio::spawn(async move {
            while !granted(&mut place).await {
                place.wait_turn(POLL).await.unwrap();
            }
            history.lock().unwrap().push(owner.clone());
            tokio::time::sleep(HOLD).await;
            release(&store, &key, &owner).await;
        }));
    }
    release(&s.store, &key, "holder").await;
    for waiter in waiters {
        tokio::time::timeout(LONG, waiter)
            .await
            .expect("the line stalled")
            .unwrap();
    }
    assert_eq!(
        *history.lock().unwrap(),
        arrivals,
        "grants out of arrival order"
    );
}

/// Behind a writer that holds the key: two readers, a writer, a reader, each through one of
/// the two instances. Once the key is free the two readers are granted together, the second
/// never before the first; the writer waits for both, the reader behind it waits for the
/// writer although the readers hold the key, and a reader's try is refused while they wait.
pub async fn a_writer_waits_for_readers_ahead_and_holds_back_readers_behind(s: &Subject) {
    let key = s.key("fair-kinds");
    let read = Kind::shared(0);
    s.grant(&key, "holder", LONG).await;
    let mut r1 = join(&s.store, &key, "r1", read).await;
    let mut r2 = join(&s.peer, &key, "r2", read).await;
    let mut w = join(&s.store, &key, "w", Kind::PLAIN).await;
    let mut r3 = join(&s.peer, &key, "r3", read).await;
    assert!(!granted(&mut r1).await, "a reader took a write-held key");
    release(&s.store, &key, "holder").await;

    assert!(
        !granted(&mut r2).await,
        "a reader went before the one ahead"
    );
    assert!(granted(&mut r1).await, "the first reader was not granted");
    assert!(
        granted(&mut r2).await,
        "readers in a row were not granted together"
    );
    assert!(
        !granted(&mut w).await,
        "the writer went in while readers held"
    );
    assert!(!granted(&mut r3).await, "a reader passed a waiting writer");
    let tried = s.store.acquire(&key, "jumper", LONG, read).await;
    assert_eq!(tried, Ok(TryLockOutcome::Held), "a try jumped the line");

    release(&s.peer, &key, "r2").await;
    assert!(
        !granted(&mut w).await,
        "the writer went in while a reader held"
    );
    release(&s.store, &key, "r1").await;
    assert!(
        granted(&mut w).await,
        "the writer was not granted once readers left"
    );
    assert!(
        !granted(&mut r3).await,
        "a reader went in while the writer held"
    );
    release(&s.store, &key, "w").await;
    assert!(granted(&mut r3).await, "the last reader was not granted");
    release(&s.peer, &key, "r3").await;
}

/// A waiter whose sidecar died (its place dropped: never renewed, never left) holds the line
/// until its lease lapses, and not much longer: the waiter behind it is granted by then.
pub async fn a_dead_waiter_frees_the_line_at_its_lease_expiry(s: &Subject, lease: Duration) {
    let key = s.key("fair-dead");
    s.grant(&key, "holder", LONG).await;
    let dead = join(&s.peer, &key, "dead", Kind::PLAIN).await;
    let died = Instant::now();
    drop(dead);
    let mut next = join(&s.store, &key, "next", Kind::PLAIN).await;
    release(&s.store, &key, "holder").await;
    assert!(
        !granted(&mut next).await,
        "a waiter went before the dead one's lease lapsed"
    );
    tokio::time::sleep(SETTLE).await;
    while !granted(&mut next).await {
        assert!(
            died.elapsed() < lease + LATE + POLL,
            "the dead waiter held the line {:?}, past its lease of {lease:?}",
            died.elapsed()
        );
        next.wait_turn(POLL).await.unwrap();
    }
    release(&s.store, &key, "next").await;
}
