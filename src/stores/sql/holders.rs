//! Shared, limited and reentrant locks on a SQL lock table, written once for both databases.
//! A plain lock stays the row it always was (owner, expiry, fencing token) and keeps its
//! one-statement path; a key held in any other way keeps its holders as a record
//! (`lock::holders::Record`, encoded) in the row's `holders` column, beside an owner (the first
//! holder) and an expiry (the last holder's deadline) that make every plain statement see the
//! key held. Each store runs a change of such a key as one transaction: it locks the key's row,
//! reads it and the database's clock (`Stored`), asks `apply` what the change does, draws a
//! fencing token from its counter when the answer needs one, writes the row back (`Written`)
//! and commits; the rules themselves live in `Record`.
//!
//! A record that comes down to one exclusive holder with one hold is written back as a plain
//! row: it means the same, and the plain statements serve it again. An expired row is free
//! whatever its `holders` say, since the expiry is the last deadline: a force release or an
//! expiry frees a record without reading it.

use std::time::Duration;

use crate::lock::holders::{Entry, Record};
use crate::lock::{
    Grant, Kind, LockInfo, Mode, OwnerChecked, Released, StoreError, TryLockOutcome,
};

/// The key's row as a transaction read it after locking it, with the database's clock.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) owner: String,
    /// The row's expiry, in milliseconds since the epoch: rounded up while it runs, down once
    /// it has passed, so that the row is free here exactly when the database's own comparison
    /// (to the microsecond) finds it expired.
    pub(crate) deadline_ms: u64,
    pub(crate) token: u64,
    /// The encoded record; `None` for a plain lock's row.
    pub(crate) holders: Option<String>,
}

/// What a change did to a record: its answer, whether it changed the record, and whether it
/// used the token it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome<T> {
    pub(crate) answer: T,
    applied: bool,
    drew_token: bool,
}

/// A change of a key's holders: applied to the record at a time by the database's clock,
/// with the token a new holder would get.
pub(crate) trait Change<T>: Fn(&mut Record, u64, u64) -> Outcome<T> + Copy {}

impl<T, F: Fn(&mut Record, u64, u64) -> Outcome<T> + Copy> Change<T> for F {}

pub(crate) fn acquire(owner: &str, ttl: Duration, kind: Kind) -> impl Change<TryLockOutcome> + '_ {
    move |record: &mut Record, now_ms, next_token| {
        let acquired = record.acquire(now_ms, owner, ttl, kind, next_token);
        Outcome {
            answer: acquired.outcome,
            applied: matches!(acquired.outcome, TryLockOutcome::Granted(_)),
            drew_token: acquired.drew_token,
        }
    }
}

/// `acquire`, unless `others_ahead` (live waiters stand ahead of it in the key's line,
/// `line.rs`): then only a holder's re-entry is granted, since it would otherwise wait behind
/// waiters that wait for it.
pub(crate) fn acquire_in_line(
    owner: &str,
    ttl: Duration,
    kind: Kind,
    others_ahead: bool,
) -> impl Change<TryLockOutcome> + '_ {
    move |record: &mut Record, now_ms, next_token| {
        let holds = record
            .holders
            .iter()
            .any(|entry| entry.owner == owner && entry.deadline_ms > now_ms);
        if others_ahead && !holds {
            return Outcome {
                answer: TryLockOutcome::Held,
                applied: false,
                drew_token: false,
            };
        }
        acquire(owner, ttl, kind)(record, now_ms, next_token)
    }
}

pub(crate) fn release(owner: &str, all_holds: bool) -> impl Change<Released> + '_ {
    move |record: &mut Record, now_ms, _| {
        let released = record.release(now_ms, owner, all_holds);
        checked(released.outcome, released)
    }
}

pub(crate) fn take_back(owner: &str, grant: Grant) -> impl Change<OwnerChecked> + '_ {
    move |record: &mut Record, now_ms, _| {
        let outcome = record.take_back(now_ms, owner, grant);
        checked(outcome, outcome)
    }
}

pub(crate) fn renew(owner: &str, ttl: Duration) -> impl Change<OwnerChecked> + '_ {
    move |record: &mut Record, now_ms, _| {
        let outcome = record.renew(now_ms, owner, ttl);
        checked(outcome, outcome)
    }
}

fn checked<T>(outcome: OwnerChecked, answer: T) -> Outcome<T> {
    Outcome {
        answer,
        applied: outcome == OwnerChecked::Applied,
        drew_token: false,
    }
}

/// What `apply` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied<T> {
    pub(crate) answer: T,
    /// The grant used `next_token`: the store must have drawn it from its counter.
    pub(crate) drew_token: bool,
    /// The row to write back; `None` when the change changed nothing.
    pub(crate) write: Option<Written>,
    /// A holder left: the store tells the key's waiters.
    pub(crate) freed: bool,
}

/// The key's row after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) owner: String,
    /// The row's expiry, in milliseconds since the epoch by the database's clock.
    pub(crate) deadline_ms: u64,
    pub(crate) token: u64,
    pub(crate) holders: Option<String>,
}

/// Applies `change` to the row `stored` (`None`: the key has no row) at `now_ms` by the
/// database's clock. A new holder gets `next_token`; a store that draws its tokens only for
/// grants applies once with any number, and again with the drawn one when `drew_token` says
/// the grant needs it (the answer is the same for the same row and clock).
pub(crate) fn apply<T>(
    table: &str,
    stored: Option<&Stored>,
    now_ms: u64,
    change: impl Change<T>,
    next_token: u64,
) -> Result<Applied<T>, StoreError> {
    let mut record = record(table, stored, now_ms)?;
    let before = record.holders.len();
    let outcome = change(&mut record, now_ms, next_token);
    let stored_token = stored.map_or(0, |s| s.token);
    let token = if outcome.drew_token {
        next_token.max(stored_token)
    } else {
        stored_token
    };
    Ok(Applied {
        answer: outcome.answer,
        drew_token: outcome.drew_token,
        write: outcome.applied.then(|| written(&record, now_ms, token)),
        freed: outcome.applied && record.holders.len() < before,
    })
}

/// The row read as a record: an expired row is free, a plain one an exclusive holder.
fn record(table: &str, stored: Option<&Stored>, now_ms: u64) -> Result<Record, StoreError> {
    let Some(stored) = stored.filter(|s| s.deadline_ms > now_ms) else {
        return Ok(Record::free());
    };
    match &stored.holders {
        Some(encoded) => Record::decode(encoded).ok_or_else(|| {
            super::unreadable(
                table,
                "holders",
                "it is not a record of holders dlock wrote",
            )
        }),
        None => Ok(Record {
            mode: Mode::Exclusive,
            limit: 0,
            holders: vec![Entry {
                owner: stored.owner.clone(),
                deadline_ms: stored.deadline_ms,
                token: stored.token,
                holds: 1,
            }],
        }),
    }
}

/// The row that keeps `record`, whose key's counter stands at `token`.
fn written(record: &Record, now_ms: u64, token: u64) -> Written {
    if record.is_free() {
        // Expired at once, with the counter where it stands.
        return Written {
            owner: String::new(),
            deadline_ms: now_ms,
            token,
            holders: None,
        };
    }
    match record.holders.as_slice() {
        [only] if record.mode == Mode::Exclusive && only.holds == 1 => Written {
            owner: only.owner.clone(),
            deadline_ms: only.deadline_ms,
            token: only.token,
            holders: None,
        },
        holders => Written {
            owner: holders.first().map(|e| e.owner.clone()).unwrap_or_default(),
            deadline_ms: record.last_deadline().unwrap_or(now_ms),
            token,
            holders: Some(record.encode()),
        },
    }
}

/// What Inspect and List show of a live row that keeps a record, at `now_ms`.
pub(crate) fn info(
    table: &str,
    key: &str,
    encoded: &str,
    now_ms: u64,
) -> Result<Option<LockInfo>, StoreError> {
    let record = Record::decode(encoded).ok_or_else(|| {
        super::unreadable(
            table,
            "holders",
            "it is not a record of holders dlock wrote",
        )
    })?;
    Ok(record.info(key, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\"locks\"";
    const TTL: Duration = Duration::from_secs(10);

    fn plain(owner: &str, deadline_ms: u64, token: u64) -> Stored {
        Stored {
            owner: owner.into(),
            deadline_ms,
            token,
            holders: None,
        }
    }

    fn stored(written: &Written) -> Stored {
        Stored {
            owner: written.owner.clone(),
            deadline_ms: written.deadline_ms,
            token: written.token,
            holders: written.holders.clone(),
        }
    }

    fn take(owner: &str, kind: Kind) -> impl Change<TryLockOutcome> + '_ {
        acquire(owner, TTL, kind)
    }

    #[test]
    fn shared_holders_make_a_record_whose_row_looks_held_to_plain_statements() {
        let a = apply(TABLE, None, 1_000, take("a", Kind::shared(2)), 5).unwrap();
        assert!(a.drew_token);
        let row = stored(a.write.as_ref().unwrap());
        let b = apply(TABLE, Some(&row), 2_000, take("b", Kind::shared(2)), 6).unwrap();
        let row = b.write.unwrap();
        assert_eq!((row.owner.as_str(), row.deadline_ms), ("a", 12_000));
        assert_eq!(row.token, 6, "the counter advanced to the last grant's");
        assert!(row.holders.is_some());
        let full = apply(
            TABLE,
            Some(&stored(&row)),
            2_000,
            take("c", Kind::shared(2)),
            7,
        );
        let full = full.unwrap();
        assert_eq!(full.answer, TryLockOutcome::Held);
        assert_eq!((full.write, full.drew_token), (None, false));
    }

    #[test]
    fn with_waiters_ahead_only_a_holders_re_entry_is_granted() {
        let row = plain("o", 10_000, 3);
        let reader = acquire_in_line("r", TTL, Kind::shared(0), true);
        let refused = apply(TABLE, None, 1_000, reader, 4).unwrap();
        assert_eq!(
            refused.answer,
            TryLockOutcome::Held,
            "a free key jumped the line"
        );
        assert_eq!(refused.write, None);
        let reentry = acquire_in_line("o", TTL, Kind::PLAIN.reentrant(), true);
        let again = apply(TABLE, Some(&row), 1_000, reentry, 4).unwrap();
        assert!(matches!(again.answer, TryLockOutcome::Granted(g) if g.holds == 2));
        let expired = apply(TABLE, Some(&row), 20_000, reentry, 4).unwrap();
        assert_eq!(
            expired.answer,
            TryLockOutcome::Held,
            "an expired holder re-entered"
        );
        let first = acquire_in_line("r", TTL, Kind::shared(0), false);
        let granted = apply(TABLE, None, 1_000, first, 4).unwrap();
        assert!(matches!(granted.answer, TryLockOutcome::Granted(_)));
    }

    #[test]
    fn a_plain_row_is_its_owners_single_hold_and_comes_back_plain() {
        let row = plain("o", 10_000, 3);
        let again = apply(
            TABLE,
            Some(&row),
            1_000,
            take("o", Kind::PLAIN.reentrant()),
            9,
        );
        let again = again.unwrap();
        assert_eq!(
            again.answer,
            TryLockOutcome::Granted(Grant {
                fencing_token: Some(3),
                holds: 2
            })
        );
        let row = again.write.unwrap();
        assert!(row.holders.is_some());
        let one = apply(TABLE, Some(&stored(&row)), 1_000, release("o", false), 0).unwrap();
        assert!(!one.freed, "the owner still holds the key");
        let row = one.write.unwrap();
        assert_eq!(
            row,
            Written {
                owner: "o".into(),
                deadline_ms: 11_000,
                token: 3,
                holders: None
            }
        );
        // Another owner sees a plain lock held.
        let other = apply(
            TABLE,
            Some(&stored(&row)),
            1_000,
            take("p", Kind::shared(0)),
            9,
        );
        assert_eq!(other.unwrap().answer, TryLockOutcome::Held);
    }

    #[test]
    fn an_expired_row_is_free_whatever_its_holders_say_and_a_last_release_frees_it() {
        let a = apply(TABLE, None, 0, take("a", Kind::shared(0)), 1).unwrap();
        let mut row = stored(&a.write.unwrap());
        row.deadline_ms = 500; // a force release expired the row
        let w = apply(
            TABLE,
            Some(&row),
            1_000,
            take("w", Kind::PLAIN.reentrant()),
            2,
        );
        let w = w.unwrap().write.unwrap();
        assert_eq!((w.owner.as_str(), w.token, &w.holders), ("w", 2, &None));
        let gone = apply(TABLE, Some(&stored(&w)), 1_000, release("w", true), 0).unwrap();
        assert!(gone.freed);
        let row = gone.write.unwrap();
        assert_eq!((row.deadline_ms, row.token, row.holders), (1_000, 2, None));
    }

    #[test]
    fn a_holders_value_dlock_did_not_write_is_an_error_naming_the_column() {
        let mut row = plain("o", 10_000, 3);
        row.holders = Some("{}".into());
        let refused = apply(TABLE, Some(&row), 0, take("o", Kind::shared(0)), 4);
        let refused = refused.unwrap_err().to_string();
        assert!(
            refused.contains("holders") && refused.contains(TABLE),
            "{refused}"
        );
    }
}
