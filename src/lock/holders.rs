//! The holders of one key, and the kinds rules (`kind.rs`) applied to them, once for every
//! store that keeps a key's holders as one record it can compare-and-set: the in-memory store
//! under its shard mutex, Redis with a scripted compare-and-set, the SQL stores in a
//! transaction that locks the row, Azure Blob under If-Match. A store reads the record and its
//! own clock, asks this module what the request does to it, and writes the result back only
//! if nobody changed the record in between; so the rules are written here alone and every
//! store keeps them alike.
//!
//! Times are milliseconds by the store's clock (`now_ms`), never the sidecar's: each holder's
//! deadline is where the store put it, so a holder whose sidecar died frees its place on time.
//! A fencing token is drawn by the store from the key's counter (`next_token`) and used only
//! for a new holder; a re-entry keeps its first grant's token.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kind::{Conflict, Holder, Kind, Mode, Released};
use super::{Grant, LockInfo, OwnerChecked, TryLockOutcome};

/// How a record starts when encoded, so a store can tell it from a value of its plain lock
/// (daprd's Redis value is the owner itself).
pub(crate) const MARK: &str = "dlock-holders:";

/// A key's holders: one exclusive holder, or up to `limit` shared ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(rename = "m", with = "mode_letter")]
    pub(crate) mode: Mode,
    /// Shared only: the most holders at once (0: no limit).
    #[serde(rename = "l", default)]
    pub(crate) limit: u32,
    /// In the order they were granted.
    #[serde(rename = "h")]
    pub(crate) holders: Vec<Entry>,
}

/// One holder in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(rename = "o")]
    pub(crate) owner: String,
    /// When this holder's place expires, in milliseconds by the store's clock.
    #[serde(rename = "d")]
    pub(crate) deadline_ms: u64,
    #[serde(rename = "t")]
    pub(crate) token: u64,
    #[serde(rename = "n")]
    pub(crate) holds: u32,
}

/// What an acquire did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquired {
    pub(crate) outcome: TryLockOutcome,
    /// Whether the grant used `next_token`: the store then advances the key's counter to it.
    pub(crate) drew_token: bool,
}

impl Record {
    /// An empty record: nobody holds the key.
    pub(crate) fn free() -> Record {
        Record {
            mode: Mode::Exclusive,
            limit: 0,
            holders: Vec::new(),
        }
    }

    /// Drops the holders whose deadline is not after `now_ms`.
    pub(crate) fn purge(&mut self, now_ms: u64) {
        self.holders.retain(|entry| entry.deadline_ms > now_ms);
    }

    pub(crate) fn is_free(&self) -> bool {
        self.holders.is_empty()
    }

    /// The latest deadline of any holder: when the whole record may go.
    pub(crate) fn last_deadline(&self) -> Option<u64> {
        self.holders.iter().map(|entry| entry.deadline_ms).max()
    }

    /// Applies an acquire of `kind` by `owner` for `ttl` at `now_ms`. A new holder gets
    /// `next_token`. Expired holders are purged first, so a record read as it was stored is
    /// fine to pass.
    pub(crate) fn acquire(
        &mut self,
        now_ms: u64,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        next_token: u64,
    ) -> Acquired {
        self.purge(now_ms);
        let deadline_ms = now_ms.saturating_add(millis(ttl));
        let refused = |outcome| Acquired {
            outcome,
            drew_token: false,
        };
        if let Some(entry) = self.holders.iter_mut().find(|e| e.owner == owner) {
            if !kind.reentrant {
                return refused(TryLockOutcome::Held);
            }
            if self.mode != kind.mode {
                return refused(TryLockOutcome::Refused(Conflict::ModeConflict {
                    held: self.mode,
                }));
            }
            entry.holds = entry.holds.saturating_add(1);
            entry.deadline_ms = entry.deadline_ms.max(deadline_ms);
            return refused(TryLockOutcome::Granted(Grant {
                fencing_token: Some(entry.token),
                holds: entry.holds,
            }));
        }
        if !self.holders.is_empty() {
            if self.mode == Mode::Exclusive || kind.mode == Mode::Exclusive {
                return refused(TryLockOutcome::Held);
            }
            if self.limit != kind.limit {
                return refused(TryLockOutcome::Refused(Conflict::LimitMismatch {
                    held: self.limit,
                }));
            }
            if self.limit != 0 && self.holders.len() >= self.limit as usize {
                return refused(TryLockOutcome::Held);
            }
        } else {
            self.mode = kind.mode;
            self.limit = kind.limit;
        }
        self.holders.push(Entry {
            owner: owner.to_string(),
            deadline_ms,
            token: next_token,
            holds: 1,
        });
        Acquired {
            outcome: TryLockOutcome::Granted(Grant {
                fencing_token: Some(next_token),
                holds: 1,
            }),
            drew_token: true,
        }
    }

    /// Takes back one of `owner`'s holds, or all of them.
    pub(crate) fn release(&mut self, now_ms: u64, owner: &str, all_holds: bool) -> Released {
        self.purge(now_ms);
        let Some(at) = self.holders.iter().position(|e| e.owner == owner) else {
            return Released {
                outcome: self.not_held(),
                holds_left: 0,
            };
        };
        let entry = &mut self.holders[at];
        entry.holds = if all_holds { 0 } else { entry.holds - 1 };
        let holds_left = entry.holds;
        if holds_left == 0 {
            self.holders.remove(at);
        }
        Released {
            outcome: OwnerChecked::Applied,
            holds_left,
        }
    }

    /// Takes back one hold of the grant `grant`, whose caller had gone: only while `owner`
    /// still holds the key under that grant's token, so a later grant is never touched.
    pub(crate) fn take_back(&mut self, now_ms: u64, owner: &str, grant: Grant) -> OwnerChecked {
        self.purge(now_ms);
        let held_under_grant = self
            .holders
            .iter()
            .any(|e| e.owner == owner && Some(e.token) == grant.fencing_token);
        if !held_under_grant {
            let owner_holds = self.holders.iter().any(|e| e.owner == owner);
            return if owner_holds {
                OwnerChecked::NotHeld
            } else {
                self.not_held()
            };
        }
        self.release(now_ms, owner, false).outcome
    }

    /// Moves `owner`'s deadline to `ttl` from `now_ms`.
    pub(crate) fn renew(&mut self, now_ms: u64, owner: &str, ttl: Duration) -> OwnerChecked {
        self.purge(now_ms);
        match self.holders.iter_mut().find(|e| e.owner == owner) {
            Some(entry) => {
                entry.deadline_ms = now_ms.saturating_add(millis(ttl));
                OwnerChecked::Applied
            }
            None => self.not_held(),
        }
    }

    /// What Inspect and List show of the record at `now_ms`: `None` when nobody holds it.
    pub(crate) fn info(&self, key: &str, now_ms: u64) -> Option<LockInfo> {
        let holders: Vec<Holder> = self
            .holders
            .iter()
            .filter(|e| e.deadline_ms > now_ms)
            .map(|e| Holder {
                owner: e.owner.clone(),
                expires_in: Duration::from_millis(e.deadline_ms - now_ms),
                fencing_token: Some(e.token),
                holds: e.holds,
            })
            .collect();
        let first = holders.first()?.clone();
        Some(LockInfo {
            key: key.to_string(),
            owner: first.owner,
            expires_in: first.expires_in,
            fencing_token: first.fencing_token,
            mode: self.mode,
            limit: self.limit,
            holders,
        })
    }

    /// The record as a string a store keeps as a value.
    pub(crate) fn encode(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{MARK}{json}")
    }

    /// A value a store kept: `None` for a value that is not a record (a plain lock's, such as
    /// daprd's owner string on Redis).
    pub(crate) fn decode(value: &str) -> Option<Record> {
        serde_json::from_str(value.strip_prefix(MARK)?).ok()
    }

    fn not_held(&self) -> OwnerChecked {
        if self.holders.is_empty() {
            OwnerChecked::NotHeld
        } else {
            OwnerChecked::HeldByOther
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

mod mode_letter {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Mode;

    pub(super) fn serialize<S: Serializer>(mode: &Mode, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(match mode {
            Mode::Exclusive => "X",
            Mode::Shared => "S",
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Mode, D::Error> {
        match <&str>::deserialize(from)? {
            "X" => Ok(Mode::Exclusive),
            "S" => Ok(Mode::Shared),
            other => Err(serde::de::Error::custom(format!("unknown mode {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn granted(acquired: Acquired) -> Grant {
        match acquired.outcome {
            TryLockOutcome::Granted(grant) => grant,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn a_limit_admits_that_many_and_each_holder_expires_on_its_own() {
        let mut record = Record::free();
        let three = Kind::shared(3);
        granted(record.acquire(0, "a", Duration::from_secs(1), three, 1));
        granted(record.acquire(0, "b", TTL, three, 2));
        granted(record.acquire(0, "c", TTL, three, 3));
        let full = record.acquire(0, "d", TTL, three, 4);
        assert_eq!(full.outcome, TryLockOutcome::Held);
        assert!(!full.drew_token);
        // a's place frees at a's deadline; b and c keep theirs.
        let later = record.acquire(1_000, "d", TTL, three, 4);
        assert_eq!(granted(later).fencing_token, Some(4));
        let owners: Vec<_> = record.holders.iter().map(|e| e.owner.as_str()).collect();
        assert_eq!(owners, ["b", "c", "d"]);
    }

    #[test]
    fn modes_exclude_each_other_and_a_limit_mismatch_is_refused() {
        let mut record = Record::free();
        granted(record.acquire(0, "r", TTL, Kind::shared(2), 1));
        let writer = record.acquire(0, "w", TTL, Kind::PLAIN, 2);
        assert_eq!(writer.outcome, TryLockOutcome::Held);
        let other_limit = record.acquire(0, "s", TTL, Kind::shared(5), 2);
        assert_eq!(
            other_limit.outcome,
            TryLockOutcome::Refused(Conflict::LimitMismatch { held: 2 })
        );
        let mut record = Record::free();
        granted(record.acquire(0, "w", TTL, Kind::PLAIN, 1));
        let reader = record.acquire(0, "r", TTL, Kind::shared(0), 2);
        assert_eq!(reader.outcome, TryLockOutcome::Held);
    }

    #[test]
    fn reentry_counts_holds_keeps_the_token_and_is_released_one_hold_at_a_time() {
        let mut record = Record::free();
        let kind = Kind::PLAIN.reentrant();
        let first = granted(record.acquire(0, "o", Duration::from_secs(5), kind, 7));
        let again = record.acquire(100, "o", Duration::from_secs(1), kind, 8);
        assert!(!again.drew_token);
        let again = granted(again);
        assert_eq!((again.fencing_token, again.holds), (first.fencing_token, 2));
        // The expiry is the longer of what was left and what was asked.
        assert_eq!(record.holders[0].deadline_ms, 5_000);
        let one = record.release(200, "o", false);
        assert_eq!((one.outcome, one.holds_left), (OwnerChecked::Applied, 1));
        let last = record.release(200, "o", false);
        assert_eq!((last.outcome, last.holds_left), (OwnerChecked::Applied, 0));
        assert!(record.is_free());
        assert_eq!(
            record.release(200, "o", false).outcome,
            OwnerChecked::NotHeld
        );
    }

    #[test]
    fn without_reentrant_the_owner_sees_the_key_held_and_in_another_mode_a_conflict() {
        let mut record = Record::free();
        granted(record.acquire(0, "o", TTL, Kind::shared(0), 1));
        assert_eq!(
            record.acquire(0, "o", TTL, Kind::shared(0), 2).outcome,
            TryLockOutcome::Held
        );
        assert_eq!(
            record
                .acquire(0, "o", TTL, Kind::PLAIN.reentrant(), 2)
                .outcome,
            TryLockOutcome::Refused(Conflict::ModeConflict { held: Mode::Shared })
        );
    }

    #[test]
    fn all_holds_go_at_once_and_expiry_drops_every_hold() {
        let mut record = Record::free();
        let kind = Kind::PLAIN.reentrant();
        for _ in 0..3 {
            granted(record.acquire(0, "o", TTL, kind, 1));
        }
        let all = record.release(0, "o", true);
        assert_eq!((all.outcome, all.holds_left), (OwnerChecked::Applied, 0));
        for _ in 0..3 {
            granted(record.acquire(0, "o", TTL, kind, 2));
        }
        assert_eq!(record.renew(10_000, "o", TTL), OwnerChecked::NotHeld);
        assert!(record.info("k", 10_000).is_none());
    }

    #[test]
    fn take_back_spares_a_later_grant() {
        let mut record = Record::free();
        let old = granted(record.acquire(0, "o", TTL, Kind::shared(0), 1));
        record.release(0, "o", false);
        granted(record.acquire(0, "o", TTL, Kind::shared(0), 2));
        assert_eq!(record.take_back(0, "o", old), OwnerChecked::NotHeld);
        assert_eq!(record.holders.len(), 1);
        let other = granted(record.acquire(0, "p", TTL, Kind::shared(0), 3));
        assert_eq!(record.take_back(0, "p", other), OwnerChecked::Applied);
        assert_eq!(record.take_back(0, "p", other), OwnerChecked::HeldByOther);
    }

    #[test]
    fn renewal_moves_only_its_own_holder() {
        let mut record = Record::free();
        granted(record.acquire(0, "a", TTL, Kind::shared(0), 1));
        granted(record.acquire(0, "b", TTL, Kind::shared(0), 2));
        assert_eq!(record.renew(5_000, "a", TTL), OwnerChecked::Applied);
        assert_eq!(record.renew(5_000, "c", TTL), OwnerChecked::HeldByOther);
        let deadlines: Vec<_> = record.holders.iter().map(|e| e.deadline_ms).collect();
        assert_eq!(deadlines, [15_000, 10_000]);
    }

    #[test]
    fn info_names_the_first_holder_and_every_holder() {
        let mut record = Record::free();
        granted(record.acquire(0, "a", TTL, Kind::shared(4), 1));
        granted(record.acquire(1_000, "b", TTL, Kind::shared(4), 2));
        let info = record.info("k", 2_000).unwrap();
        assert_eq!(
            (info.owner.as_str(), info.mode, info.limit),
            ("a", Mode::Shared, 4)
        );
        assert_eq!(info.expires_in, Duration::from_secs(8));
        let owners: Vec<_> = info.holders.iter().map(|h| h.owner.as_str()).collect();
        assert_eq!(owners, ["a", "b"]);
    }

    #[test]
    fn a_record_survives_its_encoding_and_a_plain_value_is_not_one() {
        let mut record = Record::free();
        granted(record.acquire(0, "o\"wner", TTL, Kind::shared(3), 9));
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode("some-owner"), None);
        assert_eq!(Record::decode("dlock-holders:{broken"), None);
    }
}
