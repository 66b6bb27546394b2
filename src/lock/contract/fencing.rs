//! Fencing order (`Capabilities::fencing`): each successive holder of a key gets a larger
//! token than the one before, however the one before let go; and a grant taken back by its
//! token is that grant alone.

use std::time::Instant;

use super::subject::{Subject, LONG};
use crate::lock::OwnerChecked;

/// Tokens rise through a release and through a forced release, and inspect reports the
/// current holder's.
pub async fn fencing_through_release(s: &Subject) {
    let key = s.key("fencing");
    let first = s.grant(&key, "a", LONG).await;
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
    let second = s.grant(&key, "b", LONG).await;
    s.assert_fenced_after(first, second);
    assert_eq!(s.store.force_release(&key).await, Ok(true));
    let third = s.grant(&key, "c", LONG).await;
    s.assert_fenced_after(second, third);
    let info = s.store.inspect(&key).await.unwrap().expect("held");
    assert_eq!(info.fencing_token, third.fencing_token);
    assert_eq!(s.store.unlock(&key, "c").await, Ok(OwnerChecked::Applied));
}

/// Tokens rise through an expiry.
pub async fn fencing_through_expiry(s: &Subject) {
    let key = s.key("fencing-expiry");
    let taken = Instant::now();
    let first = s.grant(&key, "a", s.short_ttl).await;
    let second = s
        .grant_once_free(&key, "b", LONG, s.freed_by(taken, s.short_ttl))
        .await;
    s.assert_fenced_after(first, second);
    assert_eq!(s.store.unlock(&key, "b").await, Ok(OwnerChecked::Applied));
}

/// Taking back a grant (`LockStore::take_back`, for an acquire whose caller had gone) releases
/// that grant only: never a later grant of the same owner, after the first one expired.
pub async fn take_back_spares_a_later_grant(s: &Subject) {
    let key = s.key("take-back");
    let taken = Instant::now();
    let first = s.grant(&key, "a", s.short_ttl).await;
    let second = s
        .grant_once_free(&key, "a", LONG, s.freed_by(taken, s.short_ttl))
        .await;
    s.assert_fenced_after(first, second);
    let spared = s.store.take_back(&key, "a", first).await;
    assert_ne!(
        spared,
        Ok(OwnerChecked::Applied),
        "the later grant was taken back"
    );
    let info = s.store.inspect(&key).await.unwrap().expect("still held");
    assert_eq!(
        (info.owner.as_str(), info.fencing_token),
        ("a", second.fencing_token)
    );
    let taken_back = s.store.take_back(&key, "a", second).await;
    assert_eq!(taken_back, Ok(OwnerChecked::Applied));
    assert_eq!(s.store.inspect(&key).await, Ok(None));
}
