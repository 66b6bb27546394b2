//! Short locks: a lock whose lease would outlive it, because etcd grants no lease shorter than
//! its minimum (2 s with etcd's default election timeout), carries its own deadline, and the
//! sidecar that wrote it deletes it at that deadline.
//!
//! Such a lock's value is not the raw owner but `\xff<deadline, Unix ms> <owner>`: owners are
//! UTF-8, which never starts with the byte 0xFF, so a raw owner is never read as a deadline.
//! The deadline is what inspection and listing go by, on every sidecar, so a lock past it is
//! never shown as held (by the reader's wall clock: only what is shown depends on clocks
//! agreeing, never who may take the lock).
//!
//! The sidecar that granted or renewed the lock arms a timer for the deadline, measured on its
//! monotonic clock from just before its write was sent, so never earlier than the deadline the
//! client counts from its own request. The timer deletes the key in one transaction only
//! while its mod revision is the timer's write: a renewal (here or on another sidecar, which
//! arms its own timer) or a new grant changes it, and the old timer deletes nothing. If the
//! sidecar dies, the lease is the backstop: the lock then lasts etcd's minimum lease.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::client::{Client, Sent};
use super::requests::{compare, delete};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    RequestOp, TxnRequest,
};

/// The first byte of a value that carries a deadline: never the first byte of UTF-8 text.
const MARK: u8 = 0xff;

/// A lock key's value, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) owner: String,
    /// A short lock's deadline; `None` for a lock whose lease is its expiry.
    pub(crate) deadline: Option<SystemTime>,
}

impl Record {
    pub(crate) fn read(value: &[u8]) -> Record {
        let raw = || Record {
            owner: String::from_utf8_lossy(value).into_owned(),
            deadline: None,
        };
        let Some(rest) = value.strip_prefix(&[MARK]) else {
            return raw();
        };
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            return raw();
        };
        let Some(millis) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            return raw();
        };
        Record {
            owner: String::from_utf8_lossy(&rest[space + 1..]).into_owned(),
            deadline: Some(UNIX_EPOCH + Duration::from_millis(millis)),
        }
    }

    /// The time left by this machine's clock: `None` once the deadline has passed, the whole
    /// `lease_left` for a lock whose lease is its expiry.
    pub(crate) fn left(&self, lease_left: Duration) -> Option<Duration> {
        match self.deadline {
            None => Some(lease_left),
            Some(deadline) => deadline
                .duration_since(SystemTime::now())
                .ok()
                .filter(|left| !left.is_zero()),
        }
    }
}

/// What a grant or renewal about to be sent writes: the value, and for a short lock the
/// moment its timer must delete it.
pub(crate) struct Planned {
    pub(crate) value: Vec<u8>,
    release_at: Option<Instant>,
}

impl Planned {
    /// Plans a write of `owner`'s lock for `ttl` on a lease etcd granted for `lease_ttl`
    /// seconds; call it just before sending the write.
    pub(crate) fn new(owner: &str, ttl: Duration, lease_ttl: i64) -> Planned {
        if Duration::from_secs(lease_ttl.max(0) as u64) <= ttl {
            return Planned {
                value: owner.as_bytes().to_vec(),
                release_at: None,
            };
        }
        let deadline = SystemTime::now() + ttl;
        let millis = deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut value = vec![MARK];
        value.extend_from_slice(format!("{millis} ").as_bytes());
        value.extend_from_slice(owner.as_bytes());
        Planned {
            value,
            release_at: Some(Instant::now() + ttl),
        }
    }

    /// Once the write landed at `revision`: arms the timer of a short lock.
    pub(crate) fn landed(self, client: &Arc<Client>, path: &[u8], revision: i64) {
        if let Some(at) = self.release_at {
            tokio::spawn(release_at(
                Arc::downgrade(client),
                path.to_vec(),
                revision,
                at,
            ));
        }
    }
}

/// Deletes the key at `at` if it is still the write of `revision`, and discards its lease.
/// A store that is gone by then leaves the key to its lease.
async fn release_at(client: Weak<Client>, path: Vec<u8>, revision: i64, at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    let Some(client) = client.upgrade() else {
        return;
    };
    let unchanged = compare(
        &path,
        CompareTarget::Mod,
        TargetUnion::ModRevision(revision),
    );
    let request = TxnRequest {
        compare: vec![unchanged],
        success: vec![RequestOp {
            request: Some(Op::RequestDeleteRange(delete(&path))),
        }],
        failure: Vec::new(),
    };
    // Guarded by the revision, the delete runs at most once: a copy sent after a lost answer
    // deletes nothing more, and its lease is left to expire.
    let mut answer = client.txn(request.clone()).await;
    if let Ok(Sent::Unknown(_)) = answer {
        answer = client.txn(request).await;
    }
    match answer {
        Ok(Sent::Answered(answer)) if answer.succeeded => {
            if let Some(kv) = super::requests::first_record(answer) {
                client.discard(kv.lease);
            }
        }
        Ok(Sent::Answered(_)) => {} // renewed, released or granted anew since: not this timer's
        Ok(Sent::Unknown(reason)) => {
            tracing::warn!("a short lock may be left to its lease (etcd's minimum): {reason}")
        }
        Err(error) => {
            tracing::warn!("a short lock was left to its lease (etcd's minimum): {error}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_lock_carries_its_deadline_and_a_long_one_the_raw_owner() {
        let long = Planned::new("server-1", Duration::from_secs(30), 30);
        assert_eq!(long.value, b"server-1");
        assert_eq!(Record::read(&long.value).deadline, None);

        let short = Planned::new("server 1", Duration::from_secs(1), 2);
        let record = Record::read(&short.value);
        assert_eq!(record.owner, "server 1");
        let left = record.left(Duration::from_secs(2)).unwrap();
        assert!(left <= Duration::from_secs(1) && left > Duration::from_millis(500));

        let past = [&[MARK][..], b"1000 o"].concat();
        assert_eq!(Record::read(&past).left(Duration::from_secs(2)), None);
    }

    #[test]
    fn a_raw_owner_is_never_read_as_a_deadline() {
        for owner in ["1000 o", "", "\u{ff}1 x"] {
            let record = Record::read(owner.as_bytes());
            assert_eq!((record.owner.as_str(), record.deadline), (owner, None));
        }
    }
}
