//! Multi-locks (`multi.rs`, `../shared/KINDS.md` rule 6): every key or none, released as a
//! whole, for every store that declares `MULTI`; and for one that declares `MULTI_ATOMIC`, a
//! try that fails never shows any key held, not even for a moment. The keys are given sorted,
//! as the core gives them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::subject::{Subject, LONG};
use crate::lock::{Grant, Kind, ManyOutcome, OwnerChecked};

/// How long the atomic check keeps failing tries going while a reader looks.
const RACE_FOR: Duration = Duration::from_millis(1500);

/// At most this many failing tries, for a store that answers within microseconds.
const MAX_TRIES: usize = 20_000;

/// The keys `labels` in one fresh namespace, sorted as the core sorts them.
fn keys(s: &Subject, labels: &[&str]) -> Vec<String> {
    let namespace = s.namespace();
    let mut keys: Vec<String> = labels.iter().map(|l| format!("{namespace}{l}")).collect();
    keys.sort();
    keys
}

async fn owner_of(s: &Subject, key: &str) -> Option<String> {
    let info = s.peer.inspect(key).await;
    let info = info.unwrap_or_else(|e| panic!("inspect({key}) failed: {e}"));
    info.map(|info| info.owner)
}

/// A try over keys of which one is held by another owner takes none of them; once free, the
/// try takes every key, each with a token fenced after the key's earlier grant; another
/// owner's try over an overlapping set, through a second sidecar, then takes none; the
/// release frees every key as one, and is owner-checked.
pub async fn all_or_none(s: &Subject) {
    let keys = keys(s, &["a", "b", "c"]);
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let earlier = s.grant(b, "other", LONG).await;
    let tried = s.store.acquire_many(&keys, "x", LONG, Kind::PLAIN).await;
    assert_eq!(tried, Ok(ManyOutcome::Held));
    for key in [a, c] {
        assert_eq!(owner_of(s, key).await, None, "{key} kept from a failed try");
    }
    assert_eq!(owner_of(s, b).await.as_deref(), Some("other"));
    assert_eq!(s.store.unlock(b, "other").await, Ok(OwnerChecked::Applied));

    let grants = match s.store.acquire_many(&keys, "x", LONG, Kind::PLAIN).await {
        Ok(ManyOutcome::Granted(grants)) => grants,
        other => panic!("the multi-lock should be granted: {other:?}"),
    };
    assert_eq!(grants.len(), keys.len(), "{grants:?}");
    s.assert_fenced_after(earlier, grants[1]);
    for key in &keys {
        assert_eq!(owner_of(s, key).await.as_deref(), Some("x"));
    }
    let (d, overlapping) = {
        let mut more = vec![c.clone(), format!("{c}-d")];
        more.sort();
        (more[1].clone(), more)
    };
    let tried = s
        .peer
        .acquire_many(&overlapping, "y", LONG, Kind::PLAIN)
        .await;
    assert_eq!(tried, Ok(ManyOutcome::Held));
    assert_eq!(owner_of(s, &d).await, None, "{d} kept from a failed try");

    let by_other = s.peer.release_many(&keys, "y", false).await.unwrap();
    assert_eq!(by_other.outcome, OwnerChecked::HeldByOther);
    let released = s.peer.release_many(&keys, "x", false).await.unwrap();
    assert_eq!(
        (released.outcome, released.holds_left),
        (OwnerChecked::Applied, 0)
    );
    for key in &keys {
        assert_eq!(owner_of(s, key).await, None, "{key} held after the release");
    }
    let again = s.store.release_many(&keys, "x", false).await.unwrap();
    assert_eq!(again.outcome, OwnerChecked::NotHeld);
}

/// Where the store takes a multi-lock in one operation, a try that fails is never seen: while
/// one key is held by another owner and a multi-lock over it and a free key is tried again
/// and again, a reader through a second sidecar never finds the free key held.
pub async fn a_failed_try_is_never_seen(s: &Subject) {
    let keys = keys(s, &["a", "b"]);
    // The later key is the held one, so that a store taking the keys in turn would take the
    // free one first and give it back.
    let (free, held) = (keys[0].clone(), &keys[1]);
    let _: Grant = s.grant(held, "other", LONG).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (peer, stop) = (s.peer.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut seen, mut looks) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let info = peer.inspect(&free).await.expect("inspect");
                seen += usize::from(info.is_some());
                looks += 1;
                tokio::task::yield_now().await;
            }
            (seen, looks)
        })
    };
    let started = Instant::now();
    let mut tries = 0;
    while tries < MAX_TRIES && started.elapsed() < RACE_FOR {
        let tried = s.store.acquire_many(&keys, "x", LONG, Kind::PLAIN).await;
        assert_eq!(tried, Ok(ManyOutcome::Held));
        tries += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, looks) = reader.await.expect("the reader ran");
    assert!(looks > 0, "the reader never looked");
    assert_eq!(
        seen, 0,
        "a key of a multi-lock whose try failed was seen held {seen} times in {looks} looks \
         over {tries} tries"
    );
    assert_eq!(
        s.store.unlock(held, "other").await,
        Ok(OwnerChecked::Applied)
    );
}
