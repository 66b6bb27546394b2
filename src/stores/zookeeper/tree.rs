//! The lock tree in ZooKeeper: the root, a node per store key, and the contender nodes under
//! each key's node, read and written through the store's sessions. Each call here is one
//! request, or a few when the nodes changed under it; what the nodes mean for the lock (who
//! holds it, whose turn comes next) is decided by `holding.rs` and `place.rs`.
//!
//! The writes that end or renew a lock keep this sidecar's grants (`grants.rs`) in step with the
//! tree, so the timer of a lock whose node is gone stops.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Acls, CreateMode, Error, MultiReadResult, OneshotWatcher, Stat};

use super::grants::Grants;
use super::names::{self, key_node_of};
use super::record::{self, Contender};
use super::session::{store_error, Sessions};
use crate::lock::StoreError;

/// How many times one call reads a key again after its nodes changed under it, before it
/// reports the key as too busy to read.
pub(crate) const MAX_LOOKS: usize = 16;

/// The lock tree: the sessions, the root, and this sidecar's grants.
pub(crate) struct Tree {
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) root: String,
    pub(crate) acls: Acls<'static>,
    pub(crate) grants: Arc<Grants>,
}

/// The answer for a key whose nodes changed under every one of `MAX_LOOKS` looks.
pub(crate) fn busy(key: &str) -> StoreError {
    StoreError::unavailable(format!("the lock {key} changed hands too often to be read"))
}

impl Tree {
    pub(crate) fn key_node(&self, key: &str) -> String {
        format!("{}/{}", self.root, names::encode(key))
    }

    pub(crate) async fn list_children(
        &self,
        path: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        match self
            .sessions
            .run(path, |c| async move { c.list_children(path).await })
            .await
        {
            Ok(children) => Ok(Some(children)),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The first contender under `key_node`: its sequence and path; `None` when there is none.
    pub(crate) async fn first_name(
        &self,
        key_node: &str,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let children = self.list_children(key_node).await?.unwrap_or_default();
        Ok(names::first_contender(&children)
            .map(|(sequence, name)| (sequence, format!("{key_node}/{name}"))))
    }

    /// What the contender node at `path` says; `None` when it is gone. With `watch`, the node
    /// is watched from the read on.
    pub(crate) async fn read(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<Option<(Contender, Option<OneshotWatcher>)>, StoreError> {
        let read = self
            .sessions
            .run(key_node_of(path), |c| async move {
                if watch {
                    let (data, stat, watcher) = c.get_and_watch_data(path).await?;
                    Ok((data, stat, Some(watcher)))
                } else {
                    let (data, stat) = c.get_data(path).await?;
                    Ok((data, stat, None))
                }
            })
            .await;
        match read {
            Ok((data, stat, watcher)) => Ok(Some((Contender::parse(path, &data, stat)?, watcher))),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// One multi-read of `paths`: their children, or their data.
    pub(crate) async fn read_many(
        &self,
        paths: Vec<String>,
        children: bool,
    ) -> Result<Vec<MultiReadResult>, StoreError> {
        self.sessions
            .run(&self.root, |c| {
                let paths = &paths;
                async move {
                    let mut reader = c.new_multi_reader();
                    for path in paths {
                        if children {
                            reader.add_get_children(path)?;
                        } else {
                            reader.add_get_data(path)?;
                        }
                    }
                    reader.commit().await
                }
            })
            .await
            .map_err(store_error)
    }

    /// The first contender of `key`, expired or not; `None` when there is none.
    pub(crate) async fn first(&self, key: &str) -> Result<Option<Contender>, StoreError> {
        let key_node = self.key_node(key);
        for _ in 0..MAX_LOOKS {
            let Some((_, path)) = self.first_name(&key_node).await? else {
                return Ok(None);
            };
            if let Some((found, _)) = self.read(&path, false).await? {
                return Ok(Some(found));
            }
            // Gone between the listing and the read: look again.
        }
        Err(busy(key))
    }

    /// The key's holder; an expired one counts as none.
    pub(crate) async fn holder(&self, key: &str) -> Result<Option<Contender>, StoreError> {
        let first = self.first(key).await?;
        Ok(first.filter(|holder| !holder.expired()))
    }

    /// Deletes `key`'s node at `path` if its version is still `version` (any version: `None`);
    /// false when it changed or is gone.
    pub(crate) async fn delete(
        &self,
        key: &str,
        path: &str,
        version: Option<i32>,
    ) -> Result<bool, StoreError> {
        match self
            .sessions
            .run(key_node_of(path), |c| async move {
                c.delete(path, version).await
            })
            .await
        {
            Ok(()) => {
                self.grants.ended(key, path);
                Ok(true)
            }
            Err(e) => self.refused(key, path, e),
        }
    }

    /// Renews `key`'s lock `node` for `ttl` if the node's version is still the one read; false
    /// when it changed or is gone.
    pub(crate) async fn rewrite(
        &self,
        key: &str,
        node: &Contender,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (path, version) = (node.path.as_str(), Some(node.stat.version));
        let data = record::data(&node.owner, ttl);
        let data = data.as_slice();
        match self
            .sessions
            .run(key_node_of(path), |c| async move {
                c.set_data(path, data, version).await
            })
            .await
        {
            Ok(stat) => {
                let rewritten = Contender::written(path, &node.owner, ttl, stat);
                self.grants.rewritten(key, rewritten);
                Ok(true)
            }
            Err(e) => self.refused(key, path, e),
        }
    }

    /// What a conditional write to `key`'s node at `path` that failed with `error` means: false
    /// when the node changed or is gone (and then no grant of this sidecar lives on in it).
    fn refused(&self, key: &str, path: &str, error: Error) -> Result<bool, StoreError> {
        match error {
            Error::NoNode => {
                self.grants.ended(key, path);
                Ok(false)
            }
            Error::BadVersion => Ok(false),
            e => Err(store_error(e)),
        }
    }

    /// Creates this contender's node under `key_node` (creating the key's container node when
    /// it is missing); answers the node's sequence number and stat.
    pub(crate) async fn enter(
        &self,
        key_node: &str,
        data: &[u8],
    ) -> Result<(i64, Stat), StoreError> {
        let prefix = names::contender_prefix(key_node);
        let contender = CreateMode::EphemeralSequential.with_acls(self.acls);
        let container = CreateMode::Container.with_acls(self.acls);
        for _ in 0..MAX_LOOKS {
            let created = {
                let (prefix, contender) = (prefix.as_str(), &contender);
                self.sessions
                    .run(key_node, |c| async move {
                        c.create(prefix, data, contender).await
                    })
                    .await
            };
            match created {
                Ok((stat, sequence)) => return Ok((sequence.into_i64(), stat)),
                Err(Error::NoNode) => {}
                Err(e) => return Err(store_error(e)),
            }
            // The key's node is missing (never made, or reaped by ZooKeeper when it emptied).
            let made = self
                .sessions
                .run(key_node, |c| {
                    let container = &container;
                    async move { c.create(key_node, &[], container).await }
                })
                .await;
            match made {
                Ok(_) | Err(Error::NodeExists) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(busy(key_node))
    }

    /// Waits until the node at `path` changes or goes (a release, an expiry by its holder's
    /// timer, the end of its session, a renewal, a promotion), its expiry passes in case nobody
    /// deletes it, or `max_wait` runs out; the reads count against `max_wait`.
    pub(crate) async fn watch(&self, path: &str, max_wait: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let Some((node, Some(watcher))) = self.read(path, true).await? else {
            return Ok(()); // gone already
        };
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(node.time_left());
        let _ = tokio::time::timeout(wait, watcher.changed()).await;
        Ok(())
    }
}
