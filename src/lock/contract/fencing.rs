//! Fencing order (`Capabilities::fencing`): each successive holder of a key gets a larger
//! token than the one before, however the one before let go.

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
