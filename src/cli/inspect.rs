//! What an operator runs: `dlock inspect KEY` (who holds it, for how long, which token),
//! `dlock list [PREFIX]` (the held locks), `dlock release --force KEY` (free a lock whoever
//! holds it; needs `DLOCK_ADMIN_TOKEN`, the sidecar's admin token).

use std::time::Duration;

use super::connect::report;
use super::connect::{self, Locks};
use super::Exit;
use crate::proto::dlock::{ForceReleaseRequest, InspectRequest, ListRequest, LockInfo, LockMode};

async fn client(endpoint: &str) -> Result<Locks, Exit> {
    connect::locks(endpoint, Duration::from_secs(5))
        .await
        .map_err(|message| {
            errln!("dlock: {message}");
            Exit::Unreachable
        })
}

fn describe(lock: &LockInfo) -> String {
    let seconds = |ms: i64| format!("{:.1}s left", ms as f64 / 1000.0);
    let token = |token: u64| match token {
        0 => String::new(),
        token => format!(", fencing token {token}"),
    };
    let owner = |owner: &str, holds: u32| match holds {
        0 | 1 => owner.to_string(),
        holds => format!("{owner} x{holds}"),
    };
    if lock.mode() == LockMode::Shared {
        let limit = match lock.limit {
            0 => String::new(),
            limit => format!(", limit {limit}"),
        };
        let holders: Vec<String> = lock
            .holders
            .iter()
            .map(|h| {
                let (left, token) = (seconds(h.expires_in_ms), token(h.fencing_token));
                format!("{} ({left}{token})", owner(&h.lock_owner, h.holds))
            })
            .collect();
        return format!(
            "{}\theld shared{limit} by {}",
            lock.resource_id,
            holders.join(", ")
        );
    }
    let token = if lock.fencing_token == 0 {
        String::new()
    } else {
        format!("\tfencing token {}", lock.fencing_token)
    };
    let holds = lock.holders.first().map_or(1, |h| h.holds);
    format!(
        "{}\theld by {}\t{}{token}",
        lock.resource_id,
        owner(&lock.lock_owner, holds),
        seconds(lock.expires_in_ms)
    )
}

/// Prints who holds `key`; exits 0 when held, 1 when free (so scripts can test it).
pub async fn inspect(endpoint: &str, store: &str, key: &str) -> Exit {
    let mut locks = match client(endpoint).await {
        Ok(locks) => locks,
        Err(exit) => return exit,
    };
    let request = InspectRequest {
        store_name: store.into(),
        resource_id: key.into(),
    };
    match locks.inspect(request).await {
        Ok(answer) => match answer.into_inner().lock {
            Some(lock) => {
                outln!("{}", describe(&lock));
                Exit::Ok
            }
            None => {
                outln!("{key}\tfree");
                Exit::Failed
            }
        },
        Err(status) => report(endpoint, &status),
    }
}

/// Prints the held locks whose keys start with `prefix`, one a line.
pub async fn list(endpoint: &str, store: &str, prefix: &str) -> Exit {
    let mut locks = match client(endpoint).await {
        Ok(locks) => locks,
        Err(exit) => return exit,
    };
    let request = ListRequest {
        store_name: store.into(),
        prefix: prefix.into(),
    };
    match locks.list(request).await {
        Ok(answer) => {
            for lock in answer.into_inner().locks {
                outln!("{}", describe(&lock));
            }
            Exit::Ok
        }
        Err(status) => report(endpoint, &status),
    }
}

/// Frees `key` whoever holds it, presenting `DLOCK_ADMIN_TOKEN`.
pub async fn force_release(endpoint: &str, store: &str, key: &str) -> Exit {
    let mut locks = match client(endpoint).await {
        Ok(locks) => locks,
        Err(exit) => return exit,
    };
    let mut request = tonic::Request::new(ForceReleaseRequest {
        store_name: store.into(),
        resource_id: key.into(),
    });
    if let Some(token) = std::env::var("DLOCK_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        match token.parse() {
            Ok(token) => {
                request.metadata_mut().insert("dlock-admin-token", token);
            }
            Err(_) => {
                errln!("dlock: DLOCK_ADMIN_TOKEN can't be sent: it must be printable ASCII");
                return Exit::Failed;
            }
        }
    }
    match locks.force_release(request).await {
        Ok(answer) if answer.get_ref().released => {
            outln!("{key}\treleased by force");
            Exit::Ok
        }
        Ok(_) => {
            outln!("{key}\twas not held");
            Exit::Ok
        }
        Err(status) => report(endpoint, &status),
    }
}
