//! What `dlock KEY SECONDS [-- CMD]` asks for, whichever API the sidecar offers (dlock's own,
//! `hold.rs`, or Dapr's only, `dapr_only.rs`), and the words for not getting it.

use std::time::Duration;

use super::Exit;

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
}

/// The default owner: this host and process, so two runs never share an owner.
pub fn default_owner() -> String {
    format!(
        "{}-{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    )
}

pub(crate) fn not_acquired(hold: &Hold) -> Exit {
    match hold.wait {
        Some(Duration::ZERO) => errln!("dlock: '{}' is held by another owner", hold.key),
        Some(wait) => errln!("dlock: gave up waiting for '{}' after {:?}", hold.key, wait),
        None => errln!("dlock: the sidecar stopped waiting for '{}'", hold.key),
    }
    Exit::Failed
}
