//! Shared, limited and reentrant locks in Redis: a key's holders as one `holders::Record`, kept
//! as the value of the lock key itself and expiring with the last holder's deadline. At the
//! lock key, so that daprd's `SET NX` and dlock's plain try find such a key held, and no second
//! key has to be kept in step with it.
//!
//! The rules are the record's (`lock::holders`). This file reads the record with the server's
//! clock (`TIME`, so each holder expires by Redis's clock whatever the sidecars' clocks say),
//! asks the record what a request does to it, and writes the result back with one
//! compare-and-set script (`scripts::swap`), looking again when another sidecar changed the
//! key first. A new holder's token is drawn inside that script, from the counter the plain
//! grant draws from, so tokens rise across both kinds of grant.
//!
//! A plain lock (the owner as the value, daprd's) stays one: only its own owner's reentrant
//! request turns it into a record, with the plain grant as the one holder, the grant's token
//! and expiry kept.

use redis::{FromRedisValue, ParsingError, Value};

use super::keys::{legacy_fence_key, token_key};
use super::line::{self, leases_key, line_key, turn_prefix, Turn};
use super::settings::WaitReplicas;
use super::{replicas, signal, RedisStore};
use crate::lock::holders::{Entry, Record, MARK};
use crate::lock::{Kind, Mode, StoreError, TryLockOutcome};

use std::time::Duration;

/// How many times in a row an operation may find the key changed under it before it gives up
/// and says so: far more than a few sidecars contending for one key ever need.
pub(super) const RACES: usize = 100;

/// The token a new holder has in the record until the compare-and-set draws the real one and
/// writes it in its place (see `halves`).
pub(super) const UNDRAWN: u64 = u64::MAX;

/// What a plain owner-checked script (unlock, renew, release of a grant) answered.
pub(super) enum Checked {
    /// The plain lock's answer.
    Plain(i64),
    /// The key holds a record, which the script left alone: the server's clock and the record.
    Record { now_ms: u64, value: String },
}

impl FromRedisValue for Checked {
    fn from_redis_value(value: Value) -> Result<Checked, ParsingError> {
        match value {
            Value::Int(answer) => Ok(Checked::Plain(answer)),
            other => {
                let (now_ms, value) = FromRedisValue::from_redis_value(other)?;
                Ok(Checked::Record { now_ms, value })
            }
        }
    }
}

/// A lock key as `scripts::look` saw it, with the server's clock.
pub(super) struct Look {
    pub(super) now_ms: u64,
    pub(super) value: Option<String>,
    /// The key's time left in ms; -1 when it has no expiry.
    pub(super) pttl: i64,
    /// The plain lock's `<owner>|<token>`, when there is one.
    pub(super) token_record: Option<String>,
}

/// What a compare-and-set does besides writing the record.
struct Change<'a> {
    /// Draw the new holder's token.
    draw: bool,
    /// Announce a release: a place came free.
    publish: bool,
    /// The turn the grant claims; `None` for a change that grants nobody new, or a re-entry.
    turn: Option<Turn<'a>>,
    /// Wake the next waiter once this one is granted: a shared grant may admit it too.
    wake_next: bool,
}

/// What a compare-and-set expects the key to still hold.
struct Read<'a> {
    /// The lock key's value; `None`: absent.
    value: Option<&'a str>,
    /// The token record too, when a plain lock becomes a record: the same owner may have
    /// released and taken it again, under another token, since the look.
    token_record: Option<&'a str>,
}

/// The record a lock key's value is; `None` for a plain lock's owner.
pub(super) fn decode(lock: &str, value: &str) -> Result<Option<Record>, StoreError> {
    if !value.starts_with(MARK) {
        return Ok(None);
    }
    Record::decode(value).map(Some).ok_or_else(|| {
        StoreError::failed(format!(
            "the lock key {lock} holds a holders record this version cannot read"
        ))
    })
}

/// The fencing token of a plain lock held by `owner`, from its token record; none for a lock
/// taken by daprd, or a record left by an earlier holder.
pub(super) fn plain_token(owner: &str, token_record: Option<&str>) -> Option<u64> {
    token_record?
        .rsplit_once('|')
        .filter(|(who, _)| *who == owner)
        .and_then(|(_, token)| token.parse().ok())
}

/// The record an acquire by `owner` changes at `look`, and the token record its
/// compare-and-set must find unchanged; `None` when the key is another's plain lock, held
/// whatever the kind asked.
pub(super) fn readable(
    lock: &str,
    look: &Look,
    owner: &str,
) -> Result<Option<(Record, Option<String>)>, StoreError> {
    Ok(match look.value.as_deref() {
        None => Some((Record::free(), None)),
        Some(value) => match decode(lock, value)? {
            Some(record) => Some((record, None)),
            None => plain_as_record(look, owner).map(|r| (r, look.token_record.clone())),
        },
    })
}

/// A plain lock of `owner` as a record, so that its owner may enter it again: one exclusive
/// holder with one hold, the plain grant's token and deadline. `None` when it can't be one: a
/// lock of another owner, taken by daprd (no token), or without an expiry.
fn plain_as_record(look: &Look, owner: &str) -> Option<Record> {
    let value = look.value.as_deref()?;
    let token = plain_token(value, look.token_record.as_deref())?;
    if value != owner || look.pttl <= 0 {
        return None;
    }
    Some(Record {
        mode: Mode::Exclusive,
        limit: 0,
        holders: vec![Entry {
            owner: owner.to_string(),
            deadline_ms: look.now_ms + look.pttl as u64,
            token,
            holds: 1,
        }],
    })
}

/// An encoded record whose new holder has the `UNDRAWN` token, as the parts before and after
/// that token, for the script to join around the token it draws. Split at the `"t":` key, which
/// JSON can't hold inside a string (a quote there is escaped), so no owner can move the split.
pub(super) fn halves(encoded: &str) -> Result<(String, String), StoreError> {
    let field = format!("\"t\":{UNDRAWN}");
    let (before, after) = encoded.split_once(&field).ok_or_else(|| {
        StoreError::failed("a new holder's record has no place for its token".to_string())
    })?;
    Ok((format!("{before}\"t\":"), after.to_string()))
}

/// What the compare-and-set did.
enum Swapped {
    /// Written: the token drawn (0 when none) and, when asked, how many replicas acknowledged.
    Done(u64, Option<u32>),
    /// The key changed since it was read.
    Changed,
    /// The turn given was not the caller's: others wait, or wait ahead of the waiter.
    NotItsTurn,
}

/// An operation that found the key changed under it every time it tried.
pub(super) fn lost_races(lock: &str) -> StoreError {
    StoreError::unavailable(format!(
        "the lock key {lock} changed under {RACES} tries in a row; try again"
    ))
}

impl RedisStore {
    /// The lock key's value, pttl and token record, with the server's clock, in one step.
    pub(super) async fn look(&self, lock: &str) -> Result<Look, StoreError> {
        let (now_ms, value, pttl, token_record) = self
            .look
            .key(lock)
            .key(token_key(lock))
            .invoke_async(&mut self.connection.handle())
            .await
            .map_err(|e| self.failed(e))?;
        Ok(Look {
            now_ms,
            value,
            pttl,
            token_record,
        })
    }

    /// Takes `key` in a kind other than the plain one, on `turn`: a look, then a
    /// compare-and-set that checks the turn. A holder's re-entry by a try needs no turn.
    pub(super) async fn acquire_record(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        turn: Turn<'_>,
    ) -> Result<TryLockOutcome, StoreError> {
        let lock = self.layout.lock_key(key);
        for _ in 0..RACES {
            let look = self.look(&lock).await?;
            let Some((mut record, token_record)) = readable(&lock, &look, owner)? else {
                return Ok(TryLockOutcome::Held);
            };
            let acquired = record.acquire(look.now_ms, owner, ttl, kind, UNDRAWN);
            let TryLockOutcome::Granted(mut grant) = acquired.outcome else {
                return Ok(acquired.outcome);
            };
            let read = Read {
                value: look.value.as_deref(),
                token_record: token_record.as_deref(),
            };
            let turn = match turn {
                Turn::Try if !acquired.drew_token => None,
                turn => Some(turn),
            };
            let change = Change {
                draw: acquired.drew_token,
                publish: false,
                turn,
                wake_next: matches!(turn, Some(Turn::Waiter(_))) && kind.mode == Mode::Shared,
            };
            let swapped = self
                .swap(&lock, read, &record, change, self.wait_replicas)
                .await?;
            let (token, acknowledged) = match swapped {
                Swapped::Done(token, acknowledged) => (token, acknowledged),
                Swapped::Changed => continue,
                // To a waiter, the line moved between its look and the grant: it looks again.
                Swapped::NotItsTurn => return Ok(TryLockOutcome::Held),
            };
            if acquired.drew_token {
                grant.fencing_token = Some(token);
            }
            if let (Some(wait), Some(acknowledged)) = (self.wait_replicas, acknowledged) {
                if acknowledged < wait.replicas {
                    self.release_unconfirmed(&lock, owner, grant).await;
                    return Err(StoreError::unavailable(replicas::shortfall(
                        "the grant",
                        acknowledged,
                        wait,
                    )));
                }
            }
            return Ok(TryLockOutcome::Granted(grant));
        }
        Err(lost_races(&lock))
    }

    /// Applies `change` to the record `value`, read at `now_ms`, and writes the result back if
    /// the key still holds `value`: the change's answer and, with `confirm`, how many replicas
    /// acknowledged; `None` when the key changed first. A change that leaves the record as it
    /// was (a release by a non-holder) writes nothing; one that frees a place publishes the
    /// release signal.
    pub(super) async fn change<T>(
        &self,
        lock: &str,
        now_ms: u64,
        value: &str,
        confirm: Option<WaitReplicas>,
        change: impl FnOnce(&mut Record, u64) -> T,
    ) -> Result<Option<(T, Option<u32>)>, StoreError> {
        let Some(mut record) = decode(lock, value)? else {
            return Err(StoreError::failed(format!(
                "the lock key {lock} was answered as a record but holds none"
            )));
        };
        record.purge(now_ms);
        let before = record.clone();
        let answer = change(&mut record, now_ms);
        if record == before {
            return Ok(Some((answer, None)));
        }
        let freed = record.holders.len() < before.holders.len();
        let read = Read {
            value: Some(value),
            token_record: None,
        };
        let change = Change {
            draw: false,
            publish: freed,
            turn: None,
            wake_next: false,
        };
        match self.swap(lock, read, &record, change, confirm).await? {
            Swapped::Done(_, acknowledged) => Ok(Some((answer, acknowledged))),
            Swapped::Changed => Ok(None),
            Swapped::NotItsTurn => Err(StoreError::failed(
                "a change that claimed no turn was refused its turn".to_string(),
            )),
        }
    }

    /// The compare-and-set (`scripts::swap`): writes `record` at `lock` if the key still holds
    /// what was `read` and the change's turn is the caller's, as `change` says.
    async fn swap(
        &self,
        lock: &str,
        read: Read<'_>,
        record: &Record,
        change: Change<'_>,
        confirm: Option<WaitReplicas>,
    ) -> Result<Swapped, StoreError> {
        let Change {
            draw,
            publish,
            turn,
            wake_next,
        } = change;
        let encoded = record.encode();
        let (before, after) = if draw {
            halves(&encoded)?
        } else {
            (encoded, String::new())
        };
        let flag = |on: bool| if on { "1" } else { "0" };
        let channel = if publish {
            signal::channel(lock)
        } else {
            String::new()
        };
        let mut invocation = self.swap.key(lock);
        invocation
            .key(self.layout.fencing_counter(lock))
            .key(token_key(lock))
            .key(legacy_fence_key(lock))
            .key(line_key(lock))
            .key(leases_key(lock))
            .arg(flag(read.value.is_some()))
            .arg(read.value.unwrap_or_default())
            .arg(read.token_record.unwrap_or_default())
            .arg(before)
            .arg(after)
            .arg(flag(draw))
            .arg(record.last_deadline().unwrap_or(0))
            .arg(channel)
            .arg(turn.map(Turn::arg).unwrap_or_default())
            .arg(super::millis(line::WAITER_LEASE))
            .arg(turn_prefix(lock))
            .arg(flag(wake_next));
        let mut handle = self.connection.handle();
        let (answer, acknowledged): (i64, Option<u32>) = match confirm {
            None => {
                let answer = invocation.invoke_async(&mut handle).await;
                (answer.map_err(|e| self.failed(e))?, None)
            }
            Some(wait) => {
                let answered = replicas::run_confirmed(&mut handle, &invocation, wait).await;
                let (answer, acknowledged) = answered.map_err(|e| self.failed(e))?;
                (answer, Some(acknowledged))
            }
        };
        Ok(match answer {
            -1 => Swapped::Changed,
            -2 => Swapped::NotItsTurn,
            token => Swapped::Done(token.max(0) as u64, acknowledged),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_holders_token_goes_between_the_halves() {
        let mut record = Record::free();
        let owner = "o\"t\":18446744073709551615";
        record.acquire(0, owner, Duration::from_secs(1), Kind::shared(2), UNDRAWN);
        let (before, after) = halves(&record.encode()).unwrap();
        let joined = Record::decode(&format!("{before}1234{after}")).unwrap();
        assert_eq!(joined.holders[0].owner, owner);
        assert_eq!(joined.holders[0].token, 1234);
    }

    #[test]
    fn only_its_owners_plain_lock_with_a_token_becomes_a_record() {
        let look = |value: &str, pttl: i64, token_record: Option<&str>| Look {
            now_ms: 1_000,
            value: Some(value.to_string()),
            pttl,
            token_record: token_record.map(str::to_string),
        };
        let record = plain_as_record(&look("o", 500, Some("o|7")), "o").unwrap();
        assert_eq!(
            (record.holders[0].token, record.holders[0].deadline_ms),
            (7, 1_500)
        );
        assert!(plain_as_record(&look("o", 500, Some("o|7")), "p").is_none());
        assert!(plain_as_record(&look("o", 500, None), "o").is_none());
        assert!(plain_as_record(&look("o", 500, Some("x|7")), "o").is_none());
        assert!(plain_as_record(&look("o", -1, Some("o|7")), "o").is_none());
    }
}
