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
//!   expired, its session gone) or renewed; on a key held shared, a watch on the key's
//!   children too, since any holder that leaves frees a place.
//! - Line of waiters: a blocking acquire of any kind keeps its node, marked waiting, until
//!   its turn (`place.rs`: the lowest, or for a shared one, every node ahead granted and
//!   admitting it), so ZooKeeper's sequence numbers serve waiters in arrival order across
//!   sidecars; a try-lock behind any node withdraws, so it never jumps the line.
//!
//! The other kinds of lock (`crate::lock::Kind`) are ZooKeeper's read/write recipe on the same
//! nodes (`admission.rs`, `kinds.rs`): a shared node, marked so in its data with its key's
//! limit, holds the key while no exclusive node is ahead of it and fewer than its limit of
//! shared nodes are; an exclusive node holds it when first, as a plain lock does. Each holder
//! keeps its own node, so its own expiry (its timer here, and contenders deleting it once
//! expired) and its own fencing token, the node's czxid, which exceeds every earlier node's of
//! the key, shared or not. A reentrant owner's holds are a count in its node's data, changed
//! with a `setData` conditional on the version read, so a hold is counted once, through any
//! sidecar. A plain lock's node is an exclusive one with one hold, and its data is unchanged.
//!
//! A lock + unlock pair through one sidecar costs two ZooKeeper writes (create, delete; a key's
//! container node is one more the first time, or after ZooKeeper reaped it) and two reads (the
//! key's children before and after the create). When the same sidecar's last grant of the key
//! left its line empty, the next try-lock reads nothing: its create is conditional on the key
//! node's version that grant's entry left (`holding::try_lock`), so a key taken and given back
//! through one sidecar costs the two writes alone, as a bare create and delete do; when
//! someone entered since, that create fails, one request more. A refused try-lock costs two
//! reads and no write. A shared grant costs one write (its node's create) and four reads (the key's nodes
//! listed, then the data of those ahead in one multi-read, before and after the create; two
//! reads on a key nobody holds, as a plain lock); a refused one two reads and no write; a
//! re-entry two reads and a write (the count's `setData`).
//! A release is one write (a delete, or a `setData` of a count above one), after two reads
//! when it goes through another sidecar than the one that granted it.
//!
//! A multi-lock creates the nodes of all its keys in one `multi()` transaction, guarded on
//! each key node's version, which every node joining a line moves on (`multi.rs`); that write
//! rides in the joining node's own transaction, so it costs no request and no log write more.
//!
//! Files: `tree.rs` reads and writes the nodes; `multi.rs` takes and releases multi-locks; `holding.rs` decides who holds a key (a node's
//! standing in the line, a try-lock, an owner's release or renewal); `admission.rs` which
//! nodes hold a key, in every kind; `kinds.rs` acquires the kinds beyond the plain lock;
//! `place.rs` is a waiter's place in the line; `grants.rs` keeps this sidecar's grants and
//! their expiry timers; `record.rs` is what a node holds, `names.rs` how keys and nodes are
//! named, `session.rs` the ZooKeeper sessions.

mod admission;
mod grants;
mod holding;
mod kinds;
mod line_mark;
mod multi;
mod names;
mod place;
#[cfg(all(test, any(feature = "postgresql", feature = "mysql")))]
mod raw_bench;
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
    Capabilities, Kind, LockInfo, LockStore, ManyOutcome, Mode, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
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
    /// Takes back one of `owner`'s holds of `key`, or all of them (under the grant of `token`,
    /// when given): its node's last hold goes with the node, an earlier one with a `setData`
    /// of the count that keeps the node's expiry; both conditional on the version read, so a
    /// release retried after a lost answer finds the node changed and reads it again.
    async fn release_holds(
        &self,
        key: &str,
        owner: &str,
        token: Option<u64>,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let tree = &self.tree;
        holding::owner_checked(tree, key, owner, token, |node| async move {
            let left = if all_holds { 0 } else { node.holds - 1 };
            let written = if left == 0 {
                tree.delete(key, &node.path, Some(node.stat.version))
                    .await?
            } else {
                tree.rewrite(key, &node, node.time_left(), left).await?
            };
            Ok(written.then_some(left))
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
        finished(attempt).await
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        // In a task of its own, as a try-lock is.
        let attempt = tokio::spawn(kinds::acquire(
            self.tree.clone(),
            key.to_string(),
            owner.to_string(),
            ttl,
            kind,
        ));
        finished(attempt).await
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        self.release_holds(key, owner, None, all_holds).await
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        // In a task of its own, as a try-lock is.
        let attempt = tokio::spawn(multi::acquire_all(
            self.tree.clone(),
            keys.to_vec(),
            owner.to_string(),
            ttl,
            kind,
        ));
        match finished(attempt).await? {
            Some(outcome) => Ok(outcome),
            // A re-entry of keys the owner holds already: key by key (`multi.rs`).
            None => crate::lock::multi::in_sorted_order(self, keys, owner, ttl, kind).await,
        }
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        multi::release_all(&self.tree, keys, owner, all_holds).await
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: crate::lock::Grant,
    ) -> Result<OwnerChecked, StoreError> {
        let released = self
            .release_holds(key, owner, grant.fencing_token, false)
            .await?;
        Ok(released.outcome)
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let tree = &self.tree;
        let renewed = holding::owner_checked(tree, key, owner, None, |node| async move {
            let written = tree.rewrite(key, &node, ttl, node.holds).await?;
            Ok(written.then_some(node.holds))
        })
        .await?;
        Ok(renewed.outcome)
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        Ok(record::info(key, &self.tree.holders(key).await?))
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
            // One multi-read for the batch's children, one for their first contenders' data,
            // and one for the data of every node of the keys held shared.
            let nodes = batch.iter().map(|(_, node)| node.clone()).collect();
            let children = tree.read_many(nodes, true).await?;
            let lines: Vec<(&str, Vec<String>)> = batch
                .iter()
                .zip(children)
                .filter_map(|((key, node), result)| match result {
                    MultiReadResult::Children { children } => {
                        let mut line = names::contenders(&children);
                        line.sort();
                        let paths: Vec<String> = line
                            .into_iter()
                            .map(|(_, name)| format!("{node}/{name}"))
                            .collect();
                        (!paths.is_empty()).then_some((key.as_str(), paths))
                    }
                    _ => None, // the key's node is gone: nothing held
                })
                .collect();
            let firsts = lines.iter().map(|(_, paths)| paths[0].clone()).collect();
            let data = tree.read_many(firsts, false).await?;
            let mut shared = Vec::new();
            for ((key, paths), result) in lines.iter().zip(data) {
                if let MultiReadResult::Data { data, stat } = result {
                    let first = Contender::parse(&paths[0], &data, stat)?;
                    if first.mode == Mode::Shared {
                        shared.push((*key, paths));
                    } else {
                        found.extend(record::info(key, &tree::holders_of(vec![first])));
                    }
                }
            }
            let paths = shared.iter().flat_map(|(_, paths)| paths.iter().cloned());
            let mut data = tree.read_many(paths.collect(), false).await?.into_iter();
            for (key, paths) in shared {
                let mut line = Vec::new();
                for (path, result) in paths.iter().zip(data.by_ref()) {
                    if let MultiReadResult::Data { data, stat } = result {
                        line.push(Contender::parse(path, &data, stat)?);
                    }
                }
                found.extend(record::info(key, &tree::holders_of(line)));
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        // The first node if it is exclusive, else the shared ones at the front of the line:
        // every holder, and nothing behind them.
        let tree = &self.tree;
        let key_node = tree.key_node(key);
        let mut released = false;
        for _ in 0..MAX_LOOKS {
            let nodes = tree.nodes(&key_node, None).await?.unwrap_or_default();
            let front: Vec<&Contender> = match nodes.first() {
                None => return Ok(released),
                Some((_, first)) if first.mode == Mode::Exclusive => vec![first],
                Some(_) => nodes
                    .iter()
                    .map(|(_, node)| node)
                    .take_while(|node| node.mode == Mode::Shared)
                    .collect(),
            };
            let mut all = true;
            for node in front {
                if tree
                    .delete(key, &node.path, Some(node.stat.version))
                    .await?
                {
                    released |= !node.expired();
                } else {
                    all = false; // renewed or gone meanwhile: look again
                }
            }
            if all {
                return Ok(released);
            }
        }
        Err(busy(key))
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        let tree = &self.tree;
        let started = tokio::time::Instant::now();
        let key_node = tree.key_node(key);
        let Some((_, first)) = tree.first_name(&key_node).await? else {
            return Ok(()); // free already
        };
        tree.watch(
            &first,
            Some(&key_node),
            max_wait.saturating_sub(started.elapsed()),
        )
        .await
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let place = ZookeeperPlace::join(self.tree.clone(), key, owner, ttl, kind).await?;
        Ok(Box::new(place))
    }

    /// Every kind waits in the one line of sequential nodes (KINDS.md rule 3, `place.rs`).
    fn line_takes(&self, _kind: Kind) -> bool {
        true
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
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: true,
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

/// The answer of a lock attempt run in a task of its own (see `try_lock`).
async fn finished<T>(
    attempt: tokio::task::JoinHandle<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    attempt
        .await
        .map_err(|e| StoreError::failed(format!("the lock attempt failed: {e}")).with_source(e))?
}
