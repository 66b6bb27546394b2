//! A waiter's place in a key's line: its own ephemeral sequential node, created marked waiting
//! (`record.rs`), so ZooKeeper orders every sidecar's waiters by sequence number and the lowest
//! node is served first.
//!
//! A waiter watches only the node just ahead of it, not the whole key: a release wakes one
//! sidecar, not the herd. When its node is the lowest, a `setData` of the plain data promotes
//! it to the holder and restamps its mtime, so the lock's expiry counts from the grant. Leaving
//! deletes the node, promoted or not: a waiter that gave up never holds the lock. A waiter
//! whose sidecar dies goes with its session, within the session timeout. A node lost with an
//! ended session (or deleted by a forced release) joins again at the end: its place is gone.
//!
//! Every kind waits in this one line (KINDS.md rule 3), Curator's read/write recipe with a
//! line: a waiting node says its mode and limit, and a place of a kind other than the plain
//! lock is granted once no node ahead of it still waits and the nodes ahead admit it
//! (`admission.rs`). So readers in a row behind a released writer are granted together, a
//! waiting writer holds back every reader behind it, and a try of any kind is refused while
//! anyone waits (`kinds.rs`). A shared place watches the key's nodes too, as any holder ahead
//! that leaves may free its turn.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zookeeper_client::Error;

use super::admission::{self, Decision};
use super::holding::{self, Standing};
use super::kinds;
use super::names;
use super::record::{self, Contender};
use super::session::store_error;
use super::tree::Tree;
use crate::lock::{Conflict, Grant, Kind, Place, StoreError, TryLockOutcome};

/// A waiter's place: the node it made in `key`'s line, found by its sequence number.
pub(crate) struct ZookeeperPlace {
    tree: Arc<Tree>,
    key: String,
    key_node: String,
    owner: String,
    ttl: Duration,
    kind: Kind,
    /// The sequence number of this waiter's node.
    sequence: i64,
}

impl ZookeeperPlace {
    /// Creates the waiter's node at the end of `key`'s line.
    pub(crate) async fn join(
        tree: Arc<Tree>,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ZookeeperPlace, StoreError> {
        let key_node = tree.key_node(key);
        let data = record::waiting(owner, ttl, kind);
        let sequence = tree.enter(&key_node, &data).await?.sequence;
        Ok(ZookeeperPlace {
            tree,
            key: key.to_string(),
            key_node,
            owner: owner.to_string(),
            ttl,
            kind,
            sequence,
        })
    }

    fn path(&self) -> String {
        format!("{}/{}", self.key_node, names::contender(self.sequence))
    }

    /// Turns the waiting node into the holder's: the node is this waiter's alone, so the write
    /// needs no version check. `None` when the node is gone.
    async fn promote(&self) -> Result<Option<Grant>, StoreError> {
        let path = self.path();
        let data = record::kind_data(&self.owner, self.ttl, self.kind);
        let (at, data) = (path.as_str(), data.as_slice());
        let written = self
            .tree
            .sessions
            .run(&self.key_node, |c| async move {
                c.set_data(at, data, None).await
            })
            .await;
        match written {
            Ok(stat) => {
                let node = Contender::parse(&path, data, stat)?;
                let token = node.fencing_token();
                let sessions = self.tree.sessions.clone();
                self.tree.grants.granted(sessions, &self.key, node, None);
                Ok(Some(Grant::first(Some(token))))
            }
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Joins again at the end, after the node was lost.
    async fn rejoin(&mut self) -> Result<(), StoreError> {
        tracing::warn!(
            node = %self.path(),
            "a waiter's node is gone (its session ended, or a forced release): it joins the line again"
        );
        let data = record::waiting(&self.owner, self.ttl, self.kind);
        self.sequence = self.tree.enter(&self.key_node, &data).await?.sequence;
        Ok(())
    }
}

#[async_trait]
impl Place for ZookeeperPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let granted = if self.kind.is_plain() {
            let standing =
                holding::standing(&self.tree, &self.key, &self.key_node, self.sequence).await?;
            match standing {
                Standing::Behind => return Ok(TryLockOutcome::Held),
                Standing::First => self.promote().await?,
                Standing::Gone => None,
            }
        } else {
            let ahead =
                kinds::live_ahead(&self.tree, &self.key, &self.key_node, Some(self.sequence));
            match ahead.await? {
                // Everything ahead granted first (KINDS.md rule 3): a waiting node ahead holds
                // this one back, whatever its kind.
                Some(ahead) if ahead.iter().any(|node| node.waiting) => {
                    return Ok(TryLockOutcome::Held)
                }
                Some(ahead) => match admission::decide(&ahead, &self.owner, self.kind) {
                    Decision::Granted => self.promote().await?,
                    // Holders of another limit leave in time, and then this place's turn comes.
                    Decision::Held | Decision::Refused(Conflict::LimitMismatch { .. }) => {
                        return Ok(TryLockOutcome::Held)
                    }
                    Decision::Refused(conflict) => return Ok(TryLockOutcome::Refused(conflict)),
                    // The owner came to hold the key meanwhile, through another request: one
                    // more hold there, and this place is used up.
                    Decision::Reenter(node) => {
                        let Some(grant) =
                            kinds::reenter(&self.tree, &self.key, &node, self.ttl).await?
                        else {
                            return Ok(TryLockOutcome::Held); // changed since the read
                        };
                        let path = self.path();
                        if let Err(error) = self.tree.delete(&self.key, &path, None).await {
                            tracing::debug!(node = %path, "a used place left to its session: {error}");
                        }
                        return Ok(TryLockOutcome::Granted(grant));
                    }
                },
                None => None,
            }
        };
        match granted {
            Some(grant) => Ok(TryLockOutcome::Granted(grant)),
            None => {
                self.rejoin().await?;
                Ok(TryLockOutcome::Held)
            }
        }
    }

    async fn wait_turn(&mut self, max_wait: Duration) -> Result<(), StoreError> {
        let started = tokio::time::Instant::now();
        let children = self
            .tree
            .list_children(&self.key_node)
            .await?
            .unwrap_or_default();
        let Some((_, ahead)) = names::predecessor(&children, self.sequence) else {
            return Ok(()); // first: its turn has come
        };
        let ahead = format!("{}/{ahead}", self.key_node);
        // Behind a shared node, any node that leaves may free a place.
        let key_node = Some(self.key_node.as_str());
        self.tree
            .watch(&ahead, key_node, max_wait.saturating_sub(started.elapsed()))
            .await
    }

    async fn leave(self: Box<Self>) {
        let path = self.path();
        if let Err(error) = self.tree.delete(&self.key, &path, None).await {
            tracing::debug!(node = %path, "a waiter's node left to its session: {error}");
        }
    }
}
