//! The Windows build, run: dlockd.exe and dlock.exe (cross-built by scripts/windows.sh) under
//! Wine, against the servers scripts/test.sh started and with Linux clients and sidecars
//! beside them. What is tested is what differs on Windows: paths with drive letters and
//! backslashes, component files with CRLF line ends and a byte-order mark, dapr's Windows
//! layout, the console control events that stand in for signals, a file replaced the Windows
//! way; and that the Windows sidecar shares locks with a Linux one on the networked stores.
//! Where Wine cannot show a Windows behaviour, docs/install.md says so.
//!
//! Wine starts a process in a second or two, so each test starts few of them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Run;
use crate::sdk;
use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, temp_dir, Dlockd, Options, DLOCKD};
use dlock::cli::http_client::HttpClient;

/// A file scripts/windows.sh made, named by its environment variable; missing is a failure.
fn from_env(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from);
    match path {
        Some(path) if path.exists() => path,
        _ => panic!(
            "{variable} is not set or names no file: run the tests through scripts/test.sh, \
             which builds the Windows binaries and sets up Wine (scripts/windows.sh)"
        ),
    }
}

fn wine() -> PathBuf {
    from_env("DLOCK_TEST_WINE")
}

fn dlockd_exe() -> PathBuf {
    from_env("DLOCK_TEST_DLOCKD_EXE")
}

fn dlock_exe() -> PathBuf {
    from_env("DLOCK_TEST_DLOCK_EXE")
}

/// The test-only console-event.exe (scripts/windows-console-event.c).
fn console_event_exe() -> PathBuf {
    from_env("DLOCK_TEST_CONSOLE_EVENT_EXE")
}

/// Drive C: of the Wine prefix the suite shares.
fn drive_c() -> PathBuf {
    from_env("WINEPREFIX").join("drive_c")
}

/// `exe` (a Windows path or a Linux one) under Wine.
fn wine_run(exe: impl Into<OsString>) -> Command {
    let mut command = Command::new(wine());
    command.arg(exe.into());
    command
}

/// A Linux path as a Windows program names it: Wine maps the Linux root to drive Z:.
fn on_z(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A fresh folder on drive C:, as (its Linux path, its Windows path).
fn folder_on_c(label: &str) -> (PathBuf, String) {
    let name = unique(label);
    let linux = drive_c().join("dlock-tests").join(&name);
    std::fs::create_dir_all(&linux).unwrap();
    (linux, format!("C:\\dlock-tests\\{name}"))
}

/// A text as Windows editors save it: a UTF-8 byte-order mark and CRLF line ends.
fn saved_on_windows(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend(text.replace('\n', "\r\n").into_bytes());
    bytes
}

/// Writes a component file saved on Windows into `folder`, creating it.
fn write_windows_component(folder: &Path, file: &str, store: &str, type_name: &str) {
    std::fs::create_dir_all(folder).unwrap();
    let text = component(store, type_name, &[]);
    std::fs::write(folder.join(file), saved_on_windows(&text)).unwrap();
}

/// A dlockd.exe sidecar; `exe` is its path (default: the build's dlockd.exe).
fn windows_sidecar(exe: Option<OsString>, options: Options) -> Dlockd {
    let exe = exe.unwrap_or_else(|| dlockd_exe().into());
    Dlockd::start(Options {
        program: Some(vec![wine().into(), exe]),
        ..options
    })
}

/// Presses Ctrl-C for the Windows process whose Linux process id is `pid`: Wine runs each
/// Windows process as a Linux process and turns SIGINT into its Ctrl-C event.
fn press_ctrl_c(pid: u32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
}

/// The console control events Wine itself cannot deliver, as console-event.exe names them:
/// Ctrl-Break, and the console window closing (after which Windows ends the process as soon as
/// its handler returns, or 5 seconds on).
const UNDELIVERABLE_BY_WINE: [&str; 2] = ["break", "close"];

/// `exe` under Wine through console-event.exe, which prints the Windows process id that
/// `send_console_event` takes.
fn wine_run_for_events(exe: impl Into<OsString>) -> Vec<OsString> {
    vec![
        wine().into(),
        console_event_exe().into(),
        "run".into(),
        exe.into(),
    ]
}

/// The Windows process id console-event.exe printed into `output`.
fn windows_pid(output: &str) -> String {
    let line = output
        .lines()
        .find_map(|l| l.split("console-event: pid ").nth(1));
    line.expect("console-event.exe printed the process id")
        .trim()
        .to_owned()
}

/// Delivers the console control `event` to the Windows process `pid` as Windows does (a thread
/// at kernelbase's CtrlRoutine) and returns what became of the process: for `close`, "exited by
/// itself with code N" or "terminated …", as Windows would have ended it.
async fn send_console_event(event: &'static str, pid: String) -> String {
    // Off this runtime's thread: the process may be waiting for this test's connections to
    // close before it exits.
    let sent = tokio::task::spawn_blocking(move || {
        wine_run(console_event_exe())
            .args(["send", event, &pid])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    let sent = sent.await.unwrap();
    assert!(
        sent.status.success(),
        "console-event send {event}: {sent:?}"
    );
    String::from_utf8_lossy(&sent.stdout).trim().to_owned()
}

/// dlockd.exe starts with every form of Windows path dapr users give (a drive letter and
/// backslashes, drive Z: and forward slashes) and reads component files saved on Windows;
/// every store loaded serves over HTTP and gRPC, and the console page is served.
#[tokio::test]
async fn starts_with_windows_paths_and_files_saved_on_windows() {
    let (on_c, on_c_windows) = folder_on_c("paths");
    write_windows_component(&on_c, "c.yaml", "on-c", "lock.in-memory");
    let backslashes = temp_dir("win-backslashes");
    write_windows_component(&backslashes, "z.yaml", "on-z", "lock.in-memory");
    let slashes = temp_dir("win-slashes");
    write_windows_component(&slashes, "slash.yml", "on-z-slashes", "lock.in-memory");
    let sidecar = windows_sidecar(
        None,
        Options {
            app_id: "win-paths".into(),
            extra_args: vec![
                "--resources-path".into(),
                on_c_windows,
                "--resources-path".into(),
                on_z(&backslashes),
                "--resources-path".into(),
                on_z(&slashes).replace('\\', "/"),
            ],
            ..Options::default()
        },
    );
    let api = Api::new(&sidecar).await;
    for store in ["on-c", "on-z", "on-z-slashes"] {
        api.smoke(store).await;
    }
    let page = sidecar.http_client().get("/dlock/console").await.unwrap();
    assert_eq!(page.status, 200);
    let page = String::from_utf8_lossy(&page.body);
    assert!(page.contains("console.js"), "{page}");
    let script = sidecar
        .http_client()
        .get("/dlock/console/console.js")
        .await
        .unwrap();
    assert_eq!(script.status, 200);
}

/// dlockd.exe installed as dapr's Windows layout has it, `.dapr\bin\daprd.exe` beside
/// `.dapr\components`: it answers `--version` as the Linux build (and daprd) does, serves
/// what the components folder names, and the official SDKs on Linux lock through it, the
/// Python one over gRPC and the JavaScript one over HTTP and gRPC.
#[tokio::test]
async fn as_daprd_exe_in_daprs_layout_it_serves_the_sdks() {
    let (home, home_windows) = folder_on_c("home");
    let bin = home.join(".dapr").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(dlockd_exe(), bin.join("daprd.exe")).unwrap();
    // The test harness's stand-in for what Wine lacks, beside the .exe (scripts/windows.sh).
    let shim = dlockd_exe().with_file_name("bcryptprimitives.dll");
    std::fs::copy(shim, bin.join("bcryptprimitives.dll")).unwrap();
    write_windows_component(
        &home.join(".dapr").join("components"),
        "lockstore.yaml",
        "lockstore",
        "lock.in-memory",
    );
    let daprd = format!("{home_windows}\\.dapr\\bin\\daprd.exe");

    let windows = wine_run(&daprd).arg("--version").output().unwrap();
    let linux = Command::new(DLOCKD).arg("--version").output().unwrap();
    assert!(windows.status.success(), "{windows:?}");
    assert_eq!(
        String::from_utf8_lossy(&windows.stdout).trim_end(),
        String::from_utf8_lossy(&linux.stdout).trim_end()
    );

    let sidecar = windows_sidecar(
        Some(daprd.into()),
        Options {
            app_id: "win-sdk".into(),
            extra_args: vec![
                "--resources-path".into(),
                format!("{home_windows}\\.dapr\\components"),
            ],
            ..Options::default()
        },
    );
    sdk::run(
        &sidecar,
        &sdk::python(),
        "tests/sdk/python/sdk_lock.py",
        &[],
    );
    sdk::node_modules_ready();
    sdk::run(
        &sidecar,
        Path::new("node"),
        "tests/sdk/js/sdk_lock.mjs",
        &[],
    );
}

/// `dlock.exe KEY SECONDS -- cmd /c …` runs the command under the lock and exits with the
/// command's exit code, releasing the lock.
#[tokio::test]
async fn dlock_exe_gives_the_commands_exit_code() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let key = unique("win-exit");
    let run = Run::spawn(
        wine_run(dlock_exe()),
        &sidecar,
        &[&key, "30", "--", "cmd", "/c", "exit 7"],
        &[],
    );
    run.wait_for("acquired");
    let text = run.text();
    assert_eq!(run.exit_code(), 7, "{text}");
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(true),
        "released after the command"
    );
}

/// Starts dlock.exe (by `command`) running a command for a minute under `key`, and checks the
/// lock is held while it runs.
async fn dlock_exe_running_a_minute(command: Command, sidecar: &Dlockd, key: &str) -> Run {
    let run = Run::spawn(
        command,
        sidecar,
        &[key, "60", "--", "cmd", "/c", "ping -n 60 127.0.0.1 >NUL"],
        &[],
    );
    run.wait_for("acquired");
    assert_eq!(
        Api::new(sidecar)
            .await
            .lock(Protocol::Grpc, "lockstore", key, "other", 5)
            .await,
        Ok(false),
        "held while the command runs"
    );
    run
}

/// dlock, asked to stop (`how`) at `asked`, ends its command rather than waiting out its
/// minute, says so, exits 130 and leaves `key` free.
async fn assert_interrupted_and_released(
    run: Run,
    sidecar: &Dlockd,
    key: &str,
    how: &str,
    asked: Instant,
) {
    run.wait_for("interrupted");
    let text = run.text();
    assert_eq!(run.exit_code(), 130, "{how}: {text}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{how}: the command was not ended"
    );
    assert_eq!(
        Api::new(sidecar)
            .await
            .lock(Protocol::Grpc, "lockstore", key, "other", 5)
            .await,
        Ok(true),
        "{how}: released"
    );
}

/// The sidecar, asked to stop (`how`), shuts down gracefully: it says so and exits 0.
async fn assert_shuts_down_gracefully(sidecar: Dlockd, how: &str) {
    // Waited for off this runtime's thread, which the clients' connections need to see the
    // sidecar close them.
    let (status, logs) = tokio::task::spawn_blocking(move || sidecar.wait_for_exit())
        .await
        .unwrap();
    assert!(status.success(), "{how}: {status:?}\n{logs}");
    assert!(logs.contains("shutting down"), "{how}: {logs}");
    assert!(logs.contains("stopped"), "{how}: {logs}");
}

/// Ctrl-C to dlock.exe ends the command it runs and releases the lock; dlock exits 130, as
/// on Linux.
#[tokio::test]
async fn ctrl_c_to_dlock_exe_ends_the_command_and_releases() {
    let sidecar = Dlockd::start(Options::default());
    let key = unique("win-ctrl");
    let run = dlock_exe_running_a_minute(wine_run(dlock_exe()), &sidecar, &key).await;
    let asked = Instant::now();
    press_ctrl_c(run.child.id());
    assert_interrupted_and_released(run, &sidecar, &key, "Ctrl-C", asked).await;
}

/// Ctrl-Break and closing its console to dlock.exe do what Ctrl-C does: the command is ended,
/// the lock released and dlock exits 130 — on a closed console before Windows would end it.
#[tokio::test]
async fn ctrl_break_and_closing_the_console_to_dlock_exe_end_the_command_and_release() {
    let sidecar = Dlockd::start(Options::default());
    for event in UNDELIVERABLE_BY_WINE {
        let key = unique(&format!("win-{event}"));
        let program = wine_run_for_events(dlock_exe());
        let mut command = Command::new(&program[0]);
        command.args(&program[1..]);
        let run = dlock_exe_running_a_minute(command, &sidecar, &key).await;
        let asked = Instant::now();
        let became = send_console_event(event, windows_pid(&run.text())).await;
        if event == "close" {
            assert_eq!(became, "exited by itself with code 130", "{}", run.text());
        }
        assert_interrupted_and_released(run, &sidecar, &key, event, asked).await;
    }
}

/// Ctrl-C to dlockd.exe is a graceful shutdown, as SIGTERM is on Linux: it stops serving,
/// says so and exits 0.
#[tokio::test]
async fn ctrl_c_to_dlockd_exe_shuts_it_down_gracefully() {
    let sidecar = windows_sidecar(None, Options::in_memory());
    Api::new(&sidecar).await.smoke("store").await;
    press_ctrl_c(sidecar.pid());
    assert_shuts_down_gracefully(sidecar, "Ctrl-C").await;
}

/// Ctrl-Break and closing its console to dlockd.exe are the graceful shutdown Ctrl-C is; on a
/// closed console it is over, and dlockd exits by itself, before Windows would end it.
#[tokio::test]
async fn ctrl_break_and_closing_the_console_to_dlockd_exe_shut_it_down_gracefully() {
    for event in UNDELIVERABLE_BY_WINE {
        let sidecar = Dlockd::start(Options {
            program: Some(wine_run_for_events(dlockd_exe())),
            ..Options::in_memory()
        });
        Api::new(&sidecar).await.smoke("store").await;
        let became = send_console_event(event, windows_pid(&sidecar.logs())).await;
        if event == "close" {
            assert_eq!(became, "exited by itself with code 0", "{}", sidecar.logs());
        }
        assert_shuts_down_gracefully(sidecar, event).await;
    }
}

/// lock.redis, lock.postgresql and lock.azure.blobstorage from a Windows sidecar: a lock taken
/// through it is held for a Linux sidecar on the same store, and the other way round.
#[tokio::test]
async fn windows_and_linux_sidecars_share_locks() {
    let backends = [
        ("redis", Backend::Redis),
        ("postgresql", Backend::Postgresql),
        ("azure", Backend::AzureBlob),
    ];
    let files: Vec<(String, String)> = backends
        .iter()
        .map(|(name, backend)| (format!("{name}.yaml"), backend.component(name, None)))
        .collect();
    let options = Options {
        app_id: "win-shared".into(),
        files: Some(files),
        ..Options::default()
    };
    let windows_sidecar = windows_sidecar(None, options.clone());
    let windows = Api::new(&windows_sidecar).await;
    let linux_sidecar = Dlockd::start(options);
    let linux = Api::new(&linux_sidecar).await;
    for (store, _) in backends {
        let key = unique("win-shared");
        for (holder, other) in [(&windows, &linux), (&linux, &windows)] {
            assert_eq!(
                holder.lock(Protocol::Http, store, &key, "holder", 30).await,
                Ok(true),
                "{store}"
            );
            assert_eq!(
                other.lock(Protocol::Grpc, store, &key, "other", 30).await,
                Ok(false),
                "{store}: held for the other sidecar"
            );
            assert_eq!(
                holder.unlock(Protocol::Grpc, store, &key, "holder").await,
                Ok(SUCCESS),
                "{store}"
            );
        }
        assert_eq!(
            windows.lock(Protocol::Grpc, store, &key, "last", 30).await,
            Ok(true),
            "{store}: free once both released"
        );
        assert_eq!(
            linux.unlock(Protocol::Http, store, &key, "last").await,
            Ok(SUCCESS),
            "{store}: one lock for both"
        );
    }
}

/// A component file replaced the way Windows programs save (a temporary file written, then
/// moved over the old one by `move /y`) is reloaded live by dlockd.exe.
#[tokio::test]
async fn a_file_replaced_the_windows_way_is_reloaded_live() {
    let folder = temp_dir("win-reload");
    write_windows_component(&folder, "store.yaml", "before", "lock.in-memory");
    let sidecar = windows_sidecar(
        None,
        Options {
            app_id: "win-reload".into(),
            extra_args: vec!["--resources-path".into(), on_z(&folder)],
            ..Options::default()
        },
    );
    let api = Api::new(&sidecar).await;
    api.smoke("before").await;
    write_windows_component(&folder, "store.yaml.tmp", "after", "lock.in-memory");
    let moved = wine_run("cmd")
        .args(["/c", "move", "/y"])
        .arg(on_z(&folder.join("store.yaml.tmp")))
        .arg(on_z(&folder.join("store.yaml")))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(moved.success(), "move /y: {moved:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while api
        .lock(Protocol::Http, "after", "k", "o", 5)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "not reloaded:\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        api.lock(Protocol::Http, "before", "k", "o", 5)
            .await
            .is_err(),
        "the replaced store is gone"
    );
}

/// dlockd.exe as a Windows service under Wine's Service Control Manager: `sc create` with the
/// documented command line, `sc start` serves, `sc stop` is the graceful shutdown, and the log
/// goes to the file given.
#[tokio::test]
async fn as_a_windows_service_it_serves_until_stopped() {
    let name = unique("dlockd").replace('-', "_");
    let folder = temp_dir("win-service");
    let log = folder.join("dlockd.log");
    let (http, grpc) = (free_port(), free_port());
    let command_line = format!(
        "{} service --log-file {} --app-id win-service --dapr-listen-addresses 127.0.0.1 \
         --dapr-http-port {http} --dapr-grpc-port {grpc} --metrics-port 0",
        on_z(&dlockd_exe()),
        on_z(&log)
    );
    let sc = |args: &[&str]| {
        let run = wine_run("sc")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "sc {args:?}: {run:?}\nlog: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    sc(&["create", &name, "binPath=", &command_line]);
    sc(&["start", &name]);
    let api = HttpClient::new(&format!("http://127.0.0.1:{http}"), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let body = r#"{"resourceId":"r","lockOwner":"o","expiryInSeconds":30}"#;
        if let Ok(answer) = api.post("/v1.0-alpha1/lock/lockstore", body).await {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the service does not serve; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer.json()["success"], true, "{answer:?}");
    sc(&["stop", &name]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let logged = loop {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("stopped") {
            break logged;
        }
        assert!(Instant::now() < deadline, "not stopped; log: {logged}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(logged.contains("dlockd ready:"), "{logged}");
    assert!(logged.contains("shutting down"), "{logged}");
    let state = sc(&["query", &name]);
    assert!(state.contains("STOPPED"), "{state}");
    assert!(state.contains("WIN32_EXIT_CODE    : 0 "), "{state}");
    sc(&["delete", &name]);
}

/// A loopback port free right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
