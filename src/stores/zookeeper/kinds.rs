//! Acquiring a key in another kind than Dapr's plain lock: shared (with a limit) or
//! reentrant. Like a try-lock it never waits: it looks at the key's nodes, and answers from
//! those reads alone when the key can't be had (nothing written) or when the owner holds it
//! already (one more hold: a `setData` of its node's hold count, conditional on the version
//! read, so two re-entries through two sidecars each count). Otherwise it enters a node of
//! its kind, looks at the nodes ahead of it, and keeps the node if it is admitted
//! (`admission.rs`), or withdraws it.
//!
//! Expired nodes ahead are deleted first, conditionally on their version, as the plain
//! try-lock does with an expired holder: each holder has its own expiry, and a dead one's
//! place returns at it even while its sidecar's session lives on.

use std::sync::Arc;
use std::time::Duration;

use super::admission::{self, Decision};
use super::record::{self, Contender};
use super::tree::{busy, Tree, MAX_LOOKS};
use crate::lock::{Grant, Kind, StoreError, TryLockOutcome};

/// Takes `key` for `owner` for `ttl` in `kind` if its nodes admit it.
pub(crate) async fn acquire(
    tree: Arc<Tree>,
    key: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
) -> Result<TryLockOutcome, StoreError> {
    let key_node = tree.key_node(&key);
    for _ in 0..MAX_LOOKS {
        let line = live_ahead(&tree, &key, &key_node, None).await?;
        let line = line.unwrap_or_default(); // never `None` without a node of its own
        match admission::decide(&line, &owner, kind) {
            // A try never jumps the line (KINDS.md rule 3).
            Decision::Granted if line.iter().any(|node| node.waiting) => {
                return Ok(TryLockOutcome::Held)
            }
            Decision::Granted => {}
            Decision::Reenter(node) => match reenter(&tree, &key, &node, ttl).await? {
                Some(grant) => return Ok(TryLockOutcome::Granted(grant)),
                None => continue, // the node changed since it was read
            },
            Decision::Held => return Ok(TryLockOutcome::Held),
            Decision::Refused(conflict) => return Ok(TryLockOutcome::Refused(conflict)),
        }
        // Admitted on what it read: enter, and look again from its node.
        let data = record::kind_data(&owner, ttl, kind);
        let entered = tree.enter(&key_node, &data).await?;
        let (sequence, stat, mine) = (entered.sequence, entered.stat, entered.path);
        let decided = match live_ahead(&tree, &key, &key_node, Some(sequence)).await {
            Ok(Some(ahead)) if ahead.iter().any(|node| node.waiting) => Ok(Decision::Held),
            Ok(Some(ahead)) => Ok(admission::decide(&ahead, &owner, kind)),
            Ok(None) => Ok(Decision::Held), // its node is gone: its session ended
            Err(error) => Err(error),
        };
        if !matches!(decided, Ok(Decision::Granted)) {
            // Not admitted, or no answer: withdraw, as the plain try-lock does.
            if let Err(error) = tree.delete(&key, &mine, None).await {
                tracing::debug!(node = %mine, "could not withdraw a contender: {error}");
            }
        }
        match decided? {
            Decision::Granted => {
                let node = Contender::parse(&mine, &data, stat)?;
                tree.grants.granted(tree.sessions.clone(), &key, node, None);
                let token = Some(stat.czxid as u64);
                return Ok(TryLockOutcome::Granted(Grant::first(token)));
            }
            // The owner's own node ahead holds the key: count a hold there instead.
            Decision::Reenter(_) => continue,
            Decision::Held => return Ok(TryLockOutcome::Held),
            Decision::Refused(conflict) => return Ok(TryLockOutcome::Refused(conflict)),
        }
    }
    Err(busy(&key))
}

/// One more hold of `node`, the owner's: the same token, the expiry the longer of what is
/// left and `ttl`. `None` when the node changed or went since it was read.
pub(crate) async fn reenter(
    tree: &Tree,
    key: &str,
    node: &Contender,
    ttl: Duration,
) -> Result<Option<Grant>, StoreError> {
    let holds = node.holds.saturating_add(1);
    let ttl = ttl.max(node.time_left());
    let rewritten = tree.rewrite(key, node, ttl, holds).await?;
    Ok(rewritten.then_some(Grant {
        fencing_token: Some(node.fencing_token()),
        holds,
    }))
}

/// The live nodes of `key` in line order, ahead of the node with sequence `mine` (every one
/// without it), once the expired ones among them are deleted; `None` when `mine` is gone.
/// With none ahead, one read (the listing), else two.
pub(crate) async fn live_ahead(
    tree: &Tree,
    key: &str,
    key_node: &str,
    mine: Option<i64>,
) -> Result<Option<Vec<Contender>>, StoreError> {
    for _ in 0..MAX_LOOKS {
        let Some(nodes) = tree.nodes(key_node, mine).await? else {
            return Ok(None);
        };
        let (expired, live): (Vec<_>, Vec<_>) = nodes
            .into_iter()
            .map(|(_, node)| node)
            .partition(Contender::expired);
        if expired.is_empty() {
            return Ok(Some(live));
        }
        for node in expired {
            tree.delete(key, &node.path, Some(node.stat.version))
                .await?;
        }
    }
    Err(busy(key))
}
