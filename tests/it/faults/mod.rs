//! The fault suite (issue 14): every store under a partition (`partition.rs`), a crashed
//! sidecar and a store server killed and restarted (`crash.rs`), each recording its critical
//! sections for the history checker (`history.rs`). Each test prints its figures on a line
//! starting `fault figures:`, which docs/reliability.md collects:
//! `scripts/test.sh faults:: --nocapture 2>&1 | grep 'fault figures'`.
//!
//! A lock is held by `dlock KEY 3 -- CMD` (a session the sidecar renews), as a user holds
//! one; another owner asks for it through another sidecar with try-locks, so the moment each
//! try was sent bounds the grant from below.

mod crash;
mod history;
mod partition;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dlock::cli::connect::Locks;
use dlock::proto::dlock::{AcquireRequest, LockMode};

use crate::support::backend::Backend;
use crate::support::locks::request_on;
use crate::support::servers::shared;

/// The expiry of every lock in the suite, in seconds: short, so the suite stays quick.
const TTL_SECONDS: u32 = 3;
const TTL: Duration = Duration::from_secs(TTL_SECONDS as u64);

/// The app id of every sidecar in the suite, so that all of them build the same keys.
const APP: &str = "faults";

/// Room for a busy 2-core machine in the bounds on how soon something happens: the bounds
/// catch a lock that never frees or a sidecar that never serves again, not a slow one.
const SLACK: Duration = Duration::from_secs(5);

/// How long after its holder was cut off or died a store can take, beyond the expiry, to
/// hand the lock to another owner: etcd rounds a lease up to whole seconds; ZooKeeper's
/// server checks expiries by its ticks. The others compare the expiry with their clock.
fn detection(backend: Backend) -> Duration {
    match backend {
        Backend::Etcd | Backend::Zookeeper => Duration::from_secs(1),
        _ => Duration::ZERO,
    }
}

/// The loopback ports of the shared servers a backend's component connects to.
fn server_ports(backend: Backend) -> Vec<u16> {
    let variable = match backend {
        Backend::Memory => return Vec::new(),
        Backend::Redis => "DLOCK_TEST_REDIS",
        Backend::RedisCluster => "DLOCK_TEST_REDIS_CLUSTER",
        Backend::Etcd => "DLOCK_TEST_ETCD",
        Backend::Zookeeper => "DLOCK_TEST_ZOOKEEPER",
        Backend::Postgresql => "DLOCK_TEST_POSTGRES",
        Backend::Mysql => "DLOCK_TEST_MYSQL",
        Backend::AzureBlob => "DLOCK_TEST_AZURITE",
    };
    shared(variable)
        .split(',')
        .map(|address| {
            let (_, port) = address.rsplit_once(':').expect("host:port");
            port.parse().expect("a port")
        })
        .collect()
}

/// A running `dlock KEY 3 -- CMD`: when it started, its output lines with the time each
/// arrived, and when it was seen to exit. Killed with its command on drop.
struct Holder {
    owner: String,
    started: Instant,
    pid: u32,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    exit: mpsc::Receiver<(Instant, ExitStatus)>,
    exited: Option<(Instant, ExitStatus)>,
}

impl Holder {
    /// Runs `dlock` (the program `command` runs, e.g. through `ip netns exec`) against the
    /// sidecar at `grpc`, holding `key` as `owner` while a command sleeps; returns once it
    /// has the lock.
    fn start(mut command: Command, grpc: &str, key: &str, owner: &str) -> Holder {
        let started = Instant::now();
        let mut child = command
            .args(["--endpoint", grpc, "--store", "store", "--owner", owner])
            .args([key, &TTL_SECONDS.to_string(), "--"])
            .args([
                "sh",
                "-c",
                "echo token=$DLOCK_FENCING_TOKEN; exec sleep 600",
            ])
            .env_remove("DAPR_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("dlock starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push((Instant::now(), line));
                }
            });
        }
        let (tx, exit) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let status = child.wait().unwrap();
            let _ = tx.send((Instant::now(), status));
        });
        let holder = Holder {
            owner: owner.to_string(),
            started,
            pid,
            lines,
            exit,
            exited: None,
        };
        holder.wait_for("dlock: acquired");
        holder
    }

    fn output(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let lines: Vec<&str> = lines.iter().map(|(_, line)| line.as_str()).collect();
        lines.join("\n")
    }

    /// When a line containing `text` arrived; panics after 20 s.
    fn wait_for(&self, text: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|(at, line)| line.contains(text).then_some(*at));
            if let Some(at) = found {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "dlock printed no '{text}':\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The fencing token its command was given, where the store gives one.
    fn token(&self) -> Option<u64> {
        let at = self.wait_for("token=");
        let lines = self.lines.lock().unwrap();
        let (_, line) = lines.iter().find(|(t, _)| *t == at).unwrap();
        line.trim_start_matches("token=").parse().ok()
    }

    /// When it exited and how, if it has (within `within`).
    fn exited(&mut self, within: Duration) -> Option<(Instant, ExitStatus)> {
        if self.exited.is_none() {
            self.exited = self.exit.recv_timeout(within).ok();
        }
        self.exited
    }

    /// Asks it to stop (SIGTERM, as Ctrl-C would), which releases the lock, and waits.
    fn stop(&mut self) -> (Instant, ExitStatus) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        self.exited(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("dlock did not stop:\n{}", self.output()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.exited(Duration::ZERO).is_none() {
            // SAFETY: kill(2) on the process group of a child we started as its leader.
            unsafe { libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL) };
        }
    }
}

/// Another owner's grant: when the granting try was sent, and its fencing token.
struct Granted {
    sent: Instant,
    token: Option<u64>,
}

/// Tries to take `key` as `owner` until granted or `within` has passed (once at least); every
/// try is a
/// try-lock (an acquire that does not wait), so the grant came after the last one was sent.
async fn contend(locks: &Locks, key: &str, owner: &str, within: Duration) -> Option<Granted> {
    contend_for(
        locks,
        request_on("store", key, owner, TTL_SECONDS as i32, 0),
        within,
    )
    .await
}

/// `contend` for a place among at most `limit` shared holders.
async fn contend_for_a_place(
    locks: &Locks,
    key: &str,
    owner: &str,
    limit: u32,
    within: Duration,
) -> Option<Granted> {
    let request = AcquireRequest {
        mode: LockMode::Shared.into(),
        limit,
        ..request_on("store", key, owner, TTL_SECONDS as i32, 0)
    };
    contend_for(locks, request, within).await
}

async fn contend_for(locks: &Locks, request: AcquireRequest, within: Duration) -> Option<Granted> {
    let deadline = Instant::now() + within;
    loop {
        let sent = Instant::now();
        let tried = locks.clone().acquire(request.clone()).await;
        if let Ok(answer) = tried.map(tonic::Response::into_inner) {
            if answer.acquired {
                let token = answer.has_fencing.then_some(answer.fencing_token);
                return Some(Granted { sent, token });
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The figures of one test, on one line for docs/reliability.md.
fn figures(backend: Backend, test: &str, figures: &[(&str, Duration)]) {
    let shown: Vec<String> = figures
        .iter()
        .map(|(name, d)| format!("{name}={:.2}s", d.as_secs_f64()))
        .collect();
    eprintln!("fault figures: {backend:?} {test}: {}", shown.join(" "));
}

/// The fault tests of a store with a server.
macro_rules! fault_suite {
    ($($store:ident: $backend:expr;)*) => {$(
        mod $store {
            use crate::support::backend::Backend;

            #[tokio::test]
            async fn partition() {
                super::partition::holder_is_told_first($backend).await;
            }

            #[tokio::test]
            async fn sidecar_crash() {
                super::crash::killed_sidecar($backend).await;
            }

            // Two threads: the other owner keeps trying while the test restarts the server.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_restart() {
                super::crash::store_restart($backend).await;
            }
        }
    )*};
}

fault_suite! {
    redis: Backend::Redis;
    redis_cluster: Backend::RedisCluster;
    etcd: Backend::Etcd;
    zookeeper: Backend::Zookeeper;
    postgresql: Backend::Postgresql;
    mysql: Backend::Mysql;
    azure_blob: Backend::AzureBlob;
}

/// A semaphore's permit holder cut off by a partition, and killed, on the stores with LIMIT.
macro_rules! permit_suite {
    ($($store:ident: $backend:expr;)*) => {$(
        mod $store {
            use crate::support::backend::Backend;

            #[tokio::test]
            async fn permit_partition() {
                super::super::partition::permit_holder_is_told_first($backend).await;
            }

            #[tokio::test]
            async fn permit_crash() {
                super::super::crash::killed_permit_holder($backend).await;
            }
        }
    )*};
}

mod permits {
    permit_suite! {
        redis: Backend::Redis;
        redis_cluster: Backend::RedisCluster;
        etcd: Backend::Etcd;
        zookeeper: Backend::Zookeeper;
        postgresql: Backend::Postgresql;
        mysql: Backend::Mysql;
        azure_blob: Backend::AzureBlob;
    }
}

/// The embedded store has no server to lose or be cut from: a crash of its sidecar is the
/// only fault, and its locks go with it.
mod memory {
    use crate::support::backend::Backend;

    #[tokio::test]
    async fn sidecar_crash() {
        super::crash::killed_sidecar(Backend::Memory).await;
    }
}
