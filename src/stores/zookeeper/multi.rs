//! Multi-locks in ZooKeeper (`lock::multi`): the nodes of every key of a multi-lock are
//! created, and deleted, in one `multi()` transaction, so no other client ever sees some of
//! its keys held and the others not.
//!
//! A key's holder is decided by its line of sequential nodes, which no transaction can look
//! at: ZooKeeper's `check` compares a node's data version, never its children. So every node
//! that joins a line also writes its key node's data in the same transaction
//! (`Tree::enter`), which moves the key node's version on. A multi-lock reads each key node's
//! version and then its line, in one multi-read, and decides from the line whether a node of
//! its own would hold the key (`admission.rs`, for every kind: a node that joins at the end is
//! admitted by the nodes ahead of it, and those can only go). Then one transaction, for every
//! key, writes the key node only at the version read, which fails if any node joined since,
//! and creates the owner's node: all of them hold their keys, or nothing is written. A node
//! that left meanwhile only makes room. A missing key node is created in the transaction too,
//! which fails if someone else made it meanwhile.
//!
//! The nodes are created through the session of the first key's node, which is the session
//! the sidecar's other requests on that key use too; they are ephemeral on it, and each lock's
//! own expiry is kept as a single lock's is (`grants.rs`). A re-entry (the owner holds every
//! key already, reentrantly) takes one more hold of each key in turn, the core's way: each key
//! stays the owner's throughout, so no other client sees any key change hands.
//!
//! A release reads the owner's node of every key and deletes them (or writes a count one
//! lower) in one transaction, each conditional on the version read.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{CreateMode, Error, MultiReadResult};

use super::admission::{self, Decision};
use super::names;
use super::record::{self, Contender};
use super::session::store_error;
use super::tree::{busy, created_nodes, Created, Tree, MAX_LOOKS};
use crate::lock::multi::{self, ManyOutcome};
use crate::lock::{Grant, Kind, OwnerChecked, Released, StoreError};

/// A key's node as a multi-lock's read found it: its version (`None`: missing), and its live
/// contenders in line order.
struct Line {
    key_node: String,
    version: Option<i32>,
    nodes: Vec<Contender>,
}

/// `acquire_many`: every key or none, in one transaction; `None` for a re-entry, which the
/// caller takes key by key (see the module's doc).
pub(crate) async fn acquire_all(
    tree: Arc<Tree>,
    keys: Vec<String>,
    owner: String,
    ttl: Duration,
    kind: Kind,
) -> Result<Option<ManyOutcome>, StoreError> {
    for _ in 0..MAX_LOOKS {
        let Some(lines) = read_lines(&tree, &keys).await? else {
            continue; // expired nodes were deleted: read again
        };
        for line in &lines {
            match admission::decide(&line.nodes, &owner, kind) {
                Decision::Granted => {}
                Decision::Reenter(_) => return Ok(None),
                Decision::Held => return Ok(Some(ManyOutcome::Held)),
                Decision::Refused(conflict) => {
                    return Ok(Some(ManyOutcome::Refused(conflict)));
                }
            }
        }
        let data = record::kind_data(&owner, ttl, kind);
        let Some(created) = create_all(&tree, &lines, &data).await? else {
            continue; // a line changed since the read
        };
        let mut grants = Vec::with_capacity(keys.len());
        for (key, created) in keys.iter().zip(created) {
            let node = Contender::parse(&created.path, &data, created.stat)?;
            grants.push(Grant::first(Some(node.fencing_token())));
            tree.grants.granted(tree.sessions.clone(), key, node, None);
        }
        return Ok(Some(ManyOutcome::Granted(grants)));
    }
    Err(busy(&keys[0]))
}

/// Every key node's version, then its contenders, in one multi-read; then the contenders'
/// data in another. `None` when expired nodes were found (and deleted): read again then.
async fn read_lines(tree: &Tree, keys: &[String]) -> Result<Option<Vec<Line>>, StoreError> {
    let key_nodes: Vec<String> = keys.iter().map(|key| tree.key_node(key)).collect();
    // The version before the children: a node that joins between the two reads shows in the
    // children and moves the version, so the transaction fails rather than miss it.
    let mut reads = Vec::with_capacity(2 * keys.len());
    for key_node in &key_nodes {
        reads.extend([(key_node.clone(), false), (key_node.clone(), true)]);
    }
    let found = read_mixed(tree, reads).await?;
    let mut lines = Vec::with_capacity(keys.len());
    let mut paths = Vec::new();
    for (key_node, read) in key_nodes.into_iter().zip(found.chunks(2)) {
        let version = match &read[0] {
            MultiReadResult::Data { stat, .. } => Some(stat.version),
            _ => None,
        };
        let children = match &read[1] {
            MultiReadResult::Children { children } if version.is_some() => children.clone(),
            _ => Vec::new(),
        };
        let mut line = names::contenders(&children);
        line.sort();
        let of_key: Vec<String> = line
            .iter()
            .map(|(_, name)| format!("{key_node}/{name}"))
            .collect();
        paths.push(of_key);
        lines.push(Line {
            key_node,
            version,
            nodes: Vec::new(),
        });
    }
    let all: Vec<String> = paths.iter().flatten().cloned().collect();
    let mut data = tree.read_many(all, false).await?.into_iter();
    let mut expired = Vec::new();
    for ((line, of_key), key) in lines.iter_mut().zip(&paths).zip(keys) {
        for (path, read) in of_key.iter().zip(data.by_ref()) {
            // A node gone between the listing and the read is no longer in line.
            if let MultiReadResult::Data { data, stat } = read {
                let node = Contender::parse(path, &data, stat)?;
                if node.expired() {
                    expired.push((key, node));
                } else {
                    line.nodes.push(node);
                }
            }
        }
    }
    if expired.is_empty() {
        return Ok(Some(lines));
    }
    // Each holder has its own expiry, kept by whoever finds it past (as `kinds.rs` does).
    for (key, node) in expired {
        tree.delete(key, &node.path, Some(node.stat.version))
            .await?;
    }
    Ok(None)
}

/// One multi-read of `reads`: each path's data, or with `true` its children.
async fn read_mixed(
    tree: &Tree,
    reads: Vec<(String, bool)>,
) -> Result<Vec<MultiReadResult>, StoreError> {
    tree.sessions
        .run(&tree.root, |c| {
            let reads = &reads;
            async move {
                let mut reader = c.new_multi_reader();
                for (path, children) in reads {
                    if *children {
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

/// The transaction of a multi-lock: the missing key nodes made, then for every key its node
/// created and its key node written at the version read. The created nodes, in the keys'
/// order; `None` when a line changed since it was read.
async fn create_all(
    tree: &Tree,
    lines: &[Line],
    data: &[u8],
) -> Result<Option<Vec<Created>>, StoreError> {
    let contender = CreateMode::EphemeralSequential.with_acls(tree.acls);
    let container = CreateMode::Container.with_acls(tree.acls);
    let missing = lines.iter().filter(|line| line.version.is_none()).count();
    let written = tree
        .sessions
        .run(&lines[0].key_node, |c| {
            let (contender, container) = (&contender, &container);
            async move {
                let mut writer = c.new_multi_writer();
                for line in lines.iter().filter(|line| line.version.is_none()) {
                    writer.add_create(&line.key_node, &[], container)?;
                }
                for line in lines {
                    let prefix = names::contender_prefix(&line.key_node);
                    writer.add_create(&prefix, data, contender)?;
                    writer.add_set_data(&line.key_node, &[], Some(line.version.unwrap_or(0)))?;
                }
                Ok(writer.commit().await?)
            }
        })
        .await;
    match written {
        Ok(results) => created_nodes(results.into_iter().skip(missing).collect()).map(Some),
        // A node joined a line (a version moved), or a key node came or went.
        Err(Error::BadVersion | Error::NodeExists | Error::NoNode) => Ok(None),
        Err(e) => Err(store_error(e)),
    }
}

/// `release_many`: one of `owner`'s holds of every key (or all of them), in one transaction.
pub(crate) async fn release_all(
    tree: &Tree,
    keys: &[String],
    owner: &str,
    all_holds: bool,
) -> Result<Released, StoreError> {
    for _ in 0..MAX_LOOKS {
        let mut each = Vec::with_capacity(keys.len());
        // The owner's node of each key it holds, and the holds it keeps there.
        let mut changes: Vec<(&String, Contender, u32)> = Vec::new();
        for key in keys {
            let holders = tree.holders(key).await?;
            let Some(node) = holders.iter().find(|holder| holder.owner == owner) else {
                let outcome = if holders.is_empty() {
                    OwnerChecked::NotHeld
                } else {
                    OwnerChecked::HeldByOther
                };
                each.push(Released {
                    outcome,
                    holds_left: 0,
                });
                continue;
            };
            let left = if all_holds { 0 } else { node.holds - 1 };
            each.push(Released {
                outcome: OwnerChecked::Applied,
                holds_left: left,
            });
            changes.push((key, node.clone(), left));
        }
        if changes.is_empty() {
            return Ok(multi::released_whole(&each));
        }
        let written = tree
            .sessions
            .run(&tree.key_node(changes[0].0), |c| {
                let changes = &changes;
                async move {
                    let mut writer = c.new_multi_writer();
                    for (_, node, left) in changes {
                        let version = Some(node.stat.version);
                        if *left == 0 {
                            writer.add_delete(&node.path, version)?;
                        } else {
                            let data = node.data_with(node.time_left(), *left);
                            writer.add_set_data(&node.path, &data, version)?;
                        }
                    }
                    Ok(writer.commit().await?)
                }
            })
            .await;
        match written {
            Ok(results) => {
                for ((key, node, left), result) in changes.into_iter().zip(results) {
                    match result {
                        zookeeper_client::MultiWriteResult::SetData { stat } => {
                            let rewritten = node.rewritten(node.time_left(), left, stat);
                            tree.grants.rewritten(key, rewritten);
                        }
                        _ => tree.grants.ended(key, &node.path),
                    }
                }
                return Ok(multi::released_whole(&each));
            }
            // A node changed or went since it was read: read again.
            Err(Error::BadVersion | Error::NoNode) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(busy(&keys[0]))
}
