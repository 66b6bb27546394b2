//! How a store key becomes a blob name. Blob names are case-sensitive and up to 1,024
//! characters, but some characters are trouble: a name may not end with a dot or a slash, a
//! backslash turns into a slash, slashes make virtual folders, and reserved URL characters need
//! escaping. A resource id may hold any of them, and be a kilobyte long.
//!
//! So every byte of the key outside `A-Z a-z 0-9 - _` is written `~XX` (its hex value): the
//! name holds only URL-safe characters, keeps the key's case, and a key's prefix is the prefix
//! of its name, so listing by prefix is a listing by name. A name that would be too long keeps
//! the start of that form and ends with `~~` and the key's SHA-256 (`~~` never occurs in the
//! escaped form). The key itself is recorded on the blob (`record.rs`): a listing reads keys
//! from there, never back from names.

use ring::digest::{digest, SHA256};

/// Azure's longest blob name.
const MAX_NAME: usize = 1024;
/// `~~` and 64 hex digits of SHA-256.
const HASH_TAIL: usize = 2 + 64;
/// How much of the escaped form a hashed name keeps.
const KEPT: usize = MAX_NAME - HASH_TAIL;

fn escape(key: &str) -> String {
    let mut name = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            name.push(byte as char);
        } else {
            name.push_str(&format!("~{byte:02X}"));
        }
    }
    name
}

/// `escaped` cut to at most `len` characters, never inside a `~XX`.
fn cut(escaped: &str, len: usize) -> &str {
    if escaped.len() <= len {
        return escaped;
    }
    let mut end = len;
    // A `~` in the last two kept places starts an escape the cut would split.
    if let Some(tilde) = escaped[end.saturating_sub(2)..end].rfind('~') {
        end = end - 2 + tilde;
    }
    &escaped[..end]
}

/// The blob that holds `key`'s lock.
pub(crate) fn blob_name(key: &str) -> String {
    let escaped = escape(key);
    if escaped.len() <= MAX_NAME {
        return escaped;
    }
    let hash: String = digest(&SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}~~{hash}", cut(&escaped, KEPT))
}

/// A name prefix that every blob of a key starting with `prefix` has. Hashed names keep only
/// the start of their key, so for long prefixes this finds more blobs than asked for: the
/// caller compares the keys recorded on them.
pub(crate) fn list_prefix(prefix: &str) -> String {
    cut(&escape(prefix), KEPT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        (1..=MAX_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_~".contains(&b))
    }

    #[test]
    fn any_resource_id_is_a_valid_name_that_keeps_its_case() {
        let keys = [
            "lock||app||orders/42".to_string(),
            "lock||app||Orders/42".to_string(),
            "lock||app||trailing.dots..".to_string(),
            "lock||app||ünïcödé ✓ 锁".to_string(),
            "lock||app||back\\slash//double".to_string(),
            "lock||app||~7E".to_string(),
            format!("lock||app||{}", "x".repeat(1024)),
            format!("lock||app||{}", "é".repeat(1024)),
        ];
        let names: Vec<String> = keys.iter().map(|k| blob_name(k)).collect();
        for (key, name) in keys.iter().zip(&names) {
            assert!(valid(name), "{key} -> {name}");
            assert!(!name.ends_with('.') && !name.ends_with('/'));
        }
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "two keys share a blob");
        assert_eq!(names[0], "lock~7C~7Capp~7C~7Corders~2F42");
        assert_ne!(names[0], names[1]);
    }

    #[test]
    fn a_keys_prefix_is_its_names_prefix() {
        for key in [
            "lock||app||orders/42".to_string(),
            format!("lock||app||{}", "é".repeat(600)),
            format!("lock||app||{}", "ab/".repeat(500)),
        ] {
            let name = blob_name(&key);
            for end in (0..=key.len()).filter(|i| key.is_char_boundary(*i)) {
                let prefix = list_prefix(&key[..end]);
                assert!(name.starts_with(&prefix), "{key:?}[..{end}]");
            }
        }
    }
}
