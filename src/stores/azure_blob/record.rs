//! What a lock's blob records about it, as the blob's metadata: the key, the owner, the
//! deadline by the storage service's clock, and the fencing counter. Metadata values must be
//! ASCII header values, so the key and the owner (any text) are stored in base64url.
//!
//! The record, not the lease, says whether the key is held: it is held while the record names
//! an owner and its deadline has not passed. A release clears the owner and keeps the counter,
//! so fencing tokens go on rising through releases, expiries and breaks.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const KEY: &str = "key";
const OWNER: &str = "owner";
const DEADLINE: &str = "deadline";
const FENCING: &str = "fencing";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: String,
    /// Empty when nobody holds the key.
    pub(crate) owner: String,
    /// Milliseconds since the Unix epoch, by the storage service's clock.
    pub(crate) deadline: i64,
    /// The token of the last grant: the next grant's is one more.
    pub(crate) fencing: u64,
}

impl Record {
    /// The record in a blob's metadata; a blob written by something else reads as free.
    pub(crate) fn from_metadata(metadata: &HashMap<String, String>) -> Record {
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default()
        };
        let number = |name: &str| metadata.get(name).and_then(|v| v.parse().ok());
        Record {
            key: text(KEY),
            owner: text(OWNER),
            deadline: number(DEADLINE).unwrap_or(0),
            fencing: number(FENCING).map_or(0, |n: i64| n as u64),
        }
    }

    pub(crate) fn to_metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY, URL_SAFE_NO_PAD.encode(&self.key)),
            (OWNER, URL_SAFE_NO_PAD.encode(&self.owner)),
            (DEADLINE, self.deadline.to_string()),
            (FENCING, self.fencing.to_string()),
        ]
    }

    /// Whether the record names an owner whose deadline is after `now` (service ms).
    pub(crate) fn held_at(&self, now: i64) -> bool {
        !self.owner.is_empty() && self.deadline > now
    }

    /// The record of a grant to `owner` until `deadline`: the next fencing token.
    pub(crate) fn granted(&self, key: &str, owner: &str, deadline: i64) -> Record {
        Record {
            key: key.to_string(),
            owner: owner.to_string(),
            deadline,
            fencing: self.fencing + 1,
        }
    }

    /// The same record, released: no owner, the counter kept.
    pub(crate) fn released(&self) -> Record {
        Record {
            owner: String::new(),
            deadline: 0,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_metadata() {
        let record = Record::default().granted("lock||a||ünï/c.", "owner ✓", 1_700_000_000_123);
        let metadata: HashMap<String, String> = record
            .to_metadata()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(metadata.values().all(|v| v.is_ascii()));
        assert_eq!(Record::from_metadata(&metadata), record);
        assert_eq!(record.fencing, 1);
        assert!(record.held_at(1_700_000_000_122));
        assert!(!record.held_at(1_700_000_000_123));
        let released = record.released();
        assert!(!released.held_at(0));
        assert_eq!(released.granted("k", "b", 5).fencing, 2);
        assert_eq!(Record::from_metadata(&HashMap::new()), Record::default());
    }
}
