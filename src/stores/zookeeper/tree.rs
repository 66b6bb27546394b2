//! The lock tree in ZooKeeper: the root, a node per store key, and the contender nodes under
//! each key's node, read and written through the store's sessions. Each call here is one
//! request, or a few when the nodes changed under it; what the nodes mean for the lock (who
//! holds it, whose turn comes next) is decided by `holding.rs` and `place.rs`.
//!
//! The writes that end or renew a lock keep this sidecar's grants (`grants.rs`) in step with the
//! tree, so the timer of a lock whose node is gone stops.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{
    Acls, CreateMode, Error, MultiReadResult, MultiWriteResult, OneshotWatcher, Stat,
};

use super::admission;
use super::grants::Grants;
use super::line_mark::LineMark;
use super::names::{self, key_node_of};
use super::record::Contender;
use super::session::{store_error, Sessions};
use crate::lock::{Mode, StoreError};

/// The holders among a key's nodes `line` (in line order, expired ones included). A key whose
/// first node is exclusive is held by that node alone, while it lives, as it always was;
/// behind shared nodes, the expired ones count as gone, as they soon are.
pub(crate) fn holders_of(line: Vec<Contender>) -> Vec<Contender> {
    match line.first() {
        None => Vec::new(),
        Some(first) if first.mode == Mode::Exclusive => {
            line.into_iter().take(1).filter(|n| !n.expired()).collect()
        }
        Some(_) => {
            let live: Vec<Contender> = line.into_iter().filter(|n| !n.expired()).collect();
            admission::holders(&live)
        }
    }
}

/// A contender node an entry created: its sequence, path and stat, and its key's node after.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) sequence: i64,
    pub(crate) path: String,
    pub(crate) stat: Stat,
    pub(crate) line: LineMark,
}

/// The contender nodes created by a transaction whose results are `results`: each create, each
/// followed by its key node's write (`Tree::enter`), in order. A ZooKeeper before 3.9 answers a
/// create inside a transaction without its stat (ZOOKEEPER-4026: `czxid` -1); the key node's
/// write that follows it in the same transaction carries what the lock needs then: every write
/// of one transaction has its zxid and its time, so the node's czxid and mtime are the key
/// node's new mzxid and mtime, and its version 0.
pub(crate) fn created_nodes(results: Vec<MultiWriteResult>) -> Result<Vec<Created>, StoreError> {
    let mut created = Vec::with_capacity(results.len() / 2);
    let mut results = results.into_iter();
    while let Some(result) = results.next() {
        let (
            MultiWriteResult::Create { path, stat },
            Some(MultiWriteResult::SetData { stat: key }),
        ) = (result, results.next())
        else {
            return Err(StoreError::failed(
                "ZooKeeper answered a transaction out of its order",
            ));
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        let Some(sequence) = names::sequence(name) else {
            return Err(StoreError::failed(format!(
                "ZooKeeper created {path}, not a contender"
            )));
        };
        let stat = if stat.is_invalid() {
            Stat {
                czxid: key.mzxid,
                mzxid: key.mzxid,
                pzxid: key.mzxid,
                ctime: key.mtime,
                mtime: key.mtime,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: 0,
                data_length: 0,
                num_children: 0,
            }
        } else {
            stat
        };
        let line = LineMark {
            czxid: key.czxid,
            version: key.version,
        };
        created.push(Created {
            sequence,
            path,
            stat,
            line,
        });
    }
    Ok(created)
}

/// The one contender node an entry created.
fn created_node(results: Vec<MultiWriteResult>) -> Result<Created, StoreError> {
    let created = created_nodes(results)?;
    let [one] = <[_; 1]>::try_from(created)
        .map_err(|_| StoreError::failed("ZooKeeper answered a transaction out of its order"))?;
    Ok(one)
}

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

    /// The contender nodes under `key_node` with their sequences, in line order, expired ones
    /// included: every one, or with `mine` those ahead of it (`None` when `mine` is not
    /// there). A listing, and a multi-read of their data when there are any.
    pub(crate) async fn nodes(
        &self,
        key_node: &str,
        mine: Option<i64>,
    ) -> Result<Option<Vec<(i64, Contender)>>, StoreError> {
        let children = self.list_children(key_node).await?.unwrap_or_default();
        let mut line = names::contenders(&children);
        if let Some(mine) = mine {
            if !line.iter().any(|(sequence, _)| *sequence == mine) {
                return Ok(None);
            }
            line.retain(|(sequence, _)| *sequence < mine);
        }
        if line.is_empty() {
            return Ok(Some(Vec::new()));
        }
        line.sort();
        let paths: Vec<String> = line
            .iter()
            .map(|(_, name)| format!("{key_node}/{name}"))
            .collect();
        let read = self.read_many(paths.clone(), false).await?;
        let mut nodes = Vec::with_capacity(line.len());
        for (((sequence, _), path), result) in line.into_iter().zip(paths).zip(read) {
            // A node gone between the listing and the read is no longer in line.
            if let MultiReadResult::Data { data, stat } = result {
                nodes.push((sequence, Contender::parse(&path, &data, stat)?));
            }
        }
        Ok(Some(nodes))
    }

    /// The key's holders, in line order: none, one exclusive, or the shared ones.
    pub(crate) async fn holders(&self, key: &str) -> Result<Vec<Contender>, StoreError> {
        let nodes = self.nodes(&self.key_node(key), None).await?;
        let line = nodes.unwrap_or_default().into_iter().map(|(_, node)| node);
        Ok(holders_of(line.collect()))
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

    /// Rewrites `key`'s lock `node` to expire `ttl` from now with `holds` holds (a renewal, or
    /// a hold taken or given back) if the node's version is still the one read; false when it
    /// changed or is gone.
    pub(crate) async fn rewrite(
        &self,
        key: &str,
        node: &Contender,
        ttl: Duration,
        holds: u32,
    ) -> Result<bool, StoreError> {
        let (path, version) = (node.path.as_str(), Some(node.stat.version));
        let data = node.data_with(ttl, holds);
        let data = data.as_slice();
        match self
            .sessions
            .run(key_node_of(path), |c| async move {
                c.set_data(path, data, version).await
            })
            .await
        {
            Ok(stat) => {
                self.grants.rewritten(key, node.rewritten(ttl, holds, stat));
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
    /// it is missing).
    ///
    /// The create is one transaction with a write of the key node's (empty) data, which moves
    /// the key node's version on: every node that joins a key's line does, so a multi-lock's
    /// transaction, which checks that version, fails if any node joined since it read the line
    /// (`multi.rs`), and so does `enter_after`. Both are one ZooKeeper transaction: one
    /// proposal, one log write.
    pub(crate) async fn enter(&self, key_node: &str, data: &[u8]) -> Result<Created, StoreError> {
        for _ in 0..MAX_LOOKS {
            match self.entry(key_node, data, None).await {
                Ok(results) => return created_node(results),
                Err(Error::NoNode) => {}
                Err(e) => return Err(store_error(e)),
            }
            // The key's node is missing (never made, or reaped by ZooKeeper when it emptied).
            self.make_key_node(key_node).await?;
        }
        Err(busy(key_node))
    }

    /// Creates this contender's node under `key_node` only if no node has joined the line
    /// since the entry that left `mark`: the key node's write is conditional on the version
    /// that entry left. `None`, and nothing created, when one has (or the key node is gone).
    /// The caller checks that the answer's key node is `mark`'s, not one made again since.
    pub(crate) async fn enter_after(
        &self,
        key_node: &str,
        data: &[u8],
        mark: LineMark,
    ) -> Result<Option<Created>, StoreError> {
        match self.entry(key_node, data, Some(mark.version)).await {
            Ok(results) => created_node(results).map(Some),
            Err(Error::BadVersion | Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// One entry's transaction: the contender's create and the key node's write, conditional
    /// on the key node's `version` when one is given.
    async fn entry(
        &self,
        key_node: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<Vec<MultiWriteResult>, Error> {
        let prefix = names::contender_prefix(key_node);
        let contender = CreateMode::EphemeralSequential.with_acls(self.acls);
        let (prefix, contender) = (prefix.as_str(), &contender);
        self.sessions
            .run(key_node, |c| async move {
                let mut writer = c.new_multi_writer();
                writer.add_create(prefix, data, contender)?;
                writer.add_set_data(key_node, &[], version)?;
                Ok(writer.commit().await?)
            })
            .await
    }

    /// Creates the container node of a key, unless it exists.
    pub(crate) async fn make_key_node(&self, key_node: &str) -> Result<(), StoreError> {
        let container = CreateMode::Container.with_acls(self.acls);
        let made = self
            .sessions
            .run(key_node, |c| {
                let container = &container;
                async move { c.create(key_node, &[], container).await }
            })
            .await;
        match made {
            Ok(_) | Err(Error::NodeExists) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Waits until the node at `path` changes or goes (a release, an expiry by its holder's
    /// timer, the end of its session, a renewal, a promotion), its expiry passes in case nobody
    /// deletes it, or `max_wait` runs out; the reads count against `max_wait`. With
    /// `key_node`, when the node is a shared holder, also until any node under `key_node`
    /// comes or goes: a place that any holder gives up frees the key for a waiter.
    pub(crate) async fn watch(
        &self,
        path: &str,
        key_node: Option<&str>,
        max_wait: Duration,
    ) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let Some((node, Some(watcher))) = self.read(path, true).await? else {
            return Ok(()); // gone already
        };
        let line = match key_node.filter(|_| node.mode == Mode::Shared) {
            Some(key_node) => match self.watch_children(key_node).await? {
                Some(line) => Some(line),
                None => return Ok(()), // the key's node is gone: nothing is held
            },
            None => None,
        };
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(node.time_left());
        let changed = async {
            match line {
                Some(line) => {
                    tokio::select! {
                        _ = watcher.changed() => {}
                        _ = line.changed() => {}
                    }
                }
                None => drop(watcher.changed().await),
            }
        };
        let _ = tokio::time::timeout(wait, changed).await;
        Ok(())
    }

    /// A watch on the nodes under `key_node` coming and going; `None` when it is gone.
    async fn watch_children(&self, key_node: &str) -> Result<Option<OneshotWatcher>, StoreError> {
        let watched = self
            .sessions
            .run(key_node, |c| async move {
                c.list_and_watch_children(key_node).await
            })
            .await;
        match watched {
            Ok((_, watcher)) => Ok(Some(watcher)),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64, mzxid: i64, mtime: i64, version: i32) -> Stat {
        Stat {
            czxid,
            mzxid,
            pzxid: mzxid,
            ctime: mtime,
            mtime,
            version,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
        }
    }

    #[test]
    fn a_create_answered_without_its_stat_takes_its_transactions_zxid_and_time() {
        let results = vec![
            MultiWriteResult::Create {
                path: "/dlock/a/lock-0000000007".into(),
                stat: stat(-1, -1, -1, -1),
            },
            MultiWriteResult::SetData {
                stat: stat(3, 42, 1_000, 5),
            },
            MultiWriteResult::Create {
                path: "/dlock/b/lock-0000000000".into(),
                stat: stat(42, 42, 1_000, 0),
            },
            MultiWriteResult::SetData {
                stat: stat(9, 42, 1_000, 1),
            },
        ];
        let created = created_nodes(results).unwrap();
        let seen: Vec<_> = created
            .iter()
            .map(|c| {
                (
                    c.sequence,
                    c.path.as_str(),
                    c.stat.czxid,
                    c.stat.mtime,
                    c.stat.version,
                    (c.line.czxid, c.line.version),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (7, "/dlock/a/lock-0000000007", 42, 1_000, 0, (3, 5)),
                (0, "/dlock/b/lock-0000000000", 42, 1_000, 0, (9, 1))
            ]
        );
        let out_of_order = vec![MultiWriteResult::SetData {
            stat: stat(3, 42, 1_000, 5),
        }];
        assert!(created_nodes(out_of_order).is_err());
    }
}
