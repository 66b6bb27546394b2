//! A network namespace of a test's own, for partitions: joined to the host by a veth pair with
//! addresses the test gives it, and with TCP forwarders (socat) that make the host's loopback
//! servers reachable from inside on the same `127.0.0.1:port` addresses, through the veth. A
//! sidecar started inside (`Options::netns`) so uses the same component files as one outside
//! (a Redis Cluster's node addresses included), and setting the link down cuts it from every
//! store at once, as a partition does: packets vanish, no connection is refused. Everything is
//! deleted on drop, whether the test passed or panicked.
//!
//! Creating a namespace needs root. Where the machine cannot, `Netns::create` says so and
//! answers `None`, and the test returns; under scripts/test.sh (DLOCK_TEST_NETNS=1, root as in
//! CI) that is a failure instead.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A namespace with a veth pair to the host and forwarders to the host's servers.
pub struct Netns {
    pub name: String,
    /// The host's end of the veth pair, which `cut` and `heal` set down and up.
    host_if: String,
    /// The host's address on the pair, where the host-side forwarders listen.
    host_ip: String,
    forwarders: Vec<Child>,
}

/// Runs `ip` with `args`: its error output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Netns {
    /// A namespace whose `127.0.0.1:port` reaches the host's `127.0.0.1:port` for each of
    /// `ports`; `None` (having said why) where the machine cannot create one and the suite
    /// does not require it.
    pub fn create(ports: &[u16]) -> Option<Netns> {
        match Netns::try_create(ports) {
            Ok(netns) => Some(netns),
            Err(error) if std::env::var("DLOCK_TEST_NETNS").as_deref() == Ok("1") => {
                panic!("DLOCK_TEST_NETNS=1 but no network namespace could be made: {error}")
            }
            Err(error) => {
                eprintln!(
                    "SKIPPED: this machine cannot create network namespaces (root is needed), \
                     so the partition is not tested: {error}"
                );
                None
            }
        }
    }

    fn try_create(ports: &[u16]) -> Result<Netns, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Two checkouts testing at once have different port offsets: their names and
        // subnets differ too.
        let offset: usize = std::env::var("DLOCK_TEST_PORT_OFFSET")
            .ok()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let tag = format!("{}x{n}", offset / 100);
        let subnet = format!("10.{}.{n}", 200 + offset / 100 % 50);
        let mut netns = Netns {
            name: format!("dlock-test-{}-{n}", std::process::id()),
            host_if: format!("dlkh{tag}"),
            host_ip: format!("{subnet}.1"),
            forwarders: Vec::new(),
        };
        let ns_if = format!("dlkn{tag}");
        let ns_ip = format!("{subnet}.2");
        // A pair left by a run that was killed would be in the way.
        let _ = ip(&["link", "del", &netns.host_if]);
        ip(&["netns", "add", &netns.name])?;
        let name = netns.name.clone();
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            &netns.name,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &netns.host_if,
        ])?;
        ip(&["link", "set", &netns.host_if, "up"])?;
        in_ns(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        in_ns(&["link", "set", &ns_if, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        for port in ports {
            netns.forward(*port)?;
        }
        Ok(netns)
    }

    /// Forwards `127.0.0.1:port` inside to the same on the host, through the veth: a
    /// forwarder inside to the host's address on the pair, and one there to the server.
    fn forward(&mut self, port: u16) -> Result<(), String> {
        let host = format!("TCP-LISTEN:{port},bind={},fork,reuseaddr", self.host_ip);
        self.spawn(&[], &host, &format!("TCP:127.0.0.1:{port}"))?;
        let inside = format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr");
        let to_host = format!("TCP:{}:{port}", self.host_ip);
        self.spawn(
            &["ip", "netns", "exec", &self.name.clone()],
            &inside,
            &to_host,
        )?;
        let listening = format!("sport = :{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        for prefix in [vec![], vec!["ip", "netns", "exec", &self.name]] {
            loop {
                let mut command: Vec<&str> = prefix.clone();
                command.extend(["ss", "-Hltn", &listening]);
                let output = Command::new(command[0])
                    .args(&command[1..])
                    .output()
                    .map_err(|e| format!("ss: {e}"))?;
                if !output.stdout.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("the forwarder for port {port} did not listen"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Starts socat from `listen` to `to`, after `prefix`, in a process group of its own so
    /// that its children (one per connection) end with it.
    fn spawn(&mut self, prefix: &[&str], listen: &str, to: &str) -> Result<(), String> {
        let mut all: Vec<&str> = prefix.to_vec();
        all.extend(["socat", listen, to]);
        let child = Command::new(all[0])
            .args(&all[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("socat: {e}"))?;
        self.forwarders.push(child);
        Ok(())
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Cuts the link: nothing inside reaches the host any more, nor the host inside.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    /// Brings the link back.
    pub fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.forwarders {
            // SAFETY: kill(2) on the process group of a child we started as its leader.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
        // Deleting the namespace deletes its end of the pair, and so the pair.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
