//! `lock.zookeeper`: locks in a ZooKeeper ensemble.
//!
//! Layout: under the root (`keyPrefixPath`, default `/dlock`) each store key has a container
//! node named by `names::encode`; whoever wants the lock creates an ephemeral sequential node
//! `lock-<sequence>` under it holding its owner and expiry (`record.rs`), and the contender
//! with the lowest sequence holds the lock. A try-lock that sees a live holder answers "held"
//! from reads alone; otherwise it enters, and a contender that is not first withdraws its node
//! at once (a try-lock never waits), unless the first one's expiry has passed: then it deletes
//! that node, conditionally on the version it read, and looks again.
//!
//! Why this shape:
//! - Ephemeral: a sidecar that dies loses its locks when its session expires, whatever their
//!   expiry; a lock's own expiry is enforced besides, by the holder's timer (`grants.rs`) and
//!   by contenders, so it holds while the holder's sidecar lives, and even if it is hung.
//! - Sequential names: every lock node ever created under a key has a name of its own, so a
//!   conditional delete (read the node, check it, delete with the version read) can never hit
//!   a newer lock that reused the path, which a single fixed node per key could not promise:
//!   ZooKeeper's delete checks the data version only, and every new node starts at version 0.
//! - Container key nodes: ZooKeeper deletes them by itself once empty, so keys used once don't
//!   pile up.
//! - Fencing token: the lock node's czxid, the zxid of its creation, which rises with every
//!   write anywhere in the ensemble.
//! - Release signal: a data watch on the holder's node fires when it is deleted (released,
//!   expired, its session gone) or renewed.
//! - Line of waiters: a blocking acquire keeps its node, marked waiting, until it is the
//!   lowest (`line.rs`), so ZooKeeper's sequence numbers serve waiters in arrival order across
//!   sidecars; a try-lock behind any node withdraws, so it never jumps the line.
//!
//! A lock + unlock pair through one sidecar costs two ZooKeeper writes (create, delete; a key's
//! container node is one more the first time, or after ZooKeeper reaped it) and two reads (the
//! key's children before and after the create). A refused try-lock costs two reads and no
//! write.

mod grants;
mod line;
mod names;
mod record;
mod session;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zookeeper_client::{Acls, CreateMode, Error, MultiReadResult, OneshotWatcher, Stat};

use crate::config::ConfigError;
use crate::config::Metadata;
use crate::lock::{
    Capabilities, Grant, LockInfo, LockStore, OwnerChecked, Place, StoreError, TryLockOutcome,
};
use grants::Grants;
use line::Waiter;
use names::key_node_of;
use record::Holder;
use session::{store_error, Sessions};
use settings::Settings;

/// How many times one call reads a key again after its nodes changed under it, before it
/// reports the key as too busy to read.
const MAX_LOOKS: usize = 16;

/// How many nodes one multi-read asks for while listing.
const LIST_BATCH: usize = 256;

pub struct ZookeeperStore {
    tree: Arc<Tree>,
}

/// The lock tree: the sessions, the root, and this sidecar's grants.
struct Tree {
    sessions: Arc<Sessions>,
    root: String,
    acls: Acls<'static>,
    grants: Arc<Grants>,
}

/// Where a contender's node stands in its key's line.
enum Standing {
    /// Lowest: it holds the lock, or may take it.
    First,
    /// A live node is ahead of it.
    Behind,
    /// Its node is gone: its session ended, or someone deleted it.
    Gone,
}

fn busy(key: &str) -> StoreError {
    StoreError::Unavailable(format!("the lock {key} changed hands too often to be read"))
}

impl ZookeeperStore {
    /// Connects as a `lock.zookeeper` component's metadata says and creates the root if it is
    /// missing; fails if the ensemble can't be reached within the session timeout.
    pub async fn connect(metadata: &Metadata) -> Result<Arc<ZookeeperStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let sessions = Sessions::open(&settings).await.map_err(|e| {
            ConfigError::new(format!(
                "can't open a ZooKeeper session with {}: {e}",
                settings.servers
            ))
        })?;
        // With credentials, the nodes dlock creates are the identity's alone.
        let acls = if settings.digest.is_some() {
            Acls::creator_all()
        } else {
            Acls::anyone_all()
        };
        let root = settings.root.clone();
        let created = sessions
            .run(&root, |c| {
                let root = root.as_str();
                async move {
                    c.mkdir(root, &CreateMode::Persistent.with_acls(acls))
                        .await?;
                    c.list_children(root).await
                }
            })
            .await;
        if let Err(e) = created {
            return Err(ConfigError::field(
                "keyPrefixPath",
                format!("can't create or read {root}: {e}"),
            ));
        }
        Ok(Arc::new(ZookeeperStore {
            tree: Arc::new(Tree {
                sessions: Arc::new(sessions),
                root,
                acls,
                grants: Arc::default(),
            }),
        }))
    }
}

impl Tree {
    fn key_node(&self, key: &str) -> String {
        format!("{}/{}", self.root, names::encode(key))
    }

    async fn list_children(&self, path: &str) -> Result<Option<Vec<String>>, StoreError> {
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
    async fn first_name(&self, key_node: &str) -> Result<Option<(i64, String)>, StoreError> {
        let children = self.list_children(key_node).await?.unwrap_or_default();
        Ok(names::first_contender(&children)
            .map(|(sequence, name)| (sequence, format!("{key_node}/{name}"))))
    }

    /// What the contender node at `path` says; `None` when it is gone. With `watch`, the node
    /// is watched from the read on.
    async fn read(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<Option<(Holder, Option<OneshotWatcher>)>, StoreError> {
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
            Ok((data, stat, watcher)) => Ok(Some((Holder::parse(path, &data, stat)?, watcher))),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The first contender of `key`, expired or not; `None` when there is none.
    async fn first(&self, key: &str) -> Result<Option<Holder>, StoreError> {
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
    async fn holder(&self, key: &str) -> Result<Option<Holder>, StoreError> {
        let first = self.first(key).await?;
        Ok(first.filter(|holder| !holder.expired()))
    }

    /// Deletes `key`'s node at `path` if its version is still `version` (any version: `None`);
    /// false when it changed or is gone.
    async fn delete(
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
            Err(Error::NoNode) => {
                self.grants.ended(key, path);
                Ok(false)
            }
            Err(Error::BadVersion) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Renews `key`'s lock `node` for `ttl` if the node's version is still the one read; false
    /// when it changed or is gone.
    async fn rewrite(&self, key: &str, node: &Holder, ttl: Duration) -> Result<bool, StoreError> {
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
                let rewritten = Holder::written(path, &node.owner, ttl, stat);
                self.grants.rewritten(key, rewritten);
                Ok(true)
            }
            Err(Error::NoNode) => {
                self.grants.ended(key, path);
                Ok(false)
            }
            Err(Error::BadVersion) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Creates this contender's node under `key_node` (creating the key's container node when
    /// it is missing); answers the node's sequence number and stat.
    async fn enter(&self, key_node: &str, data: &[u8]) -> Result<(i64, Stat), StoreError> {
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

    /// Dapr's try-lock: enter, then hold the lock if first, else withdraw. A key with a live
    /// holder is refused on reads alone, so waiters polling a held key write nothing.
    async fn try_lock(
        self: Arc<Self>,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        if self.holder(&key).await?.is_some() {
            return Ok(TryLockOutcome::Held);
        }
        let key_node = self.key_node(&key);
        let (sequence, stat) = self.enter(&key_node, &record::data(&owner, ttl)).await?;
        let mine = format!("{key_node}/{}", names::contender(sequence));
        let decided = self.contend(&key, &key_node, sequence).await;
        if let Ok(Standing::First) = decided {
            let node = Holder::written(&mine, &owner, ttl, stat);
            self.grants.granted(self.sessions.clone(), &key, node);
            return Ok(TryLockOutcome::Granted(Grant {
                fencing_token: Some(stat.czxid as u64),
            }));
        }
        // Not first, or no answer: withdraw, so this node never holds the lock later (its name
        // is this attempt's alone, so any version is ours). If even that fails, the node goes
        // with this sidecar's session or at its expiry.
        if let Err(error) = self.delete(&key, &mine, None).await {
            tracing::debug!(node = %mine, "could not withdraw a contender: {error}");
        }
        decided.map(|_| TryLockOutcome::Held)
    }

    /// Where the contender `mine` stands under `key_node`, after removing expired holders ahead
    /// of it.
    async fn contend(&self, key: &str, key_node: &str, mine: i64) -> Result<Standing, StoreError> {
        for _ in 0..MAX_LOOKS {
            let children = self.list_children(key_node).await?.unwrap_or_default();
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
            let Some((first, _)) = self.read(&format!("{key_node}/{name}"), false).await? else {
                continue;
            };
            if !first.expired() {
                return Ok(Standing::Behind);
            }
            // The holder's expiry passed and its sidecar has not deleted it (hung, cut off, or
            // just slower than us): delete it unless it was renewed meanwhile, and look again.
            self.delete(key, &first.path, Some(first.stat.version))
                .await?;
        }
        Err(busy(key))
    }

    /// Waits until the node at `path` changes or goes (a release, an expiry by its holder's
    /// timer, the end of its session, a renewal, a promotion), its expiry passes in case nobody
    /// deletes it, or `max_wait` runs out; the reads count against `max_wait`.
    async fn watch(&self, path: &str, max_wait: Duration) -> Result<(), StoreError> {
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

    /// Runs an owner-checked change (release or renewal) on the key's live holder: first on the
    /// node as this sidecar last wrote it, when it granted the lock, without reading it; then,
    /// or else, on the node as read.
    async fn owner_checked<F, Fut>(
        &self,
        key: &str,
        owner: &str,
        change: F,
    ) -> Result<OwnerChecked, StoreError>
    where
        F: Fn(Holder) -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        if let Some(granted) = self.grants.of(key, owner) {
            if change(granted).await? {
                return Ok(OwnerChecked::Applied);
            }
        }
        for _ in 0..MAX_LOOKS {
            let Some(holder) = self.holder(key).await? else {
                return Ok(OwnerChecked::NotHeld);
            };
            if holder.owner != owner {
                return Ok(OwnerChecked::HeldByOther);
            }
            if change(holder).await? {
                return Ok(OwnerChecked::Applied);
            }
            // The node changed between the read and the write: read it again.
        }
        Err(busy(key))
    }
}

#[async_trait]
impl LockStore for ZookeeperStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        // In a task of its own, so a caller that gives up half-way (a cancelled blocking
        // acquire) can't leave a contender node behind that would later hold the lock.
        let attempt = tokio::spawn(self.tree.clone().try_lock(
            key.to_string(),
            owner.to_string(),
            ttl,
        ));
        attempt
            .await
            .map_err(|e| StoreError::Failed(format!("the lock attempt failed: {e}")))?
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        let tree = &self.tree;
        tree.owner_checked(key, owner, |node| async move {
            tree.delete(key, &node.path, Some(node.stat.version)).await
        })
        .await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let tree = &self.tree;
        tree.owner_checked(key, owner, |node| async move {
            tree.rewrite(key, &node, ttl).await
        })
        .await
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        Ok(self.tree.holder(key).await?.map(|holder| LockInfo {
            key: key.to_string(),
            owner: holder.owner.clone(),
            expires_in: holder.time_left(),
            fencing_token: Some(holder.fencing_token()),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let tree = &self.tree;
        let Some(names) = tree.list_children(&tree.root).await? else {
            return Ok(Vec::new());
        };
        let mut keys: Vec<(String, String)> = names
            .iter()
            .filter_map(|name| {
                let key = names::decode(name)?;
                key.starts_with(prefix)
                    .then(|| (key, format!("{}/{name}", tree.root)))
            })
            .collect();
        keys.sort();
        let mut found = Vec::new();
        for batch in keys.chunks(LIST_BATCH) {
            // One multi-read for the batch's children, one for their first contenders' data.
            let nodes = batch.iter().map(|(_, node)| node.clone()).collect();
            let children = read_many(tree, nodes, true).await?;
            let firsts: Vec<(&str, String)> = batch
                .iter()
                .zip(children)
                .filter_map(|((key, node), result)| match result {
                    MultiReadResult::Children { children } => {
                        let (_, name) = names::first_contender(&children)?;
                        Some((key.as_str(), format!("{node}/{name}")))
                    }
                    _ => None, // the key's node is gone: nothing held
                })
                .collect();
            let paths = firsts.iter().map(|(_, path)| path.clone()).collect();
            let data = read_many(tree, paths, false).await?;
            for ((key, path), result) in firsts.into_iter().zip(data) {
                if let MultiReadResult::Data { data, stat } = result {
                    let holder = Holder::parse(&path, &data, stat)?;
                    if !holder.expired() {
                        found.push(LockInfo {
                            key: key.to_string(),
                            owner: holder.owner.clone(),
                            expires_in: holder.time_left(),
                            fencing_token: Some(holder.fencing_token()),
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let tree = &self.tree;
        for _ in 0..MAX_LOOKS {
            let Some(first) = tree.first(key).await? else {
                return Ok(false);
            };
            if tree
                .delete(key, &first.path, Some(first.stat.version))
                .await?
            {
                return Ok(!first.expired());
            }
        }
        Err(busy(key))
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        let tree = &self.tree;
        let started = tokio::time::Instant::now();
        let Some((_, first)) = tree.first_name(&tree.key_node(key)).await? else {
            return Ok(()); // free already
        };
        tree.watch(&first, max_wait.saturating_sub(started.elapsed()))
            .await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Box<dyn Place>, StoreError> {
        let waiter = Waiter::join(self.tree.clone(), key, owner, ttl).await?;
        Ok(Box::new(waiter))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
        }
    }
}

/// One multi-read of `paths`: their children, or their data.
async fn read_many(
    tree: &Tree,
    paths: Vec<String>,
    children: bool,
) -> Result<Vec<MultiReadResult>, StoreError> {
    tree.sessions
        .run(&tree.root, |c| {
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
