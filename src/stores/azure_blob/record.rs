//! What a lock's blob records about it, as the blob's metadata: the key, the owner, the
//! deadline by the storage service's clock, and the fencing counter. Metadata values must be
//! ASCII header values, so the key and the owner (any text) are stored in base64url.
//!
//! The record, not the lease, says whether the key is held: it is held while the record names
//! an owner and its deadline has not passed (unless the metadata keeps a holders record
//! instead, `form.rs`). A release clears the owner and keeps the counter, so fencing tokens go
//! on rising through releases, expiries and breaks.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::lock::StoreError;

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
    /// The record in a blob's metadata; a blob written by something else reads as free. A
    /// deadline or counter that is there but no number of its kind (a negative counter, say)
    /// is refused: read as 0, the counter would hand out tokens that went back.
    pub(crate) fn from_metadata(
        blob: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Record, StoreError> {
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default()
        };
        Ok(Record {
            key: text(KEY),
            owner: text(OWNER),
            deadline: number(blob, metadata, DEADLINE, "a time in Unix milliseconds")?,
            fencing: number(
                blob,
                metadata,
                FENCING,
                "a fencing counter (a whole number from 0)",
            )?,
        })
    }

    pub(crate) fn to_metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY, URL_SAFE_NO_PAD.encode(&self.key)),
            (OWNER, URL_SAFE_NO_PAD.encode(&self.owner)),
            (DEADLINE, self.deadline.to_string()),
            (FENCING, self.fencing.to_string()),
        ]
    }

    /// The record of a grant to `owner` until `deadline`: the next fencing token.
    pub(crate) fn granted(
        &self,
        key: &str,
        owner: &str,
        deadline: i64,
    ) -> Result<Record, StoreError> {
        Ok(Record {
            key: key.to_string(),
            owner: owner.to_string(),
            deadline,
            fencing: self.next_token(key)?,
        })
    }

    /// The token the next grant of `key` gets.
    pub(crate) fn next_token(&self, key: &str) -> Result<u64, StoreError> {
        self.fencing.checked_add(1).ok_or_else(|| {
            StoreError::failed(format!(
                "the blob of '{key}' has used up its fencing counter ({})",
                self.fencing
            ))
        })
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

/// A number in the metadata field `name`: 0 when absent, an error naming the field when it is
/// not `what`.
fn number<T: std::str::FromStr + Default>(
    blob: &str,
    metadata: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<T, StoreError> {
    match metadata.get(name) {
        None => Ok(T::default()),
        Some(value) => value.parse().map_err(|_| {
            StoreError::failed(format!(
                "the metadata '{name}' of the blob {blob} is '{value}', which is not {what}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_metadata() {
        let record = Record::default()
            .granted("lock||a||ünï/c.", "owner ✓", 1_700_000_000_123)
            .unwrap();
        let metadata: HashMap<String, String> = record
            .to_metadata()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(metadata.values().all(|v| v.is_ascii()));
        assert_eq!(Record::from_metadata("b", &metadata).unwrap(), record);
        assert_eq!(record.fencing, 1);
        let released = record.released();
        assert_eq!((released.owner.as_str(), released.deadline), ("", 0));
        assert_eq!(released.granted("k", "b", 5).unwrap().fencing, 2);
        assert_eq!(
            Record::from_metadata("b", &HashMap::new()).unwrap(),
            Record::default()
        );
    }

    #[test]
    fn a_counter_that_is_no_counter_is_refused_never_read_as_zero() {
        for counter in ["-5", "seven", "1.5"] {
            let metadata = HashMap::from([(FENCING.to_string(), counter.to_string())]);
            let refused = Record::from_metadata("b", &metadata)
                .unwrap_err()
                .to_string();
            assert!(
                refused.contains(&format!("'fencing' of the blob b is '{counter}'")),
                "{refused}"
            );
        }
        let deadline = HashMap::from([(DEADLINE.to_string(), "soon".to_string())]);
        assert!(Record::from_metadata("b", &deadline).is_err());
        let spent = Record {
            fencing: u64::MAX,
            ..Record::default()
        };
        assert!(spent.granted("k", "o", 1).is_err());
    }
}
