//! The release signal: one watch per store on the whole lock prefix, holders and lines of
//! waiters included, reporting deletions only, relayed to this sidecar's waiters. An unlock, a forced
//! release and an expired lease all delete the key, so all three wake waiters at once. After a
//! broken stream the watch resumes from the revision after the last one it saw, so no release
//! in between is missed; if etcd has compacted that history away it resumes from now, and
//! waiters poll meanwhile.
//!
//! One stream per store, not one per waiting key: waiters come and go every few milliseconds
//! under contention, and a deletion event costs a sidecar nothing when nobody waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::client::Client;
use super::requests::any_in;
use crate::lock::StoreError;
use crate::proto::etcd::etcdserverpb::{
    watch_create_request::FilterType, watch_request::RequestUnion, WatchCreateRequest, WatchRequest,
};
use crate::proto::etcd::mvccpb::event::EventType;

/// Returns when a key of one of `spans` is deleted (at once if none has a key), or after
/// `max_wait`; the look counts against the wait too: the caller's deadline is the caller's.
/// A span is `(start, end)` as etcd reads a range: the keys of `[start, end)`, or the key
/// `start` alone for an empty `end`.
pub(crate) async fn deleted(
    client: &Client,
    released: &broadcast::Sender<Vec<u8>>,
    spans: &[(&[u8], &[u8])],
    max_wait: Duration,
) -> Result<(), StoreError> {
    // Listening before looking: a deletion after the look is on its way to us.
    let mut released = released.subscribe();
    let deleted = async {
        let mut held = false;
        for (start, end) in spans {
            if any_in(client, start, end).await? {
                held = true;
                break;
            }
        }
        if !held {
            return Ok(());
        }
        let within = |key: &[u8]| {
            spans.iter().any(|(start, end)| {
                if end.is_empty() {
                    key == *start
                } else {
                    *start <= key && key < *end
                }
            })
        };
        loop {
            match released.recv().await {
                Ok(deleted) if within(&deleted) => return Ok(()),
                Ok(_) => {}
                // Some deletions were dropped: ours may be among them.
                Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    };
    tokio::time::timeout(max_wait, deleted)
        .await
        .unwrap_or(Ok(()))
}

/// Watches `[prefix, range_end)` for deletions and sends each deleted key on `released`, until
/// the store that started it aborts it (when the store is dropped).
pub(crate) async fn relay_releases(
    etcd: Arc<Client>,
    prefix: Vec<u8>,
    range_end: Vec<u8>,
    released: broadcast::Sender<Vec<u8>>,
) {
    let mut next_revision = 0; // 0: from now
    let mut backoff = Duration::from_millis(100);
    // Dropped with this task, which closes the open watch stream.
    let (_open, open) = tokio::sync::watch::channel(());
    loop {
        let create = WatchCreateRequest {
            key: prefix.clone(),
            range_end: range_end.clone(),
            start_revision: next_revision,
            filters: vec![FilterType::Noput as i32],
        };
        let opened = etcd
            .watch(
                WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(create)),
                },
                open.clone(),
            )
            .await;
        match opened {
            Ok(mut stream) => loop {
                let answer = match stream.message().await {
                    Ok(Some(answer)) => answer,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!("release watch ended, waiters poll: {status}");
                        break;
                    }
                };
                if answer.created {
                    backoff = Duration::from_millis(100);
                    if next_revision == 0 {
                        // Watching from now: what comes after the revision of the answer.
                        next_revision = answer.header.map_or(0, |h| h.revision + 1);
                    }
                }
                if answer.canceled {
                    if answer.compact_revision > 0 {
                        next_revision = 0; // history gone: from now on
                    }
                    tracing::debug!("release watch cancelled: {}", answer.cancel_reason);
                    break;
                }
                for event in answer.events {
                    let Some(kv) = event.kv else { continue };
                    next_revision = next_revision.max(kv.mod_revision + 1);
                    if event.r#type == EventType::Delete as i32 {
                        let _ = released.send(kv.key);
                    }
                }
            },
            Err(error) => tracing::debug!("release signal unavailable, waiters poll: {error}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
