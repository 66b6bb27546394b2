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

/// A private redis-server (or a Sentinel, which is redis-server in another mode).
pub struct Redis {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// Starts a redis-server with extra arguments (e.g. `--replicaof`).
    pub fn start(extra: &[&str]) -> Redis {
        Redis::launch(&[], "--port", extra)
    }

    /// Starts a redis-server that speaks TLS only, with the given `--tls-*` arguments.
    pub fn start_tls(extra: &[&str]) -> Redis {
        Redis::launch(&["--port", "0"], "--tls-port", extra)
    }

    /// Starts a Sentinel watching the master on `master_port` under the name `master_name`,
    /// quick to act: the master is deemed down after one second.
    pub fn start_sentinel(master_name: &str, master_port: u16) -> Redis {
        let dir = temp_dir("sentinel");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 10000\n"
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        Redis::launch(&[&config, "--sentinel"], "--port", &[])
    }

    fn launch(leading: &[&str], port_flag: &str, extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = temp_dir("redis");
        let mut args: Vec<String> = leading.iter().map(|s| s.to_string()).collect();
        args.extend(
            [
                port_flag,
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
            .map(|s| s.to_string()),
        );
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

/// A private Redis Cluster of three masters (no replicas), slots spread by redis-cli.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                Redis::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let mut create = Command::new(binary("DLOCK_TEST_REDIS_CLI"));
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(Redis::address));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = create.output().expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ready();
        cluster
    }

    /// The nodes as `redisHost` lists them.
    pub fn addresses(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(Redis::address).collect();
        nodes.join(",")
    }

    /// Waits until every node reports the cluster healthy.
    pub fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let info = Command::new(binary("DLOCK_TEST_REDIS_CLI"))
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the Redis Cluster did not form");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn stop(&mut self) {
        self.nodes.iter_mut().for_each(Redis::stop);
    }

    pub fn resume(&mut self) {
        self.nodes.iter_mut().for_each(Redis::resume);
    }
}
