//! The two forms a lock's blob takes, and the one view of its holders both give.
//!
//! A plain lock (Dapr's: exclusive, one hold) lives in the blob's metadata alone (`record.rs`),
//! as it always has. Any other set of holders (shared ones, a limit, reentrant holds) is the
//! core's holders record (`lock::holders`), kept in the blob's content: metadata values are
//! ASCII header values of at most 8 KiB in all, too small for a semaphore's holders, while the
//! content is bounded only by what the store reads of an answer. The metadata of a blob in that
//! form still names the key and keeps the fencing counter, which every grant of either form
//! draws from, and mirrors the first holder and the last deadline, so that Azure's tools, and a
//! sidecar that knows only plain locks, see the key held.
//!
//! Every operation reads the holders through `holders` whatever the form (a plain holder is an
//! exclusive holder of one hold), applies the core's rules, and writes back through `state`:
//! nobody, or one exclusive holder of one hold, is written in the plain form, so a key taken
//! only by plain locks never leaves it, and a reentrant owner's last-but-one release returns a
//! key to it.

use hyper::body::Bytes;

use super::record::Record;
use crate::lock::holders::{Entry, Record as Holders};
use crate::lock::Mode;

/// The holders kept in a blob's content, if the content is a holders record; anything else
/// (an empty blob, a plain lock's) is `None`.
pub(crate) fn from_body(body: &[u8]) -> Option<Holders> {
    Holders::decode(std::str::from_utf8(body).ok()?)
}

/// The key's holders as a blob shows them, not yet purged of the expired: the content's
/// record, or else the plain lock's holder, if the metadata names one.
pub(crate) fn holders(record: &Record, body: Option<&Holders>) -> Holders {
    if let Some(holders) = body {
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

/// The blob's metadata and content that keep `holders` of `key`, the counter at `fencing`.
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

/// The content that keeps `holders`: empty for the plain form.
pub(crate) fn body(holders: Option<&Holders>) -> Bytes {
    holders.map_or_else(Bytes::new, |holders| Bytes::from(holders.encode()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lock::Kind;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn a_plain_lock_and_nobody_stay_in_the_metadata() {
        let free = state("k", &Holders::free(), 7);
        assert_eq!(free.0.owner, "");
        assert_eq!((free.0.fencing, free.1), (7, None));

        let mut one = Holders::free();
        one.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 8);
        let (record, body) = state("k", &one, 8);
        assert_eq!(body, None);
        assert_eq!((record.owner.as_str(), record.deadline), ("o", 10_000));
        // Read back, the plain lock is the same single holder.
        assert_eq!(holders(&record, None), one);
    }

    #[test]
    fn shared_holders_and_reentrant_holds_go_in_the_content() {
        let mut shared = Holders::free();
        shared.acquire(0, "a", TTL, Kind::shared(2), 1);
        shared.acquire(0, "b", TTL * 2, Kind::shared(2), 2);
        let (record, body) = state("k", &shared, 2);
        assert_eq!(body.as_ref(), Some(&shared));
        // The metadata mirrors a holder until the last deadline: seen held by plain readers.
        assert_eq!((record.owner.as_str(), record.deadline), ("a", 20_000));
        assert_eq!(from_body(&self::body(body.as_ref())), Some(shared.clone()));
        assert_eq!(holders(&record, body.as_ref()), shared);

        let mut twice = Holders::free();
        twice.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 3);
        twice.acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 4);
        assert_eq!(state("k", &twice, 3).1, Some(twice));
        assert_eq!(from_body(b""), None);
        assert_eq!(from_body(b"not a record"), None);
    }
}
