//! Grant and refuse: a free key is granted, each key on its own; a held key is refused to
//! everyone, its own owner included, since Dapr's locks are not reentrant.

use super::subject::{Subject, LONG};
use crate::lock::OwnerChecked;

/// A free key is granted, and holding one key holds no other, not even a key that extends it.
pub async fn grant(s: &Subject) {
    let key = s.key("grant");
    let longer = format!("{key}/more");
    let other = s.key("grant");
    s.grant(&key, "a", LONG).await;
    s.grant(&longer, "b", LONG).await;
    s.grant(&other, "a", LONG).await;
    for (key, owner) in [(&key, "a"), (&longer, "b"), (&other, "a")] {
        assert_eq!(s.store.unlock(key, owner).await, Ok(OwnerChecked::Applied));
    }
}

/// A held key is refused to another owner and to its own, and a refusal leaves the holder
/// holding it.
pub async fn refuse(s: &Subject) {
    let key = s.key("refuse");
    s.grant(&key, "a", LONG).await;
    s.refused(&key, "b").await;
    s.refused(&key, "a").await;
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
}
