//! daprd's Configuration file (`--config`) and API log (`--enable-api-logging`) on a real
//! dlockd: the API allow and deny lists close routes and RPCs as daprd closes them, a bad file
//! stops start-up naming the file and the field, every call is logged once whichever door it
//! came through, and `dlock` falls back to Dapr's lock API when dlock's own is closed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dlock::proto::dapr::GetMetadataRequest;
use serde_json::json;

use crate::support::api::{Api, Failure, Protocol, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{temp_dir, Dlockd, Options, DLOCK};
use crate::support::locks::{inspect_grpc, try_acquire};

/// Writes `text` as a Configuration file in a fresh folder.
fn config_file(text: &str) -> PathBuf {
    let file = temp_dir("configuration").join("config.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// A Configuration whose `spec.api` is `api` (YAML, indented under `api:`).
fn with_api(api: &str) -> PathBuf {
    config_file(&format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\nspec:\n  \
         api:\n{api}"
    ))
}

/// An in-memory sidecar started with `--config file` and `args`.
fn sidecar_with(file: &Path, args: &[&str]) -> Dlockd {
    let mut options = Options::in_memory();
    options.extra_args = ["--config", file.to_str().unwrap()]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    Dlockd::start(options)
}

/// The HTTP status of a POST with a JSON body.
async fn http_status(api: &Api, path: &str) -> u16 {
    let body = json!({"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5});
    api.http.post(path, body.to_string()).await.unwrap().status
}

fn is_closed_rpc(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented && status.message() == "Not Implemented"
}

#[tokio::test]
async fn a_denied_endpoint_is_closed_on_its_protocol_only() {
    let file = with_api(
        "    denied:\n      - {name: lock, version: v1alpha1, protocol: http}\n      \
         - {name: unlock, version: v1alpha1, protocol: grpc}\n      \
         - {name: dlock, version: v1, protocol: grpc}\n",
    );
    let sidecar = sidecar_with(&file, &[]);
    let api = Api::new(&sidecar).await;
    let key = unique("denied");

    // The HTTP lock route is gone (404, as any unknown route); gRPC TryLock still works.
    assert_eq!(http_status(&api, "/v1.0-alpha1/lock/store").await, 404);
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "o", 10).await,
        Ok(true)
    );
    // gRPC Unlock answers UNIMPLEMENTED as daprd does; HTTP unlock still works.
    let unlock = dlock::proto::dapr::UnlockRequest {
        store_name: "store".into(),
        resource_id: key.clone(),
        lock_owner: "o".into(),
    };
    let closed = api.grpc.clone().unlock_alpha1(unlock).await.unwrap_err();
    assert!(is_closed_rpc(&closed), "{closed:?}");
    assert_eq!(
        api.unlock(Protocol::Http, "store", &key, "o").await,
        Ok(SUCCESS)
    );
    // dlock's own API: closed on gRPC, served on HTTP.
    let closed = inspect_grpc(&sidecar.locks().await, "store", &key).await;
    assert_eq!(
        closed,
        Err(Failure::Grpc {
            code: tonic::Code::Unimplemented,
            message: "Not Implemented".into()
        })
    );
    assert_eq!(http_status(&api, "/dlock/v1/inspect/store").await, 200);
    // What no rule names stays served.
    assert_eq!(api.http.get("/v1.0/healthz").await.unwrap().status, 204);
    assert_eq!(api.http.get("/v1.0/metadata").await.unwrap().status, 200);
    assert!(api
        .grpc
        .clone()
        .get_metadata(GetMetadataRequest {})
        .await
        .is_ok());

    let logs = sidecar.logs();
    assert!(
        logs.contains("spec.api closes HTTP: lock v1alpha1; gRPC: unlock v1alpha1, dlock v1"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_allow_list_serves_only_what_it_names() {
    let mut rules = String::from("    allowed:\n");
    for protocol in ["http", "grpc"] {
        for name in ["lock", "unlock"] {
            rules.push_str(&format!(
                "      - name: {name}\n        version: v1alpha1\n        protocol: {protocol}\n"
            ));
        }
    }
    let sidecar = sidecar_with(&with_api(&rules), &[]);
    let api = Api::new(&sidecar).await;

    // Dapr's lock API works on both doors…
    api.smoke("store").await;
    // …dlock's own and the metadata API, not named, are closed on both.
    assert_eq!(http_status(&api, "/dlock/v1/acquire/store").await, 404);
    assert_eq!(api.http.get("/v1.0/metadata").await.unwrap().status, 404);
    let closed = inspect_grpc(&sidecar.locks().await, "store", "r").await;
    assert!(
        matches!(&closed, Err(Failure::Grpc { code, .. }) if *code == tonic::Code::Unimplemented),
        "{closed:?}"
    );
    let metadata = api.grpc.clone().get_metadata(GetMetadataRequest {}).await;
    assert!(is_closed_rpc(&metadata.unwrap_err()));
    // The health routes are always served: SDKs wait on them.
    assert_eq!(
        api.http.get("/v1.0/healthz/outbound").await.unwrap().status,
        204
    );
}

/// What `dapr init` writes, as a Windows editor saves it (byte-order mark, CRLF), with the
/// sections dlockd does not apply: they are named once, and the metrics switch is mentioned.
#[tokio::test]
async fn the_dapr_init_file_starts_and_what_is_not_applied_is_named_once() {
    let text = "\u{feff}apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: \
                daprConfig\nspec:\n  tracing:\n    samplingRate: \"1\"\n    zipkin:\n      \
                endpointAddress: http://localhost:9411/api/v2/spans\n  metric:\n    enabled: \
                false\n  features:\n    - name: Resiliency\n      enabled: true\n"
        .replace('\n', "\r\n");
    let sidecar = sidecar_with(&config_file(&text), &[]);
    Api::new(&sidecar).await.smoke("store").await;
    let logs = sidecar.logs();
    let named: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("not applied, no meaning for a lock sidecar"))
        .collect();
    assert_eq!(named.len(), 1, "{logs}");
    assert!(named[0].contains("spec.tracing"), "{}", named[0]);
    assert!(
        named[0].contains("spec.features (Resiliency"),
        "{}",
        named[0]
    );
    assert!(
        logs.contains("spec.metric.enabled is false: metrics are off"),
        "{logs}"
    );
    assert_eq!(sidecar.metrics, None, "{logs}");
    assert!(!logs.contains("spec.api closes"), "{logs}");
}

#[test]
fn a_bad_configuration_stops_start_up_naming_file_and_field() {
    let cases = [
        (
            "spec:\n  api:\n    allowed: lock\n",
            "field spec.api.allowed: must be a list",
        ),
        (
            "spec:\n  api:\n    denied:\n      - name: [lock]\n",
            "field spec.api.denied[0].name: must be a string",
        ),
        (
            "spec:\n  logging:\n    apiLogging:\n      enabled: yes please\n",
            "field spec.logging.apiLogging.enabled: must be true or false",
        ),
        (
            "spec:\n  api: {allowed: [\n",
            "line 3, column 1: not valid YAML",
        ),
    ];
    for (text, expected) in cases {
        let file = config_file(text);
        let mut options = Options::in_memory();
        options.extra_args = vec!["--config".into(), file.to_str().unwrap().into()];
        let failed = Dlockd::start_fails(options).output;
        let named = format!("--config: {}: {expected}", file.display());
        assert!(failed.contains(&named), "{text:?}: {failed}");
    }
    let mut options = Options::in_memory();
    options.extra_args = vec!["--config".into(), "/nonexistent/config.yaml".into()];
    let failed = Dlockd::start_fails(options).output;
    assert!(
        failed.contains("--config: /nonexistent/config.yaml: can't read"),
        "{failed}"
    );
}

/// The API log lines of a sidecar's output.
fn api_log_lines(sidecar: &Dlockd) -> Vec<String> {
    sidecar
        .logs()
        .lines()
        .filter(|l| l.contains("API call"))
        .map(str::to_string)
        .collect()
}

/// Waits until the sidecar has logged `count` API calls (a line is written after the answer).
async fn wait_for_api_lines(sidecar: &Dlockd, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = api_log_lines(sidecar);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn api_logging_writes_one_line_per_call_on_both_doors_whatever_the_log_level() {
    // Warnings only, but for the ready line the tests wait for.
    let mut options = Options::in_memory();
    options.extra_args = vec!["--enable-api-logging".into()];
    options.env = vec![("RUST_LOG".into(), "warn,dlockd=info".into())];
    let sidecar = Dlockd::start(options);
    let api = Api::new(&sidecar).await;
    let key = unique("logged");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "alice", 10).await,
        Ok(true)
    );
    assert_eq!(
        api.lock(Protocol::Http, "store", &key, "bob", 10).await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Http, "store", &key, "alice").await,
        Ok(SUCCESS)
    );
    let locks = sidecar.locks().await;
    assert!(try_acquire(&locks, &key, "carol", 10).await.is_some());
    let nowhere = api.lock(Protocol::Grpc, "nosuch", &key, "dave", 10).await;
    assert!(nowhere.is_err());

    let lines = wait_for_api_lines(&sidecar, 5).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let expected = [
        ("TryLockAlpha1", "store", "alice", "granted"),
        ("TryLockAlpha1", "store", "bob", "held by another owner"),
        ("UnlockAlpha1", "store", "alice", "success"),
        ("Acquire", "store", "carol", "acquired"),
        (
            "TryLockAlpha1",
            "nosuch",
            "dave",
            "error: lock store nosuch not found; the lock stores loaded are: store",
        ),
    ];
    for (line, (method, store, owner, outcome)) in lines.iter().zip(expected) {
        for field in [
            format!("method=\"{method}\""),
            format!("store=\"{store}\""),
            format!("resource=\"{key}\""),
            format!("owner=\"{owner}\""),
            format!("outcome=\"{outcome}\""),
            "duration_ms=".to_string(),
        ] {
            assert!(line.contains(&field), "{field} missing: {line}");
        }
        assert!(line.contains("INFO"), "{line}");
    }
}

#[tokio::test]
async fn the_configuration_turns_api_logging_on_and_the_flag_wins() {
    let on = config_file("spec:\n  logging:\n    apiLogging:\n      enabled: true\n");
    let logged = sidecar_with(&on, &[]);
    let api = Api::new(&logged).await;
    assert_eq!(
        api.lock(Protocol::Http, "store", "r", "o", 10).await,
        Ok(true)
    );
    assert_eq!(wait_for_api_lines(&logged, 1).await.len(), 1);

    let silenced = sidecar_with(&on, &["--enable-api-logging=false"]);
    let api = Api::new(&silenced).await;
    assert_eq!(
        api.lock(Protocol::Http, "store", "r", "o", 10).await,
        Ok(true)
    );
    // The answer came back, and a logged call is logged before its answer is sent on.
    let (_, logs) = silenced.terminate();
    assert!(!logs.contains("API call"), "{logs}");
}

/// A running `dlock`, its stderr lines sent on as they come.
struct Dlock {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dlock {
    fn start(sidecar: &Dlockd, args: &[&str]) -> Dlock {
        let mut child = Command::new(DLOCK)
            .arg("--endpoint")
            .arg(&sidecar.grpc)
            .arg("--store")
            .arg("store")
            .args(args)
            .env_remove("DAPR_API_TOKEN")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Dlock {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no '{text}' from dlock: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the exit; the exit code and every stderr line.
    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        // The reader ends with the pipe, after the last line.
        self.seen.extend(self.lines.iter());
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }
}

const FALLBACK: &str = "the sidecar does not serve dlock's own API";

#[test]
fn dlock_falls_back_to_dapr_s_lock_api_when_dlock_s_own_is_closed() {
    let file = with_api(
        "    denied:\n      - {name: dlock, version: v1, protocol: grpc}\n      \
         - {name: dlock, version: v1, protocol: http}\n",
    );
    let sidecar = sidecar_with(&file, &[]);
    let key = unique("fallback");
    let dir = temp_dir("fallback");
    let (go, done) = (dir.join("go"), dir.join("first-done"));

    // The first holds the lock until the test says go; the second starts once the first holds
    // it, and its command finds the first one's work done only if it waited for the release.
    let first_work = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; touch '{}'",
        go.display(),
        done.display()
    );
    let mut first = Dlock::start(&sidecar, &[&key, "10", "--", "sh", "-c", &first_work]);
    first.wait_for("acquired");
    let second_work = format!("test -e '{}'", done.display());
    let mut second = Dlock::start(&sidecar, &[&key, "10", "--", "sh", "-c", &second_work]);
    second.wait_for("waiting");
    std::fs::write(&go, "").unwrap();
    let (code, first_said) = first.finish();
    assert_eq!(code, 0, "{first_said}");
    let (code, second_said) = second.finish();
    assert_eq!(
        code, 0,
        "the second ran before the first released: {second_said}"
    );
    for said in [&first_said, &second_said] {
        let fallback: Vec<&str> = said.lines().filter(|l| l.contains(FALLBACK)).collect();
        assert_eq!(fallback.len(), 1, "{said}");
        assert!(fallback[0].contains("at most 10s"), "{said}");
        assert!(said.contains("released"), "{said}");
    }

    // Without a command: held for the seconds asked, then released.
    let (code, said) = Dlock::start(&sidecar, &[&unique("plain"), "1"]).finish();
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains(FALLBACK) && said.contains("released"),
        "{said}"
    );
}

#[test]
fn through_dapr_s_api_a_command_is_stopped_when_the_lock_expires() {
    let file = with_api("    denied:\n      - {name: dlock, version: v1, protocol: grpc}\n");
    let sidecar = sidecar_with(&file, &[]);
    let started = Instant::now();
    let (code, said) =
        Dlock::start(&sidecar, &[&unique("expiring"), "1", "--", "sleep", "30"]).finish();
    assert_eq!(code, 4, "{said}");
    assert!(said.contains("expires now, after 1s"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(20), "{said}");
}
