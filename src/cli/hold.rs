//! `dlock KEY SECONDS [-- CMD ARGS…]`: take KEY through the sidecar, waiting while someone else
//! holds it; then hold it for SECONDS, or run CMD under it, and release it. Run on two servers
//! at once, it shows a cluster working: the second waits until the first releases.
//!
//! Waiting uses the sidecar's blocking acquire (first come, first served, woken by the
//! release). With a command, the lock is held in a session the sidecar renews, so a command
//! may run longer than SECONDS; if the lock is lost, the command gets SIGTERM (on Windows it is
//! killed) and dlock exits with its own code, as `consul lock` does.
//!
//! A sidecar without dlock's own API (daprd) gets Dapr's calls only (`dapr_only.rs`).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::connect::{self, report, Client, Locks};
use super::dapr_only;
use super::hold_end::{count_down, exit_code, release, release_all, terminate, GRANT_LATENCY};
use super::hold_request::{not_acquired, Hold};
use super::waiting_line::WaitingLine;
use super::Exit;
use crate::interrupt::Interrupt;
use crate::proto::dlock::hold_event::Event;
use crate::proto::dlock::hold_request::Action;
use crate::proto::dlock::{AcquireRequest, HoldEvent, HoldRequest, InspectRequest, Release};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(hold: Hold) -> Exit {
    let mut interrupt = Interrupt::new().expect("the stop-request handlers can be installed");
    let clients = async {
        let channel = connect::channel(&hold.endpoint, CONNECT_TIMEOUT).await?;
        Ok::<_, String>((
            connect::dapr_on(channel.clone()),
            connect::locks_on(channel),
        ))
    };
    let (mut dapr, mut locks) = match clients.await {
        Ok(clients) => clients,
        Err(message) => {
            errln!("dlock: {message}");
            return Exit::Unreachable;
        }
    };
    if dapr_only::lacks_dlock_api(&mut locks, &hold).await {
        if !hold.also.is_empty() {
            errln!(
                "dlock: this sidecar serves Dapr's lock API only, which takes one key at a \
                 time: drop --also, or use dlockd"
            );
            return Exit::Failed;
        }
        if !hold.kind.is_plain() {
            errln!(
                "dlock: this sidecar serves Dapr's lock API only, which has no shared, limited \
                 or reentrant locks: drop --shared, --limit and --reentrant, or use dlockd"
            );
            return Exit::Failed;
        }
        return dapr_only::run(&mut dapr, &hold, &mut interrupt).await;
    }
    let mut line = WaitingLine::new();
    if let Err(exit) = say_if_waiting(&mut locks, &hold, &mut line).await {
        return exit;
    }
    if hold.command.is_empty() {
        hold_for(&mut dapr, &mut locks, &hold, &mut interrupt, line).await
    } else {
        run_command(&mut locks, &hold, &mut interrupt, line).await
    }
}

/// The acquire, waiting what is left of `--wait` after `waited`.
fn acquire_request(hold: &Hold, expiry: u32, waited: Duration) -> AcquireRequest {
    let (mode, limit, reentrant) = hold.kind_fields();
    let (resource_id, resource_ids) = hold.resources();
    AcquireRequest {
        store_name: hold.store.clone(),
        resource_id,
        lock_owner: hold.owner.clone(),
        expiry_in_seconds: i32::try_from(expiry).unwrap_or(i32::MAX),
        wait_timeout_ms: hold.wait.map_or(i64::MAX, |w| {
            w.saturating_sub(waited).as_millis().min(i64::MAX as u128) as i64
        }),
        require_fencing: false,
        mode,
        limit,
        reentrant,
        resource_ids,
    }
}

/// Whether the sidecar ended the wait because the store was reconfigured (a component file
/// edited under it): the new version has a line of its own, so dlock asks again by itself.
fn ask_again(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Aborted {
        return false;
    }
    errln!("dlock: {}; asking again", status.message());
    true
}

/// Tells the user, before waiting, who holds the lock; the sidecar's errors (an unknown store,
/// a port that is not its gRPC port) show here, before any wait.
async fn say_if_waiting(
    locks: &mut Locks,
    hold: &Hold,
    line: &mut WaitingLine,
) -> Result<(), Exit> {
    let request = InspectRequest {
        store_name: hold.store.clone(),
        resource_id: hold.key.clone(),
    };
    let held = locks
        .inspect(request)
        .await
        .map_err(|status| report(&hold.endpoint, &status))?
        .into_inner();
    if let Some(lock) = held.lock.filter(|_| hold.wait != Some(Duration::ZERO)) {
        line.show(&hold.key, &lock);
    }
    Ok(())
}

/// Takes the lock, holds it for SECONDS showing the time left, releases it. Without a
/// command the lock outlives the hold by a second, so dlock (not the expiry) releases it.
async fn hold_for(
    dapr: &mut Client,
    locks: &mut Locks,
    hold: &Hold,
    interrupt: &mut Interrupt,
    mut line: WaitingLine,
) -> Exit {
    let expiry = hold.seconds.saturating_add(1);
    let started = Instant::now();
    let answer = loop {
        let request = acquire_request(hold, expiry, started.elapsed());
        let watcher = locks.clone();
        let answer = tokio::select! {
            answer = locks.acquire(request) => answer,
            () = line.follow(watcher, hold) => unreachable!("following the holder never ends"),
            _ = interrupt.wait() => {
                line.end();
                errln!("dlock: interrupted while waiting for '{}'", hold.key);
                return Exit::Interrupted;
            }
        };
        match answer {
            Err(status) if ask_again(&status) => continue,
            answer => break answer,
        }
    };
    line.end();
    match answer {
        Ok(answer) if answer.get_ref().acquired => {
            errln!("dlock: acquired '{}' as {}", hold.key, hold.owner);
        }
        Ok(_) => return not_acquired(hold),
        Err(status) => return report(&hold.endpoint, &status),
    }
    let expires_no_sooner = Instant::now() + Duration::from_secs(expiry.into()) - GRANT_LATENCY;
    let ended = count_down(hold, interrupt).await;
    let released = if hold.also.is_empty() {
        release(dapr, hold, expires_no_sooner).await
    } else {
        release_all(locks, hold, expires_no_sooner).await
    };
    match ended {
        Exit::Ok => released,
        ended => ended,
    }
}

/// Runs the command in a held session; its exit code becomes dlock's.
async fn run_command(
    locks: &mut Locks,
    hold: &Hold,
    interrupt: &mut Interrupt,
    mut line: WaitingLine,
) -> Exit {
    let started = Instant::now();
    let (requests, mut events, first) = loop {
        let (requests, outbound) = mpsc::channel(2);
        let acquire = acquire_request(hold, hold.seconds, started.elapsed());
        let acquire = HoldRequest {
            action: Some(Action::Acquire(acquire)),
        };
        if requests.send(acquire).await.is_err() {
            return Exit::Failed;
        }
        let mut events = match locks.hold(ReceiverStream::new(outbound)).await {
            Ok(events) => events.into_inner(),
            Err(status) => return report(&hold.endpoint, &status),
        };
        let first = tokio::select! {
            first = next_event(&mut events) => first,
            () = line.follow(locks.clone(), hold) => unreachable!("following the holder never ends"),
            _ = interrupt.wait() => {
                line.end();
                errln!("dlock: interrupted while waiting for '{}'", hold.key);
                return Exit::Interrupted;
            }
        };
        match first {
            Err(status) if ask_again(&status) => continue,
            first => break (requests, events, first),
        }
    };
    line.end();
    let grant = match first {
        Ok(Event::Acquired(grant)) => grant,
        Ok(Event::TimedOut(_)) => return not_acquired(hold),
        Ok(other) => {
            errln!("dlock: unexpected answer from the sidecar: {other:?}");
            return Exit::Failed;
        }
        Err(status) => return report(&hold.endpoint, &status),
    };
    errln!("dlock: acquired '{}' as {}", hold.key, hold.owner);

    let mut command = tokio::process::Command::new(&hold.command[0]);
    command.args(&hold.command[1..]).env("DLOCK_KEY", &hold.key);
    if grant.has_fencing {
        command.env("DLOCK_FENCING_TOKEN", grant.fencing_token.to_string());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            errln!("dlock: can't run {}: {e}", hold.command[0]);
            end_session(&requests, &mut events).await;
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
        event = next_event(&mut events) => {
            let why = match event {
                Ok(Event::Lost(lost)) => lost.reason,
                Ok(other) => format!("unexpected answer from the sidecar: {other:?}"),
                Err(status) => format!("the session with the sidecar broke: {}", status.message()),
            };
            errln!("dlock: lost '{}': {why}; stopping the command", hold.key);
            terminate(&mut child).await;
            return Exit::Lost;
        }
        _ = interrupt.wait() => {
            terminate(&mut child).await;
            errln!("dlock: interrupted; releasing '{}'", hold.key);
            Exit::Interrupted
        }
    };
    end_session(&requests, &mut events).await;
    exit
}

/// The session's next event; the stream ending counts as the sidecar going away.
async fn next_event(events: &mut tonic::Streaming<HoldEvent>) -> Result<Event, tonic::Status> {
    match events.message().await? {
        Some(HoldEvent { event: Some(event) }) => Ok(event),
        _ => Err(tonic::Status::unavailable("the sidecar ended the session")),
    }
}

/// Asks the sidecar to release the session's lock and waits for its word.
async fn end_session(
    requests: &mpsc::Sender<HoldRequest>,
    events: &mut tonic::Streaming<HoldEvent>,
) {
    let release = HoldRequest {
        action: Some(Action::Release(Release {})),
    };
    let _ = requests.send(release).await;
    match events.message().await {
        Ok(Some(HoldEvent {
            event: Some(Event::Released(_)),
        })) => {
            errln!("dlock: released the lock");
        }
        Ok(Some(HoldEvent {
            event: Some(Event::Lost(lost)),
        })) => {
            errln!("dlock: the lock was lost before release: {}", lost.reason);
        }
        other => errln!("dlock: the release was not confirmed: {other:?}"),
    }
}
