//! Where a lock and what dlock keeps beside it live in Redis.
//!
//! On one server (and behind Sentinel) the lock key is the store key itself, daprd's layout,
//! so daprd and dlockd share locks. In a Redis Cluster every key a script touches must hash to
//! one slot, so the lock key starts with a hash tag: `{<16 hex digits>}<store key>`, the digits
//! an FNV-1a hash of the store key. A hash rather than the store key itself because a store key
//! may hold `{` or `}` (resource ids are free text), which would move or empty the tag. daprd
//! refuses clusters, so no interop is lost. The token record (`dlock||token||…`) ends with the
//! lock key, so it carries the same tag and shares its slot.
//!
//! Fencing counters are shared, so what dlock leaves in Redis does not grow with the number of
//! resource ids ever locked: the token record goes with the lock, and the counters are one
//! (`dlock||fencing`) on one server, one per hash slot (`dlock||fencing||{<tag>}`, at most
//! 16,384) in a cluster, where a script may only touch keys of one slot. A key always draws
//! from the same counter and a counter only rises, so a key's tokens still strictly increase.
//! The per-slot tag is the shortest decimal number that hashes to the lock key's slot.
//!
//! Earlier versions kept one counter per lock key (`dlock||fence||<lock key>`). The grant
//! script lifts the shared counter to such a counter's value before counting on, then deletes
//! it, so a key's first token after an upgrade is above every token it had before; a key never
//! locked again keeps its old counter.

use std::sync::OnceLock;

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

    /// Whether every lock key is in one slot (one server): not in a cluster, where each has a
    /// hash tag of its own.
    pub(crate) fn one_slot(self) -> bool {
        !self.hash_tagged
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

impl KeyLayout {
    /// The shared fencing counter a lock key draws its tokens from.
    pub(crate) fn fencing_counter(self, lock_key: &str) -> String {
        if self.hash_tagged {
            format!("dlock||fencing||{{{}}}", slot_tag(slot(lock_key)))
        } else {
            "dlock||fencing".to_string()
        }
    }
}

/// Where earlier versions kept the fencing counter of one lock key; read once, then deleted.
pub(crate) fn legacy_fence_key(lock_key: &str) -> String {
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

/// Redis Cluster's hash slots.
const SLOTS: u16 = 16_384;

/// The cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key without one.
fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = key
        .find('{')
        .and_then(|open| {
            let close = key[open + 1..].find('}')? + open + 1;
            (close > open + 1).then(|| &bytes[open + 1..close])
        })
        .unwrap_or(bytes);
    crc16(hashed) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// The smallest decimal number that hashes to `slot`, computed once for all slots (about
/// 200,000 CRCs, a few milliseconds, on the first grant in a cluster).
fn slot_tag(slot: u16) -> u32 {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; usize::from(SLOTS)];
        let mut missing = tags.len();
        let mut n = 0u32;
        while missing > 0 {
            let tag = &mut tags[usize::from(crc16(n.to_string().as_bytes()) % SLOTS)];
            if *tag == u32::MAX {
                *tag = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    })[usize::from(slot)]
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
            // The side keys share the lock key's slot, so one script may touch them all.
            for side in [
                token_key(&lock),
                legacy_fence_key(&lock),
                layout.fencing_counter(&lock),
            ] {
                assert_eq!(slot(&side), slot(&lock), "{side} and {lock}");
            }
        }
        assert_eq!(layout.store_key("{0000000000000000}a"), None);
        assert_eq!(layout.store_key("short"), None);
        assert_eq!(layout.scan_pattern("lock||"), "{????????????????}lock||*");
    }

    #[test]
    fn slots_are_redis_clusters() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
    }

    #[test]
    fn counters_are_bounded_by_the_slots() {
        let one = KeyLayout::new(false);
        assert_eq!(
            one.fencing_counter("lock||app||a"),
            one.fencing_counter("b")
        );
        let cluster = KeyLayout::new(true);
        let counters: std::collections::HashSet<String> = (0..100_000)
            .map(|i| cluster.fencing_counter(&cluster.lock_key(&format!("lock||app||{i}"))))
            .collect();
        assert!(counters.len() <= usize::from(SLOTS));
        for s in [0, 1, 12182, SLOTS - 1] {
            assert_eq!(crc16(slot_tag(s).to_string().as_bytes()) % SLOTS, s);
        }
    }
}
