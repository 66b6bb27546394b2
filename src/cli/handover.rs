//! `dlock bench --handover`: the hand-over latency of the blocking acquire. N clients contend
//! for one key, each waiting in the sidecar's blocking acquire; a holder releases at once, and
//! the time from the start of its release to the next waiter's grant is one sample.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::{self, Client, Locks};
use super::Exit;
use crate::percentile::percentile;
use crate::proto::dapr::UnlockRequest;
use crate::proto::dlock::AcquireRequest;

pub struct Handover {
    pub clients: usize,
    pub grants: usize,
    pub store: String,
    pub endpoint: String,
}

/// When the last release started, in nanoseconds since the run began (0: none yet).
struct Clock {
    start: Instant,
    last_release: AtomicU64,
}

impl Clock {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos().max(1) as u64
    }
}

pub async fn run(bench: Handover) -> Exit {
    let channel = match connect::channel(&bench.endpoint, Duration::from_secs(5)).await {
        Ok(channel) => channel,
        Err(message) => {
            errln!("dlock bench: {message}");
            return Exit::Unreachable;
        }
    };
    let (dapr, locks) = (
        connect::dapr_on(channel.clone()),
        connect::locks_on(channel),
    );
    let key = format!("handover-{}", std::process::id());
    let clock = Arc::new(Clock {
        start: Instant::now(),
        last_release: AtomicU64::new(0),
    });
    let remaining = Arc::new(AtomicUsize::new(bench.grants));
    let mut clients = Vec::new();
    for i in 0..bench.clients {
        let (dapr, locks) = (dapr.clone(), locks.clone());
        let (clock, remaining) = (clock.clone(), remaining.clone());
        let (key, store) = (key.clone(), bench.store.clone());
        clients.push(tokio::spawn(async move {
            contend(
                dapr,
                locks,
                clock,
                remaining,
                key,
                store,
                format!("handover-{i}"),
            )
            .await
        }));
    }
    let mut samples = Vec::new();
    let mut first_error = None;
    for client in clients {
        match client.await.expect("a bench client panicked") {
            Ok(mine) => samples.extend(mine),
            Err(error) => first_error = first_error.or(Some(error)),
        }
    }
    let elapsed = clock.start.elapsed().as_secs_f64();
    samples.sort_unstable();
    outln!(
        "dlock bench --handover: {} hand-overs of one key among {} waiting clients, gRPC, store '{}'",
        samples.len(),
        bench.clients,
        bench.store
    );
    outln!(
        "  hand-overs: {:.0}/s over {elapsed:.2}s",
        samples.len() as f64 / elapsed
    );
    outln!(
        "  hand-over, release to next grant: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        percentile(&samples, 100.0)
    );
    match first_error {
        Some(error) => {
            outln!("  first error: {error}");
            Exit::Failed
        }
        None => Exit::Ok,
    }
}

/// One client: acquire (waiting), note the hand-over, release at once; until the run's grants
/// are used up. Returns its samples in microseconds.
async fn contend(
    mut dapr: Client,
    mut locks: Locks,
    clock: Arc<Clock>,
    remaining: Arc<AtomicUsize>,
    key: String,
    store: String,
    owner: String,
) -> Result<Vec<u32>, String> {
    let mut samples = Vec::new();
    loop {
        let acquire = AcquireRequest {
            store_name: store.clone(),
            resource_id: key.clone(),
            lock_owner: owner.clone(),
            expiry_in_seconds: 30,
            wait_timeout_ms: 30_000,
            require_fencing: false,
            ..AcquireRequest::default()
        };
        let granted = locks
            .acquire(acquire)
            .await
            .map_err(|s| s.message().to_string())?;
        if !granted.get_ref().acquired {
            return Err("a waiter timed out after 30 s".into());
        }
        let released_at = clock.last_release.load(Ordering::SeqCst);
        if released_at > 0 {
            let micros = (clock.now() - released_at) / 1000;
            samples.push(micros.min(u32::MAX as u64) as u32);
        }
        let last = remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map_or(true, |n| n <= 1);
        // The next holder's grant is timed from here.
        clock
            .last_release
            .store(if last { 0 } else { clock.now() }, Ordering::SeqCst);
        let unlock = UnlockRequest {
            store_name: store.clone(),
            resource_id: key.clone(),
            lock_owner: owner.clone(),
        };
        dapr.unlock_alpha1(unlock)
            .await
            .map_err(|s| s.message().to_string())?;
        if last {
            // Wake the others out of their waits: nothing more to hand over.
            return Ok(samples);
        }
    }
}
