//! Owner-checked release: only the holder releases a key, once; anyone else is told who holds
//! it, and a free key is not held by anyone.

use super::subject::{Subject, LONG};
use crate::lock::OwnerChecked;

/// Release answers `HeldByOther` to anyone but the holder and leaves the lock held,
/// `Applied` to the holder, and `NotHeld` for a free key, the holder's again included.
pub async fn release(s: &Subject) {
    let key = s.key("release");
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::NotHeld));
    s.grant(&key, "a", LONG).await;
    assert_eq!(
        s.store.unlock(&key, "b").await,
        Ok(OwnerChecked::HeldByOther)
    );
    s.refused(&key, "c").await;
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::NotHeld));
    // Free: the next holder takes it, and the one before can't release it.
    s.grant(&key, "b", LONG).await;
    assert_eq!(
        s.store.unlock(&key, "a").await,
        Ok(OwnerChecked::HeldByOther)
    );
    assert_eq!(s.store.unlock(&key, "b").await, Ok(OwnerChecked::Applied));
}
