//! `dlock KEY SECONDS [-- CMD]` through a sidecar that serves Dapr's lock API but not dlock's
//! own: daprd itself, or a dlockd whose Configuration closes `dlock v1`. This is what lets an
//! operator run the same cluster check on a daprd fleet.
//!
//! Dapr's API has neither a blocking acquire nor renewal, so here dlock waits by trying
//! TryLockAlpha1 again and again (backing off to at most 100 ms between tries: no arrival
//! order, and a release is seen up to 100 ms late), and holds the lock at most SECONDS, its
//! expiry: a command still running then is stopped, as when a lock is lost. It says so in one
//! line before it starts.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;

use super::connect::{self, report, Client, Locks};
use super::hold_end::{count_down, exit_code, release, terminate};
use super::hold_request::{not_acquired, Hold};
use super::Exit;
use crate::interrupt::Interrupt;
use crate::proto::dapr::TryLockRequest;
use crate::proto::dlock::InspectRequest;

/// The first and the longest pause between two tries while the lock is held by someone else.
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(100);

/// Whether the sidecar lacks dlock's own API, asked with a harmless call. A dlockd that closes
/// it answers UNIMPLEMENTED; daprd takes any service it does not know for a gRPC service
/// invocation, and without an app id to call answers UNKNOWN "failed to proxy request: …".
pub(crate) async fn lacks_dlock_api(locks: &mut Locks, hold: &Hold) -> bool {
    let probe = InspectRequest {
        store_name: hold.store.clone(),
        resource_id: hold.key.clone(),
    };
    match locks.inspect(probe).await {
        Ok(_) => false,
        // An HTTP port answers 404, which tonic reports as UNIMPLEMENTED too: that is no
        // sidecar without dlock's API, but the wrong port, which the take reports.
        Err(status) if connect::not_grpc(&status) => false,
        Err(status) => {
            status.code() == Code::Unimplemented
                || (status.code() == Code::Unknown
                    && status.message().starts_with("failed to proxy request"))
        }
    }
}

/// Takes the lock with Dapr's calls only, holds it (or runs the command under it) and releases
/// it.
pub(crate) async fn run(dapr: &mut Client, hold: &Hold, interrupt: &mut Interrupt) -> Exit {
    errln!(
        "dlock: the sidecar does not serve dlock's own API; using Dapr's TryLockAlpha1 and \
         UnlockAlpha1: waiting polls every 100 ms at most, and the lock is held at most {}s \
         (Dapr's API cannot renew it)",
        hold.seconds
    );
    // Without a command the lock outlives the hold by a second, so dlock (not the expiry)
    // releases it; with one, the expiry is the most the command may run.
    let expiry = if hold.command.is_empty() {
        hold.seconds.saturating_add(1)
    } else {
        hold.seconds
    };
    let asked_at = match take(dapr, hold, expiry, interrupt).await {
        Ok(asked_at) => asked_at,
        Err(exit) => return exit,
    };
    errln!("dlock: acquired '{}' as {}", hold.key, hold.owner);
    if hold.command.is_empty() {
        let ended = count_down(hold, interrupt).await;
        let expires = asked_at + Duration::from_secs(expiry.into());
        let released = release(dapr, hold, expires.into_std()).await;
        return match ended {
            Exit::Ok => released,
            ended => ended,
        };
    }
    // The store granted the lock after the request left, so it expires no sooner than this.
    let expires = asked_at + Duration::from_secs(hold.seconds.into());
    run_command(dapr, hold, expires, interrupt).await
}

/// Tries until the lock is granted, the wait runs out or the user interrupts; when granted,
/// the time the granting request was sent.
async fn take(
    dapr: &mut Client,
    hold: &Hold,
    expiry: u32,
    interrupt: &mut Interrupt,
) -> Result<Instant, Exit> {
    let started = Instant::now();
    let mut poll = FIRST_POLL;
    let mut said_waiting = false;
    loop {
        let request = TryLockRequest {
            store_name: hold.store.clone(),
            resource_id: hold.key.clone(),
            lock_owner: hold.owner.clone(),
            expiry_in_seconds: i32::try_from(expiry).unwrap_or(i32::MAX),
        };
        let asked_at = Instant::now();
        let granted = dapr
            .try_lock_alpha1(request)
            .await
            .map_err(|status| report(&hold.endpoint, &status))?
            .into_inner()
            .success;
        if granted {
            return Ok(asked_at);
        }
        let left = match hold.wait {
            Some(wait) => wait.saturating_sub(started.elapsed()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return Err(not_acquired(hold));
        }
        if !said_waiting {
            errln!("dlock: '{}' is held by another owner; waiting…", hold.key);
            said_waiting = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll.min(left)) => {}
            _ = interrupt.wait() => {
                errln!("dlock: interrupted while waiting for '{}'", hold.key);
                return Err(Exit::Interrupted);
            }
        }
        poll = (poll * 2).min(MAX_POLL);
    }
}

/// Runs the command until it ends or the lock expires; its exit code becomes dlock's.
async fn run_command(
    dapr: &mut Client,
    hold: &Hold,
    expires: Instant,
    interrupt: &mut Interrupt,
) -> Exit {
    let mut command = tokio::process::Command::new(&hold.command[0]);
    command.args(&hold.command[1..]).env("DLOCK_KEY", &hold.key);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            errln!("dlock: can't run {}: {e}", hold.command[0]);
            release(dapr, hold, expires.into_std()).await;
            return Exit::Command(127);
        }
    };
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Exit::Command(exit_code(status)),
            Err(e) => {
                errln!("dlock: lost track of the command: {e}");
                Exit::Failed
            }
        },
        _ = tokio::time::sleep_until(expires) => {
            errln!(
                "dlock: '{}' expires now, after {}s (Dapr's API cannot renew it); stopping the \
                 command",
                hold.key, hold.seconds
            );
            terminate(&mut child).await;
            return Exit::Lost;
        }
        _ = interrupt.wait() => {
            terminate(&mut child).await;
            errln!("dlock: interrupted; releasing '{}'", hold.key);
            Exit::Interrupted
        }
    };
    release(dapr, hold, expires.into_std()).await;
    exit
}
