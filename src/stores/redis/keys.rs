//! Where a lock and what dlock keeps beside it live in Redis.
//!
//! On one server (and behind Sentinel) the lock key is the store key itself, daprd's layout,
//! so daprd and dlockd share locks. In a Redis Cluster every key a script touches must hash to
//! one slot, so the lock key starts with a hash tag: `{<16 hex digits>}<store key>`, the digits
//! an FNV-1a hash of the store key. A hash rather than the store key itself because a store key
//! may hold `{` or `}` (resource ids are free text), which would move or empty the tag. daprd
//! refuses clusters, so no interop is lost. The side keys (`dlock||fence||…`,
//! `dlock||token||…`) end with the lock key, so they carry the same tag and share its slot.

/// Lock keys of one store; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    hash_tagged: bool,
}

/// Length of `{<16 hex digits>}`.
const TAG_LEN: usize = 18;

impl KeyLayout {
    pub(crate) fn new(hash_tagged: bool) -> Self {
        KeyLayout { hash_tagged }
    }

    /// The Redis key of the lock on `store_key`.
    pub(crate) fn lock_key(self, store_key: &str) -> String {
        if self.hash_tagged {
            format!("{{{:016x}}}{store_key}", fnv1a(store_key))
        } else {
            store_key.to_string()
        }
    }

    /// The store key of a lock key found by a scan; `None` for a key that is not a lock key of
    /// this layout.
    pub(crate) fn store_key(self, lock_key: &str) -> Option<&str> {
        if !self.hash_tagged {
            return Some(lock_key);
        }
        let store_key = lock_key.get(TAG_LEN..)?;
        (self.lock_key(store_key) == lock_key).then_some(store_key)
    }

    /// A SCAN MATCH pattern for the lock keys whose store key starts with `prefix`.
    pub(crate) fn scan_pattern(self, prefix: &str) -> String {
        let tag = if self.hash_tagged {
            format!("{{{}}}", "?".repeat(TAG_LEN - 2))
        } else {
            String::new()
        };
        format!("{tag}{}*", escape_glob(prefix))
    }
}

/// The fencing counter of a lock key, kept after release so tokens keep rising.
pub(crate) fn fence_key(lock_key: &str) -> String {
    format!("dlock||fence||{lock_key}")
}

/// `<owner>|<token>` of the current holder, expiring with the lock.
pub(crate) fn token_key(lock_key: &str) -> String {
    format!("dlock||token||{lock_key}")
}

/// 64-bit FNV-1a: stable across builds and platforms, which the key layout must be.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Escapes Redis glob characters so a prefix matches itself only.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_uses_daprds_keys() {
        let layout = KeyLayout::new(false);
        assert_eq!(layout.lock_key("lock||app||r"), "lock||app||r");
        assert_eq!(layout.store_key("lock||app||r"), Some("lock||app||r"));
        assert_eq!(
            layout.scan_pattern("lock||a*b?[c]\\"),
            "lock||a\\*b\\?\\[c\\]\\\\*"
        );
    }

    #[test]
    fn cluster_keys_carry_a_stable_hash_tag() {
        let layout = KeyLayout::new(true);
        // FNV-1a of "a" is a published test vector.
        assert_eq!(layout.lock_key("a"), "{af63dc4c8601ec8c}a");
        for key in ["lock||app||}{", "{x}", "", "ünï/code"] {
            let lock = layout.lock_key(key);
            assert_eq!(layout.store_key(&lock), Some(key));
            // The side keys hash on the same tag: the first {…} of each is the lock key's.
            let tag = &lock[..TAG_LEN];
            assert!(fence_key(&lock).contains(tag) && !fence_key(&lock).starts_with('{'));
            assert_eq!(fence_key(&lock).find('{'), Some("dlock||fence||".len()));
        }
        assert_eq!(layout.store_key("{0000000000000000}a"), None);
        assert_eq!(layout.store_key("short"), None);
        assert_eq!(layout.scan_pattern("lock||"), "{????????????????}lock||*");
    }
}
