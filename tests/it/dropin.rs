//! dlockd installed where daprd was: started with the argument list `dapr run` builds, asked
//! for its version as the `dapr` CLI asks, and stopped as daprd's shutdown flags say.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol};
use crate::support::dlockd::{component, temp_dir, Dlockd, Options, DLOCKD};

/// A loopback port free right now.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

/// The arguments `dapr run --app-id BPMServerApp --dapr-http-port 3501 --dapr-grpc-port 50001
/// --app-port 6002` passes to daprd (dapr CLI 1.18), in its order, with free ports for the two
/// that dlockd binds and for the two the CLI picks at random, and a temp dir for ~/.dapr.
/// The app port, placement and scheduler addresses stay as given: dlockd never dials them.
#[tokio::test]
async fn starts_with_the_arguments_dapr_run_passes_and_serves_locks() {
    let dapr_dir = temp_dir("dapr-home");
    let components = dapr_dir.join("components");
    std::fs::create_dir_all(&components).unwrap();
    std::fs::write(
        components.join("lockstore.yaml"),
        component("lockstore", "lock.in-memory", &[]),
    )
    .unwrap();
    // What `dapr init` writes beside it.
    std::fs::write(
        components.join("statestore.yaml"),
        component(
            "statestore",
            "state.redis",
            &[("redisHost", "localhost:6379"), ("actorStateStore", "true")],
        ),
    )
    .unwrap();
    let config = dapr_dir.join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprConfig\n\
         spec:\n  tracing:\n    samplingRate: \"1\"\n    zipkin:\n      \
         endpointAddress: http://localhost:9411/api/v2/spans\n",
    )
    .unwrap();
    let (http, grpc) = (free_port(), free_port());
    let config = config.to_str().unwrap();
    let components = components.to_str().unwrap();
    let args = [
        "--config",
        config,
        "--app-protocol",
        "http",
        "--log-level",
        "info",
        "--app-max-concurrency",
        "-1",
        "--placement-host-address",
        "localhost:50005",
        "--components-path",
        components,
        "--max-body-size",
        "4Mi",
        "--read-buffer-size",
        "4Ki",
        "--scheduler-host-address",
        "localhost:50006",
        "--app-id",
        "BPMServerApp",
        "--app-port",
        "6002",
        "--dapr-http-port",
        &http,
        "--dapr-grpc-port",
        &grpc,
        "--profile-port",
        "-1",
        "--metrics-port",
        &free_port(),
        "--dapr-internal-grpc-port",
        &free_port(),
    ];
    let sidecar = Dlockd::start(Options {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        only_extra_args: true,
        ..Options::default()
    });
    assert_eq!(sidecar.grpc, format!("http://127.0.0.1:{grpc}"));
    assert_eq!(sidecar.http, format!("http://127.0.0.1:{http}"));
    Api::new(&sidecar).await.smoke("lockstore").await;

    let logs = sidecar.logs();
    let named: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("no effect in dlockd"))
        .collect();
    assert_eq!(named.len(), 1, "named once: {logs}");
    for flag in [
        "--app-protocol",
        "--app-max-concurrency",
        "--placement-host-address",
        "--read-buffer-size",
        "--scheduler-host-address",
        "--profile-port",
        "--dapr-internal-grpc-port",
    ] {
        assert!(named[0].contains(flag), "{flag} missing: {}", named[0]);
    }
    assert!(logs.contains("app id 'BPMServerApp'"), "{logs}");
}

/// The `dapr` CLI reads `daprd --version`'s stdout as a semver and drops
/// --scheduler-host-address below 1.14.0-rc.1; daprd prints the version and a newline.
#[test]
fn version_is_a_daprd_semver_line_on_stdout() {
    for spelling in ["--version", "-version"] {
        let output = Command::new(DLOCKD).arg(spelling).output().unwrap();
        assert!(output.status.success(), "{spelling}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let version = stdout
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{spelling}: no newline: {stdout:?}"));
        let parts: Vec<u32> = version
            .split('.')
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("not a semver: {stdout:?}"))
            })
            .collect();
        assert_eq!(parts.len(), 3, "{stdout:?}");
        assert!(parts[..2] >= [1, 14][..], "{stdout:?}");
    }
}

/// `--build-info` names the commit it was built from (tests run in a git checkout).
#[test]
fn build_info_names_the_commit() {
    let output = Command::new(DLOCKD).arg("--build-info").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let commit = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Git Commit: "))
        .unwrap_or_else(|| panic!("no commit line: {stdout}"));
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{stdout}"
    );
}

/// A request that never finishes (its body never arrives) holds shutdown for
/// --dapr-graceful-shutdown-seconds, then dlockd gives up and exits 1, as daprd does.
#[test]
fn graceful_shutdown_seconds_bounds_the_wait_for_open_requests() {
    let mut options = Options::in_memory();
    options.extra_args = vec!["--dapr-graceful-shutdown-seconds".into(), "1".into()];
    let sidecar = Dlockd::start(options);
    let mut open = TcpStream::connect(sidecar.http.trim_start_matches("http://")).unwrap();
    open.write_all(
        b"POST /v1.0-alpha1/lock/store HTTP/1.1\r\nHost: dlockd\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, output) = sidecar.terminate();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}: {output}"
    );
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("graceful shutdown timeout"), "{output}");
    drop(open);
}

/// --dapr-block-shutdown-duration keeps the API answering after SIGTERM, so an app that is
/// stopping can still release its locks.
#[tokio::test]
async fn block_shutdown_duration_keeps_serving_after_sigterm() {
    let mut options = Options::in_memory();
    options.extra_args = vec!["-dapr-block-shutdown-duration=2s".into()];
    let sidecar = Dlockd::start(options);
    let api = Api::new(&sidecar).await;
    assert_eq!(
        api.lock(Protocol::Http, "store", "job", "app", 30).await,
        Ok(true)
    );
    let started = Instant::now();
    sidecar.begin_terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", "job", "app").await,
        Ok(0),
        "released during the block"
    );
    // The client's connections close while the test waits, so nothing holds the drain.
    drop(api);
    let (status, output) = tokio::task::spawn_blocking(move || sidecar.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{output}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{output}");
    assert!(output.contains("blocking shutdown for 2s"), "{output}");
}

/// --unix-domain-socket DIR: both APIs on DIR/dapr-<app-id>-<api>.socket as daprd names them,
/// nothing on TCP, and the socket files gone after shutdown.
#[cfg(unix)]
#[test]
fn unix_domain_socket_serves_both_apis_on_daprs_socket_names() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    let dir = temp_dir("sockets");
    let mut options = Options::in_memory();
    options.app_id = "BPMServerApp".into();
    // The metrics port is TCP whatever the APIs use, as daprd's is: off here, so that the
    // ready line has no TCP address at all.
    options.extra_args = vec![
        "--unix-domain-socket".into(),
        dir.display().to_string(),
        "--enable-metrics=false".into(),
    ];
    let sidecar = Dlockd::start(options);
    let (http, grpc) = (
        dir.join("dapr-BPMServerApp-http.socket"),
        dir.join("dapr-BPMServerApp-grpc.socket"),
    );
    let ready = sidecar.logs();
    assert!(
        ready.contains(&format!("gRPC on unix:{}", grpc.display()))
            && ready.contains(&format!("HTTP on unix:{}", http.display()))
            && !ready.contains("127.0.0.1"),
        "{ready}"
    );

    let body = r#"{"resourceId":"job","lockOwner":"app","expiryInSeconds":30}"#;
    let mut stream = UnixStream::connect(&http).unwrap();
    write!(
        stream,
        "POST /v1.0-alpha1/lock/store HTTP/1.1\r\nHost: dlockd\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(r#""success":true"#),
        "{answer}"
    );
    UnixStream::connect(&grpc).expect("the gRPC socket accepts connections");

    let (status, output) = sidecar.terminate();
    assert!(status.success(), "{output}");
    assert!(!http.exists() && !grpc.exists(), "socket files left behind");
}
