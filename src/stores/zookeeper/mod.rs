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
//!   lowest (`place.rs`), so ZooKeeper's sequence numbers serve waiters in arrival order across
//!   sidecars; a try-lock behind any node withdraws, so it never jumps the line.
//!
//! A lock + unlock pair through one sidecar costs two ZooKeeper writes (create, delete; a key's
//! container node is one more the first time, or after ZooKeeper reaped it) and two reads (the
//! key's children before and after the create). A refused try-lock costs two reads and no
//! write.
//!
//! Files: `tree.rs` reads and writes the nodes; `holding.rs` decides who holds a key (a node's
//! standing in the line, a try-lock, an owner's release or renewal); `place.rs` is a waiter's
//! place in the line; `grants.rs` keeps this sidecar's grants and their expiry timers;
//! `record.rs` is what a node holds, `names.rs` how keys and nodes are named, `session.rs` the
//! ZooKeeper sessions.

mod grants;
mod holding;
mod names;
mod place;
mod record;
mod session;
mod settings;
mod tree;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpStream;
use zookeeper_client::{Acls, CreateMode, MultiReadResult};

use crate::config::ConfigError;
use crate::config::Metadata;
use crate::lock::{
    Capabilities, LockInfo, LockStore, OwnerChecked, Place, StoreError, TryLockOutcome,
};
use place::ZookeeperPlace;
use record::Contender;
use session::Sessions;
use settings::Settings;
use tree::{busy, Tree, MAX_LOOKS};

/// How many nodes one multi-read asks for while listing.
const LIST_BATCH: usize = 256;

pub(crate) struct ZookeeperStore {
    tree: Arc<Tree>,
    /// The ensemble's `host:port`s.
    servers: Vec<String>,
}

impl ZookeeperStore {
    /// Deletes the key's node if `owner` holds it (under the grant of `token`, when given).
    async fn release(
        &self,
        key: &str,
        owner: &str,
        token: Option<u64>,
    ) -> Result<OwnerChecked, StoreError> {
        let tree = &self.tree;
        holding::owner_checked(tree, key, owner, token, |node| async move {
            tree.delete(key, &node.path, Some(node.stat.version)).await
        })
        .await
    }

    /// Connects as a `lock.zookeeper` component's metadata says and creates the root if it is
    /// missing; fails if the ensemble can't be reached within the session timeout.
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<ZookeeperStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        reachable(&settings.servers).await?;
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
            servers: settings.servers.split(',').map(str::to_string).collect(),
        }))
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
        let attempt = tokio::spawn(holding::try_lock(
            self.tree.clone(),
            key.to_string(),
            owner.to_string(),
            ttl,
        ));
        attempt.await.map_err(|e| {
            StoreError::failed(format!("the lock attempt failed: {e}")).with_source(e)
        })?
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<OwnerChecked, StoreError> {
        self.release(key, owner, None).await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: crate::lock::Grant,
    ) -> Result<OwnerChecked, StoreError> {
        self.release(key, owner, grant.fencing_token).await
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let tree = &self.tree;
        holding::owner_checked(tree, key, owner, None, |node| async move {
            tree.rewrite(key, &node, ttl).await
        })
        .await
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        Ok(self.tree.holder(key).await?.map(|holder| holder.info(key)))
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
            let children = tree.read_many(nodes, true).await?;
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
            let data = tree.read_many(paths, false).await?;
            for ((key, path), result) in firsts.into_iter().zip(data) {
                if let MultiReadResult::Data { data, stat } = result {
                    let holder = Contender::parse(&path, &data, stat)?;
                    if !holder.expired() {
                        found.push(holder.info(key));
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
        let place = ZookeeperPlace::join(self.tree.clone(), key, owner, ttl).await?;
        Ok(Box::new(place))
    }

    fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
            shared: false,
            limit: false,
            reentrant: false,
        }
    }
}

/// How long start-up's reachability check waits for each server's TCP connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// Start-up's first look: whether any server of `servers` takes a TCP connection. The client
/// library retries unreachable servers quietly until its session timeout, so without this an
/// ensemble that is down showed only as an init timeout, with no host and no cause.
async fn reachable(servers: &str) -> Result<(), ConfigError> {
    let mut tries = tokio::task::JoinSet::new();
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let server = server.to_string();
        tries.spawn(async move {
            let connected = tokio::time::timeout(REACH_TIMEOUT, TcpStream::connect(&server)).await;
            let cause = match connected {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {REACH_TIMEOUT:?}"),
            };
            Err(format!("{server}: {cause}"))
        });
    }
    let mut causes = Vec::new();
    while let Some(tried) = tries.join_next().await {
        match tried {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(cause)) => causes.push(cause),
            Err(e) => causes.push(e.to_string()),
        }
    }
    causes.sort();
    Err(ConfigError::field(
        "servers",
        format!("can't reach any ZooKeeper server: {}", causes.join("; ")),
    ))
}
