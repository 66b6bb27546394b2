//! What a contender's node holds, and when the lock it stands for expires.
//!
//! The node's data is JSON, readable with zkCli: `{"owner":"…","expiryMs":30000}`. The lock
//! expires `expiryMs` after the node's `mtime`, the time the ZooKeeper leader stamped on the
//! node's creation or last write (a renewal is a `setData`, which restamps it). Expiry is thus
//! measured from the ensemble's clock; sidecars compare it with their own wall clock, so their
//! clocks must agree with the leader's to well within a lock's expiry (NTP does).
//!
//! A node of another kind than Dapr's says so besides: `"shared":true` for a shared holder,
//! `"limit":N` for a shared key's limit, `"holds":N` for an owner that took the key again
//! reentrantly; each is left out at its default (exclusive, no limit, one hold), so a plain
//! lock's data is as it always was, and a plain lock reads as an exclusive one with one hold.
//!
//! A blocking acquire's node waits in line first, marked `"waiting":true`. A waiting node
//! never expires (its sidecar's session bounds it): its mtime is only its arrival. Once it is
//! the lowest node its sidecar promotes it with a conditional `setData` of the plain data, which
//! restamps the mtime, so the lock's expiry counts from the grant. A waiting node that is the
//! lowest stands for a grant on its way: it is reported as held by its owner, for its whole
//! expiry, because no one else can take the lock before it and its promotion is one write away.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zookeeper_client::Stat;

use crate::lock::{Holder, Kind, LockInfo, Mode, StoreError};

#[derive(Serialize, Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    owner: Cow<'a, str>,
    #[serde(rename = "expiryMs")]
    expiry_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    waiting: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    shared: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    limit: u32,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    holds: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn expiry_ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

/// The data of a node for `owner`, expiring `ttl` after it is written.
pub(crate) fn data(owner: &str, ttl: Duration) -> Vec<u8> {
    kind_data(owner, ttl, Kind::PLAIN)
}

/// The data of a new holder's node for `owner` in `kind`, expiring `ttl` after it is written.
pub(crate) fn kind_data(owner: &str, ttl: Duration, kind: Kind) -> Vec<u8> {
    encode(Data {
        shared: kind.mode == Mode::Shared,
        limit: kind.limit,
        ..Data::new(owner, ttl)
    })
}

/// The data of a node for `owner` waiting in line, for a lock of `ttl` in `kind` once
/// granted: it says its mode and limit while it waits, so the nodes behind it know whether
/// it holds them back.
pub(crate) fn waiting(owner: &str, ttl: Duration, kind: Kind) -> Vec<u8> {
    encode(Data {
        waiting: true,
        shared: kind.mode == Mode::Shared,
        limit: kind.limit,
        ..Data::new(owner, ttl)
    })
}

impl<'a> Data<'a> {
    fn new(owner: &'a str, ttl: Duration) -> Data<'a> {
        Data {
            owner: Cow::Borrowed(owner),
            expiry_ms: expiry_ms(ttl),
            waiting: false,
            shared: false,
            limit: 0,
            holds: 1,
        }
    }
}

fn encode(data: Data) -> Vec<u8> {
    serde_json::to_vec(&data).expect("plain JSON")
}

/// A contender's node as read or written: where it is, whose it is, and its stat.
#[derive(Debug, Clone)]
pub(crate) struct Contender {
    pub(crate) path: String,
    pub(crate) owner: String,
    expiry_ms: u64,
    /// Still waiting in line: not (yet) a grant.
    pub(crate) waiting: bool,
    pub(crate) mode: Mode,
    /// Shared only: the most holders the key may have at once; 0 without a limit.
    pub(crate) limit: u32,
    /// How many times the owner holds the key through this node.
    pub(crate) holds: u32,
    pub(crate) stat: Stat,
}

impl Contender {
    pub(crate) fn parse(path: &str, data: &[u8], stat: Stat) -> Result<Contender, StoreError> {
        let parsed: Data = serde_json::from_slice(data).map_err(|_| {
            StoreError::failed(format!(
                "the node {path} is not a dlock lock (its data is not {{\"owner\",\"expiryMs\"}})"
            ))
        })?;
        Ok(Contender {
            path: path.to_string(),
            owner: parsed.owner.into_owned(),
            expiry_ms: parsed.expiry_ms,
            waiting: parsed.waiting,
            mode: if parsed.shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            },
            limit: parsed.limit,
            holds: parsed.holds.max(1),
            stat,
        })
    }

    /// The node at `path` as just written with `data(owner, ttl)`, whose write answered `stat`.
    pub(crate) fn written(path: &str, owner: &str, ttl: Duration, stat: Stat) -> Contender {
        Contender {
            path: path.to_string(),
            owner: owner.to_string(),
            expiry_ms: expiry_ms(ttl),
            waiting: false,
            mode: Mode::Exclusive,
            limit: 0,
            holds: 1,
            stat,
        }
    }

    /// The node's data with its holds set to `holds`, expiring `ttl` after it is written.
    pub(crate) fn data_with(&self, ttl: Duration, holds: u32) -> Vec<u8> {
        encode(Data {
            shared: self.mode == Mode::Shared,
            limit: self.limit,
            holds,
            ..Data::new(&self.owner, ttl)
        })
    }

    /// The node as rewritten with `data_with(ttl, holds)`, whose write answered `stat`.
    pub(crate) fn rewritten(&self, ttl: Duration, holds: u32, stat: Stat) -> Contender {
        Contender {
            expiry_ms: expiry_ms(ttl),
            waiting: false,
            holds,
            stat,
            ..self.clone()
        }
    }

    /// The kind of lock the node asked for (reentrancy aside, which a node does not record).
    pub(crate) fn kind(&self) -> Kind {
        Kind {
            mode: self.mode,
            limit: self.limit,
            reentrant: false,
        }
    }

    /// The time left before the lock expires; zero once it has. A waiting node's whole
    /// expiry is ahead of it.
    pub(crate) fn time_left(&self) -> Duration {
        if self.waiting {
            return Duration::from_millis(self.expiry_ms);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let deadline_ms = self.stat.mtime.saturating_add_unsigned(self.expiry_ms);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(0) as u64)
    }

    pub(crate) fn expired(&self) -> bool {
        self.time_left().is_zero()
    }

    /// The zxid of the node's creation: it rises with every node created anywhere in the
    /// ensemble, so successive holders of a key get increasing tokens.
    pub(crate) fn fencing_token(&self) -> u64 {
        self.stat.czxid as u64
    }

    /// This node as one of its key's holders.
    pub(crate) fn holder(&self) -> Holder {
        Holder {
            owner: self.owner.clone(),
            expires_in: self.time_left(),
            fencing_token: Some(self.fencing_token()),
            holds: self.holds,
        }
    }
}

/// The lock that `holders` (in line order) stand for, as the core reports it under the store
/// key `key`; `None` when there are none.
pub(crate) fn info(key: &str, holders: &[Contender]) -> Option<LockInfo> {
    let first = holders.first()?;
    let holders: Vec<Holder> = holders.iter().map(Contender::holder).collect();
    Some(LockInfo {
        key: key.to_string(),
        owner: first.owner.clone(),
        expires_in: holders[0].expires_in,
        fencing_token: holders[0].fencing_token,
        mode: first.mode,
        limit: first.limit,
        holders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime: i64) -> Stat {
        Stat {
            czxid: 42,
            mzxid: 42,
            pzxid: 42,
            ctime: mtime,
            mtime,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 1,
            data_length: 0,
            num_children: 0,
        }
    }

    fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    #[test]
    fn expiry_counts_from_the_last_write() {
        let data = data("owner \"x\"\n", Duration::from_secs(10));
        let fresh = Contender::parse("/n", &data, stat(now_ms())).unwrap();
        assert_eq!(fresh.owner, "owner \"x\"\n");
        assert_eq!(fresh.path, "/n");
        assert!(fresh.time_left() > Duration::from_secs(9));
        assert!(!fresh.expired());
        assert_eq!(fresh.fencing_token(), 42);
        let old = Contender::parse("/n", &data, stat(now_ms() - 10_001)).unwrap();
        assert!(old.expired());
        let written = Contender::written("/n", "o", Duration::from_secs(10), stat(now_ms()));
        assert!(written.time_left() > Duration::from_secs(9));
    }

    #[test]
    fn a_waiting_node_never_expires() {
        let data = waiting("w", Duration::from_secs(10), Kind::PLAIN);
        assert_eq!(
            std::str::from_utf8(&data).unwrap(),
            r#"{"owner":"w","expiryMs":10000,"waiting":true}"#
        );
        let old = Contender::parse("/n", &data, stat(now_ms() - 60_000)).unwrap();
        assert!(old.waiting);
        assert!(!old.expired());
        assert_eq!(old.time_left(), Duration::from_secs(10));
        let granted = Contender::parse("/n", &super::data("w", Duration::from_secs(10)), stat(0));
        assert!(!granted.unwrap().waiting);
    }

    #[test]
    fn a_plain_lock_keeps_its_data_and_other_kinds_add_theirs() {
        let ttl = Duration::from_secs(10);
        let text = |data: Vec<u8>| String::from_utf8(data).unwrap();
        assert_eq!(text(data("o", ttl)), r#"{"owner":"o","expiryMs":10000}"#);
        assert_eq!(
            text(kind_data("o", ttl, Kind::PLAIN.reentrant())),
            text(data("o", ttl))
        );
        let shared = kind_data("r", ttl, Kind::shared(3));
        assert_eq!(
            text(shared.clone()),
            r#"{"owner":"r","expiryMs":10000,"shared":true,"limit":3}"#
        );
        let node = Contender::parse("/n", &shared, stat(now_ms())).unwrap();
        assert_eq!((node.mode, node.limit, node.holds), (Mode::Shared, 3, 1));
        assert_eq!(node.kind(), Kind::shared(3));
        let again = node.data_with(Duration::from_secs(5), 2);
        assert_eq!(
            text(again.clone()),
            r#"{"owner":"r","expiryMs":5000,"shared":true,"limit":3,"holds":2}"#
        );
        let again = Contender::parse("/n", &again, stat(now_ms())).unwrap();
        assert_eq!((again.mode, again.limit, again.holds), (Mode::Shared, 3, 2));
        let plain = Contender::parse("/n", &data("o", ttl), stat(now_ms())).unwrap();
        assert_eq!(
            (plain.mode, plain.limit, plain.holds),
            (Mode::Exclusive, 0, 1)
        );
    }

    #[test]
    fn foreign_data_is_an_error() {
        assert!(matches!(
            Contender::parse("/n", b"hello", stat(0)),
            Err(StoreError::Failed(_))
        ));
    }
}
