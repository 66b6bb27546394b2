//! Who holds a key, and how it changes hands. A key's contender nodes form its line in
//! sequence order, and the first one holds the lock until it expires or goes. A try-lock passes
//! through the line without waiting in it: it enters, keeps its node only if first, and
//! withdraws otherwise. A release or a renewal changes the holder's node only while it is the
//! owner's, with a write conditional on the version read. (The other kinds of lock enter
//! through `kinds.rs`; a release or renewal is the same for every kind.)
//!
//! Whoever finds an expired holder ahead of its own node deletes it: that is how an expiry
//! holds even when the holder's sidecar is hung or cut off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::names;
use super::record::{self, Contender};
use super::tree::{busy, Created, Tree, MAX_LOOKS};
use crate::lock::{Grant, OwnerChecked, Released, StoreError, TryLockOutcome};

/// Where a contender's node stands in its key's line of waiters; for a waiter's node, the
/// position of its place.
pub(crate) enum Standing {
    /// Lowest: it holds the lock, or may take it.
    First,
    /// A live node is ahead of it.
    Behind,
    /// Its node is gone: its session ended, or someone deleted it.
    Gone,
}

/// Where the contender `mine` stands under `key_node`, after removing expired holders ahead
/// of it.
pub(crate) async fn standing(
    tree: &Tree,
    key: &str,
    key_node: &str,
    mine: i64,
) -> Result<Standing, StoreError> {
    for _ in 0..MAX_LOOKS {
        let children = tree.list_children(key_node).await?.unwrap_or_default();
        if !children
            .iter()
            .any(|name| names::sequence(name) == Some(mine))
        {
            return Ok(Standing::Gone); // its session ended, or someone deleted it
        }
        let Some((sequence, name)) = names::first_contender(&children) else {
            return Ok(Standing::Gone);
        };
        if sequence == mine {
            return Ok(Standing::First);
        }
        let Some((first, _)) = tree.read(&format!("{key_node}/{name}"), false).await? else {
            continue;
        };
        if !first.expired() {
            return Ok(Standing::Behind);
        }
        // The holder's expiry passed and its sidecar has not deleted it (hung, cut off, or
        // just slower than us): delete it unless it was renewed meanwhile, and look again.
        tree.delete(key, &first.path, Some(first.stat.version))
            .await?;
    }
    Err(busy(key))
}

/// Dapr's try-lock: enter, then hold the lock if first, else withdraw. A key with a live
/// holder is refused on reads alone, so waiters polling a held key write nothing.
///
/// When this sidecar's last grant of the key left its line empty (`Grants::left_empty_at`),
/// the try enters first, with a create conditional on the key node's version that grant's entry
/// left: it succeeds only when no node has joined since, so the new node is alone in the line
/// and holds the lock without a read. A lock taken and given back over and over through one
/// sidecar costs two writes a pair, as a bare create and delete do. When someone has joined
/// since, that create fails (one request; ZooKeeper logs the failed transaction) and the try
/// reads the line as any other does.
pub(crate) async fn try_lock(
    tree: Arc<Tree>,
    key: String,
    owner: String,
    ttl: Duration,
) -> Result<TryLockOutcome, StoreError> {
    let key_node = tree.key_node(&key);
    let data = record::data(&owner, ttl);
    if let Some(mark) = tree.grants.left_empty_at(&key) {
        if let Some(created) = tree.enter_after(&key_node, &data, mark).await? {
            // A key node made again since (ZooKeeper reaps an emptied one) may have reached
            // the mark's version with nodes in it: then the node's standing is read as usual.
            if created.line.czxid == mark.czxid {
                return Ok(grant(&tree, &key, &owner, ttl, created));
            }
            return settle(&tree, &key, &owner, ttl, created).await;
        }
    }
    if tree.holder(&key).await?.is_some() {
        return Ok(TryLockOutcome::Held);
    }
    let created = tree.enter(&key_node, &data).await?;
    settle(&tree, &key, &owner, ttl, created).await
}

/// The lock `created` holds, recorded with its entry's mark: nothing is ahead of it.
fn grant(
    tree: &Arc<Tree>,
    key: &str,
    owner: &str,
    ttl: Duration,
    created: Created,
) -> TryLockOutcome {
    let node = Contender::written(&created.path, owner, ttl, created.stat);
    let token = created.stat.czxid as u64;
    let sessions = tree.sessions.clone();
    tree.grants.granted(sessions, key, node, Some(created.line));
    TryLockOutcome::Granted(Grant::first(Some(token)))
}

/// A try whose node `created` entered where others may be ahead: it holds the lock if first,
/// and else withdraws.
async fn settle(
    tree: &Arc<Tree>,
    key: &str,
    owner: &str,
    ttl: Duration,
    created: Created,
) -> Result<TryLockOutcome, StoreError> {
    let decided = standing(tree, key, &tree.key_node(key), created.sequence).await;
    if let Ok(Standing::First) = decided {
        return Ok(grant(tree, key, owner, ttl, created));
    }
    // Not first, or no answer: withdraw, so this node never holds the lock later (its name
    // is this attempt's alone, so any version is ours). If even that fails, the node goes
    // with this sidecar's session or at its expiry.
    let mine = &created.path;
    if let Err(error) = tree.delete(key, mine, None).await {
        tracing::debug!(node = %mine, "could not withdraw a contender: {error}");
    }
    decided.map(|_| TryLockOutcome::Held)
}

/// Runs an owner-checked change (a release or a renewal) on the owner's node among the key's
/// live holders: first on the node as this sidecar last wrote it, when it granted the lock,
/// without reading it; then, or else, on the node as read. With `token`, only on the node of
/// that grant: a later grant of the same owner is not held. `change` answers the owner's holds
/// after it, or `None` when the node changed under it (then it is read again).
pub(crate) async fn owner_checked<F, Fut>(
    tree: &Tree,
    key: &str,
    owner: &str,
    token: Option<u64>,
    change: F,
) -> Result<Released, StoreError>
where
    F: Fn(Contender) -> Fut,
    Fut: Future<Output = Result<Option<u32>, StoreError>>,
{
    let other_grant = |node: &Contender| token.is_some_and(|t| t != node.fencing_token());
    let not = |outcome| Released {
        outcome,
        holds_left: 0,
    };
    let applied = |holds_left| Released {
        outcome: OwnerChecked::Applied,
        holds_left,
    };
    if let Some(granted) = tree.grants.of(key, owner).filter(|n| !other_grant(n)) {
        if let Some(left) = change(granted).await? {
            return Ok(applied(left));
        }
    }
    for _ in 0..MAX_LOOKS {
        let holders = tree.holders(key).await?;
        let Some(holder) = holders.iter().find(|holder| holder.owner == owner) else {
            return Ok(not(if holders.is_empty() {
                OwnerChecked::NotHeld
            } else {
                OwnerChecked::HeldByOther
            }));
        };
        if other_grant(holder) {
            return Ok(not(OwnerChecked::NotHeld));
        }
        if let Some(left) = change(holder.clone()).await? {
            return Ok(applied(left));
        }
        // The node changed between the read and the write: read it again.
    }
    Err(busy(key))
}
