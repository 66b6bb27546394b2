//! What `dlock KEY SECONDS [-- CMD]` asks for, whichever API the sidecar offers (dlock's own,
//! `hold.rs`, or Dapr's only, `dapr_only.rs`), and the words for not getting it.

use std::time::Duration;

use super::Exit;
use crate::lock::{Kind, Mode};
use crate::proto::dlock::LockMode;

/// What to lock and how.
pub struct Hold {
    pub key: String,
    pub seconds: u32,
    pub command: Vec<String>,
    pub store: String,
    pub owner: String,
    pub endpoint: String,
    /// How long to wait for the lock; `None`: as long as it takes. Zero: fail at once (`-n`).
    pub wait: Option<Duration>,
    /// Shared (`--shared`, `--limit N`), reentrant (`--reentrant`), or Dapr's plain lock.
    pub kind: Kind,
    /// More keys taken with `key` in one multi-lock (`--also`).
    pub also: Vec<String>,
}

/// The default owner: this host and process, so two runs never share an owner.
pub fn default_owner() -> String {
    format!(
        "{}-{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    )
}

impl Hold {
    /// The resource fields of dlock's requests: `resource_id`, or for a multi-lock
    /// `resource_ids` with every key (and `resource_id` empty).
    pub(crate) fn resources(&self) -> (String, Vec<String>) {
        if self.also.is_empty() {
            return (self.key.clone(), Vec::new());
        }
        let all = std::iter::once(&self.key).chain(&self.also).cloned();
        (String::new(), all.collect())
    }

    /// The kind's fields of dlock's AcquireRequest: mode, limit, reentrant.
    pub(crate) fn kind_fields(&self) -> (i32, u32, bool) {
        let mode = match self.kind.mode {
            Mode::Exclusive => LockMode::Exclusive,
            Mode::Shared => LockMode::Shared,
        };
        (mode.into(), self.kind.limit, self.kind.reentrant)
    }
}

pub(crate) fn not_acquired(hold: &Hold) -> Exit {
    match hold.wait {
        Some(Duration::ZERO) => errln!("dlock: '{}' is held by another owner", hold.key),
        Some(wait) => errln!("dlock: gave up waiting for '{}' after {:?}", hold.key, wait),
        None => errln!("dlock: the sidecar stopped waiting for '{}'", hold.key),
    }
    Exit::Failed
}
