//! A lock's expiry: every lock key's value carries its deadline, and that deadline, not the
//! key's lease, is when the lock ends. The lease is one this sidecar shares among its locks
//! (`leases.rs`), which only clears away the keys of a sidecar that died; so a lock of N
//! seconds frees N seconds after it was granted or renewed, whatever its lease, and etcd's
//! minimum lease (2 s with its default election timeout) bounds nothing.
//!
//! The value is `\xff<deadline, Unix ms> <owner>`: owners are UTF-8, which never starts with
//! the byte 0xFF, so a raw owner is never read as a deadline. Whoever reads a lock key (a try
//! on any sidecar, a waiter, inspection, listing) treats one past its deadline as free, by the
//! reader's wall clock; an acquire deletes it first, guarded by its mod revision, so the next
//! holder's key is a new one and its token (the create revision) still rises. A raw owner is
//! a key written before deadlines were: its own lease is its expiry.
//!
//! The sidecar that granted or renewed the lock arms a timer for the deadline, measured on its
//! monotonic clock from just before its write was sent, so never earlier than the deadline the
//! client counts from its own request. The timer deletes the key in one transaction only
//! while its mod revision is the timer's write, which wakes the waiters of every sidecar: a
//! renewal (here or on another sidecar, which arms its own timer) or a new grant changes it,
//! and the old timer deletes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::AbortHandle;

use super::client::{Client, Sent};
use super::requests::{compare, delete};
use crate::lock::StoreError;
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::etcd::mvccpb::KeyValue;

/// The first byte of a value that carries a deadline: never the first byte of UTF-8 text.
const MARK: u8 = 0xff;

/// A lock key's value, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) owner: String,
    /// The lock's deadline; `None` for a key written before deadlines were, whose lease is its
    /// expiry.
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

/// What a grant or renewal about to be sent writes: the value, with the deadline in it, and
/// the moment this sidecar's timer deletes the lock.
pub(crate) struct Planned {
    pub(crate) value: Vec<u8>,
    release_at: Instant,
}

impl Planned {
    /// Plans a write of `owner`'s lock for `ttl`; call it just before sending the write.
    pub(crate) fn new(owner: &str, ttl: Duration) -> Planned {
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
            release_at: Instant::now() + ttl,
        }
    }

    /// Once the write landed at `revision`: arms the lock's timer.
    pub(crate) fn landed(self, timers: &Timers, path: &[u8], revision: i64) {
        timers.arm(path, revision, self.release_at);
    }
}

/// Each armed timer by its key: the revision it deletes, and its task.
type Armed = Mutex<HashMap<Vec<u8>, (i64, AbortHandle)>>;

/// The timers of the locks this sidecar wrote, one per key: a new write of a key replaces its
/// timer, a release here ends it (a timer that ran would send a write that changes nothing,
/// and a sleeping one would be kept for the lock's whole expiry), and the store's end ends
/// them all.
pub(crate) struct Timers {
    client: Arc<Client>,
    armed: Arc<Armed>,
}

impl Drop for Timers {
    fn drop(&mut self) {
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        for (_, timer) in armed.values() {
            timer.abort();
        }
    }
}

impl Timers {
    pub(crate) fn new(client: Arc<Client>) -> Timers {
        Timers {
            client,
            armed: Arc::default(),
        }
    }

    fn arm(&self, path: &[u8], revision: i64, at: Instant) {
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        let timer = tokio::spawn(release_at(
            self.client.clone(),
            Arc::downgrade(&self.armed),
            path.to_vec(),
            revision,
            at,
        ));
        if let Some((_, old)) = armed.insert(path.to_vec(), (revision, timer.abort_handle())) {
            old.abort();
        }
    }

    /// Ends the timer of the key at `path`: its lock was released, or is no longer this
    /// sidecar's to delete.
    pub(crate) fn disarm(&self, path: &[u8]) {
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, timer)) = armed.remove(path) {
            timer.abort();
        }
    }
}

/// Deletes the key at `at` if it is still the write of `revision`.
async fn release_at(
    client: Arc<Client>,
    armed: Weak<Armed>,
    path: Vec<u8>,
    revision: i64,
    at: Instant,
) {
    tokio::time::sleep_until(at.into()).await;
    if let Some(armed) = armed.upgrade() {
        let mut armed = armed.lock().unwrap_or_else(|e| e.into_inner());
        if armed
            .get(&path)
            .is_some_and(|(armed, _)| *armed == revision)
        {
            armed.remove(&path);
        }
    }
    if let Err(error) = delete_expired(&client, &path, revision).await {
        // Past its deadline the key is free to every reader, who deletes it on the way.
        tracing::debug!("a lock past its deadline was left to its next reader: {error}");
    }
}

/// Deletes the key at `path` if it is still the write of `revision` (its mod revision): a
/// lock past its deadline, whose deletion wakes its waiters. Guarded by the revision, the
/// delete runs at most once, so a copy is sent again after a lost answer. Either way the key is
/// no longer that write once it answers: deleted, or changed by someone else.
pub(crate) async fn delete_expired(
    client: &Client,
    path: &[u8],
    revision: i64,
) -> Result<(), StoreError> {
    let unchanged = compare(path, CompareTarget::Mod, TargetUnion::ModRevision(revision));
    let request = TxnRequest {
        compare: vec![unchanged],
        success: vec![RequestOp {
            request: Some(Op::RequestDeleteRange(delete(path))),
        }],
        failure: Vec::new(),
    };
    let mut answer = client.txn(request.clone()).await?;
    if let Sent::Unknown(_) = answer {
        answer = client.txn(request).await?;
    }
    match answer {
        Sent::Answered(_) => Ok(()),
        Sent::Unknown(reason) => Err(StoreError::unavailable(reason)),
    }
}

/// The lock key at `path` as it stands for an acquire: `None` when it is absent or past its
/// deadline, deleted then (guarded by its mod revision) so that a grant may create it anew.
pub(crate) async fn live(client: &Client, path: &[u8]) -> Result<Option<KeyValue>, StoreError> {
    for _ in 0..LOOKS {
        let Some(kv) = get(client, path).await? else {
            return Ok(None);
        };
        if Record::read(&kv.value).left(Duration::MAX).is_some() {
            return Ok(Some(kv));
        }
        delete_expired(client, path, kv.mod_revision).await?;
    }
    Err(StoreError::unavailable(
        "a lock past its deadline kept changing under its deletion",
    ))
}

/// How many times `live` looks at a key that keeps changing.
const LOOKS: u32 = 3;

/// `max_wait`, cut to the time left on the lock at `path`: a lock whose sidecar died ends at
/// its deadline with no deletion to wake its waiters, who look again then. Zero when it is
/// past its deadline already.
pub(crate) async fn until_deadline(
    client: &Client,
    path: &[u8],
    max_wait: Duration,
) -> Result<Duration, StoreError> {
    Ok(match get(client, path).await? {
        Some(kv) => Record::read(&kv.value)
            .left(max_wait)
            .map_or(Duration::ZERO, |left| left.min(max_wait)),
        None => max_wait,
    })
}

async fn get(client: &Client, path: &[u8]) -> Result<Option<KeyValue>, StoreError> {
    let answer = client
        .range(RangeRequest {
            key: path.to_vec(),
            ..RangeRequest::default()
        })
        .await?;
    Ok(answer.kvs.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_carries_its_deadline() {
        let long = Planned::new("server-1", Duration::from_secs(30));
        let left = Record::read(&long.value).left(Duration::ZERO).unwrap();
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(29));

        let short = Planned::new("server 1", Duration::from_secs(1));
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
