//! How a held lock runs out and ends, whichever API held it: the countdown of a hold without a
//! command, stopping the command, its exit code, and the release with what it says about a lock
//! that was already gone.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::connect::{report, Client, Locks};
use super::hold_request::Hold;
use super::Exit;
use crate::interrupt::Interrupt;
use crate::proto::dapr::unlock_response::Status;
use crate::proto::dapr::UnlockRequest;
use crate::proto::dlock::ReleaseRequest;

pub(crate) async fn count_down(hold: &Hold, interrupt: &mut Interrupt) -> Exit {
    let until = Instant::now() + Duration::from_secs(hold.seconds.into());
    let live = std::io::stderr().is_terminal();
    if !live {
        errln!("dlock: holding '{}' for {}s", hold.key, hold.seconds);
    }
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if live {
            err!(
                "\rdlock: holding '{}': {}s left ",
                hold.key,
                left.as_secs_f64().ceil() as u64
            );
            let _ = std::io::stderr().flush();
        }
        // Wake when the whole seconds shown change.
        let fraction = left - Duration::from_secs(left.as_secs());
        let tick = if fraction.is_zero() {
            Duration::from_secs(1)
        } else {
            fraction
        };
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = interrupt.wait() => {
                if live { errln!(); }
                errln!("dlock: interrupted; releasing '{}'", hold.key);
                return Exit::Interrupted;
            }
        }
    }
    if live {
        errln!();
    }
    Exit::Ok
}

/// Stops the command and waits for it to end: SIGTERM on Unix, so it can clean up. Windows has
/// no SIGTERM (a Ctrl-Break reaches only a child started in a process group of its own), so
/// there the command is killed.
#[allow(unsafe_code, reason = "kill(2) is a libc call")]
pub(crate) async fn terminate(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with our child's pid and a signal number has no memory effects.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    #[cfg(windows)]
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// The command's exit code; on Unix a command ended by a signal gives 128 + the signal, as
/// shells report it. (On Windows every ended process has a code.)
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    let by_signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal().map(|s| 128 + s)
    };
    #[cfg(not(unix))]
    let by_signal = None;
    status.code().or(by_signal).unwrap_or(1)
}

/// How much earlier than its answer's arrival a grant may have been made, generously: a
/// sidecar answers within milliseconds of the store's grant. Used to tell a lock that expired
/// from one taken away before its expiry.
pub(crate) const GRANT_LATENCY: Duration = Duration::from_millis(500);

/// Releases the lock held without a command. A lock already gone was taken away (by an
/// operator's force release, or lost by the store) if that happened before
/// `expires_no_sooner`; after it, it may simply have expired.
pub(crate) async fn release(client: &mut Client, hold: &Hold, expires_no_sooner: Instant) -> Exit {
    let request = UnlockRequest {
        store_name: hold.store.clone(),
        resource_id: hold.key.clone(),
        lock_owner: hold.owner.clone(),
    };
    let answer = client.unlock_alpha1(request).await;
    let status = answer.map(|response| response.get_ref().status());
    released(hold, status, expires_no_sooner)
}

/// Releases a multi-lock held without a command, every key as one, through dlock's own
/// Release, and says what its answer means as `release` does.
pub(crate) async fn release_all(
    locks: &mut Locks,
    hold: &Hold,
    expires_no_sooner: Instant,
) -> Exit {
    let (resource_id, resource_ids) = hold.resources();
    let request = ReleaseRequest {
        store_name: hold.store.clone(),
        resource_id,
        lock_owner: hold.owner.clone(),
        resource_ids,
        ..ReleaseRequest::default()
    };
    let answer = locks.release(request).await;
    // dlock's LockStatus numbers its answers as Dapr's unlock does.
    let status = answer.map(|response| {
        Status::try_from(response.get_ref().status).unwrap_or(Status::InternalError)
    });
    released(hold, status, expires_no_sooner)
}

/// What a release's answer says about the lock, and dlock's exit for it.
fn released(
    hold: &Hold,
    answer: Result<Status, tonic::Status>,
    expires_no_sooner: Instant,
) -> Exit {
    let early = Instant::now() < expires_no_sooner;
    let key = &hold.key;
    match answer {
        Ok(status) => match status {
            Status::Success => {
                errln!("dlock: released '{key}'");
                Exit::Ok
            }
            Status::LockDoesNotExist if early => {
                errln!(
                    "dlock: '{key}' was released by an operator (or lost by the store) before \
                     its expiry, while dlock held it"
                );
                Exit::Failed
            }
            Status::LockDoesNotExist => {
                errln!("dlock: '{key}' had already expired before dlock released it");
                Exit::Failed
            }
            Status::LockBelongsToOthers if early => {
                errln!(
                    "dlock: '{key}' was released by an operator (or lost by the store) before \
                     its expiry, and is now held by another owner"
                );
                Exit::Failed
            }
            Status::LockBelongsToOthers => {
                errln!("dlock: '{key}' expired and is now held by another owner");
                Exit::Failed
            }
            Status::InternalError => {
                errln!("dlock: the store failed to release '{}'", hold.key);
                Exit::Failed
            }
        },
        Err(status) => report(&hold.endpoint, &status),
    }
}
