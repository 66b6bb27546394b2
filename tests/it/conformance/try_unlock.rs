//! Items 1 and 2: try-lock is immediate and not reentrant; unlock is owner-checked.

use crate::support::api::{Api, BOTH, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::{unique, Backend};

pub async fn try_lock(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    for protocol in BOTH {
        let key = unique("c1");
        assert_eq!(
            api.lock(protocol, "store", &key, "a", 30).await,
            Ok(true),
            "{protocol:?}"
        );
        let started = std::time::Instant::now();
        assert_eq!(
            api.lock(protocol, "store", &key, "b", 30).await,
            Ok(false),
            "other owner"
        );
        assert_eq!(
            api.lock(protocol, "store", &key, "a", 30).await,
            Ok(false),
            "same owner"
        );
        assert!(started.elapsed().as_secs() < 2, "a refusal is immediate");
        // The refused attempts left nothing behind: b holds nothing, a still holds the lock.
        assert_eq!(
            api.unlock(protocol, "store", &key, "b").await,
            Ok(LOCK_BELONGS_TO_OTHERS)
        );
        assert_eq!(api.unlock(protocol, "store", &key, "a").await, Ok(SUCCESS));
        assert_eq!(
            api.unlock(protocol, "store", &key, "b").await,
            Ok(LOCK_DOES_NOT_EXIST)
        );
    }
}

pub async fn unlock(backend: Backend) {
    let sidecar = backend.sidecar("app", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    for protocol in BOTH {
        let key = unique("c2");
        assert_eq!(
            api.unlock(protocol, "store", &key, "a").await,
            Ok(LOCK_DOES_NOT_EXIST)
        );
        assert_eq!(api.lock(protocol, "store", &key, "a", 30).await, Ok(true));
        assert_eq!(
            api.unlock(protocol, "store", &key, "b").await,
            Ok(LOCK_BELONGS_TO_OTHERS)
        );
        // Still held after the stranger's attempt.
        assert_eq!(api.lock(protocol, "store", &key, "b", 30).await, Ok(false));
        assert_eq!(api.unlock(protocol, "store", &key, "a").await, Ok(SUCCESS));
        // A second unlock is harmless; the key is free for anyone.
        assert_eq!(
            api.unlock(protocol, "store", &key, "a").await,
            Ok(LOCK_DOES_NOT_EXIST)
        );
        assert_eq!(api.lock(protocol, "store", &key, "b", 30).await, Ok(true));
        assert_eq!(api.unlock(protocol, "store", &key, "b").await, Ok(SUCCESS));
    }
}
