//! The two forms a lock's record takes in its blob's metadata, and the one view of its holders
//! both give.
//!
//! A plain lock (Dapr's: exclusive, one hold) is the owner, deadline and counter of
//! `record.rs`, as it always has been. Any other set of holders (shared ones, a limit,
//! reentrant holds) is the core's holders record (`lock::holders`), kept beside them in one
//! more metadata value. The metadata, not the blob's content, because the store reads a blob
//! with a HEAD request only: Azurite was seen to leave GETs of lock blobs unanswered for
//! seconds under the contention of fifty owners, where HEADs were answered. The price is
//! Azure's limit of 8 KiB of metadata per blob: a grant whose holders would not fit is
//! refused with an error saying so (about 70 holders with 36-character owners).
//!
//! In that form the metadata still names the key and keeps the fencing counter, which every
//! grant of either form draws from, and mirrors the first holder and the last deadline, so
//! that Azure's tools, and a sidecar that knows only plain locks, see the key held.
//!
//! Every operation reads the holders through `holders` whatever the form (a plain holder is an
//! exclusive holder of one hold), applies the core's rules, and writes back through `state`:
//! nobody, or one exclusive holder of one hold, is written in the plain form, so a key taken
//! only by plain locks never leaves it, and a reentrant owner's last-but-one release returns a
//! key to it.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::line::Line;
use super::record::Record;
use crate::lock::holders::{Entry, Record as Holders};
use crate::lock::{Mode, StoreError};

/// The metadata name of the holders record, in base64url (metadata values are ASCII).
const HOLDERS: &str = "holders";

/// Azure's limit on a blob's metadata, names and values together.
const METADATA_LIMIT: usize = 8 * 1024;

/// The holders kept in a blob's metadata, if there are; a plain lock's blob has none.
pub(crate) fn from_metadata(metadata: &HashMap<String, String>) -> Option<Holders> {
    let bytes = URL_SAFE_NO_PAD.decode(metadata.get(HOLDERS)?).ok()?;
    Holders::decode(std::str::from_utf8(&bytes).ok()?)
}

/// The metadata that keeps `record`, `holders` where given, and the line of waiters
/// (`line.rs`): an error naming the key when it would be larger than a blob may have.
pub(crate) fn metadata(
    record: &Record,
    holders: Option<&Holders>,
    line: &Line,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut metadata = record.to_metadata();
    if let Some(holders) = holders {
        metadata.push((HOLDERS, URL_SAFE_NO_PAD.encode(holders.encode())));
    }
    metadata.extend(line.to_metadata());
    let size: usize = metadata.iter().map(|(n, v)| n.len() + v.len()).sum();
    if size > METADATA_LIMIT {
        return Err(StoreError::failed(format!(
            "the {} holders of '{}' would not fit in the {METADATA_LIMIT} bytes of metadata \
             an Azure blob may have, with {} waiting in line: release some first, or use a \
             lower limit or fewer waiters",
            holders.map_or(0, |h| h.holders.len()),
            record.key,
            line.len()
        )));
    }
    Ok(metadata)
}

/// The key's holders as a blob shows them, not yet purged of the expired: the holders record,
/// or else the plain lock's holder, if the record names one.
pub(crate) fn holders(record: &Record, kept: Option<&Holders>) -> Holders {
    if let Some(holders) = kept {
        return holders.clone();
    }
    let mut holders = Holders::free();
    if !record.owner.is_empty() {
        holders.holders.push(Entry {
            owner: record.owner.clone(),
            deadline_ms: u64::try_from(record.deadline).unwrap_or(0),
            token: record.fencing,
            holds: 1,
        });
    }
    holders
}

/// The record and holders record that keep `holders` of `key`, the counter at `fencing`.
pub(crate) fn state(key: &str, holders: &Holders, fencing: u64) -> (Record, Option<Holders>) {
    let mut record = Record {
        key: key.to_string(),
        owner: String::new(),
        deadline: 0,
        fencing,
    };
    let Some(first) = holders.holders.first() else {
        return (record, None);
    };
    record.owner = first.owner.clone();
    let last = holders.last_deadline().unwrap_or(first.deadline_ms);
    record.deadline = i64::try_from(last).unwrap_or(i64::MAX);
    let plain = holders.mode == Mode::Exclusive && holders.holders.len() == 1 && first.holds == 1;
    (record, (!plain).then(|| holders.clone()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lock::Kind;

    const TTL: Duration = Duration::from_secs(10);

    fn read_back(record: &Record, holders: Option<&Holders>) -> (Record, Option<Holders>) {
        let metadata: HashMap<String, String> = metadata(record, holders, &Line::default())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(metadata.values().all(|v| v.is_ascii()));
        let read = Record::from_metadata("b", &metadata).unwrap();
        (read, from_metadata(&metadata))
    }

    #[test]
    fn a_plain_lock_and_nobody_stay_in_the_plain_form() {
        let free = state("k", &Holders::free(), 7);
        assert_eq!(free.0.owner, "");
        assert_eq!((free.0.fencing, free.1), (7, None));

        let mut one = Holders::free();
        one.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 8);
        let (record, kept) = state("k", &one, 8);
        assert_eq!(kept, None);
        assert_eq!((record.owner.as_str(), record.deadline), ("o", 10_000));
        // Read back, the plain lock is the same single holder.
        let (record, kept) = read_back(&record, None);
        assert_eq!(kept, None);
        assert_eq!(holders(&record, None), one);
    }

    #[test]
    fn shared_holders_and_reentrant_holds_keep_the_holders_record() {
        let mut shared = Holders::free();
        shared.acquire(0, "a ✓", TTL, Kind::shared(2), 1);
        shared.acquire(0, "b", TTL * 2, Kind::shared(2), 2);
        let (record, kept) = state("k", &shared, 2);
        assert_eq!(kept.as_ref(), Some(&shared));
        // The record mirrors a holder until the last deadline: seen held by plain readers.
        assert_eq!((record.owner.as_str(), record.deadline), ("a ✓", 20_000));
        let (record, kept) = read_back(&record, kept.as_ref());
        assert_eq!(kept.as_ref(), Some(&shared));
        assert_eq!(holders(&record, kept.as_ref()), shared);

        let mut twice = Holders::free();
        twice.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 3);
        twice.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 4);
        assert_eq!(state("k", &twice, 3).1, Some(twice));
    }

    #[test]
    fn holders_that_would_not_fit_are_refused_naming_the_key() {
        let mut many = Holders::free();
        for n in 0..200 {
            let owner = format!("{n:036}");
            many.acquire(0, &owner, TTL, Kind::shared(0), n);
        }
        let (record, kept) = state("the-key", &many, 200);
        let refused = metadata(&record, kept.as_ref(), &Line::default())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("200 holders of 'the-key' would not fit"),
            "{refused}"
        );
        many.holders.truncate(50);
        assert!(metadata(&record, Some(&many), &Line::default()).is_ok());
    }
}
