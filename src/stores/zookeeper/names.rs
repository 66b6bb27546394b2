//! Store keys as ZooKeeper node names, and the names of the contenders' nodes under them.
//!
//! A store key may hold anything a resource id may (`/`, spaces, non-ASCII, 1 KiB of text);
//! a node name may not contain `/`, control characters or some Unicode ranges, and may not be
//! `.` or `..`. Keys are therefore percent-encoded over their UTF-8 bytes: ASCII letters,
//! digits, `-`, `_` and `|` stay as they are (so `lock||app||order-42` reads as itself), every
//! other byte becomes `%XX` with upper-case hex. The encoding is injective (`%` itself is
//! encoded), never yields `.` or `..` (`.` is encoded), and decoding accepts only what
//! encoding produces, so a foreign node under the root is skipped rather than misread.

/// The prefix of the sequential nodes contenders create under a key's node.
const CONTENDER: &str = "lock-";

fn kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'|')
}

/// The node name of a store key.
pub(crate) fn encode(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut name = String::with_capacity(key.len());
    for &byte in key.as_bytes() {
        if kept(byte) {
            name.push(byte as char);
        } else {
            name.push('%');
            name.push(HEX[usize::from(byte >> 4)] as char);
            name.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
    name
}

/// The store key a node name stands for; `None` for a name `encode` never produces.
pub(crate) fn decode(name: &str) -> Option<String> {
    fn hex(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let [high, low, tail @ ..] = tail else {
                return None;
            };
            let byte = (hex(*high)? << 4) | hex(*low)?;
            if kept(byte) {
                return None; // encode would have kept it as is
            }
            bytes.push(byte);
            rest = tail;
        } else if kept(first) {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok().filter(|key| !key.is_empty())
}

/// The path prefix a contender creates its sequential node with, under a key's node.
pub(crate) fn contender_prefix(key_node: &str) -> String {
    format!("{key_node}/{CONTENDER}")
}

/// The name of the contender node ZooKeeper created with `sequence`.
pub(crate) fn contender(sequence: i64) -> String {
    // ZooKeeper formats the sequence as %010d.
    format!("{CONTENDER}{sequence:010}")
}

/// The sequence number of a contender node's name; `None` for other names.
pub(crate) fn sequence(name: &str) -> Option<i64> {
    name.strip_prefix(CONTENDER)?.parse().ok()
}

/// The key node a contender node at `path` is under.
pub(crate) fn key_node_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(parent, _)| parent)
}

/// The contenders among `children`, with their sequence numbers, in no particular order.
pub(crate) fn contenders(children: &[String]) -> Vec<(i64, &str)> {
    children
        .iter()
        .filter_map(|name| Some((sequence(name)?, name.as_str())))
        .collect()
}

/// The contender with the lowest sequence number among `children`: the holder, if any.
pub(crate) fn first_contender(children: &[String]) -> Option<(i64, &str)> {
    contenders(children).into_iter().min()
}

/// The contender just ahead of the one with sequence `mine` among `children`: the node it
/// waits for. `None` when it is first, or not among them.
pub(crate) fn predecessor(children: &[String], mine: i64) -> Option<(i64, &str)> {
    contenders(children)
        .into_iter()
        .filter(|(sequence, _)| *sequence < mine)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_valid_names() {
        let long = "x".repeat(1024);
        for key in [
            "lock||app||order-42",
            "lock||app||a/b/../c",
            "lock||app||with space",
            "lock||app||été ☃ 日本",
            "lock||app||CaSe",
            "lock||app||%41",
            ".",
            "..",
            "zookeeper",
            &long,
        ] {
            let name = encode(key);
            assert_eq!(decode(&name).as_deref(), Some(key), "{name}");
            assert!(name != "." && name != "..");
            assert!(name.bytes().all(|b| b.is_ascii_graphic() && b != b'/'));
        }
        assert_eq!(encode("lock||app||order-42"), "lock||app||order-42");
        assert_eq!(encode("a/b c.d%"), "a%2Fb%20c%2Ed%25");
        assert_ne!(encode("CaSe"), encode("case"));
    }

    #[test]
    fn foreign_names_are_not_decoded() {
        for name in ["", "a.b", "%2", "%zz", "%2f", "%41", "a%FF", "lock-x y"] {
            assert_eq!(decode(name), None, "{name}");
        }
    }

    #[test]
    fn contenders_in_sequence_order() {
        assert_eq!(contender(7), "lock-0000000007");
        assert_eq!(sequence("lock-0000000007"), Some(7));
        assert_eq!(sequence("other"), None);
        let children: Vec<String> = ["lock-0000000012", "stray", "lock-0000000009"]
            .map(String::from)
            .to_vec();
        assert_eq!(first_contender(&children), Some((9, "lock-0000000009")));
        assert_eq!(first_contender(&[]), None);
        assert_eq!(predecessor(&children, 12), Some((9, "lock-0000000009")));
        assert_eq!(predecessor(&children, 20), Some((12, "lock-0000000012")));
        assert_eq!(predecessor(&children, 9), None);
        assert_eq!(contender_prefix("/dlock/k"), "/dlock/k/lock-");
        assert_eq!(key_node_of("/dlock/k/lock-0000000007"), "/dlock/k");
    }
}
