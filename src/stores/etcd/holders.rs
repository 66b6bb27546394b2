//! Shared, limited and reentrant locks (`lock::kind`): one etcd key per holder, each on a
//! lease of its own, so each holder expires by etcd's clock on its own and a holder's renewal
//! restarts nothing but its own lease.
//!
//! A key's holders live at `<keyPrefixPath>/\xfe<store key>\xff<owner>`: no plain lock key
//! starts with the byte 0xFE and no store key holds 0xFF (store keys are UTF-8), so the range
//! `\xfe<store key>\xff` holds exactly that key's holders, `\xfe<store key prefix>` a listing's,
//! and the lock prefix's one release watch covers them too. A holder's value is its mode, the
//! key's limit and its holds (`Holding`); its fencing token is the revision that created its
//! key, drawn from the same cluster-wide revisions as a plain lock's, and a re-entry keeps it.
//!
//! The rules are `lock::holders::Record`'s, applied to the holders read; their deadlines are
//! not the record's but the holders' leases, which etcd ends by itself. A new holder puts its
//! key first, in one transaction that also reads the holders as the put left them, only if
//! the plain lock key is absent, nobody waits in the key's line (a try never jumps it) and the
//! owner has no key there yet; then it is let in only if the holders created before it admit
//! it (a limit: fewer than the limit of them, all shared with that limit), and otherwise it
//! takes its key out again at once. Keys created later never count against an earlier one,
//! and earlier ones can only go, so a key let in stays let in, and of the keys let in at any
//! moment no more than the limit fit: concurrent grants on two sidecars are both written and
//! settled by their order, with no read-then-write race and no retry. A plain grant, in turn,
//! is put only while the range of holders is empty. A re-entry, a release and a renewal
//! change only the owner's own key, each guarded on the version read.

use std::time::Duration;

use super::client::Sent;
use super::requests::{
    absent, any_in, compare, delete, first_records, none_in, prefix_end, put, ranges, read_range,
};
use super::EtcdStore;
use crate::lock::holders::{Acquired, Entry, Record};
use crate::lock::{
    Grant, Kind, LockInfo, Mode, OwnerChecked, Released, StoreError, TryLockOutcome,
};
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareTarget, TargetUnion},
    request_op::Request as Op,
    DeleteRangeRequest, LeaseGrantResponse, RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::etcd::mvccpb::KeyValue;

/// The byte after the lock prefix where the holders of shared and reentrant locks start.
pub(super) const HOLDERS: u8 = 0xfe;

/// The byte between a store key and an owner in a holder's key: never in a UTF-8 store key.
const OWNER: u8 = 0xff;

/// How many lost answers one change of a holder's key rides out before it fails.
const LOST_ANSWERS: u32 = 3;

/// A holder key's value: `<mode letter> <limit> <holds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holding {
    pub(super) mode: Mode,
    pub(super) limit: u32,
    pub(super) holds: u32,
}

impl Holding {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mode = match self.mode {
            Mode::Exclusive => 'X',
            Mode::Shared => 'S',
        };
        format!("{mode} {} {}", self.limit, self.holds).into_bytes()
    }

    /// A value this store wrote; anything else reads as one exclusive hold, which keeps
    /// everyone else out rather than letting a request in beside a holder it can't read.
    fn decode(value: &[u8]) -> Holding {
        let fallback = Holding {
            mode: Mode::Exclusive,
            limit: 0,
            holds: 1,
        };
        let Ok(text) = std::str::from_utf8(value) else {
            return fallback;
        };
        let mut parts = text.split(' ');
        let mode = match parts.next() {
            Some("X") => Mode::Exclusive,
            Some("S") => Mode::Shared,
            _ => return fallback,
        };
        let limit = parts.next().and_then(|n| n.parse().ok());
        let holds = parts.next().and_then(|n| n.parse().ok());
        match (limit, holds, parts.next()) {
            (Some(limit), Some(holds), None) if holds > 0 => Holding { mode, limit, holds },
            _ => fallback,
        }
    }
}

/// A key's holders as the shared rules see them, in the order they were granted, each with
/// `deadline_ms(kv)` as its deadline and its key's create revision as its token.
pub(super) fn record(kvs: &[KeyValue], deadline_ms: impl Fn(&KeyValue) -> u64) -> Record {
    let mut kvs: Vec<&KeyValue> = kvs.iter().collect();
    kvs.sort_by_key(|kv| kv.create_revision);
    let mut record = Record::free();
    if let Some(first) = kvs.first() {
        let held = Holding::decode(&first.value);
        (record.mode, record.limit) = (held.mode, held.limit);
    }
    record.holders = kvs
        .into_iter()
        .map(|kv| Entry {
            owner: owner_of(&kv.key).to_string(),
            deadline_ms: deadline_ms(kv),
            token: kv.create_revision as u64,
            holds: Holding::decode(&kv.value).holds,
        })
        .collect();
    record
}

/// The owner named by a holder's key: what follows the first 0xFF after the holders' byte.
fn owner_of(key: &[u8]) -> std::borrow::Cow<'_, str> {
    let owner = key
        .iter()
        .position(|&b| b == OWNER)
        .map_or(&[][..], |at| &key[at + 1..]);
    String::from_utf8_lossy(owner)
}

/// What the rules make of `mine` (one of `kvs`) as a request of `kind`, against the holders
/// created before it: a key's place is settled by those alone, since every key put later has
/// a larger create revision, and the ones before can only go. So of the keys let in, no two
/// could have been let in together beside each other's kind, and no more than a limit.
fn admitted(kvs: &[KeyValue], mine: &KeyValue, owner: &str, ttl: Duration, kind: Kind) -> Acquired {
    let ahead: Vec<KeyValue> = kvs
        .iter()
        .filter(|kv| kv.create_revision < mine.create_revision)
        .cloned()
        .collect();
    let token = mine.create_revision as u64;
    record(&ahead, |_| NEVER).acquire(NOW, owner, ttl, kind, token)
}

fn is_grant(outcome: &TryLockOutcome) -> bool {
    matches!(outcome, TryLockOutcome::Granted(_))
}

/// The rules run with deadlines out of the way: etcd ends a holder with its lease, and the
/// holders read are the live ones.
pub(super) const NOW: u64 = 0;
pub(super) const NEVER: u64 = u64::MAX;

impl EtcdStore {
    /// The range of `key`'s holders: `<prefix>\xfe<key>\xff`.
    pub(super) fn holders(&self, key: &str) -> (Vec<u8>, Vec<u8>) {
        let mut start = self.holders_prefix.clone();
        start.extend_from_slice(key.as_bytes());
        start.push(OWNER);
        let end = prefix_end(&start);
        (start, end)
    }

    pub(super) fn holder(&self, key: &str, owner: &str) -> Vec<u8> {
        let (mut path, _) = self.holders(key);
        path.extend_from_slice(owner.as_bytes());
        path
    }

    async fn holder_kvs(&self, key: &str) -> Result<Vec<KeyValue>, StoreError> {
        let (start, end) = self.holders(key);
        let answer = self
            .client
            .range(RangeRequest {
                key: start,
                range_end: end,
                ..RangeRequest::default()
            })
            .await?;
        Ok(answer.kvs)
    }

    /// An acquire of a kind other than the plain one.
    pub(super) async fn acquire_held(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        // Granted once, on the first try that needs it, and kept through retries.
        let mut lease = None;
        let outcome = self.acquire_with(key, owner, ttl, kind, &mut lease).await;
        if let Some(unused) = lease {
            self.client.discard(unused.id);
        }
        outcome
    }

    async fn acquire_with(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        lease: &mut Option<LeaseGrantResponse>,
    ) -> Result<TryLockOutcome, StoreError> {
        let path = self.path(key);
        let (line, line_end) = self.line(key);
        let (start, end) = self.holders(key);
        let mine = self.holder(key, owner);
        loop {
            // The plain key, the line and the holders, all at one revision.
            let answer = self
                .client
                .read_together(TxnRequest {
                    compare: Vec::new(),
                    success: vec![
                        read_range(&path, &[], true),
                        read_range(&line, &line_end, true),
                        read_range(&start, &end, false),
                    ],
                    failure: Vec::new(),
                })
                .await?;
            let [plain, waiting, held] = <[_; 3]>::try_from(ranges(answer))
                .map_err(|_| StoreError::failed("etcd left out a read of a transaction"))?;
            // A plain holder, its own owner too, sees it held: its lock is not counted in
            // holds (docs/stores.md).
            if plain.count > 0 {
                return Ok(TryLockOutcome::Held);
            }
            let mut after = record(&held.kvs, |_| NEVER);
            let acquired = after.acquire(NOW, owner, ttl, kind, 0);
            let TryLockOutcome::Granted(grant) = acquired.outcome else {
                return Ok(acquired.outcome);
            };
            if !acquired.drew_token {
                let Some(current) = held.kvs.iter().find(|kv| kv.key == mine) else {
                    continue; // can't be: a re-entry is of a holder read
                };
                let holding = Holding {
                    mode: after.mode,
                    limit: after.limit,
                    holds: grant.holds,
                };
                // Only a holder that was let in is entered again, never a key put by a try
                // that is about to take it out.
                let first = Kind {
                    mode: holding.mode,
                    limit: holding.limit,
                    reentrant: false,
                };
                if !is_grant(&admitted(&held.kvs, current, owner, ttl, first).outcome) {
                    return Ok(TryLockOutcome::Held);
                }
                if let Some(grant) = self.reenter(current, holding, ttl).await? {
                    return Ok(TryLockOutcome::Granted(grant));
                }
                continue;
            }
            // A try never jumps the line.
            if waiting.count > 0 {
                return Ok(TryLockOutcome::Held);
            }
            let granted = match lease {
                Some(granted) => granted.clone(),
                None => lease
                    .insert(self.client.grant(Self::lease_seconds(ttl)).await?)
                    .clone(),
            };
            let holding = Holding {
                mode: after.mode,
                limit: after.limit,
                holds: 1,
            };
            // Put, and read the holders as the put left them, in one transaction.
            let sent = self
                .client
                .txn(TxnRequest {
                    compare: vec![absent(&path), none_in(&line, &line_end), absent(&mine)],
                    success: vec![
                        put(&mine, &holding.encode(), granted.id),
                        read_range(&start, &end, false),
                    ],
                    failure: Vec::new(),
                })
                .await?;
            let kvs = match sent {
                Sent::Answered(answer) if answer.succeeded => {
                    *lease = None;
                    ranges(answer).pop().map_or_else(Vec::new, |read| read.kvs)
                }
                Sent::Answered(_) => continue, // changed since the read: read again
                Sent::Unknown(reason) => {
                    *lease = None;
                    let landed = self
                        .grant_landed(&mine, (&holding.encode(), granted.id), true, reason)
                        .await?;
                    if !is_grant(&landed) {
                        return Ok(landed);
                    }
                    match self.holder_kvs(key).await {
                        Ok(kvs) => kvs,
                        Err(error) => {
                            self.client.discard(granted.id);
                            return Err(error);
                        }
                    }
                }
            };
            return self.settle(&mine, owner, ttl, kind, kvs).await;
        }
    }

    /// Whether the holder key just put at `mine` is let in, now that `kvs` are the holders
    /// with it: granted when those created before it admit it, else taken out again at once
    /// (its lease revoked, which deletes it) and answered as they decide.
    async fn settle(
        &self,
        mine: &[u8],
        owner: &str,
        ttl: Duration,
        kind: Kind,
        kvs: Vec<KeyValue>,
    ) -> Result<TryLockOutcome, StoreError> {
        let Some(put) = kvs.iter().find(|kv| kv.key == mine) else {
            return Ok(TryLockOutcome::Held); // gone already with its lease
        };
        let acquired = admitted(&kvs, put, owner, ttl, kind);
        if !is_grant(&acquired.outcome) {
            self.client.revoke(put.lease).await?;
        }
        Ok(acquired.outcome)
    }

    /// One more hold for the holder `current`, whose expiry becomes the later of what it has
    /// left and `ttl`: `None` when its key changed since it was read.
    async fn reenter(
        &self,
        current: &KeyValue,
        holding: Holding,
        ttl: Duration,
    ) -> Result<Option<Grant>, StoreError> {
        let left = self.client.time_to_live(current.lease).await?;
        if left < 0 {
            return Ok(None); // expired since the read: the key is gone with its lease
        }
        let seconds = Self::lease_seconds(ttl);
        let lease = if seconds > left {
            self.client.grant(seconds).await?.id
        } else {
            current.lease
        };
        let value = holding.encode();
        if !self.rewrite(current, Some((&value, lease))).await? {
            if lease != current.lease {
                self.client.discard(lease);
            }
            return Ok(None);
        }
        if lease != current.lease {
            self.client.discard(current.lease);
        }
        Ok(Some(Grant {
            fencing_token: Some(current.create_revision as u64),
            holds: holding.holds,
        }))
    }

    /// Applies `change` to `key`'s holders and writes what it did to `owner`'s key, only
    /// while that key is still the version read; read again when it is not.
    pub(super) async fn change_held<T>(
        &self,
        key: &str,
        owner: &str,
        change: impl Fn(&mut Record) -> T,
    ) -> Result<T, StoreError> {
        let mine = self.holder(key, owner);
        loop {
            let kvs = self.holder_kvs(key).await?;
            let before = record(&kvs, |_| NEVER);
            let mut after = before.clone();
            let answer = change(&mut after);
            let Some(current) = kvs.iter().find(|kv| kv.key == mine) else {
                return Ok(answer); // the owner holds nothing here: nothing to write
            };
            let holds = |record: &Record| {
                let entry = record.holders.iter().find(|e| e.owner == owner);
                entry.map(|e| e.holds)
            };
            if holds(&before) == holds(&after) {
                return Ok(answer);
            }
            let value = holds(&after).map(|holds| {
                let holding = Holding {
                    mode: after.mode,
                    limit: after.limit,
                    holds,
                };
                holding.encode()
            });
            let to = value.as_deref().map(|value| (value, current.lease));
            if self.rewrite(current, to).await? {
                if to.is_none() {
                    self.client.discard(current.lease);
                }
                return Ok(answer);
            }
        }
    }

    /// Releases one of `owner`'s holds of `key` held through holder keys, or every one.
    pub(super) async fn release_held(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        self.change_held(key, owner, |record| record.release(NOW, owner, all_holds))
            .await
    }

    /// Moves `owner`'s holder key onto `ttl` from now: a keep-alive of its own lease when that
    /// lease has the TTL asked, else a new lease put on the key.
    pub(super) async fn renew_held(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let mine = self.holder(key, owner);
        let seconds = Self::lease_seconds(ttl);
        loop {
            let Some(current) = self.get(&mine).await? else {
                let (start, end) = self.holders(key);
                let others = any_in(&self.client, &start, &end).await?;
                return Ok(if others {
                    OwnerChecked::HeldByOther
                } else {
                    OwnerChecked::NotHeld
                });
            };
            let now = self.client.keep_alive(current.lease).await?;
            if now <= 0 {
                continue; // expired since the read: read again
            }
            if now == seconds && Duration::from_secs(now as u64) <= ttl {
                return Ok(OwnerChecked::Applied);
            }
            let lease = self.client.grant(seconds).await?.id;
            if self
                .rewrite(&current, Some((&current.value, lease)))
                .await?
            {
                self.client.discard(current.lease);
                return Ok(OwnerChecked::Applied);
            }
            self.client.discard(lease);
        }
    }

    /// Who holds `key` through holder keys, each with the time left on its lease.
    pub(super) async fn held_info(
        &self,
        key: &str,
        kvs: Vec<KeyValue>,
    ) -> Result<Option<LockInfo>, StoreError> {
        let mut left = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            left.push((kv.lease, self.client.time_to_live(kv.lease).await?));
        }
        let record = record(&kvs, |kv| {
            let seconds = left.iter().find(|(lease, _)| *lease == kv.lease);
            match seconds.map_or(-1, |(_, seconds)| *seconds) {
                // Gone with its lease since the read: not shown.
                gone if gone < 0 => NOW,
                // A holder whose lease has under a second left still holds.
                seconds => (seconds as u64 * 1000).max(1),
            }
        });
        Ok(record.info(key, NOW))
    }

    pub(super) async fn inspect_held(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let kvs = self.holder_kvs(key).await?;
        self.held_info(key, kvs).await
    }

    /// The keys starting with `prefix` held through holder keys.
    pub(super) async fn list_held(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let mut start = self.holders_prefix.clone();
        start.extend_from_slice(prefix.as_bytes());
        let range_end = prefix_end(&start);
        let answer = self
            .client
            .range(RangeRequest {
                key: start,
                range_end,
                ..RangeRequest::default()
            })
            .await?;
        let mut found = Vec::new();
        let mut kvs = answer.kvs.into_iter().peekable();
        // Sorted by key, so each store key's holders come together.
        while let Some(first) = kvs.next() {
            let key = self.store_key_of(&first.key);
            let mut group = vec![first];
            while let Some(next) = kvs.next_if(|kv| self.store_key_of(&kv.key) == key) {
                group.push(next);
            }
            if let Some(info) = self.held_info(&key, group).await? {
                found.push(info);
            }
        }
        Ok(found)
    }

    /// The store key a holder's key belongs to.
    fn store_key_of(&self, path: &[u8]) -> String {
        let rest = &path[self.holders_prefix.len().min(path.len())..];
        let key = rest
            .iter()
            .position(|&b| b == OWNER)
            .map_or(rest, |at| &rest[..at]);
        String::from_utf8_lossy(key).into_owned()
    }

    /// Deletes every holder key of `key`: an operator's forced release. True when there was
    /// one.
    pub(super) async fn force_release_held(&self, key: &str) -> Result<bool, StoreError> {
        let (start, end) = self.holders(key);
        let request = TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    range_end: end,
                    ..delete(&start)
                })),
            }],
            failure: Vec::new(),
        };
        // Deleting a range twice deletes nothing more, so a copy is sent after a lost answer.
        let mut lost = 0;
        loop {
            match self.client.txn(request.clone()).await? {
                Sent::Answered(answer) => {
                    let deleted = first_records(answer);
                    for kv in &deleted {
                        self.client.discard(kv.lease);
                    }
                    // After a lost answer, what the first copy deleted is unknown: whatever it
                    // was, nothing holds the key now.
                    return Ok(!deleted.is_empty() || lost > 0);
                }
                Sent::Unknown(reason) => {
                    lost += 1;
                    if lost == LOST_ANSWERS {
                        return Err(StoreError::unavailable(reason));
                    }
                }
            }
        }
    }

    /// Writes `current`'s key (a put of a value on a lease, or a delete for `None`) only while
    /// it is still the version `current`; answers whether it ran. After a lost answer the key
    /// tells: unchanged, no copy ran and another is sent; gone or become what was written,
    /// it ran; anything else is another change, and this one did not run.
    async fn rewrite(
        &self,
        current: &KeyValue,
        to: Option<(&[u8], i64)>,
    ) -> Result<bool, StoreError> {
        let path = &current.key;
        let guard = compare(
            path,
            CompareTarget::Mod,
            TargetUnion::ModRevision(current.mod_revision),
        );
        let write = match to {
            Some((value, lease)) => put(path, value, lease),
            None => RequestOp {
                request: Some(Op::RequestDeleteRange(delete(path))),
            },
        };
        let request = TxnRequest {
            compare: vec![guard],
            success: vec![write],
            failure: Vec::new(),
        };
        let mut lost = 0;
        loop {
            let reason = match self.client.txn(request.clone()).await? {
                Sent::Answered(answer) => return Ok(answer.succeeded),
                Sent::Unknown(reason) => reason,
            };
            lost += 1;
            let now = self.get(path).await?;
            let unchanged = now
                .as_ref()
                .is_some_and(|kv| kv.mod_revision == current.mod_revision);
            if unchanged && lost < LOST_ANSWERS {
                continue;
            }
            if unchanged {
                return Err(StoreError::unavailable(reason));
            }
            return Ok(wrote(current, to, now.as_ref()));
        }
    }
}

/// Whether a write of `current`'s key (a put of a value on a lease, or a delete for `None`)
/// whose answer was lost ran, now that the key is `now` and no longer the version `current`:
/// gone or become what was written, it ran; anything else is another change.
pub(super) fn wrote(current: &KeyValue, to: Option<(&[u8], i64)>, now: Option<&KeyValue>) -> bool {
    match (to, now) {
        (None, None) => true,
        (None, Some(kv)) => kv.create_revision != current.create_revision,
        (Some(_), None) => false,
        (Some((value, lease)), Some(kv)) => {
            kv.create_revision == current.create_revision && kv.value == value && kv.lease == lease
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_reads_back_and_anything_else_is_one_exclusive_hold() {
        let shared = Holding {
            mode: Mode::Shared,
            limit: 3,
            holds: 2,
        };
        assert_eq!(shared.encode(), b"S 3 2");
        assert_eq!(Holding::decode(&shared.encode()), shared);
        let exclusive = Holding {
            mode: Mode::Exclusive,
            limit: 0,
            holds: 1,
        };
        for unreadable in [&b"owner"[..], b"S 3", b"S 3 0", b"S 3 2 1", b"\xff"] {
            assert_eq!(Holding::decode(unreadable), exclusive, "{unreadable:?}");
        }
    }

    fn kv(owner: &str, created: i64, value: &[u8]) -> KeyValue {
        KeyValue {
            key: [&b"dlock/\xfek\xff"[..], owner.as_bytes()].concat(),
            create_revision: created,
            value: value.to_vec(),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_key_is_let_in_by_the_keys_created_before_it_alone() {
        const TTL: Duration = Duration::from_secs(10);
        let three = Kind::shared(3);
        let kvs = [
            kv("a", 1, b"S 3 1"),
            kv("b", 2, b"S 3 1"),
            kv("c", 3, b"S 3 1"),
            kv("d", 4, b"S 3 1"),
        ];
        let outcome = |mine: &KeyValue, owner, kind| admitted(&kvs, mine, owner, TTL, kind).outcome;
        // The third is let in whatever came after it; the fourth is one too many.
        assert_eq!(
            outcome(&kvs[2], "c", three),
            TryLockOutcome::Granted(Grant::first(Some(3)))
        );
        assert_eq!(outcome(&kvs[3], "d", three), TryLockOutcome::Held);
        // Put beside shared holders, an exclusive key or another limit is not let in.
        let late = kv("w", 5, b"X 0 1");
        assert_eq!(
            outcome(&late, "w", Kind::PLAIN.reentrant()),
            TryLockOutcome::Held
        );
        let other = kv("o", 5, b"S 5 1");
        assert_eq!(
            outcome(&other, "o", Kind::shared(5)),
            TryLockOutcome::Refused(crate::lock::Conflict::LimitMismatch { held: 3 })
        );
    }

    #[test]
    fn holders_are_in_grant_order_with_their_tokens_and_holds() {
        let record = record(&[kv("b", 9, b"S 2 1"), kv("a", 7, b"S 2 3")], |_| NEVER);
        assert_eq!((record.mode, record.limit), (Mode::Shared, 2));
        let holders: Vec<_> = record
            .holders
            .iter()
            .map(|e| (e.owner.as_str(), e.token, e.holds))
            .collect();
        assert_eq!(holders, [("a", 7, 3), ("b", 9, 1)]);
    }
}
