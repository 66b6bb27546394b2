//! `dlock` end to end, as a person runs it: two runs on one sidecar, the second waiting for the
//! first; a command under the lock; Ctrl-C; and the exit codes of the failures.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{component, temp_dir, Dlockd, Options, DLOCK};

/// A running `dlock`, its stderr lines collected with the time each arrived.
pub(crate) struct Run {
    pub(crate) child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Run {
    fn start(sidecar: &Dlockd, args: &[&str]) -> Run {
        Run::start_with(sidecar, args, &[])
    }

    fn start_with(sidecar: &Dlockd, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::spawn(Command::new(DLOCK), sidecar, args, env)
    }

    /// Runs `command` (a dlock, e.g. dlock.exe under Wine) against `sidecar` with `args`.
    pub(crate) fn spawn(
        mut command: Command,
        sidecar: &Dlockd,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut child = command
            .arg("--endpoint")
            .arg(&sidecar.grpc)
            .args(args)
            .env_remove("DAPR_API_TOKEN")
            .env_remove("DLOCK_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Run { child, lines }
    }

    /// Waits for a line containing `text`; returns when it arrived.
    pub(crate) fn wait_for(&self, text: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((at, _)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| l.contains(text))
            {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "no '{text}' from dlock: {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn exit_code(mut self) -> i32 {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the last lines
        status.code().unwrap_or(-1)
    }
}

#[tokio::test]
async fn the_second_run_waits_for_the_first() {
    let sidecar = Dlockd::start(Options::default());
    let key = unique("cli");
    let first = Run::start(&sidecar, &[&key, "2"]);
    let first_acquired = first.wait_for("acquired");
    let second = Run::start(&sidecar, &[&key, "1"]);
    second.wait_for("; waiting");
    let first_released = first.wait_for("released");
    let second_acquired = second.wait_for("acquired");
    // The first held it its two seconds, and the second got it only then. (The first says
    // "released" once its unlock is answered; by then the sidecar may have handed the lock to
    // the waiter, whose "acquired" can arrive first: the two lines come in either order.)
    assert!(
        second_acquired - first_acquired >= Duration::from_millis(1900),
        "the second run got the lock while the first held it"
    );
    assert!(first_released - first_acquired >= Duration::from_millis(1900));
    // Handed over promptly: the sidecar wakes the waiter on the release.
    let gap = if second_acquired > first_released {
        second_acquired - first_released
    } else {
        first_released - second_acquired
    };
    assert!(
        gap < Duration::from_millis(300),
        "handed over {gap:?} apart"
    );
    assert_eq!(first.exit_code(), 0);
    let second_text = second.text();
    assert_eq!(second.exit_code(), 0, "{second_text}");
}

#[tokio::test]
async fn a_command_runs_under_the_lock_and_gives_its_exit_code() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let key = unique("cmd");
    let out = temp_dir("cmd").join("seen");
    let script = format!("echo \"$DLOCK_KEY\" > '{}'; exit 7", out.display());
    let run = Run::start(&sidecar, &[&key, "30", "--", "sh", "-c", &script]);
    assert_eq!(run.exit_code(), 7);
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), key);
    // Released after the command: anyone can take it now.
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(true)
    );

    // While the command runs, the lock is held.
    let key = unique("cmd");
    let run = Run::start(&sidecar, &[&key, "30", "--", "sleep", "1"]);
    run.wait_for("acquired");
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(false)
    );
    assert_eq!(run.exit_code(), 0);
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(true)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "lockstore", &key, "other").await,
        Ok(SUCCESS)
    );
}

#[tokio::test]
async fn ctrl_c_releases_the_lock() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let key = unique("int");
    let run = Run::start(&sidecar, &[&key, "60"]);
    run.wait_for("acquired");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(run.exit_code(), 130);
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(true)
    );
}

#[tokio::test]
async fn failures_have_distinct_exit_codes() {
    let sidecar = Dlockd::start(Options::default());
    // Unreachable sidecar: 3.
    let run = Command::new(DLOCK)
        .args(["--endpoint", "127.0.0.1:1", "k", "1"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&run.stderr).contains("can't reach the sidecar"));
    // The sidecar's HTTP port, which is not gRPC: 3, saying so.
    for args in [&["k", "1"][..], &["status"], &["inspect", "k"]] {
        let run = Command::new(DLOCK)
            .args(["--endpoint", &sidecar.http])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(3), "{args:?}: {stderr}");
        let said = format!(
            "dlock: {} answered as an HTTP server, not as a sidecar's gRPC port",
            sidecar.http
        );
        assert!(stderr.starts_with(&said), "{args:?}: {stderr}");
        assert!(stderr.contains("give the sidecar's gRPC port"), "{stderr}");
    }
    // The sidecar refuses: 1, with its message.
    let run = Run::start(&sidecar, &["--store", "nope", "k", "1"]);
    run.wait_for("lock store nope not found; the lock stores loaded are: lockstore");
    assert_eq!(run.exit_code(), 1);
    // Bad usage: 2.
    let run = Command::new(DLOCK).args(["k", "0"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let run = Command::new(DLOCK).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
}

#[tokio::test]
async fn a_command_keeps_the_lock_past_seconds_and_gets_its_token() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let key = unique("long");
    let out = temp_dir("cmd").join("env");
    let script = format!(
        "echo \"$DLOCK_FENCING_TOKEN\" > '{}'; sleep 3",
        out.display()
    );
    let run = Run::start(&sidecar, &[&key, "1", "--", "sh", "-c", &script]);
    run.wait_for("acquired");
    // Two seconds in, past the 1 s expiry: the session has renewed it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(false)
    );
    assert_eq!(run.exit_code(), 0);
    let token: u64 = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(token > 0);
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "other", 5)
            .await,
        Ok(true)
    );
}

#[tokio::test]
async fn a_lost_lock_stops_the_command() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DLOCK_ADMIN_TOKEN".into(), "adm1n".into())],
        ..Options::default()
    });
    let key = unique("lost");
    let out = temp_dir("cmd").join("term");
    let script = format!(
        "trap 'echo terminated > {}; exit 0' TERM; sleep 30 & wait",
        out.display()
    );
    let run = Run::start(&sidecar, &[&key, "30", "--", "sh", "-c", &script]);
    run.wait_for("acquired");
    let started = Instant::now();
    let release = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "release", "--force", &key])
        .env("DLOCK_ADMIN_TOKEN", "adm1n")
        .output()
        .unwrap();
    assert!(release.status.success(), "{release:?}");
    run.wait_for("lost");
    // An operator's release is not called an expiry: the lock had 30 s left.
    run.wait_for(&format!(
        "dlock: lost '{key}': the lock was released by an operator (or lost by the store) \
         before it expired; stopping the command"
    ));
    assert_eq!(run.exit_code(), 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "terminated");
    // The operator reads it in the sidecar's log too, once, with the lock and its owner.
    let logs = sidecar.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("session lost its lock"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    for part in [
        "store=lockstore",
        &format!("resource={key}"),
        "session lost its lock, and its client was told: the lock was released by an operator",
    ] {
        assert!(
            lines[0].contains(part),
            "'{part}' missing from {}",
            lines[0]
        );
    }
}

#[tokio::test]
async fn a_forced_release_of_a_held_lock_is_not_called_an_expiry() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DLOCK_ADMIN_TOKEN".into(), "adm1n".into())],
        ..Options::default()
    });
    let key = unique("forced");
    let run = Run::start(&sidecar, &[&key, "2"]);
    run.wait_for("acquired");
    let release = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "release", "--force", &key])
        .env("DLOCK_ADMIN_TOKEN", "adm1n")
        .output()
        .unwrap();
    assert!(release.status.success(), "{release:?}");
    run.wait_for(&format!(
        "dlock: '{key}' was released by an operator (or lost by the store) before its expiry, \
         while dlock held it"
    ));
    assert!(!run.text().contains("expired"), "{}", run.text());
    assert_eq!(run.exit_code(), 1);
}

#[tokio::test]
async fn a_waiting_run_follows_the_holder() {
    let sidecar = Dlockd::start(Options::default());
    let key = unique("follow");
    let first = Run::start(&sidecar, &["--owner", "first", &key, "2"]);
    first.wait_for("acquired");
    let second = Run::start(&sidecar, &["--owner", "second", &key, "2"]);
    second.wait_for("is held by first");
    let third = Run::start(&sidecar, &["--owner", "third", &key, "1"]);
    third.wait_for(&format!("dlock: '{key}' is held by first ("));
    // The second run takes the lock from the first (for 2 s and one of margin); the third,
    // still waiting, says so with the new holder's time left.
    let line = third.wait_for(&format!("dlock: '{key}' is held by second ("));
    let text = third.text();
    let shown = text
        .lines()
        .find(|l| l.contains("is held by second ("))
        .unwrap();
    let left: f64 = shown
        .split_once("is held by second (")
        .and_then(|(_, rest)| rest.split_once("s left); waiting…"))
        .map(|(left, _)| left.parse().unwrap())
        .unwrap_or_else(|| panic!("no time left in: {shown}"));
    assert!(left > 1.0 && left <= 3.0, "{shown}");
    assert!(third.wait_for("acquired") > line);
    for run in [first, second, third] {
        assert_eq!(run.exit_code(), 0);
    }
}

#[tokio::test]
async fn no_wait_fails_at_once_and_a_bounded_wait_gives_up_on_time() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let key = unique("nowait");
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "holder", 30)
            .await,
        Ok(true)
    );
    let started = Instant::now();
    let run = Run::start(&sidecar, &["-n", &key, "5"]);
    assert_eq!(run.exit_code(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    let started = Instant::now();
    let run = Run::start(&sidecar, &["--wait", "0.5", &key, "5"]);
    run.wait_for("gave up waiting");
    assert_eq!(run.exit_code(), 1);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn inspect_list_and_force_release_commands_work_and_force_needs_the_token() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DLOCK_ADMIN_TOKEN".into(), "adm1n".into())],
        ..Options::default()
    });
    let api = Api::new(&sidecar).await;
    let base = unique("ops");
    for (suffix, owner) in [("a", "alice"), ("b", "bob")] {
        let key = format!("{base}/{suffix}");
        assert_eq!(
            api.lock(Protocol::Grpc, "lockstore", &key, owner, 60).await,
            Ok(true)
        );
    }
    let dlock = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(DLOCK)
            .arg("--endpoint")
            .arg(&sidecar.grpc)
            .args(args)
            .env_remove("DLOCK_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();

    let held = dlock(&["inspect", &format!("{base}/a")], &[]);
    assert_eq!(held.status.code(), Some(0));
    assert!(text(&held).contains("held by alice"), "{}", text(&held));
    let free = dlock(&["inspect", &format!("{base}/none")], &[]);
    assert_eq!(free.status.code(), Some(1));
    assert!(text(&free).contains("free"));

    let listed = dlock(&["list", &base], &[]);
    let lines: Vec<String> = text(&listed).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{base}/a")) && lines[1].starts_with(&format!("{base}/b"))
    );

    let key_b = format!("{base}/b");
    let refused = dlock(&["release", "--force", &key_b], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key_b, "other", 5)
            .await,
        Ok(false)
    );
    let forced = dlock(
        &["release", "--force", &key_b],
        &[("DLOCK_ADMIN_TOKEN", "adm1n")],
    );
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key_b, "other", 5)
            .await,
        Ok(true)
    );
    // --force is required.
    assert_eq!(dlock(&["release", &key_b], &[]).status.code(), Some(2));
}

#[tokio::test]
async fn bench_modes_report_figures() {
    let sidecar = Dlockd::start(Options::default());
    let port = sidecar.http.rsplit(':').next().unwrap().to_string();
    let http = format!("127.0.0.1:{port}");
    for args in [
        vec!["bench", "-c", "4", "-n", "400"],
        vec![
            "bench",
            "-c",
            "4",
            "-n",
            "400",
            "--protocol",
            "http",
            "--http-endpoint",
            &http,
        ],
        vec!["bench", "-c", "4", "-n", "400", "--keys", "shared"],
        vec!["bench", "-c", "3", "-n", "100", "--handover"],
    ] {
        let output = Command::new(DLOCK)
            .args(["--endpoint", &sidecar.grpc])
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("p50") && text.contains("p99"),
            "{args:?}: {text}"
        );
        if args.contains(&"--handover") {
            assert!(text.contains("99 hand-overs"), "{text}");
        } else if !args.contains(&"shared") {
            assert!(text.contains("granted 400, refused 0, errors 0"), "{text}");
        }
    }
}

/// `dlock bench | head -1`: a reader that closes the pipe early ends dlock quietly, not with
/// a panic about a broken pipe.
#[tokio::test]
async fn a_closed_stdout_ends_dlock_quietly() {
    let sidecar = Dlockd::start(Options::default());
    let mut child = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "bench", "-c", "2", "-n", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The report comes after the run, so the pipe is closed before dlock writes to it.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn a_closed_stderr_never_loses_the_commands_exit_code() {
    let sidecar = Dlockd::start(Options::default());
    let key = unique("closed-stderr");
    let mut child = Command::new(DLOCK)
        .args([
            "--endpoint",
            &sidecar.grpc,
            &key,
            "2",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .env_remove("DAPR_API_TOKEN")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before dlock writes a word (`dlock … 2>&1 | head -0`).
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7), "{status:?}");
    // The lock was released all the same.
    let api = Api::new(&sidecar).await;
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &key, "next", 10)
            .await,
        Ok(true)
    );
}

#[tokio::test]
async fn seconds_outside_daprs_range_are_refused_with_the_range() {
    let marker = temp_dir("range").join("ran");
    for seconds in ["-5", "0", "4294967295", "2147483648"] {
        let run = Command::new(DLOCK)
            .args(["--endpoint", "127.0.0.1:1", "k", seconds, "--", "touch"])
            .arg(&marker)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{seconds}: {stderr}");
        assert!(
            stderr.contains(&format!("{seconds} is not in 1..=2147483647")),
            "{seconds}: {stderr}"
        );
    }
    assert!(!marker.exists(), "a refused run started its command");
}

#[tokio::test]
async fn a_key_named_like_a_subcommand_is_taken_with_hold() {
    let sidecar = Dlockd::start(Options::default());
    for key in ["status", "top", "list", "hold"] {
        let run = Run::start(&sidecar, &["hold", key, "1"]);
        run.wait_for(&format!("dlock: acquired '{key}'"));
        assert_eq!(run.exit_code(), 0, "{key}");
    }
}

#[tokio::test]
async fn a_wait_ended_by_a_reconfigured_store_is_asked_again() {
    let store = |prefix: &str| component("lockstore", "lock.in-memory", &[("keyPrefix", prefix)]);
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[("lockstore.yaml", store("r0"))],
    ));
    let api = Api::new(&sidecar).await;
    let key = unique("reasked");
    let file = sidecar.resources.clone().unwrap().join("lockstore.yaml");
    for (round, args) in [&[&key, "1"][..], &[&key, "1", "--", "true"]]
        .iter()
        .enumerate()
    {
        assert_eq!(
            api.lock(Protocol::Grpc, "lockstore", &key, "holder", 60)
                .await,
            Ok(true)
        );
        let run = Run::start(&sidecar, args);
        run.wait_for("is held by holder");
        // The store's component is edited: a new in-memory store, where the key is free.
        std::fs::write(&file, store(&format!("r{}", round + 1))).unwrap();
        run.wait_for("was reconfigured; the wait ended, ask again; asking again");
        run.wait_for("dlock: acquired");
        let said = run.text();
        assert_eq!(run.exit_code(), 0, "{said}");
    }
}

#[tokio::test]
async fn a_limit_admits_that_many_runs_at_once_and_the_next_waits() {
    let sidecar = Dlockd::start(Options::default());
    let key = unique("nightly");
    let first = Run::start(&sidecar, &["--limit", "2", "--owner", "a", &key, "3"]);
    let second = Run::start(&sidecar, &["--limit", "2", "--owner", "b", &key, "3"]);
    let taken = first.wait_for("acquired").max(second.wait_for("acquired"));
    let third = Run::start(&sidecar, &["--limit", "2", "--owner", "c", &key, "1"]);
    third.wait_for("and 1 other (");
    // The third place comes free only when a holder's 3 s are over.
    let third_taken = third.wait_for("acquired");
    assert!(
        third_taken >= taken + Duration::from_secs(2),
        "{}",
        third.text()
    );
    let inspected = Command::new(DLOCK)
        .args(["--endpoint", &sidecar.grpc, "inspect", &key])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&inspected.stdout);
    assert!(shown.contains("held shared, limit 2 by "), "{shown}");
    for run in [first, second, third] {
        assert_eq!(run.exit_code(), 0);
    }
    // Another limit than the holders' is refused at once, naming both.
    let a = Run::start(&sidecar, &["--limit", "2", "--owner", "a", &key, "5"]);
    a.wait_for("acquired");
    let other = Run::start(&sidecar, &["--limit", "3", "--owner", "x", &key, "5"]);
    other.wait_for("limit 2");
    assert_eq!(other.exit_code(), 1);
    a.exit_code();
}

#[tokio::test]
async fn also_takes_every_key_in_one_lock_and_releases_them_together() {
    let sidecar = Dlockd::start(Options::default());
    let api = Api::new(&sidecar).await;
    let (first, second) = (unique("also-a"), unique("also-b"));
    // Another owner holds the second key: the multi-lock waits, holding neither.
    assert_eq!(
        api.lock(Protocol::Grpc, "lockstore", &second, "other", 30)
            .await,
        Ok(true)
    );
    let run = Run::start(&sidecar, &["--also", &first, &second, "1"]);
    run.wait_for("; waiting");
    assert_eq!(
        api.lock(Protocol::Http, "lockstore", &first, "probe", 30)
            .await,
        Ok(true),
        "the first key was held while the multi-lock waited"
    );
    assert_eq!(
        api.unlock(Protocol::Http, "lockstore", &first, "probe")
            .await,
        Ok(SUCCESS)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "lockstore", &second, "other")
            .await,
        Ok(SUCCESS)
    );
    run.wait_for("acquired");
    for key in [&first, &second] {
        assert_eq!(
            api.lock(Protocol::Grpc, "lockstore", key, "p", 30).await,
            Ok(false)
        );
    }
    run.wait_for("released");
    assert_eq!(run.exit_code(), 0);
    for key in [&first, &second] {
        assert_eq!(
            api.lock(Protocol::Grpc, "lockstore", key, "p", 30).await,
            Ok(true)
        );
    }
    // With a command, the keys are held in one session.
    let (a, b) = (unique("also-c"), unique("also-d"));
    let run = Run::start(&sidecar, &["--also", &b, &a, "5", "--", "sleep", "1"]);
    run.wait_for("acquired");
    assert_eq!(
        api.lock(Protocol::Http, "lockstore", &b, "p", 30).await,
        Ok(false)
    );
    assert_eq!(run.exit_code(), 0);
    assert_eq!(
        api.lock(Protocol::Http, "lockstore", &b, "p", 30).await,
        Ok(true)
    );
}
