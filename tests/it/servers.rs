//! Store servers a test owns: started on a free loopback port with data under the test temp
//! dir, stopped and started again at will (for outages), killed when dropped. The binaries
//! come from the environment scripts/test.sh sets; a missing one fails the test.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::temp_dir;

/// The address of a store server scripts/test.sh started, from `variable`.
pub fn shared(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests through scripts/test.sh, which starts the servers")
    })
}

fn binary(variable: &str) -> String {
    shared(variable)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private redis-server.
pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// Starts a redis-server with extra arguments (e.g. `--replicaof`).
    pub fn start(extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = temp_dir("redis");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut redis = Redis {
            port,
            args,
            child: None,
        };
        redis.resume();
        redis
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        let child = Command::new(binary("DLOCK_TEST_REDIS_SERVER"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private etcd member: alone (`Etcd::start`) or one of a cluster (`Etcd::cluster`). Its
/// election timeout is short enough (600 ms) that etcd grants one-second leases, which the
/// conformance suite's one-second expiries need (etcd's minimum lease is 1.5 election
/// timeouts, rounded up to whole seconds).
pub struct Etcd {
    pub client_port: u16,
    args: Vec<String>,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// A single-member etcd, with extra arguments (e.g. `--auth-token-ttl`).
    pub fn start(extra: &[&str]) -> Etcd {
        let mut cluster = Etcd::configure(1, extra);
        for member in &mut cluster {
            member.spawn();
        }
        let mut member = cluster.pop().unwrap();
        member.wait_ready();
        member
    }

    /// A cluster of `size` members, started together, each ready once the cluster has a
    /// leader.
    pub fn cluster(size: usize) -> Vec<Etcd> {
        let mut members = Etcd::configure(size, &[]);
        for member in &mut members {
            member.spawn();
        }
        for member in &mut members {
            member.wait_ready();
        }
        members
    }

    fn configure(size: usize, extra: &[&str]) -> Vec<Etcd> {
        let dir = temp_dir("etcd");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial_cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let client_url = format!("http://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let data = dir.join(format!("m{i}"));
                let mut args: Vec<String> = [
                    "--name",
                    &format!("m{i}"),
                    "--data-dir",
                    &data.display().to_string(),
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                    "--initial-cluster",
                    &initial_cluster,
                    "--heartbeat-interval",
                    "100",
                    "--election-timeout",
                    "600",
                    "--logger",
                    "zap",
                    "--log-level",
                    "warn",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(extra.iter().map(|s| s.to_string()));
                Etcd {
                    client_port: *client,
                    args,
                    log: dir.join(format!("m{i}.log")),
                    child: None,
                }
            })
            .collect()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(binary("DLOCK_TEST_ETCD_SERVER"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
    }

    /// Waits until the member reports itself healthy (it has a leader and answers).
    fn wait_ready(&mut self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let healthy = std::net::TcpStream::connect(("127.0.0.1", self.client_port))
                .and_then(|mut stream| {
                    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                    stream.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer)?;
                    Ok(answer.contains("\"health\":\"true\""))
                })
                .unwrap_or(false);
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd on {} did not become healthy: {}",
                self.client_port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the member (SIGKILL: an outage, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn resume(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Runs etcdctl against this member; panics unless it succeeds.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let output = Command::new(binary("DLOCK_TEST_ETCDCTL"))
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.address())
            .args(args)
            .output()
            .expect("etcdctl runs");
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
