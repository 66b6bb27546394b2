//! Components reloaded live (issue 13, item 3): a component file added, edited or deleted under
//! a running sidecar takes effect without a restart; stores whose component did not change keep
//! their locks and sessions; sessions and waiters on a changed store end saying why; an edit
//! that does not load leaves the running version serving and says why in the log and in
//! `dlock status`; with hot reload off, nothing changes.
//!
//! Every wait is on a signal (the API answering differently), within a generous deadline; the
//! time an edit took to apply is printed, not asserted.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::{LoadProblem, StoresRequest};

use crate::support::api::{Api, Failure, Protocol};
use crate::support::backend::unique;
use crate::support::dlockd::{component, temp_dir, Dlockd, Options};
use crate::support::locks::{acquire_grpc, inspect_grpc, request_on, Session};
use crate::support::servers::shared;

/// Long enough for an edit on a busy machine; dlockd's own aim is 2 seconds.
const DEADLINE: Duration = Duration::from_secs(15);

/// An in-memory lock store with a keyPrefix: a new prefix is a new set of keys, so an edit
/// of the prefix shows in which locks are free.
fn in_memory(name: &str, key_prefix: &str) -> String {
    component(name, "lock.in-memory", &[("keyPrefix", key_prefix)])
}

/// Polls `check` until it finds something, and prints how long that took.
async fn eventually<T, F>(what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            println!("{what}: {:?}", start.elapsed());
            return found;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it holds.
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    eventually(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// A try-lock on a fresh resource of `store`: whether the store serves, or the error code.
async fn serves(api: &Api, store: &str) -> Result<bool, String> {
    match api
        .lock(Protocol::Http, store, &unique("probe"), "probe", 5)
        .await
    {
        Ok(granted) => Ok(granted),
        Err(Failure::Http { error_code, .. }) => Err(error_code),
        Err(other) => Err(format!("{other:?}")),
    }
}

async fn not_found(api: &Api, store: &str) -> bool {
    serves(api, store).await == Err("ERR_LOCK_STORE_NOT_FOUND".into())
}

/// The load problems in dlock's `Stores` answer, checked against the HTTP door's.
async fn load_problems(sidecar: &Dlockd) -> Vec<LoadProblem> {
    let answer = sidecar.locks().await.stores(StoresRequest {}).await;
    let problems = answer.unwrap().into_inner().load_problems;
    let http = sidecar.http_client().get("/dlock/v1/stores").await.unwrap();
    let json = http.json();
    let listed = json["loadProblems"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, problems.len(), "{json}");
    problems
}

fn resources(sidecar: &Dlockd) -> &Path {
    sidecar.resources.as_deref().unwrap()
}

#[tokio::test]
async fn a_file_added_serves_and_a_file_deleted_answers_not_found() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = &Api::new(&sidecar).await;
    assert!(not_found(api, "added").await);

    std::fs::write(
        resources(&sidecar).join("added.yaml"),
        in_memory("added", "name"),
    )
    .unwrap();
    until("a new component serves", || async move {
        serves(api, "added").await == Ok(true)
    })
    .await;
    api.smoke("added").await;

    std::fs::remove_file(resources(&sidecar).join("added.yaml")).unwrap();
    until("a deleted component answers not found", || {
        not_found(api, "added")
    })
    .await;
    // Over gRPC too, and the store that was never touched serves on.
    let grpc = api.lock(Protocol::Grpc, "added", "r", "o", 5).await;
    assert!(
        matches!(&grpc, Err(Failure::Grpc { code, message })
            if *code == tonic::Code::InvalidArgument && message.contains("lock store added not found")),
        "{grpc:?}"
    );
    api.smoke("store").await;
    let logs = sidecar.logs();
    assert!(logs.contains("component added"), "{logs}");
    assert!(logs.contains("component removed"), "{logs}");
}

/// One store is edited while locks, a session and a waiter are on both: the edited store's
/// session and waiter end with the reason, its new version serves new calls, and the other
/// store, saved by an editor meanwhile without a change, keeps its lock and its session.
#[tokio::test]
async fn an_edit_applies_to_its_store_alone() {
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("steady.yaml", in_memory("steady", "steady")),
            ("edited.yaml", in_memory("edited", "one")),
        ],
    ));
    let api = &Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let (kept, moved, waited) = (unique("kept"), unique("moved"), unique("waited"));
    // A three-second expiry: the steady session renews every second, so a session that the
    // reload broke would be lost well within the time the test watches it.
    let mut steady = Session::open(&locks, request_on("steady", &kept, "a", 3, 0)).await;
    assert!(matches!(steady.next(DEADLINE).await, Event::Acquired(_)));
    let mut on_edited = Session::open(&locks, request_on("edited", &moved, "b", 3, 0)).await;
    assert!(matches!(on_edited.next(DEADLINE).await, Event::Acquired(_)));
    assert_eq!(
        api.lock(Protocol::Grpc, "edited", &waited, "x", 60).await,
        Ok(true)
    );
    let waiter = {
        let locks = locks.clone();
        let waited = waited.clone();
        tokio::spawn(async move { acquire_grpc(&locks, "edited", &waited, "w", 10, 60_000).await })
    };

    // An editor's save of the steady store, unchanged: written to a temporary file, renamed
    // over the old one.
    let steady_file = resources(&sidecar).join("steady.yaml");
    let saved = resources(&sidecar).join(".steady.yaml.swp");
    std::fs::write(&saved, in_memory("steady", "steady")).unwrap();
    std::fs::rename(&saved, &steady_file).unwrap();

    std::fs::write(
        resources(&sidecar).join("edited.yaml"),
        in_memory("edited", "two"),
    )
    .unwrap();
    // The new prefix holds new keys: the lock x holds under the old one is not among them.
    let waited_ref = &waited;
    until(
        "an edited component serves with its new settings",
        || async move {
            api.lock(Protocol::Grpc, "edited", waited_ref, "y", 60)
                .await
                == Ok(true)
        },
    )
    .await;

    let reason = "lock store edited was reconfigured; the session ended";
    match on_edited.next(DEADLINE).await {
        Event::Lost(lost) => assert_eq!(lost.reason, reason),
        other => panic!("the session on the edited store did not end: {other:?}"),
    }
    let waiter = waiter.await.unwrap();
    assert!(
        waiter.as_ref().is_err_and(|e| e
            .message()
            .contains("lock store edited was reconfigured; the wait ended")),
        "{waiter:?}"
    );

    // The steady store's lock, session and renewals carried on.
    assert!(
        steady.quiet_for(Duration::from_secs(4)).await,
        "the session on the unchanged store ended"
    );
    let holder = inspect_grpc(&locks, "steady", &kept).await.unwrap();
    assert_eq!(holder.map(|h| h.lock_owner).as_deref(), Some("a"));
    assert_eq!(
        api.lock(Protocol::Http, "steady", &kept, "z", 5).await,
        Ok(false)
    );
    let logs = sidecar.logs();
    assert!(
        !logs.contains("lock store steady is no longer served"),
        "{logs}"
    );
    assert_eq!(logs.matches("component reloaded").count(), 1, "{logs}");
}

/// A real store pointed elsewhere: the Redis store moves to another database, where the lock
/// held in the first is not.
#[tokio::test]
async fn an_edited_redis_store_reconnects() {
    let redis = |db: &str| {
        component(
            "store",
            "lock.redis",
            &[("redisHost", &shared("DLOCK_TEST_REDIS")), ("redisDB", db)],
        )
    };
    let sidecar = Dlockd::start(Options::with_component("app", redis("0")));
    let api = &Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let resource = unique("redis-db");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "x", 60).await,
        Ok(true)
    );
    let mut session = Session::open(&locks, request_on("store", &unique("held"), "a", 3, 0)).await;
    assert!(matches!(session.next(DEADLINE).await, Event::Acquired(_)));

    std::fs::write(resources(&sidecar).join("store.yaml"), redis("1")).unwrap();
    let resource_ref = &resource;
    until(
        "the Redis store serves from its new database",
        || async move {
            api.lock(Protocol::Grpc, "store", resource_ref, "y", 60)
                .await
                == Ok(true)
        },
    )
    .await;
    match session.next(DEADLINE).await {
        Event::Lost(lost) => assert!(lost.reason.contains("reconfigured"), "{}", lost.reason),
        other => panic!("the session did not end: {other:?}"),
    }
    api.smoke("store").await;
}

/// Edits that do not load: one that is not YAML, one of an unknown type. Each keeps the running
/// version serving with its locks, and says why in the log and in `dlock status`, until the file
/// is put right.
#[tokio::test]
async fn an_edit_that_does_not_load_keeps_the_running_version() {
    let good = in_memory("store", "kept");
    let sidecar = &Dlockd::start(Options::with_component("app", good.clone()));
    let api = Api::new(sidecar).await;
    let resource = unique("held");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "x", 60).await,
        Ok(true)
    );
    let file = resources(sidecar).join("store.yaml");

    let edits = [
        (
            good.replace("metadata:\n  - name", "metadata: [\n  - name"),
            "not valid YAML",
            None,
        ),
        // A typo in `kind` once removed the running store.
        (
            good.replace("kind: Component", "kind: Componet"),
            "field kind: line 2: document 1: 'Componet' is not 'Component'",
            None,
        ),
        (
            good.replace("lock.in-memory", "lock.nowhere"),
            "field spec.type: unknown type 'lock.nowhere'",
            Some("component 'store': field spec.type"),
        ),
    ];
    for (text, why, located) in edits {
        std::fs::write(&file, &text).unwrap();
        let problems = eventually("the refused edit shows", || async move {
            let problems = load_problems(sidecar).await;
            problems
                .iter()
                .any(|p| p.reason.contains(why))
                .then_some(problems)
        })
        .await;
        let [problem] = problems.as_slice() else {
            panic!("{problems:?}")
        };
        assert_eq!(problem.component, "store");
        assert_eq!(PathBuf::from(&problem.file), file);
        if let Some(located) = located {
            assert!(problem.reason.starts_with(located), "{problem:?}");
        }
        // The running version serves on, the lock still held.
        assert_eq!(
            api.lock(Protocol::Http, "store", &resource, "y", 5).await,
            Ok(false)
        );
        let (code, out) = sidecar.dlock_status();
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("edit of component 'store' not loaded"),
            "{out}"
        );
        assert!(out.contains(why), "{out}");
        let logs = sidecar.logs();
        let logged = logs
            .lines()
            .find(|l| l.contains("ERROR") && l.contains(why))
            .unwrap_or_else(|| panic!("no error line: {logs}"));
        assert!(logged.contains(&file.display().to_string()), "{logged}");
    }

    std::fs::write(&file, &good).unwrap();
    until(
        "the problem goes once the file is put back",
        || async move { load_problems(sidecar).await.is_empty() },
    )
    .await;
    assert_eq!(sidecar.dlock_status().0, 0);
    // Put back as it runs: not reloaded, the lock still held.
    assert_eq!(
        api.lock(Protocol::Http, "store", &resource, "y", 5).await,
        Ok(false)
    );
    assert!(!sidecar.logs().contains("component reloaded"));
}

/// `--hot-reload=false` and the Configuration's HotReload feature set to false: a file added
/// is not served. A sidecar with hot reload on, watching the same folder, is the signal that
/// the edits settled (it applies them).
#[tokio::test]
async fn with_hot_reload_off_nothing_changes() {
    let folder = temp_dir("reload-off");
    std::fs::write(folder.join("store.yaml"), in_memory("store", "appid")).unwrap();
    let config = temp_dir("reload-off-config").join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  features:\n    - name: \
         HotReload\n      enabled: false\n",
    )
    .unwrap();
    let start = |extra: &[&str]| {
        let mut args = vec!["--resources-path".to_string(), folder.display().to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        Dlockd::start(Options {
            app_id: "app".into(),
            extra_args: args,
            ..Options::default()
        })
    };
    let on = start(&[]);
    let by_flag = start(&["--hot-reload=false"]);
    let config_arg = config.display().to_string();
    let by_config = start(&["--config", &config_arg]);
    // The flag wins over the file.
    let flag_over_config = start(&["--config", &config_arg, "--hot-reload"]);

    std::fs::write(folder.join("added.yaml"), in_memory("added", "name")).unwrap();
    let watching = &Api::new(&on).await;
    until("the watching sidecar serves the new store", || async move {
        serves(watching, "added").await == Ok(true)
    })
    .await;
    let overridden = &Api::new(&flag_over_config).await;
    until("the flag turns it on over the file", || async move {
        serves(overridden, "added").await == Ok(true)
    })
    .await;
    // One more settled edit, so that a sidecar that watched would have applied the first.
    std::fs::remove_file(folder.join("added.yaml")).unwrap();
    until("the watching sidecar drops the store", || {
        not_found(watching, "added")
    })
    .await;
    std::fs::write(folder.join("added.yaml"), in_memory("added", "name")).unwrap();
    until("the watching sidecar serves it again", || async move {
        serves(watching, "added").await == Ok(true)
    })
    .await;

    for sidecar in [&by_flag, &by_config] {
        let api = Api::new(sidecar).await;
        assert!(not_found(&api, "added").await, "{}", sidecar.logs());
        api.smoke("store").await;
        let logs = sidecar.logs();
        assert!(logs.contains("hot reload is off"), "{logs}");
    }
}
