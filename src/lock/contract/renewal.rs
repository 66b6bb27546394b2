//! Owner-checked renewal: the holder's renewal extends its lock from now; anyone else's
//! changes nothing, and a free key can't be renewed into a lock.

use std::time::Instant;

use super::subject::{Subject, LATE, LONG};
use crate::lock::OwnerChecked;

/// A renewal to a longer TTL keeps the lock past its first expiry, with the new time left.
pub async fn renew_extends(s: &Subject) {
    let key = s.key("renew");
    s.grant(&key, "a", s.short_ttl).await;
    assert_eq!(
        s.store.renew(&key, "a", LONG).await,
        Ok(OwnerChecked::Applied)
    );
    tokio::time::sleep(s.short_ttl + LATE).await;
    s.refused(&key, "b").await;
    let info = s.store.inspect(&key).await.unwrap().expect("still held");
    assert_eq!(info.owner, "a");
    assert!(
        info.expires_in > LONG / 2 && info.expires_in <= LONG,
        "{:?} left after a renewal to {LONG:?}",
        info.expires_in
    );
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
}

/// Renewals to the same TTL, as a session makes them, a third of the TTL apart, keep the
/// lock past the time by which the store would have freed it unrenewed; each counts from
/// now, and the lock expires one TTL after the last.
pub async fn renewals_keep_a_lock(s: &Subject) {
    let key = s.key("renewals");
    let taken = Instant::now();
    s.grant(&key, "a", s.short_ttl).await;
    while Instant::now() < s.freed_by(taken, s.short_ttl) {
        tokio::time::sleep(s.short_ttl / 3).await;
        assert_eq!(
            s.store.renew(&key, "a", s.short_ttl).await,
            Ok(OwnerChecked::Applied)
        );
    }
    let renewed = Instant::now();
    s.refused(&key, "b").await;
    let info = s.store.inspect(&key).await.unwrap().expect("still held");
    assert!(
        info.expires_in <= s.short_ttl,
        "{:?} left after a renewal to {:?}: renewing counts from now",
        info.expires_in,
        s.short_ttl
    );
    s.grant_once_free(&key, "b", LONG, s.freed_by(renewed, s.short_ttl))
        .await;
}

/// Another owner's renewal answers `HeldByOther` and leaves the lock to expire on time, an
/// expired holder's renewal of the next holder's lock included; a renewal of a free key
/// answers `NotHeld` and takes nothing.
pub async fn renewal_is_owner_checked(s: &Subject) {
    let key = s.key("renew-checked");
    assert_eq!(
        s.store.renew(&key, "a", LONG).await,
        Ok(OwnerChecked::NotHeld)
    );
    let taken = Instant::now();
    s.grant(&key, "b", s.short_ttl).await;
    assert_eq!(
        s.store.renew(&key, "a", LONG).await,
        Ok(OwnerChecked::HeldByOther)
    );
    // b's lock was not extended by a's renewal: it expires on time.
    s.grant_once_free(&key, "c", s.short_ttl, s.freed_by(taken, s.short_ttl))
        .await;
    assert_eq!(
        s.store.renew(&key, "b", LONG).await,
        Ok(OwnerChecked::HeldByOther)
    );
    assert_eq!(s.store.unlock(&key, "c").await, Ok(OwnerChecked::Applied));
    assert_eq!(
        s.store.renew(&key, "c", LONG).await,
        Ok(OwnerChecked::NotHeld)
    );
    assert_eq!(s.store.inspect(&key).await, Ok(None));
}
