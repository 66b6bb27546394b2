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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zookeeper_client::Error;

use super::holding::{self, Standing};
use super::names;
use super::record::{self, Contender};
use super::session::store_error;
use super::tree::Tree;
use crate::lock::{Grant, Place, StoreError, TryLockOutcome};

/// A waiter's place: the node it made in `key`'s line, found by its sequence number.
pub(crate) struct ZookeeperPlace {
    tree: Arc<Tree>,
    key: String,
    key_node: String,
    owner: String,
    ttl: Duration,
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
    ) -> Result<ZookeeperPlace, StoreError> {
        let key_node = tree.key_node(key);
        let (sequence, _) = tree.enter(&key_node, &record::waiting(owner, ttl)).await?;
        Ok(ZookeeperPlace {
            tree,
            key: key.to_string(),
            key_node,
            owner: owner.to_string(),
            ttl,
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
        let data = record::data(&self.owner, self.ttl);
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
                let node = Contender::written(&path, &self.owner, self.ttl, stat);
                let token = node.fencing_token();
                let sessions = self.tree.sessions.clone();
                self.tree.grants.granted(sessions, &self.key, node);
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
        let data = record::waiting(&self.owner, self.ttl);
        (self.sequence, _) = self.tree.enter(&self.key_node, &data).await?;
        Ok(())
    }
}

#[async_trait]
impl Place for ZookeeperPlace {
    async fn try_take(&mut self) -> Result<TryLockOutcome, StoreError> {
        let standing =
            holding::standing(&self.tree, &self.key, &self.key_node, self.sequence).await?;
        let granted = match standing {
            Standing::Behind => return Ok(TryLockOutcome::Held),
            Standing::First => self.promote().await?,
            Standing::Gone => None,
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
        self.tree
            .watch(&ahead, None, max_wait.saturating_sub(started.elapsed()))
            .await
    }

    async fn leave(self: Box<Self>) {
        let path = self.path();
        if let Err(error) = self.tree.delete(&self.key, &path, None).await {
            tracing::debug!(node = %path, "a waiter's node left to its session: {error}");
        }
    }
}
