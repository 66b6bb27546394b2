//! What a contender's node holds, and when the lock it stands for expires.
//!
//! The node's data is JSON, readable with zkCli: `{"owner":"…","expiryMs":30000}`. The lock
//! expires `expiryMs` after the node's `mtime`, the time the ZooKeeper leader stamped on the
//! node's creation or last write (a renewal is a `setData`, which restamps it). Expiry is thus
//! measured from the ensemble's clock; sidecars compare it with their own wall clock, so their
//! clocks must agree with the leader's to well within a lock's expiry (NTP does).
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

use crate::lock::{LockInfo, StoreError};

#[derive(Serialize, Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    owner: Cow<'a, str>,
    #[serde(rename = "expiryMs")]
    expiry_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    waiting: bool,
}

fn expiry_ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

/// The data of a node for `owner`, expiring `ttl` after it is written.
pub(crate) fn data(owner: &str, ttl: Duration) -> Vec<u8> {
    encode(owner, ttl, false)
}

/// The data of a node for `owner` waiting in line, for a lock of `ttl` once granted.
pub(crate) fn waiting(owner: &str, ttl: Duration) -> Vec<u8> {
    encode(owner, ttl, true)
}

fn encode(owner: &str, ttl: Duration, waiting: bool) -> Vec<u8> {
    let owner = Cow::Borrowed(owner);
    let expiry_ms = expiry_ms(ttl);
    serde_json::to_vec(&Data {
        owner,
        expiry_ms,
        waiting,
    })
    .expect("plain JSON")
}

/// A contender's node as read or written: where it is, whose it is, and its stat.
#[derive(Debug, Clone)]
pub(crate) struct Contender {
    pub(crate) path: String,
    pub(crate) owner: String,
    expiry_ms: u64,
    /// Still waiting in line: not (yet) a grant.
    pub(crate) waiting: bool,
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
            stat,
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

    /// The lock this node stands for, as the core reports it under the store key `key`.
    pub(crate) fn info(&self, key: &str) -> LockInfo {
        LockInfo::exclusive(
            key,
            self.owner.clone(),
            self.time_left(),
            Some(self.fencing_token()),
        )
    }
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
        let data = waiting("w", Duration::from_secs(10));
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
    fn foreign_data_is_an_error() {
        assert!(matches!(
            Contender::parse("/n", b"hello", stat(0)),
            Err(StoreError::Failed(_))
        ));
    }
}
