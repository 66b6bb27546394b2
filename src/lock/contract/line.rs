//! The store's line of waiters (`Capabilities::line`): places are served in the order they
//! joined, a try-lock never jumps the line, and a place that leaves lets the next move up.

use std::time::Instant;

use super::subject::{Subject, LONG, PROMPTLY, SETTLE, SHORT_WAIT};
use crate::lock::{Grant, Kind, OwnerChecked, Place, TryLockOutcome};

async fn join(s: &Subject, key: &str, owner: &str) -> Box<dyn Place> {
    s.store
        .join(key, owner, LONG, Kind::PLAIN)
        .await
        .unwrap_or_else(|e| panic!("{owner} can't join the line of {key}: {e}"))
}

async fn take(place: &mut Box<dyn Place>) -> Grant {
    match place.try_take().await {
        Ok(TryLockOutcome::Granted(grant)) => grant,
        other => panic!("a place whose turn came was not granted: {other:?}"),
    }
}

async fn not_yet(place: &mut Box<dyn Place>, why: &str) {
    assert_eq!(place.try_take().await, Ok(TryLockOutcome::Held), "{why}");
}

async fn holder(s: &Subject, key: &str) -> String {
    let info = s.store.inspect(key).await.unwrap().expect("held");
    info.owner
}

/// Two places behind a holder: neither takes the held key; once it is released the first
/// takes it, while the second and a try-lock are refused; once the first releases, the second
/// takes it; with the line empty, a try-lock is granted again. Each holder is fenced after
/// the one before.
pub async fn line_order(s: &Subject) {
    let key = s.key("line");
    let held = s.grant(&key, "holder", LONG).await;
    let mut first = join(s, &key, "first").await;
    let mut second = join(s, &key, "second").await;
    not_yet(&mut first, "the first place took a held key").await;
    not_yet(&mut second, "the second place took a held key").await;

    assert_eq!(
        s.store.unlock(&key, "holder").await,
        Ok(OwnerChecked::Applied)
    );
    s.refused(&key, "jumper").await;
    not_yet(
        &mut second,
        "the second place took the key before the first",
    )
    .await;
    let first_grant = take(&mut first).await;
    s.assert_fenced_after(held, first_grant);
    assert_eq!(holder(s, &key).await, "first");
    not_yet(&mut second, "the second place took a held key").await;
    s.refused(&key, "jumper").await;

    assert_eq!(
        s.store.unlock(&key, "first").await,
        Ok(OwnerChecked::Applied)
    );
    s.refused(&key, "jumper").await;
    let second_grant = take(&mut second).await;
    s.assert_fenced_after(first_grant, second_grant);
    assert_eq!(holder(s, &key).await, "second");
    assert_eq!(
        s.store.unlock(&key, "second").await,
        Ok(OwnerChecked::Applied)
    );
    s.grant(&key, "jumper", LONG).await;
    assert_eq!(
        s.store.unlock(&key, "jumper").await,
        Ok(OwnerChecked::Applied)
    );
}

/// The first place in the line of a free key takes it at once; a place that leaves is gone
/// from the line, so the one behind it takes the key when it comes free, and the leaver holds
/// nothing.
pub async fn leave(s: &Subject) {
    let key = s.key("line-leave");
    let mut holder_place = join(s, &key, "holder").await;
    take(&mut holder_place).await;
    let leaver = join(s, &key, "leaver").await;
    let mut next = join(s, &key, "next").await;
    leaver.leave().await;
    assert_eq!(
        s.store.unlock(&key, "holder").await,
        Ok(OwnerChecked::Applied)
    );
    take(&mut next).await;
    assert_eq!(holder(s, &key).await, "next");
    assert_eq!(
        s.store.unlock(&key, "leaver").await,
        Ok(OwnerChecked::HeldByOther)
    );
    assert_eq!(
        s.store.unlock(&key, "next").await,
        Ok(OwnerChecked::Applied)
    );
}

/// A place waiting for its turn waits while the key is held and returns promptly when it is
/// released; a place behind it returns by its `max_wait`.
pub async fn wait_turn(s: &Subject) {
    let key = s.key("line-turn");
    s.grant(&key, "holder", LONG).await;
    let mut first = join(s, &key, "first").await;
    not_yet(&mut first, "a place took a held key").await;
    let waiting = tokio::spawn(async move {
        let turn = first.wait_turn(LONG).await;
        (first, turn)
    });
    tokio::time::sleep(SETTLE).await;
    assert!(
        !waiting.is_finished(),
        "wait_turn returned while the key was held"
    );
    assert_eq!(
        s.store.unlock(&key, "holder").await,
        Ok(OwnerChecked::Applied)
    );
    let (mut first, turn) = tokio::time::timeout(PROMPTLY, waiting)
        .await
        .expect("the first place was not told of the release")
        .unwrap();
    assert_eq!(turn, Ok(()));
    take(&mut first).await;

    let mut second = join(s, &key, "second").await;
    not_yet(&mut second, "the second place took a held key").await;
    let started = Instant::now();
    assert_eq!(second.wait_turn(SHORT_WAIT).await, Ok(()));
    assert!(
        started.elapsed() < SHORT_WAIT + PROMPTLY,
        "a wait of {SHORT_WAIT:?} for a turn returned after {:?}",
        started.elapsed()
    );
    second.leave().await;
    assert_eq!(
        s.store.unlock(&key, "first").await,
        Ok(OwnerChecked::Applied)
    );
}
