//! The line a waiting `dlock` shows: who holds the lock it waits for, and for how long yet,
//! followed while it waits (the holder changes when someone ahead in line takes it).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::connect::Locks;
use super::hold_request::Hold;
use crate::proto::dlock::{InspectRequest, LockInfo};

/// The line saying who holds the lock while dlock waits for it: on a terminal rewritten in
/// place every second (holder and time left); otherwise a new line whenever the holder changes,
/// so a log shows who dlock waited for.
pub(crate) struct WaitingLine {
    live: bool,
    holder: Option<String>,
}

impl WaitingLine {
    pub(crate) fn new() -> Self {
        WaitingLine {
            live: std::io::stderr().is_terminal(),
            holder: None,
        }
    }

    pub(crate) fn show(&mut self, key: &str, lock: &LockInfo) {
        // A shared lock shows its first holder, and how many others hold it too.
        let others = match lock.holders.len() {
            0 | 1 => String::new(),
            2 => " and 1 other".to_string(),
            n => format!(" and {} others", n - 1),
        };
        let text = format!(
            "dlock: '{key}' is held by {}{others} ({:.1}s left); waiting…",
            lock.lock_owner,
            lock.expires_in_ms as f64 / 1000.0
        );
        if self.live {
            // Back to the line's start, clear it, write it again.
            err!("\r\x1b[K{text}");
            let _ = std::io::stderr().flush();
        } else if self.holder.as_deref() != Some(&lock.lock_owner) {
            errln!("{text}");
        }
        self.holder = Some(lock.lock_owner.clone());
    }

    /// Looks at the holder every second, showing it, until dropped (when the wait ends).
    pub(crate) async fn follow(&mut self, mut locks: Locks, hold: &Hold) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let request = InspectRequest {
                store_name: hold.store.clone(),
                resource_id: hold.key.clone(),
            };
            // A failed look is skipped: the acquire's own answer reports the sidecar's errors.
            if let Ok(answer) = locks.inspect(request).await {
                if let Some(lock) = answer.into_inner().lock {
                    self.show(&hold.key, &lock);
                }
            }
        }
    }

    /// Ends a line left open on a terminal, so the next message starts on a line of its own.
    pub(crate) fn end(&self) {
        if self.live && self.holder.is_some() {
            errln!();
        }
    }
}
