//! Running real sidecars for the tests: a `Dlockd` is one dlockd process, on free loopback
//! ports it picks itself (port 0, read back from its ready line), with component files written
//! to a folder of its own under Cargo's test temp dir. Dropping a `Dlockd` kills it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dlock::cli::connect::{self, Client, Locks};
use dlock::cli::http_client::HttpClient;

pub const DLOCKD: &str = env!("CARGO_BIN_EXE_dlockd");
pub const DLOCK: &str = env!("CARGO_BIN_EXE_dlock");
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh folder under the test temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A lock-store component file.
pub fn component(name: &str, type_name: &str, metadata: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {type_name}\n  version: v1\n  metadata:{}\n",
        if metadata.is_empty() { " []" } else { "" }
    );
    for (key, value) in metadata {
        yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
    }
    yaml
}

/// Starts a sidecar on one component of `type_name` that must stop start-up, and checks that
/// the error names the metadata `field` and does not show `secret`.
pub fn refused_component(type_name: &str, metadata: &[(&str, &str)], field: &str, secret: &str) {
    let file = component("store", type_name, metadata);
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains(&format!("field spec.metadata '{field}'")),
        "{field}: {failed}"
    );
    assert!(!failed.contains(secret), "{failed}");
}

/// How to start a sidecar.
#[derive(Default, Clone)]
pub struct Options {
    pub app_id: String,
    /// Component files to write, as (file name, content). None: no --resources-path at all.
    pub files: Option<Vec<(String, String)>>,
    pub env: Vec<(String, String)>,
    pub extra_args: Vec<String>,
    /// Pass extra_args alone, without the app id, listen address and port-0 arguments.
    pub only_extra_args: bool,
    /// The working directory; default: a fresh empty folder.
    pub cwd: Option<PathBuf>,
    /// The network namespace to run in (`netns.rs`); default: the test's own.
    pub netns: Option<String>,
    /// The command that runs the sidecar, program first, instead of DLOCKD: e.g. Wine and
    /// dlockd.exe (`windows.rs`), or a release build (`scale.rs`).
    pub program: Option<Vec<std::ffi::OsString>>,
}

impl Options {
    /// App id `app` with one in-memory store named `store`.
    pub fn in_memory() -> Self {
        Options::with_files(
            "app",
            &[("s.yaml", component("store", "lock.in-memory", &[]))],
        )
    }

    /// App id `app_id` with one component file.
    pub fn with_component(app_id: &str, file: String) -> Self {
        Options::with_files(app_id, &[("store.yaml", file)])
    }

    pub fn with_files(app_id: &str, files: &[(&str, String)]) -> Self {
        Options {
            app_id: app_id.into(),
            files: Some(
                files
                    .iter()
                    .map(|(name, text)| (name.to_string(), text.clone()))
                    .collect(),
            ),
            ..Options::default()
        }
    }
}

/// A running dlockd process (a sidecar), and the addresses of its two front doors.
pub struct Dlockd {
    child: Child,
    readers: Vec<std::thread::JoinHandle<()>>,
    pub grpc: String,
    pub http: String,
    /// The folder the component files were written to (`--resources-path`), if any.
    pub resources: Option<PathBuf>,
    /// The metrics port's address (`http://127.0.0.1:…`), if metrics are on.
    pub metrics: Option<String>,
    output: Arc<Mutex<Vec<String>>>,
}

/// A sidecar that stopped instead of becoming ready.
#[derive(Debug)]
pub struct Failed {
    pub status: Option<ExitStatus>,
    pub output: String,
}

impl Dlockd {
    pub fn start(options: Options) -> Dlockd {
        match Self::try_start(options) {
            Ok(sidecar) => sidecar,
            Err(failed) => panic!(
                "dlockd did not start ({:?}):\n{}",
                failed.status, failed.output
            ),
        }
    }

    /// Starts a dlockd that must stop instead of becoming ready; how it stopped.
    pub fn start_fails(options: Options) -> Failed {
        match Self::try_start(options) {
            Ok(sidecar) => panic!("dlockd started but should not have:\n{}", sidecar.logs()),
            Err(failed) => failed,
        }
    }

    pub fn try_start(options: Options) -> Result<Dlockd, Failed> {
        let dir = temp_dir("sidecar");
        let mut command = match &options.netns {
            // `ip netns exec` becomes dlockd (it execs it), so killing the child kills dlockd.
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, DLOCKD]);
                command
            }
            None => match &options.program {
                Some(program) => {
                    let mut command = Command::new(&program[0]);
                    command.args(&program[1..]);
                    command
                }
                None => Command::new(DLOCKD),
            },
        };
        if !options.only_extra_args {
            command
                .args(["--app-id", &options.app_id])
                .args(["--dapr-listen-addresses", "127.0.0.1"])
                .args(["--dapr-http-port", "0", "--dapr-grpc-port", "0"])
                // Metrics are on by default, on 9090 and every interface, as in daprd.
                .args([
                    "--metrics-port",
                    "0",
                    "--metrics-listen-address",
                    "127.0.0.1",
                ]);
        }
        command
            .args(&options.extra_args)
            .current_dir(options.cwd.clone().unwrap_or_else(|| dir.clone()))
            .env_remove("DAPR_API_TOKEN")
            .env_remove("RUST_LOG")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut resources_path = None;
        if let Some(files) = &options.files {
            let resources = dir.join("components");
            std::fs::create_dir_all(&resources).unwrap();
            for (name, text) in files {
                std::fs::write(resources.join(name), text).unwrap();
            }
            command.arg("--resources-path").arg(&resources);
            resources_path = Some(resources);
        }
        let mut child = command.spawn().expect("dlockd starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let ready_tx = ready_tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    // Recorded before the ready signal, so logs() always holds the ready line.
                    output.lock().unwrap().push(line.clone());
                    if line.contains("dlockd ready:") {
                        let _ = ready_tx.send(line);
                    }
                }
            }));
        }
        let started = Instant::now();
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(20)) {
                return Ok(Dlockd {
                    child,
                    readers,
                    grpc: format!("http://{}", address_after(&line, "gRPC on ")),
                    http: format!("http://{}", address_after(&line, "HTTP on ")),
                    resources: resources_path,
                    metrics: line
                        .contains("metrics on ")
                        .then(|| format!("http://{}", address_after(&line, "metrics on "))),
                    output,
                });
            }
            let exited = child.try_wait().unwrap();
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                let _ = child.kill();
                return Err(Failed {
                    status: exited,
                    output: output.lock().unwrap().join("\n"),
                });
            }
        }
    }

    pub async fn client(&self) -> Client {
        connect::grpc(&self.grpc, Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// `dlock status` against this sidecar, without the API token: its exit code and what it
    /// printed.
    pub fn dlock_status(&self) -> (i32, String) {
        let run = Command::new(DLOCK)
            .args(["--endpoint", &self.grpc, "status"])
            .env_remove("DAPR_API_TOKEN")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&run.stdout).to_string();
        (run.status.code().unwrap_or(-1), out)
    }

    pub async fn locks(&self) -> Locks {
        connect::locks(&self.grpc, Duration::from_secs(5))
            .await
            .unwrap()
    }

    pub fn http_client(&self) -> HttpClient {
        HttpClient::new(&self.http, None)
    }

    pub fn logs(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Kills the sidecar with SIGKILL, as a crash would: it releases nothing.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the sidecar with SIGSTOP, as a hung process or a long pause would: it answers
    /// nothing and renews nothing until thawed.
    pub fn freeze(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGSTOP) };
    }

    /// Lets a frozen sidecar run again (SIGCONT).
    pub fn thaw(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT) };
    }

    /// Sends SIGTERM and returns at once, while the sidecar shuts down.
    pub fn begin_terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Sends SIGTERM and waits for the exit; returns the status and everything it printed.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.begin_terminate();
        self.wait_for_exit()
    }

    /// The process id, for a test that asks the sidecar to stop in another way.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the sidecar to stop by itself; returns the status and everything it printed.
    pub fn wait_for_exit(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.logs())
    }
}

impl Drop for Dlockd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_after<'a>(line: &'a str, marker: &str) -> &'a str {
    let start = line.find(marker).expect("ready line names the address") + marker.len();
    line[start..].split_whitespace().next().unwrap()
}
