//! Expiry: the store frees a lock at its TTL by itself, whether or not anyone asks for the key,
//! and the expired holder owns nothing afterwards.

use std::time::Instant;

use super::subject::{Subject, LONG};
use crate::lock::OwnerChecked;

/// A lock is held at half its TTL and free soon after it: another owner takes it, and the
/// expired holder can't release the new lock. A lock nobody takes after its expiry is free
/// too: inspect finds nothing, and the expired holder's release and renewal find nothing.
pub async fn expiry(s: &Subject) {
    let (taken_over, left) = (s.key("expiry"), s.key("expiry-left"));
    let taken = Instant::now();
    s.grant(&taken_over, "a", s.short_ttl).await;
    s.grant(&left, "a", s.short_ttl).await;
    let freed_by = s.freed_by(taken, s.short_ttl);

    tokio::time::sleep_until((taken + s.short_ttl / 2).into()).await;
    s.refused(&taken_over, "b").await;
    s.grant_once_free(&taken_over, "b", LONG, freed_by).await;
    assert_eq!(
        s.store.unlock(&taken_over, "a").await,
        Ok(OwnerChecked::HeldByOther)
    );
    assert_eq!(
        s.store.unlock(&taken_over, "b").await,
        Ok(OwnerChecked::Applied)
    );

    tokio::time::sleep_until(freed_by.into()).await;
    assert_eq!(s.store.inspect(&left).await, Ok(None));
    assert_eq!(s.store.unlock(&left, "a").await, Ok(OwnerChecked::NotHeld));
    assert_eq!(
        s.store.renew(&left, "a", LONG).await,
        Ok(OwnerChecked::NotHeld)
    );
}
