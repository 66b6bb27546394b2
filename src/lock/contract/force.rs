//! Force release: an operator frees a key whoever holds it.

use super::subject::{Subject, LONG};
use crate::lock::OwnerChecked;

/// `force_release` answers true for a held key and frees it (its holder owns nothing any
/// more, another owner takes it), and false for a free key.
pub async fn force_release(s: &Subject) {
    let key = s.key("force");
    assert_eq!(s.store.force_release(&key).await, Ok(false));
    s.grant(&key, "a", LONG).await;
    assert_eq!(s.store.force_release(&key).await, Ok(true));
    assert_eq!(s.store.inspect(&key).await, Ok(None));
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::NotHeld));
    assert_eq!(s.store.force_release(&key).await, Ok(false));
    s.grant(&key, "b", LONG).await;
    assert_eq!(s.store.unlock(&key, "b").await, Ok(OwnerChecked::Applied));
}
