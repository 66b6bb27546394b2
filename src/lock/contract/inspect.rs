//! Inspect: who holds a key, for how much longer, and under which fencing token.

use super::subject::{Subject, LATE, LONG};
use crate::lock::OwnerChecked;

/// A free key has no holder; a held one names its key, its owner, a time left within its
/// TTL, and the fencing token of its grant; a released one has no holder again.
pub async fn inspect(s: &Subject) {
    let key = s.key("inspect");
    assert_eq!(s.store.inspect(&key).await, Ok(None));
    let grant = s.grant(&key, "a", LONG).await;
    let info = s.store.inspect(&key).await.unwrap().expect("held");
    assert_eq!(
        (info.key.as_str(), info.owner.as_str(), info.fencing_token),
        (key.as_str(), "a", grant.fencing_token)
    );
    // etcd counts whole seconds: a second may be gone as soon as the lock is granted.
    assert!(
        info.expires_in <= LONG && info.expires_in >= LONG - 2 * LATE,
        "{:?} left of a {LONG:?} lock just granted",
        info.expires_in
    );
    assert_eq!(s.store.unlock(&key, "a").await, Ok(OwnerChecked::Applied));
    assert_eq!(s.store.inspect(&key).await, Ok(None));
}
