//! Crashes: a holding sidecar killed (SIGKILL), the same for one holder of a semaphore's
//! places, and a store server killed (kill -9) and started again while a lock is held through
//! a renewed session.
//!
//! A killed sidecar renews nothing: its lock stays held until its expiry, then another owner
//! gets it; its `dlock` hears at once (the session's stream breaks) and exits 4. On the
//! embedded store the locks live in the sidecar and die with it.
//!
//! A store restarted from its disk keeps its locks, so a holder whose session rides out the
//! outage still holds its lock, and no one else is granted it meanwhile. Redis keeps nothing
//! across a restart unless it writes an append-only file: the suite runs it with one, synced
//! on every write, as a deployment that wants locks to survive a restart must (without it the
//! store hands a held lock to the next owner while its holder still believes it holds it,
//! until the holder's next renewal: see docs/reliability.md).

use std::process::Command;
use std::time::{Duration, Instant};

use super::history::History;
use super::{contend, contend_for_a_place, detection, figures, Holder, APP, SLACK, TTL};
use crate::support::api::{Api, Protocol, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, Dlockd, Options, DLOCK};
use crate::support::servers::{Outage, Redis, RedisCluster};

pub async fn killed_sidecar(backend: Backend) {
    let holding = backend.sidecar(APP, &[("store", None)]);
    let key = unique("crash");
    let history = History::default();
    let mut holder = Holder::start(Command::new(DLOCK), &holding.grpc, &key, "holder");
    let token = holder.token();
    tokio::time::sleep(TTL / 2).await;

    let killed = Instant::now();
    holding.kill();
    let Some((told, status)) = holder.exited(SLACK) else {
        panic!("dlock was not told its sidecar died:\n{}", holder.output());
    };
    assert_eq!(status.code(), Some(4), "{}", holder.output());
    history.record(&holder.owner, token, holder.started, told);

    let other = backend.sidecar(APP, &[("store", None)]);
    let locks = other.locks().await;
    if !backend.shared_between_sidecars() {
        // The killed sidecar's locks went with it: a new one starts empty.
        let granted = contend(&locks, &key, "other", Duration::ZERO).await;
        assert!(granted.is_some(), "a new sidecar found the lock held");
        figures(backend, "sidecar_crash", &[("holder_told", told - killed)]);
        return;
    }
    // Renewed a moment ago, the lock outlives its sidecar until its expiry.
    assert!(
        contend(&locks, &key, "other", Duration::ZERO)
            .await
            .is_none(),
        "the lock was free as soon as its sidecar died"
    );
    let within = TTL + detection(backend) + SLACK;
    let Some(granted) = contend(&locks, &key, "other", within).await else {
        panic!("the dead sidecar's lock was not freed within {within:?}");
    };
    let api = Api::new(&other).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "other").await,
        Ok(SUCCESS)
    );
    history.record("other", granted.token, granted.sent, Instant::now());
    history.check();
    figures(
        backend,
        "sidecar_crash",
        &[
            ("holder_told", told - killed),
            ("lock_freed", granted.sent - killed),
        ],
    );
}

/// Whether a server of `backend` killed with SIGKILL keeps every write it acknowledged. All do
/// but Azurite, the Azure Storage emulator the suite runs: it saves its state every 5 s, so a
/// kill loses the grants and renewals of the last 5 s (a fencing token handed out again, a
/// renewed lock back at an older expiry). Azure Storage itself is durable and cannot be killed
/// by its users; the test still checks that the sidecar serves again after the restart.
fn keeps_its_writes_when_killed(backend: Backend) -> bool {
    !matches!(backend, Backend::AzureBlob)
}

/// Redis's arguments for a server that keeps its locks across a restart.
const DURABLE_REDIS: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];

/// A private server of `backend` that keeps its locks across a kill -9 and restart, with a
/// component file for it.
fn restartable_server(backend: Backend) -> (Box<dyn Outage>, String) {
    let timeouts = [
        ("readTimeout", "1s"),
        ("writeTimeout", "1s"),
        ("dialTimeout", "1s"),
    ];
    match backend {
        Backend::Redis => {
            let redis = Redis::start(&DURABLE_REDIS);
            let address = redis.address();
            let mut metadata = vec![("redisHost", address.as_str())];
            metadata.extend(timeouts);
            let file = component("store", backend.type_name(), &metadata);
            (Box::new(redis), file)
        }
        Backend::RedisCluster => {
            let cluster = RedisCluster::start_with(&DURABLE_REDIS);
            let addresses = cluster.addresses();
            let mut metadata = vec![("redisHost", addresses.as_str()), ("redisType", "cluster")];
            metadata.extend(timeouts);
            let file = component("store", backend.type_name(), &metadata);
            (Box::new(cluster), file)
        }
        _ => backend.private_server().expect("a store with a server"),
    }
}

pub async fn store_restart(backend: Backend) {
    let (mut server, file) = restartable_server(backend);
    let holding = Dlockd::start(Options::with_component(APP, file.clone()));
    let other = Dlockd::start(Options::with_component(APP, file));
    let locks = other.locks().await;
    let api = Api::new(&other).await;
    let key = unique("restart");
    let history = History::default();
    let mut holder = Holder::start(Command::new(DLOCK), &holding.grpc, &key, "holder");
    let token = holder.token();
    tokio::time::sleep(TTL / 2).await;

    // The other owner tries all along: during the outage, and after it.
    let contender = {
        let (locks, key) = (locks.clone(), key.clone());
        tokio::spawn(async move { contend(&locks, &key, "other", Duration::from_secs(60)).await })
    };
    let killed = Instant::now();
    server.stop();
    server.resume();
    let resumed = Instant::now();
    let served = loop {
        let fresh = unique("after-restart");
        if api.lock(Protocol::Grpc, "store", &fresh, "probe", 10).await == Ok(true) {
            break Instant::now();
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "the sidecar did not serve again within 30 s of the restart\n{}",
            other.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Time for a lock the restart lost to be granted to the other owner, who keeps trying.
    tokio::time::sleep(TTL).await;

    // The holder either rode the outage out, and still holds the lock, or was told it lost it.
    let (granted, kept) = match holder.exited(Duration::ZERO) {
        Some((told, _)) => {
            history.record(&holder.owner, token, holder.started, told);
            (contender.await.unwrap(), false)
        }
        None => {
            // Nobody else may have been granted the lock meanwhile; a grant shows as an
            // overlap in the history.
            contender.abort();
            if let Ok(Some(granted)) = contender.await {
                history.record("other", granted.token, granted.sent, Instant::now());
            }
            let (released, _) = holder.stop();
            history.record(&holder.owner, token, holder.started, released);
            (contend(&locks, &key, "other", SLACK).await, true)
        }
    };
    let granted = granted.expect("the other owner never got the lock");
    // Granted during the wait above, the lock may have expired since.
    let released = api.unlock(Protocol::Grpc, "store", &key, "other").await;
    assert!(
        released == Ok(SUCCESS) || released == Ok(LOCK_DOES_NOT_EXIST),
        "{released:?}"
    );
    history.record("other", granted.token, granted.sent, Instant::now());
    if keeps_its_writes_when_killed(backend) {
        history.check();
    } else {
        eprintln!(
            "{backend:?}: the emulator loses its last writes when killed, so its history after \
             the restart is not checked"
        );
    }
    let outcome = if kept {
        "held through the restart"
    } else {
        "lost, and told"
    };
    eprintln!("fault figures: {backend:?} store_restart: the holder's lock was {outcome}");
    figures(
        backend,
        "store_restart",
        &[
            ("server_down_and_up", resumed - killed),
            ("serves_again", served - resumed),
        ],
    );
}

/// A semaphore of two places, one held through a sidecar killed with SIGKILL: its place frees
/// at its own expiry, to a third owner, while the holder of the other place keeps it.
pub async fn killed_permit_holder(backend: Backend) {
    let holding = backend.sidecar(APP, &[("store", None)]);
    let other = backend.sidecar(APP, &[("store", None)]);
    let key = unique("permit-crash");
    let place = |grpc: &str, owner: &str| {
        let mut dlock = Command::new(DLOCK);
        dlock.args(["--limit", "2"]);
        Holder::start(dlock, grpc, &key, owner)
    };
    let mut dies = place(&holding.grpc, "dies");
    let mut lives = place(&other.grpc, "lives");
    tokio::time::sleep(TTL / 2).await;

    let killed = Instant::now();
    holding.kill();
    let Some((_, status)) = dies.exited(SLACK) else {
        panic!("dlock was not told its sidecar died:\n{}", dies.output());
    };
    assert_eq!(status.code(), Some(4), "{}", dies.output());
    let locks = other.locks().await;
    assert!(
        contend_for_a_place(&locks, &key, "third", 2, Duration::ZERO)
            .await
            .is_none(),
        "the place was free as soon as its sidecar died"
    );
    let within = TTL + detection(backend) + SLACK;
    let Some(granted) = contend_for_a_place(&locks, &key, "third", 2, within).await else {
        panic!("the dead sidecar's place was not freed within {within:?}");
    };
    assert!(
        lives.exited(Duration::ZERO).is_none(),
        "the holder of the other place lost it:\n{}",
        lives.output()
    );
    lives.stop();
    figures(
        backend,
        "permit_crash",
        &[("place_freed", granted.sent - killed)],
    );
}
