//! Shared, limited and reentrant locks (`kind.rs`, `../shared/KINDS.md`): the rules every store
//! that declares `SHARED`, `LIMIT` or `REENTRANT` keeps. Checks that need two sidecars use the
//! subject's peer: another instance of the store on the same server, as a second sidecar has.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::subject::{Subject, LATE, LONG, POLL};
use crate::lock::{Conflict, Grant, Kind, LockStore, Mode, OwnerChecked, TryLockOutcome};

/// Asks `store` for `key` in `kind`, expecting a grant.
async fn grant(
    store: &Arc<dyn LockStore>,
    key: &str,
    owner: &str,
    ttl: Duration,
    kind: Kind,
) -> Grant {
    match store.acquire(key, owner, ttl, kind).await {
        Ok(TryLockOutcome::Granted(grant)) => grant,
        other => panic!("acquire({key}, {owner}, {kind:?}) was not granted: {other:?}"),
    }
}

async fn outcome(store: &Arc<dyn LockStore>, key: &str, owner: &str, kind: Kind) -> TryLockOutcome {
    let answered = store.acquire(key, owner, LONG, kind).await;
    answered.unwrap_or_else(|e| panic!("acquire({key}, {owner}, {kind:?}) failed: {e}"))
}

async fn release(store: &Arc<dyn LockStore>, key: &str, owner: &str) -> (OwnerChecked, u32) {
    let released = store.release(key, owner, false).await;
    let released = released.unwrap_or_else(|e| panic!("release({key}, {owner}) failed: {e}"));
    (released.outcome, released.holds_left)
}

/// Shared holders coexist, through two sidecars; while any holds the key, an exclusive
/// request (Dapr's try included) finds it held; once the last leaves, a writer gets it and
/// readers find it held. Each grant's token exceeds the one before, and the writer's every
/// reader's.
pub async fn shared_holders_coexist_and_exclude_a_writer(s: &Subject) {
    let key = s.key("shared");
    let read = Kind::shared(0);
    let a = grant(&s.store, &key, "a", LONG, read).await;
    let b = grant(&s.peer, &key, "b", LONG, read).await;
    s.assert_fenced_after(a, b);
    assert_eq!(
        outcome(&s.store, &key, "w", Kind::PLAIN).await,
        TryLockOutcome::Held
    );
    assert_eq!(
        s.peer.try_lock(&key, "w", LONG).await.ok(),
        Some(TryLockOutcome::Held)
    );
    assert_eq!(
        release(&s.store, &key, "a").await,
        (OwnerChecked::Applied, 0)
    );
    assert_eq!(
        outcome(&s.peer, &key, "w", Kind::PLAIN).await,
        TryLockOutcome::Held
    );
    assert_eq!(
        release(&s.peer, &key, "a").await.0,
        OwnerChecked::HeldByOther
    );
    assert_eq!(
        release(&s.peer, &key, "b").await,
        (OwnerChecked::Applied, 0)
    );
    let w = grant(&s.store, &key, "w", LONG, Kind::PLAIN).await;
    s.assert_fenced_after(b, w);
    assert_eq!(
        outcome(&s.peer, &key, "r", read).await,
        TryLockOutcome::Held
    );
    assert_eq!(
        s.store.unlock(&key, "w").await.ok(),
        Some(OwnerChecked::Applied)
    );
}

/// Inspect shows the mode, the limit and every holder with its own time left and token; the
/// first holder is also the lock's owner, as a client of exclusive locks reads it.
pub async fn inspect_shows_every_holder(s: &Subject) {
    let key = s.key("holders");
    let kind = Kind::shared(4);
    let a = grant(&s.store, &key, "a", LONG, kind).await;
    let b = grant(&s.peer, &key, "b", LONG / 2, kind).await;
    let info = s.store.inspect(&key).await.unwrap().expect("held");
    assert_eq!((info.mode, info.limit), (Mode::Shared, 4));
    let holders: Vec<_> = info
        .holders
        .iter()
        .map(|h| (h.owner.as_str(), h.fencing_token, h.holds))
        .collect();
    assert_eq!(
        holders,
        [("a", a.fencing_token, 1), ("b", b.fencing_token, 1)]
    );
    assert_eq!(
        (info.owner.as_str(), info.fencing_token),
        ("a", a.fencing_token)
    );
    assert!(info.holders[0].expires_in > LONG / 2, "{info:?}");
    assert!(info.holders[1].expires_in <= LONG / 2, "{info:?}");
    for owner in ["a", "b"] {
        assert_eq!(
            release(&s.store, &key, owner).await.0,
            OwnerChecked::Applied
        );
    }
    assert_eq!(s.store.inspect(&key).await.unwrap(), None);
}

/// Each shared holder has its own deadline: one that is not renewed (its sidecar died) frees
/// its place at its own expiry, while a renewed one keeps its place.
pub async fn each_holder_expires_on_its_own(s: &Subject) {
    let key = s.key("shared-expiry");
    let kind = Kind::shared(0);
    let ttl = s.short_ttl;
    let taken = Instant::now();
    grant(&s.store, &key, "dies", ttl, kind).await;
    // Taken for longer than the other, then renewed: past the first's expiry, only its own
    // deadline has moved. (Long enough that a busy machine renews it in time.)
    grant(&s.peer, &key, "lives", LONG / 2, kind).await;
    assert_eq!(
        s.peer.renew(&key, "lives", LONG).await.ok(),
        Some(OwnerChecked::Applied)
    );
    let owners = loop {
        let info = s
            .store
            .inspect(&key)
            .await
            .unwrap()
            .expect("'lives' still holds it");
        let owners: Vec<_> = info.holders.into_iter().map(|h| h.owner).collect();
        if owners == ["lives"] || Instant::now() > s.freed_by(taken, ttl) {
            break owners;
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(owners, ["lives"]);
    assert_eq!(
        s.store.renew(&key, "dies", LONG).await.ok(),
        Some(OwnerChecked::HeldByOther)
    );
    assert_eq!(
        release(&s.peer, &key, "lives").await.0,
        OwnerChecked::Applied
    );
}

/// A limit of N admits exactly N, never N + 1, under contention from two sidecars: clients
/// that each take and give back a place many times count the holders at every instant.
pub async fn a_limit_admits_exactly_n_under_contention(s: &Subject) {
    const LIMIT: usize = 3;
    const CLIENTS: usize = 8;
    const GRANTS_EACH: usize = 25;
    // Held long enough for three grants to land while it is held, on a store whose requests
    // take a few milliseconds each (Azurite on a busy machine): else the limit is never seen
    // reached, which proves nothing about it.
    const HOLD: Duration = Duration::from_millis(25);
    let key = s.key("semaphore");
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let clients = (0..CLIENTS).map(|client| {
        let store = if client % 2 == 0 {
            s.store.clone()
        } else {
            s.peer.clone()
        };
        let (key, holding, most) = (key.clone(), holding.clone(), most.clone());
        tokio::spawn(async move {
            let owner = format!("client-{client}");
            let mut attempts = 0;
            for _ in 0..GRANTS_EACH {
                loop {
                    attempts += 1;
                    match store
                        .acquire(&key, &owner, LONG, Kind::shared(LIMIT as u32))
                        .await
                    {
                        Ok(TryLockOutcome::Granted(_)) => break,
                        Ok(TryLockOutcome::Held) => {
                            tokio::time::sleep(Duration::from_millis(2)).await
                        }
                        other => panic!("{owner}: {other:?}"),
                    }
                }
                // Counted only between the grant and the release: never more than held.
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                assert!(
                    now <= LIMIT,
                    "{now} holders at once under a limit of {LIMIT}"
                );
                tokio::time::sleep(HOLD).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                let released = store.release(&key, &owner, false).await.unwrap();
                assert_eq!(released.outcome, OwnerChecked::Applied, "{owner}");
            }
            attempts
        })
    });
    let mut attempts = 0;
    for client in clients.collect::<Vec<_>>() {
        attempts += client.await.expect("a client failed");
    }
    assert!(
        attempts > CLIENTS * GRANTS_EACH,
        "no contention: {attempts} attempts"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        LIMIT,
        "the limit was never reached"
    );
    assert_eq!(s.store.inspect(&key).await.unwrap(), None);
}

/// A holder that dies frees its permit at its own expiry, to a waiter, while the live holders
/// keep theirs; a request with another limit than the holders' is refused, not queued.
pub async fn a_dead_holders_permit_returns_and_a_limit_mismatch_is_refused(s: &Subject) {
    let key = s.key("permits");
    let two = Kind::shared(2);
    let taken = Instant::now();
    grant(&s.store, &key, "dies", s.short_ttl, two).await;
    grant(&s.peer, &key, "lives", LONG, two).await;
    let full = outcome(&s.store, &key, "next", two).await;
    // Held while both places are: a check answered only after the first place's expiry (a
    // busy machine) may find a place free, and proves nothing either way.
    if Instant::now() < taken + s.short_ttl {
        assert_eq!(full, TryLockOutcome::Held);
    } else if let TryLockOutcome::Granted(_) = full {
        assert_eq!(
            release(&s.store, &key, "next").await.0,
            OwnerChecked::Applied
        );
    }
    for other in [Kind::shared(3), Kind::shared(0)] {
        assert_eq!(
            outcome(&s.peer, &key, "other", other).await,
            TryLockOutcome::Refused(Conflict::LimitMismatch { held: 2 })
        );
    }
    let deadline = s.freed_by(taken, s.short_ttl);
    loop {
        match outcome(&s.peer, &key, "next", two).await {
            TryLockOutcome::Granted(_) => break,
            TryLockOutcome::Held if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            other => panic!("the dead holder's permit did not return: {other:?}"),
        }
    }
    let info = s.store.inspect(&key).await.unwrap().expect("held");
    let owners: Vec<_> = info.holders.into_iter().map(|h| h.owner).collect();
    assert_eq!(owners, ["lives", "next"]);
    for owner in ["lives", "next"] {
        assert_eq!(
            release(&s.store, &key, owner).await.0,
            OwnerChecked::Applied
        );
    }
}

/// Reentrant holds count up and down through two sidecars, keep the first grant's token, and
/// exclude everyone else until the last hold goes; Dapr's unlock takes back one hold; a
/// release of a hold not held is "not held", so a retried release never takes two.
pub async fn reentrant_holds_count_through_two_sidecars(s: &Subject) {
    let key = s.key("reentrant");
    let kind = Kind::PLAIN.reentrant();
    let first = grant(&s.store, &key, "o", LONG, kind).await;
    let again = grant(&s.peer, &key, "o", LONG, kind).await;
    assert_eq!((again.fencing_token, again.holds), (first.fencing_token, 2));
    let third = grant(&s.store, &key, "o", LONG, kind).await;
    assert_eq!(third.holds, 3);
    assert_eq!(
        outcome(&s.peer, &key, "p", kind).await,
        TryLockOutcome::Held
    );
    // Without `reentrant`, the owner sees its own lock held, as Dapr's try does.
    assert_eq!(
        outcome(&s.peer, &key, "o", Kind::PLAIN).await,
        TryLockOutcome::Held
    );
    let info = s.peer.inspect(&key).await.unwrap().expect("held");
    assert_eq!(info.holders[0].holds, 3);
    assert_eq!(
        release(&s.peer, &key, "o").await,
        (OwnerChecked::Applied, 2)
    );
    assert_eq!(
        s.store.unlock(&key, "o").await.ok(),
        Some(OwnerChecked::Applied)
    );
    assert_eq!(
        outcome(&s.store, &key, "p", kind).await,
        TryLockOutcome::Held
    );
    assert_eq!(
        release(&s.store, &key, "p").await.0,
        OwnerChecked::HeldByOther
    );
    assert_eq!(
        release(&s.store, &key, "o").await,
        (OwnerChecked::Applied, 0)
    );
    assert_eq!(
        release(&s.peer, &key, "o").await,
        (OwnerChecked::NotHeld, 0)
    );
    grant(&s.peer, &key, "p", LONG, kind).await;
    assert_eq!(release(&s.peer, &key, "p").await.0, OwnerChecked::Applied);
}

/// Every hold goes at once when asked, and when the lock expires; a re-entry in the other
/// mode than the owner holds is refused at once.
pub async fn all_holds_go_together_and_a_reentry_keeps_its_mode(s: &Subject) {
    let key = s.key("all-holds");
    let kind = Kind::shared(0).reentrant();
    for _ in 0..3 {
        grant(&s.store, &key, "o", LONG, kind).await;
    }
    assert_eq!(
        outcome(&s.peer, &key, "o", Kind::PLAIN.reentrant()).await,
        TryLockOutcome::Refused(Conflict::ModeConflict { held: Mode::Shared })
    );
    let all = s.peer.release(&key, "o", true).await.unwrap();
    assert_eq!((all.outcome, all.holds_left), (OwnerChecked::Applied, 0));
    assert_eq!(s.store.inspect(&key).await.unwrap(), None);

    let kind = Kind::PLAIN.reentrant();
    let taken = Instant::now();
    grant(&s.store, &key, "o", s.short_ttl, kind).await;
    grant(&s.peer, &key, "o", s.short_ttl, kind).await;
    let deadline = s.freed_by(taken, s.short_ttl) + LATE;
    while s.store.inspect(&key).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "two holds outlived their expiry");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        release(&s.store, &key, "o").await,
        (OwnerChecked::NotHeld, 0)
    );
}
