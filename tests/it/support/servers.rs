//! Store servers a test owns: started on a free loopback port with data under the test temp
//! dir, stopped and started again at will (for outages), killed when dropped. The binaries
//! come from the environment scripts/test.sh sets; a missing one fails the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::Certs;
use super::dlockd::temp_dir;

/// The address of a store server scripts/test.sh started, from `variable`.
pub fn shared(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run the tests through scripts/test.sh, which starts the servers")
    })
}

fn binary(variable: &str) -> String {
    shared(variable)
}

/// Kills a server process (SIGKILL: an outage, not a shutdown) and reaps it.
fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A store server a test can take away and bring back, for outages (conformance item 7 and
/// the stores' own tests).
pub trait Outage {
    /// Stops the server with SIGKILL: an outage, not a shutdown.
    fn stop(&mut self);
    /// Starts it again on the same ports with the same data, and waits until it serves.
    fn resume(&mut self);
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
}

impl Outage for Redis {
    fn stop(&mut self) {
        kill(&mut self.child);
    }

    fn resume(&mut self) {
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
        RedisCluster::start_with(&[])
    }

    /// A cluster whose nodes get `extra` arguments too (e.g. `--appendonly yes`).
    pub fn start_with(extra: &[&str]) -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ];
                args.extend_from_slice(extra);
                Redis::start(&args)
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
}

impl Outage for RedisCluster {
    fn stop(&mut self) {
        self.nodes.iter_mut().for_each(Redis::stop);
    }

    fn resume(&mut self) {
        self.nodes.iter_mut().for_each(Redis::resume);
    }
}

/// A private etcd member: alone (`Etcd::start`), one of a cluster (`Etcd::cluster`), or alone
/// behind TLS (`Etcd::start_tls`). Its election timeout is short enough (600 ms) that etcd
/// grants one-second leases, which the conformance suite's one-second expiries need (etcd's
/// minimum lease is 1.5 election timeouts, rounded up to whole seconds).
pub struct Etcd {
    pub client_port: u16,
    args: Vec<String>,
    log: PathBuf,
    /// The certificates when its clients talk TLS.
    tls: Option<Certs>,
    child: Option<Child>,
}

impl Etcd {
    /// A single-member etcd, with extra arguments (e.g. `--auth-token-ttl`).
    pub fn start(extra: &[&str]) -> Etcd {
        Etcd::start_all(Etcd::configure(1, extra, None))
            .pop()
            .unwrap()
    }

    /// A single-member etcd that talks TLS to its clients and wants their certificates.
    pub fn start_tls(certificates: &Certs) -> Etcd {
        Etcd::start_all(Etcd::configure(1, &[], Some(certificates.clone())))
            .pop()
            .unwrap()
    }

    /// A cluster of `size` members, started together, each ready once the cluster has a
    /// leader.
    pub fn cluster(size: usize) -> Vec<Etcd> {
        Etcd::start_all(Etcd::configure(size, &[], None))
    }

    fn start_all(mut members: Vec<Etcd>) -> Vec<Etcd> {
        for member in &mut members {
            member.spawn();
        }
        for member in &mut members {
            member.wait_ready();
        }
        members
    }

    fn configure(size: usize, extra: &[&str], tls: Option<Certs>) -> Vec<Etcd> {
        let dir = temp_dir("etcd");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial_cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        let scheme = if tls.is_some() { "https" } else { "http" };
        ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let client_url = format!("{scheme}://127.0.0.1:{client}");
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
                if let Some(tls) = &tls {
                    for (flag, path) in [
                        ("--cert-file", &tls.server.0),
                        ("--key-file", &tls.server.1),
                        ("--trusted-ca-file", &tls.ca),
                    ] {
                        args.push(flag.to_string());
                        args.push(path.display().to_string());
                    }
                    args.push("--client-cert-auth".to_string());
                }
                args.extend(extra.iter().map(|s| s.to_string()));
                Etcd {
                    client_port: *client,
                    args,
                    log: dir.join(format!("m{i}.log")),
                    tls: tls.clone(),
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

    /// Runs etcdctl against this member: its output when it succeeds.
    fn try_etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(binary("DLOCK_TEST_ETCDCTL"));
        command
            .env("ETCDCTL_API", "3")
            .args(["--dial-timeout", "2s", "--command-timeout", "5s"]);
        match &self.tls {
            None => command.arg(format!("--endpoints=http://{}", self.address())),
            Some(tls) => command
                .arg(format!("--endpoints=https://{}", self.address()))
                .arg("--cacert")
                .arg(&tls.ca)
                .arg("--cert")
                .arg(&tls.client.0)
                .arg("--key")
                .arg(&tls.client.1),
        };
        let output = command.args(args).output().expect("etcdctl runs");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Runs etcdctl against this member; panics unless it succeeds.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        self.try_etcdctl(args)
            .unwrap_or_else(|error| panic!("etcdctl {args:?}: {error}"))
    }

    /// Whether this member leads its cluster now.
    pub fn is_leader(&self) -> bool {
        let status: serde_json::Value =
            serde_json::from_str(&self.etcdctl(&["endpoint", "status", "-w", "json"])).unwrap();
        let status = &status[0]["Status"];
        status["header"]["member_id"] == status["leader"]
    }

    /// Waits until the member reports itself healthy (it has a leader and answers).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(error) = self.try_etcdctl(&["endpoint", "health"]) {
            assert!(
                Instant::now() < deadline,
                "etcd on {} did not become healthy: {error}\n{}",
                self.client_port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Outage for Etcd {
    fn stop(&mut self) {
        kill(&mut self.child);
    }

    fn resume(&mut self) {
        self.spawn();
        self.wait_ready();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private ZooKeeper server, standalone or one member of an ensemble, run by
/// scripts/zookeeper-server.sh (DLOCK_TEST_ZOOKEEPER_SERVER) with its data and log under the
/// test temp dir. A tick of 500 ms lets sessions be as short as 1 s.
pub struct Zookeeper {
    pub port: u16,
    dir: PathBuf,
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

    fn spawn(&mut self) {
        let child = Command::new(binary("DLOCK_TEST_ZOOKEEPER_SERVER"))
            .arg(&self.dir)
            // Empty container nodes reaped every second, unthrottled (default: every minute,
            // 10,000 a minute); Java properties, which zoo.cfg cannot set.
            .env(
                "JAVA_TOOL_OPTIONS",
                "-Dznode.container.checkIntervalMs=1000 -Dznode.container.maxPerMinute=1000000",
            )
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

impl Outage for Zookeeper {
    fn stop(&mut self) {
        kill(&mut self.child);
    }

    fn resume(&mut self) {
        self.spawn();
        self.wait_serving();
    }
}

impl Drop for Zookeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private PostgreSQL server (DLOCK_TEST_POSTGRES_BIN), or a streaming standby of one, with
/// its data under the test temp dir. PostgreSQL refuses to run as root: as root, its programs
/// run as DLOCK_TEST_POSTGRES_USER. A stop kills the postmaster and its backends at once, as a
/// crash of the machine would.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    /// Server settings beyond the defaults, as `-c name=value` arguments.
    settings: Vec<String>,
    child: Option<Child>,
}

/// The superuser of every test server, and its password (scripts/test.sh sets it).
pub const POSTGRES_USER: &str = "dlock";

impl Postgres {
    /// A new server, its cluster made by initdb.
    pub fn start() -> Postgres {
        let mut server = Postgres::init();
        server.spawn();
        server.wait_ready();
        server
    }

    /// A new server that takes TCP connections over TLS only, with `certs`' server certificate,
    /// and only from clients that show a certificate `certs`' CA signed (and the password).
    pub fn start_tls(certs: &Certs) -> Postgres {
        let mut server = Postgres::init();
        let dir = server.data.clone();
        for (from, to) in [
            (&certs.server.0, "server.crt"),
            (&certs.server.1, "server.key"),
            (&certs.ca, "ca.crt"),
        ] {
            std::fs::copy(from, dir.join(to)).unwrap();
        }
        // PostgreSQL refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Postgres::hand_over(&dir);
        let hba = "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n";
        std::fs::write(dir.join("pg_hba.conf"), hba).unwrap();
        for setting in [
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
            "ssl_ca_file=ca.crt",
        ] {
            server
                .settings
                .extend(["-c".to_string(), setting.to_string()]);
        }
        server.spawn();
        server.wait_ready();
        server
    }

    /// A new cluster made by initdb, not yet started.
    fn init() -> Postgres {
        let server = Postgres::configure();
        let password = server.data.with_file_name("password");
        std::fs::write(&password, shared("DLOCK_TEST_POSTGRES_PASSWORD")).unwrap();
        Postgres::hand_over(password.parent().unwrap());
        let made = Postgres::program("initdb")
            .arg("-D")
            .arg(&server.data)
            .args(["-U", POSTGRES_USER, "-A", "scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", password.display()))
            .output()
            .expect("initdb runs");
        assert!(made.status.success(), "initdb: {made:?}");
        // Streaming standbys connect as the superuser, from loopback.
        let hba = server.data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str("host replication dlock 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(&hba, rules).unwrap();
        server
    }

    /// A streaming standby of `primary`, copied from it by pg_basebackup.
    pub fn standby_of(primary: &Postgres) -> Postgres {
        let mut standby = Postgres::configure();
        Postgres::hand_over(standby.data.parent().unwrap());
        let copied = Postgres::program("pg_basebackup")
            .arg("-D")
            .arg(&standby.data)
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", POSTGRES_USER, "-R", "-X", "stream", "--no-sync"])
            .env("PGPASSWORD", shared("DLOCK_TEST_POSTGRES_PASSWORD"))
            .output()
            .expect("pg_basebackup runs");
        assert!(copied.status.success(), "pg_basebackup: {copied:?}");
        standby.spawn();
        standby.wait_ready();
        standby
    }

    /// Promotes a standby to primary, and waits until it takes writes.
    pub fn promote(&self) {
        let promoted = Postgres::program("pg_ctl")
            .args(["promote", "-w", "-D"])
            .arg(&self.data)
            .output()
            .expect("pg_ctl runs");
        assert!(promoted.status.success(), "pg_ctl promote: {promoted:?}");
    }

    /// A libpq `key=value` connection string for this server.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={POSTGRES_USER} password={} dbname=postgres",
            self.port,
            shared("DLOCK_TEST_POSTGRES_PASSWORD")
        )
    }

    fn configure() -> Postgres {
        let dir = temp_dir("postgres");
        Postgres {
            port: free_port(),
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            settings: Vec::new(),
            child: None,
        }
    }

    /// `name` from PostgreSQL's bin directory, run as its user where we are root.
    fn program(name: &str) -> Command {
        let path = format!("{}/{name}", binary("DLOCK_TEST_POSTGRES_BIN"));
        if unsafe { libc::geteuid() } != 0 {
            return Command::new(path);
        }
        let user = shared("DLOCK_TEST_POSTGRES_USER");
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid",
            &user,
            "--regid",
            &user,
            "--clear-groups",
            "--",
            &path,
        ]);
        command
    }

    /// Gives `dir` to PostgreSQL's user where we are root.
    fn hand_over(dir: &std::path::Path) {
        if unsafe { libc::geteuid() } == 0 {
            let user = shared("DLOCK_TEST_POSTGRES_USER");
            let owned = Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(dir)
                .status()
                .unwrap();
            assert!(owned.success());
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Postgres::program("postgres")
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .args(&self.settings)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(format!("{}/pg_isready", binary("DLOCK_TEST_POSTGRES_BIN")))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Outage for Postgres {
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The postmaster (setpriv execs it), frozen so it starts nothing more, then its
            // children: each backend leads a session of its own, out of the postmaster's
            // group, and would otherwise answer a query or two before noticing it is alone.
            let postmaster = child.id() as i32;
            unsafe { libc::kill(postmaster, libc::SIGSTOP) };
            for backend in children(postmaster) {
                unsafe { libc::kill(backend, libc::SIGKILL) };
            }
            unsafe { libc::kill(postmaster, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    fn resume(&mut self) {
        self.spawn();
        self.wait_ready();
    }
}

/// The processes whose parent is `parent`, from /proc.
fn children(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // The parent is the second field after the command, which is in parentheses.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                    == Some(parent)
            })
        })
        .collect()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private MariaDB server (DLOCK_TEST_MARIADB_SERVER), with its data under the test temp
/// dir, run as the `mysql` user (mariadbd switches to it itself) and a user `dlock` with the
/// test password, as scripts/test.sh sets its shared one up.
pub struct Mariadb {
    pub port: u16,
    dir: PathBuf,
    /// Server options beyond the defaults.
    options: Vec<String>,
    child: Option<Child>,
}

impl Mariadb {
    pub fn start() -> Mariadb {
        Mariadb::start_with(Vec::new(), "")
    }

    /// A server with `certs`' server certificate whose user `dlock` must connect over TLS.
    pub fn start_tls(certs: &Certs) -> Mariadb {
        let options = vec![
            format!("--ssl-cert={}", certs.server.0.display()),
            format!("--ssl-key={}", certs.server.1.display()),
            format!("--ssl-ca={}", certs.ca.display()),
        ];
        Mariadb::start_with(options, " REQUIRE SSL")
    }

    /// A server started with `options`, its user `dlock` created with `requirement`.
    fn start_with(options: Vec<String>, requirement: &str) -> Mariadb {
        let dir = temp_dir("mariadb");
        if unsafe { libc::geteuid() } == 0 {
            let owned = Command::new("chown")
                .arg("mysql:")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let installed = Command::new(binary("DLOCK_TEST_MARIADB_INSTALL"))
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            installed.status.success(),
            "mariadb-install-db: {installed:?}"
        );
        let mut server = Mariadb {
            port: free_port(),
            dir,
            options,
            child: None,
        };
        server.spawn();
        server.wait_ready();
        let password = shared("DLOCK_TEST_MYSQL_PASSWORD");
        let created = server
            .client()
            .arg(format!(
                "CREATE USER 'dlock'@'%' IDENTIFIED BY '{password}'{requirement}; \
                 GRANT ALL ON *.* TO 'dlock'@'%';"
            ))
            .output()
            .unwrap();
        assert!(created.status.success(), "{created:?}");
        server
    }

    /// The DSN Dapr's MySQL component takes, for this server.
    pub fn dsn(&self) -> String {
        format!(
            "dlock:{}@tcp(127.0.0.1:{})/",
            shared("DLOCK_TEST_MYSQL_PASSWORD"),
            self.port
        )
    }

    /// The mariadb client as root over the socket, to run `-e` statements.
    fn client(&self) -> Command {
        let mut command = Command::new(binary("DLOCK_TEST_MARIADB_CLIENT"));
        command
            .args(["--no-defaults", "-u", "root", "-S"])
            .arg(self.dir.join("mariadb.sock"))
            .arg("-e");
        command
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("mariadb.log")).unwrap();
        let child = Command::new(binary("DLOCK_TEST_MARIADB_SERVER"))
            .args(["--no-defaults", "--user=mysql", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mariadb.sock").display()
            ))
            .arg(format!("--port={}", self.port))
            .args(["--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"])
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .client()
            .arg("SELECT 1")
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(self.dir.join("mariadb.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Outage for Mariadb {
    fn stop(&mut self) {
        kill(&mut self.child);
    }

    fn resume(&mut self) {
        self.spawn();
        self.wait_ready();
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private Azurite (the Azure Storage emulator's blob service), its data under the test temp
/// dir, for tests that stop the store.
pub struct Azurite {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Azurite {
    pub fn start() -> Azurite {
        Azurite::start_on(free_port())
    }

    /// On a given port: the emulator's well-known 10000 is what `UseDevelopmentStorage=true`
    /// points at.
    pub fn start_on(port: u16) -> Azurite {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: stop whatever listens there to run this test"
        );
        let mut azurite = Azurite {
            port,
            dir: temp_dir("azurite"),
            child: None,
        };
        azurite.resume();
        azurite
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Outage for Azurite {
    fn stop(&mut self) {
        kill(&mut self.child);
    }

    fn resume(&mut self) {
        let child = Command::new(binary("DLOCK_TEST_AZURITE_SERVER"))
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(&self.dir)
            .arg("--silent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        self.child = Some(child);
        // Azurite accepts connections before it answers: ready once it answers HTTP.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_http(self.port) {
            assert!(
                Instant::now() < deadline,
                "azurite on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether an HTTP server on `port` answers a request (any status) within a second.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 5];
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"HTTP/"
}
