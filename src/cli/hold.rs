//! `dlock KEY SECONDS [-- CMD ARGS…]`: take KEY through the sidecar, waiting while someone else
//! holds it; then hold it for SECONDS (or while CMD runs) and release it. Run on two servers at
//! once, it shows a cluster working: the second waits until the first releases.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tonic::Code;

use super::connect::{self, Client};
use super::Exit;
use crate::proto::dapr::unlock_response::Status;
use crate::proto::dapr::{TryLockRequest, UnlockRequest};

const FIRST_RETRY: Duration = Duration::from_millis(5);
const MAX_RETRY: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to lock and how.
pub struct Hold {
    pub key: String,
    pub seconds: u32,
    pub command: Vec<String>,
    pub store: String,
    pub owner: String,
    pub endpoint: String,
}

/// The default owner: this host and process, so two runs never share an owner.
pub fn default_owner() -> String {
    format!(
        "{}-{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    )
}

/// Resolves when SIGINT or SIGTERM arrives.
struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> Self {
        Interrupt {
            int: signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed"),
            term: signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed"),
        }
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

pub async fn run(hold: Hold) -> Exit {
    let mut interrupt = Interrupt::new();
    let mut client = match connect::grpc(&hold.endpoint, CONNECT_TIMEOUT).await {
        Ok(client) => client,
        Err(message) => {
            eprintln!("dlock: {message}");
            return Exit::Unreachable;
        }
    };
    // Without a command the lock outlives the hold by a second, so dlock (not the store's
    // expiry) is what releases it. With a command, SECONDS is the most the lock protects.
    let expiry = if hold.command.is_empty() {
        hold.seconds.saturating_add(1)
    } else {
        hold.seconds
    };
    tokio::select! {
        acquired = acquire(&mut client, &hold, expiry) => {
            if let Err(exit) = acquired {
                return exit;
            }
        }
        _ = interrupt.wait() => {
            eprintln!("dlock: interrupted while waiting for '{}'", hold.key);
            return Exit::Interrupted;
        }
    }
    let taken = Instant::now();
    let ended = if hold.command.is_empty() {
        hold_for(&hold, &mut interrupt).await
    } else {
        run_command(&hold, taken, &mut interrupt).await
    };
    let released = release(&mut client, &hold).await;
    match (ended, released) {
        (Exit::Ok, released) => released,
        (ended, _) => ended,
    }
}

async fn acquire(client: &mut Client, hold: &Hold, expiry: u32) -> Result<(), Exit> {
    let request = TryLockRequest {
        store_name: hold.store.clone(),
        resource_id: hold.key.clone(),
        lock_owner: hold.owner.clone(),
        expiry_in_seconds: i32::try_from(expiry).unwrap_or(i32::MAX),
    };
    let mut backoff = FIRST_RETRY;
    let mut said_waiting = false;
    loop {
        match client.try_lock_alpha1(request.clone()).await {
            Ok(response) if response.get_ref().success => {
                eprintln!("dlock: acquired '{}' as {}", hold.key, hold.owner);
                return Ok(());
            }
            Ok(_) => {
                if !said_waiting {
                    eprintln!("dlock: '{}' is held by another owner; waiting…", hold.key);
                    said_waiting = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY);
            }
            Err(status) => return Err(report(&hold.endpoint, &status)),
        }
    }
}

/// Holds for SECONDS, showing the time left; Ctrl-C cuts it short.
async fn hold_for(hold: &Hold, interrupt: &mut Interrupt) -> Exit {
    let total = Duration::from_secs(hold.seconds.into());
    let until = Instant::now() + total;
    let live = std::io::stderr().is_terminal();
    if !live {
        eprintln!("dlock: holding '{}' for {}s", hold.key, hold.seconds);
    }
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if live {
            eprint!(
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
                if live { eprintln!(); }
                eprintln!("dlock: interrupted; releasing '{}'", hold.key);
                return Exit::Interrupted;
            }
        }
    }
    if live {
        eprintln!();
    }
    Exit::Ok
}

/// Runs the command with the lock held; its exit code becomes dlock's.
async fn run_command(hold: &Hold, taken: Instant, interrupt: &mut Interrupt) -> Exit {
    let mut child = match tokio::process::Command::new(&hold.command[0])
        .args(&hold.command[1..])
        .env("DLOCK_KEY", &hold.key)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("dlock: can't run {}: {e}", hold.command[0]);
            return Exit::Command(127);
        }
    };
    let expires =
        tokio::time::sleep_until((taken + Duration::from_secs(hold.seconds.into())).into());
    tokio::pin!(expires);
    let mut warned = false;
    loop {
        tokio::select! {
            status = child.wait() => {
                return match status {
                    Ok(status) => Exit::Command(exit_code(status)),
                    Err(e) => {
                        eprintln!("dlock: lost track of the command: {e}");
                        Exit::Failed
                    }
                };
            }
            _ = &mut expires, if !warned => {
                warned = true;
                eprintln!(
                    "dlock: warning: the lock on '{}' expired after {}s while the command still runs",
                    hold.key, hold.seconds
                );
            }
            _ = interrupt.wait() => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
                let _ = child.wait().await;
                eprintln!("dlock: interrupted; releasing '{}'", hold.key);
                return Exit::Interrupted;
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

async fn release(client: &mut Client, hold: &Hold) -> Exit {
    let request = UnlockRequest {
        store_name: hold.store.clone(),
        resource_id: hold.key.clone(),
        lock_owner: hold.owner.clone(),
    };
    match client.unlock_alpha1(request).await {
        Ok(response) => match response.get_ref().status() {
            Status::Success => {
                eprintln!("dlock: released '{}'", hold.key);
                Exit::Ok
            }
            Status::LockDoesNotExist => {
                eprintln!(
                    "dlock: '{}' had already expired before dlock released it",
                    hold.key
                );
                Exit::Failed
            }
            Status::LockBelongsToOthers => {
                eprintln!(
                    "dlock: '{}' expired and is now held by another owner",
                    hold.key
                );
                Exit::Failed
            }
            Status::InternalError => {
                eprintln!("dlock: the store failed to release '{}'", hold.key);
                Exit::Failed
            }
        },
        Err(status) => report(&hold.endpoint, &status),
    }
}

/// Says what went wrong with a call and picks the exit.
fn report(endpoint: &str, status: &tonic::Status) -> Exit {
    match status.code() {
        Code::Unavailable => {
            eprintln!(
                "dlock: can't reach the sidecar at {endpoint}: {}",
                status.message()
            );
            Exit::Unreachable
        }
        _ => {
            eprintln!("dlock: the sidecar refused: {}", status.message());
            Exit::Failed
        }
    }
}
