//! What this sidecar last saw of each lock blob: its ETag, whether it was leased, and its
//! record and holders. A change that starts from what was last seen skips reading the blob first: the
//! write is conditioned on that ETag anyway, so if someone changed the blob since, the write
//! fails and the store reads it and tries again. A holder's release and renewal, and a try
//! after a release through this sidecar, thus cost one request less, which is most of a
//! hand-over's time on a storage service a round trip away.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::line::Line;
use super::record::Record;
use crate::lock::holders::Record as Holders;

/// Blobs remembered at most; past that the memory starts over.
const LIMIT: usize = 10_000;

/// A blob as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) etag: String,
    pub(crate) leased: bool,
    pub(crate) record: Record,
    /// The holders record (`form.rs`); `None` for a plain lock's blob.
    pub(crate) holders: Option<Holders>,
    /// The waiters in line (`line.rs`), not yet purged of the expired.
    pub(crate) line: Line,
}

#[derive(Default)]
pub(crate) struct Known {
    blobs: Mutex<HashMap<String, Seen>>,
}

impl Known {
    fn blobs(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        // Each change under this mutex is one map operation: poisoning leaves nothing half done.
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, blob: &str) -> Option<Seen> {
        self.blobs().get(blob).cloned()
    }

    /// Remembers `seen`; an answer without an ETag is forgotten instead.
    pub(crate) fn saw(&self, blob: &str, seen: Seen) {
        let mut blobs = self.blobs();
        if seen.etag.is_empty() {
            blobs.remove(blob);
            return;
        }
        if blobs.len() >= LIMIT {
            blobs.clear();
        }
        blobs.insert(blob.to_string(), seen);
    }

    pub(crate) fn forget(&self, blob: &str) {
        self.blobs().remove(blob);
    }
}
