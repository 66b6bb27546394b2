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

/// A private ZooKeeper server, standalone or one member of an ensemble, run by
/// scripts/zookeeper-server.sh (DLOCK_TEST_ZOOKEEPER_SERVER) with its data and log under the
/// test temp dir. A tick of 500 ms lets sessions be as short as 1 s.
pub struct Zookeeper {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Zookeeper {
    /// Starts a standalone server.
    pub fn start() -> Zookeeper {
        let mut server = Zookeeper::configure(free_port(), "");
        server.resume();
        server
    }

    /// Starts an ensemble of `size` members and waits until it serves.
    pub fn ensemble(size: usize) -> Vec<Zookeeper> {
        let peers: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let members: String = peers
            .iter()
            .enumerate()
            .map(|(i, (quorum, election))| {
                format!("server.{}=127.0.0.1:{quorum}:{election}\n", i + 1)
            })
            .collect();
        let mut servers: Vec<Zookeeper> = (0..size)
            .map(|i| {
                let server = Zookeeper::configure(free_port(), &members);
                std::fs::write(server.dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
                server
            })
            .collect();
        // A member serves only once a quorum has formed: start them all, then wait.
        for server in &mut servers {
            server.spawn();
        }
        for server in &servers {
            server.wait_serving();
        }
        servers
    }

    fn configure(port: u16, members: &str) -> Zookeeper {
        let dir = temp_dir("zookeeper");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=srvr\n{members}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), config).unwrap();
        Zookeeper {
            port,
            dir,
            child: None,
        }
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

    /// Starts it again, with the same data and port, and waits until it serves.
    pub fn resume(&mut self) {
        self.spawn();
        self.wait_serving();
    }

    fn spawn(&mut self) {
        let child = Command::new(binary("DLOCK_TEST_ZOOKEEPER_SERVER"))
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the ZooKeeper server starts");
        self.child = Some(child);
    }

    /// What the server says it is (`standalone`, `leader`, `follower`), once it serves.
    pub fn mode(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut answer = String::new();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        conn.write_all(b"srvr").ok()?;
        let _ = conn.read_to_string(&mut answer);
        let mode = answer.lines().find_map(|l| l.strip_prefix("Mode: "))?;
        Some(mode.trim().to_string())
    }

    /// Waits until the server answers `srvr` with its mode.
    fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.mode().is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper on {} did not start serving; see {}",
                self.port,
                self.dir.join("zookeeper.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Zookeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
