//! A worker that takes a distributed lock through dlockd with this crate's generated gRPC
//! client (`dlock::proto::dapr::dapr_client::DaprClient`, Dapr's own runtime API).
//!
//! It updates "process instance 42" only while it holds the lock `process-instance-42` in the
//! lock store `lockstore`, as an owner unique to this process (hostname + pid), for at most
//! 30 s. If another worker holds the lock, it says so and retries a few times; once it has the
//! lock it does its work and unlocks, printing the unlock status.
//!
//! Run:   target/release/dlockd &        # with no --resources-path it serves
//!                                       # an in-memory store named `lockstore`
//!        cargo run --example lock_worker
//! Start two at once to see the second one wait for the first:
//!        cargo build --example lock_worker
//!        target/debug/examples/lock_worker & target/debug/examples/lock_worker; wait
//!
//! Environment: DAPR_GRPC_ENDPOINT, else DAPR_GRPC_PORT (default 50001) on 127.0.0.1;
//! DAPR_API_TOKEN, sent as `dapr-api-token` metadata when set.

use std::process::ExitCode;
use std::time::Duration;

use dlock::cli::connect;
use dlock::proto::dapr::unlock_response::Status;
use dlock::proto::dapr::{TryLockRequest, UnlockRequest};

const STORE: &str = "lockstore";
const RESOURCE: &str = "process-instance-42";
const EXPIRY_SECONDS: i32 = 30; // the store frees the lock by itself after this
const ATTEMPTS: u32 = 5;
const RETRY_DELAY: Duration = Duration::from_millis(500);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("lock_worker: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A gRPC error (bad request, unknown store, wrong API token…) as one line.
fn failed(call: &str, status: tonic::Status) -> String {
    format!("{call} failed: {:?}: {}", status.code(), status.message())
}

async fn run() -> Result<ExitCode, String> {
    // Unique per process: only this owner can unlock.
    let owner = format!(
        "{}-{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    );
    // A client that sends DAPR_API_TOKEN with every call, if it is set.
    let endpoint = connect::grpc_endpoint(None);
    let mut client = connect::grpc(&endpoint, Duration::from_secs(5)).await?;

    // 1. Try to take the lock. A refusal is a normal answer (`success: false`); only a bad
    //    request or an unreachable store is a gRPC error.
    let lock = TryLockRequest {
        store_name: STORE.into(),
        resource_id: RESOURCE.into(),
        lock_owner: owner.clone(),
        expiry_in_seconds: EXPIRY_SECONDS,
    };
    let mut attempt = 1;
    loop {
        let answer = client
            .try_lock_alpha1(lock.clone())
            .await
            .map_err(|e| failed("lock", e))?
            .into_inner();
        if answer.success {
            println!("[{owner}] locked {RESOURCE} (attempt {attempt})");
            break;
        }
        if attempt == ATTEMPTS {
            eprintln!(
                "[{owner}] {RESOURCE} is still held by another worker \
                 after {ATTEMPTS} attempts; giving up"
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("[{owner}] {RESOURCE} is held by another worker; retrying in {RETRY_DELAY:?}");
        tokio::time::sleep(RETRY_DELAY).await;
        attempt += 1;
    }

    // 2. Do the work while holding the lock.
    println!("[{owner}] updating process instance 42…");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 3. Unlock. LOCK_DOES_NOT_EXIST would mean the lock expired while we were working.
    let unlock = UnlockRequest {
        store_name: STORE.into(),
        resource_id: RESOURCE.into(),
        lock_owner: owner.clone(),
    };
    let status = client
        .unlock_alpha1(unlock)
        .await
        .map_err(|e| failed("unlock", e))?
        .into_inner()
        .status();
    println!(
        "[{owner}] unlocked {RESOURCE}: status {}",
        status.as_str_name()
    );
    Ok(if status == Status::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
