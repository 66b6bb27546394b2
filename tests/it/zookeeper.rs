//! lock.zookeeper beyond the conformance suite: the nodes a lock is made of, an expiry that
//! holds while the holder's sidecar hangs, a session that expires (its locks reported lost,
//! never assumed held, and a new session opened), an ensemble that loses its leader, digest
//! credentials, metadata errors, a granting sidecar's shortcut meeting changes made
//! elsewhere, listing, and the nodes of shared and reentrant holders.

use std::time::{Duration, Instant};

use dlock::config::Metadata;
use dlock::lock::{Kind, LockStore, OwnerChecked, TryLockOutcome};
use dlock::proto::dlock::hold_event::Event;
use zookeeper_client::Client;

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::{
    unique, zookeeper_metadata, Backend, ADMIN_TOKEN, ZOOKEEPER_SESSION,
};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::{
    acquire, force_release, inspect, renew, request, try_acquire, Session,
};
use crate::support::servers::{shared, Outage, Zookeeper};

async fn raw() -> Client {
    Client::connect(&shared("DLOCK_TEST_ZOOKEEPER"))
        .await
        .unwrap()
}

/// A sidecar with app id `app` and one `lock.zookeeper` component named `store` with this
/// metadata.
fn sidecar_with(metadata: &[(&str, String)]) -> Result<Dlockd, crate::support::dlockd::Failed> {
    let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let file = component("store", "lock.zookeeper", &pairs);
    Dlockd::try_start(Options::with_component("app", file))
}

#[tokio::test]
async fn a_lock_is_an_ephemeral_sequential_node_under_its_keys_node() {
    let sidecar = Backend::Zookeeper.sidecar("bpm", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let base = unique("layout");
    let resource = format!("{base}/é x");
    let token = try_acquire(&locks, &resource, "worker-1", 30)
        .await
        .expect("granted");
    // A refused attempt leaves nothing behind.
    assert_eq!(
        api.lock(Protocol::Http, "store", &resource, "worker-2", 30)
            .await,
        Ok(false)
    );

    // The key `lock||bpm||<resource>`, percent-encoded, names the key's node under /dlock.
    let key_node = format!("/dlock/lock||bpm||{base}%2F%C3%A9%20x");
    let zk = raw().await;
    let children = zk.list_children(&key_node).await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    assert!(children[0].starts_with("lock-"), "{children:?}");
    let (data, stat) = zk
        .get_data(&format!("{key_node}/{}", children[0]))
        .await
        .unwrap();
    let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        data,
        serde_json::json!({"owner": "worker-1", "expiryMs": 30000})
    );
    assert_ne!(stat.ephemeral_owner, 0, "the lock node is ephemeral");
    assert_eq!(stat.czxid as u64, token, "the fencing token is the czxid");

    // The key's node lists the lock under its resource id.
    let listed = inspect(&locks, &resource).await.unwrap();
    assert_eq!(
        (listed.lock_owner.as_str(), listed.fencing_token),
        ("worker-1", token)
    );

    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "worker-1")
            .await,
        Ok(SUCCESS)
    );
    let left = zk.list_children(&key_node).await.unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_expiry_holds_while_the_holders_sidecar_hangs() {
    let holder = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let other = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let (holder_api, other_locks) = (Api::new(&holder).await, other.locks().await);
    let key = unique("hung");
    let taken = Instant::now();
    assert_eq!(
        holder_api
            .lock(Protocol::Grpc, "store", &key, "hung", 1)
            .await,
        Ok(true)
    );
    // Frozen, the holder can't delete its node at the expiry, and its session outlives the
    // expiry: the contender deletes the expired node itself.
    holder.freeze();
    assert_eq!(try_acquire(&other_locks, &key, "next", 30).await, None);
    assert!(
        acquire(&other_locks, &key, "next", 30, Duration::from_secs(5))
            .await
            .unwrap()
            .is_some(),
        "the hung holder's lock outlived its expiry"
    );
    let freed = taken.elapsed();
    assert!(
        freed >= Duration::from_millis(900) && freed < ZOOKEEPER_SESSION,
        "freed after {freed:?}"
    );

    // Thawed, the old holder's timer finds its own node gone and leaves the new lock alone.
    holder.thaw();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        holder_api
            .unlock(Protocol::Grpc, "store", &key, "hung")
            .await,
        Ok(LOCK_BELONGS_TO_OTHERS)
    );
    assert_eq!(
        inspect(&other_locks, &key).await.map(|l| l.lock_owner),
        Some("next".to_string())
    );
}

#[tokio::test]
async fn an_expired_session_loses_its_locks_and_a_new_one_serves() {
    // A sidecar with a short session, frozen for longer than it: the ensemble expires the
    // session and deletes its ephemeral nodes, although the locks' expiry is far away.
    let session_timeout = Duration::from_secs(2);
    let metadata = [
        ("servers", shared("DLOCK_TEST_ZOOKEEPER")),
        (
            "sessionTimeout",
            format!("{}ms", session_timeout.as_millis()),
        ),
    ];
    let holder = sidecar_with(&metadata).unwrap();
    let observer = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let (locks, api) = (holder.locks().await, Api::new(&holder).await);
    let observer_locks = observer.locks().await;

    let (held, plain) = (unique("session"), unique("session"));
    let mut session = Session::open(&locks, request(&held, "keeper", 60, Duration::ZERO)).await;
    assert!(matches!(session.next(Duration::from_secs(5)).await, Event::Acquired(a) if a.acquired));
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &plain, "plain", 60).await,
        Ok(true)
    );

    holder.freeze();
    let frozen = Instant::now();
    while inspect(&observer_locks, &held).await.is_some()
        || inspect(&observer_locks, &plain).await.is_some()
    {
        assert!(
            frozen.elapsed() < session_timeout + Duration::from_secs(3),
            "the frozen sidecar's session did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    holder.thaw();

    // The held session hears that its lock is lost; an unlock answers that it is not held.
    match session.next(Duration::from_secs(10)).await {
        Event::Lost(lost) => assert!(!lost.reason.is_empty()),
        other => panic!("expected the lock reported lost, got {other:?}"),
    }
    assert_eq!(
        api.unlock(Protocol::Http, "store", &plain, "plain").await,
        Ok(LOCK_DOES_NOT_EXIST)
    );
    // The same sidecar serves again, on a new session whose locks others see.
    let again = unique("session");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &again, "again", 60).await,
        Ok(true)
    );
    assert_eq!(
        inspect(&observer_locks, &again).await.map(|l| l.lock_owner),
        Some("again".to_string())
    );
    assert!(
        holder.logs().contains("opened a new one"),
        "{}",
        holder.logs()
    );
}

#[tokio::test]
async fn an_ensemble_that_loses_its_leader_keeps_its_locks() {
    let mut members = Zookeeper::ensemble(3);
    let servers: Vec<String> = members.iter().map(Zookeeper::address).collect();
    // A session long enough to outlast the election of a new leader.
    let sidecar = sidecar_with(&[
        ("servers", servers.join(",")),
        ("sessionTimeout", "10s".into()),
        ("requestTimeout", "2s".into()),
    ])
    .unwrap();
    let api = Api::new(&sidecar).await;
    let held = unique("ensemble");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &held, "survivor", 120)
            .await,
        Ok(true)
    );

    let leader = members
        .iter()
        .position(|m| m.mode().as_deref() == Some("leader"))
        .expect("the ensemble has a leader");
    members[leader].stop();

    // Once the two others have elected a leader, locks work again.
    let key = unique("ensemble");
    let stopped = Instant::now();
    while api.lock(Protocol::Grpc, "store", &key, "o", 30).await != Ok(true) {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the ensemble did not serve again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "o").await,
        Ok(SUCCESS)
    );
    for _ in 0..10 {
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &key, "o", 30).await,
            Ok(true)
        );
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &key, "o").await,
            Ok(SUCCESS)
        );
    }
    // The lock taken before the loss survived it: the session moved to another member.
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &held, "other", 30).await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &held, "survivor").await,
        Ok(SUCCESS)
    );
}

#[tokio::test]
async fn digest_credentials_keep_the_locks_to_their_identity() {
    let root = format!("/{}", unique("dlock-acl"));
    let with_password = |password: &str| {
        let mut metadata = zookeeper_metadata(&shared("DLOCK_TEST_ZOOKEEPER"));
        metadata.extend([
            ("keyPrefixPath", root.clone()),
            ("username", "bpm".to_string()),
            ("password", password.to_string()),
        ]);
        metadata
    };
    let sidecar = sidecar_with(&with_password("hunter2-secret")).unwrap();
    Api::new(&sidecar).await.smoke("store").await;

    // Nobody else can read the lock root: not an anonymous client, not another password.
    let zk = raw().await;
    assert_eq!(
        zk.list_children(&root).await,
        Err(zookeeper_client::Error::NoAuth)
    );
    let failed = sidecar_with(&with_password("wrong-secret"))
        .err()
        .expect("a sidecar with the wrong password does not start")
        .output;
    assert!(
        failed.contains("field spec.metadata 'keyPrefixPath'"),
        "{failed}"
    );
    assert!(!failed.contains("wrong-secret"), "{failed}");
    assert!(!sidecar.logs().contains("hunter2-secret"));
}

#[tokio::test]
async fn metadata_errors_name_the_field_and_hide_the_password() {
    let cases = [
        (vec![("password", "hunter2-secret")], "servers"),
        (
            vec![
                ("servers", "127.0.0.1:notaport"),
                ("password", "hunter2-secret"),
            ],
            "servers",
        ),
        (
            vec![("servers", "127.0.0.1:2181"), ("sessionTimeout", "10")],
            "sessionTimeout",
        ),
        (
            vec![
                ("servers", "127.0.0.1:2181"),
                ("password", "hunter2-secret"),
            ],
            "username",
        ),
        (
            vec![("servers", "127.0.0.1:2181"), ("keyPrefixPath", "/")],
            "keyPrefixPath",
        ),
    ];
    for (metadata, field) in cases {
        crate::support::dlockd::refused_component(
            "lock.zookeeper",
            &metadata,
            field,
            "hunter2-secret",
        );
    }
    // No ZooKeeper there: a clear error naming each server and why it can't be reached, at
    // once, whatever the session timeout (the default one outlasts the init timeout, which
    // once left only "did not initialise within its initTimeout", no host and no cause).
    for session_timeout in [Some("1s"), None] {
        let started = Instant::now();
        let mut metadata = vec![
            ("servers", "127.0.0.1:1,127.0.0.1:2".to_string()),
            ("username", "bpm".into()),
            ("password", "hunter2-secret".into()),
        ];
        metadata.extend(session_timeout.map(|t| ("sessionTimeout", t.to_string())));
        let failed = sidecar_with(&metadata)
            .err()
            .expect("no ZooKeeper, no start")
            .output;
        assert!(
            failed.contains(
                "field spec.metadata 'servers': can't reach any ZooKeeper server: 127.0.0.1:1: "
            ),
            "{failed}"
        );
        assert!(failed.contains("; 127.0.0.1:2: "), "{failed}");
        assert!(failed.contains("refused"), "{failed}");
        assert!(!failed.contains("hunter2-secret"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn the_granting_sidecar_sees_what_other_sidecars_did_to_its_lock() {
    // The granting sidecar releases and renews its own grants without reading them first; a
    // change made through another sidecar must send it back to reading.
    let granting = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let other = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let (granting_locks, other_locks) = (granting.locks().await, other.locks().await);
    let granting_api = Api::new(&granting).await;

    // Renewed elsewhere: still released here.
    let key = unique("elsewhere");
    assert!(try_acquire(&granting_locks, &key, "a", 30).await.is_some());
    assert_eq!(renew(&other_locks, &key, "a", 60).await, SUCCESS);
    assert_eq!(renew(&granting_locks, &key, "a", 90).await, SUCCESS);
    let left = inspect(&other_locks, &key).await.unwrap().expires_in_ms;
    assert!(left > 60_000, "the last renewal counts: {left} ms left");
    assert_eq!(
        granting_api
            .unlock(Protocol::Grpc, "store", &key, "a")
            .await,
        Ok(SUCCESS)
    );

    // Released by force elsewhere and taken by someone else: not the first owner's any more.
    let key = unique("elsewhere");
    assert!(try_acquire(&granting_locks, &key, "a", 30).await.is_some());
    assert!(force_release(&other_locks, &key, Some(ADMIN_TOKEN))
        .await
        .unwrap());
    assert!(try_acquire(&other_locks, &key, "b", 30).await.is_some());
    assert_eq!(
        renew(&granting_locks, &key, "a", 30).await,
        LOCK_BELONGS_TO_OTHERS
    );
    assert_eq!(
        granting_api
            .unlock(Protocol::Grpc, "store", &key, "a")
            .await,
        Ok(LOCK_BELONGS_TO_OTHERS)
    );
    assert_eq!(
        inspect(&granting_locks, &key).await.map(|l| l.lock_owner),
        Some("b".to_string())
    );
}

#[tokio::test]
async fn listing_decodes_the_key_nodes_and_skips_free_keys() {
    let sidecar = Backend::Zookeeper.sidecar("lister", &[("store", None)]);
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let prefix = unique("list");
    let resources = [
        format!("{prefix}/a"),
        format!("{prefix}/b é"),
        format!("{prefix}/c"),
    ];
    let mut tokens = Vec::new();
    for (i, resource) in resources.iter().enumerate() {
        let owner = format!("owner-{i}");
        tokens.push(try_acquire(&locks, resource, &owner, 30).await.unwrap());
    }
    let elsewhere = unique("other");
    assert!(try_acquire(&locks, &elsewhere, "x", 30).await.is_some());
    // Released: its key node may linger (ZooKeeper reaps it later) but holds no lock.
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resources[2], "owner-2")
            .await,
        Ok(SUCCESS)
    );

    let listed = locks
        .clone()
        .list(dlock::proto::dlock::ListRequest {
            store_name: "store".into(),
            prefix: prefix.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locks;
    let seen: Vec<(String, String, u64)> = listed
        .into_iter()
        .map(|l| (l.resource_id, l.lock_owner, l.fencing_token))
        .collect();
    assert_eq!(
        seen,
        [
            (resources[0].clone(), "owner-0".to_string(), tokens[0]),
            (resources[1].clone(), "owner-1".to_string(), tokens[1]),
        ]
    );
}

/// The store itself, as a `lock.zookeeper` component on the shared server gets it.
async fn store() -> std::sync::Arc<dyn LockStore> {
    let connection = Backend::Zookeeper.connection();
    let metadata: Metadata = connection.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dlock::startup::StoreTypes::new()
        .build("lock.zookeeper", &metadata)
        .await
        .expect("this build has lock.zookeeper")
        .expect("lock.zookeeper starts")
}

async fn granted(store: &dyn LockStore, key: &str, owner: &str, kind: Kind) {
    match store
        .acquire(key, owner, Duration::from_secs(30), kind)
        .await
    {
        Ok(TryLockOutcome::Granted(_)) => {}
        other => panic!("{owner} was not granted {key}: {other:?}"),
    }
}

/// Each shared holder has a node of its own saying its kind and the key's limit, and a
/// reentrant owner's holds are counted in its node's data, as zkCli shows them.
#[tokio::test]
async fn shared_holders_and_reentrant_holds_are_in_their_nodes() {
    let store = store().await;
    let resource = unique("shared-nodes");
    let key = format!("lock||app||{resource}");
    granted(&*store, &key, "a", Kind::shared(3)).await;
    for _ in 0..2 {
        granted(&*store, &key, "b", Kind::shared(3).reentrant()).await;
    }
    let zk = raw().await;
    let key_node = format!("/dlock/lock||app||{resource}");
    let mut children = zk.list_children(&key_node).await.unwrap();
    children.sort();
    let mut nodes = Vec::new();
    for child in &children {
        let (data, _) = zk.get_data(&format!("{key_node}/{child}")).await.unwrap();
        nodes.push(String::from_utf8(data).unwrap());
    }
    assert_eq!(
        nodes,
        [
            r#"{"owner":"a","expiryMs":30000,"shared":true,"limit":3}"#,
            r#"{"owner":"b","expiryMs":30000,"shared":true,"limit":3,"holds":2}"#,
        ]
    );
    for (owner, holds) in [("a", 1), ("b", 2)] {
        for _ in 0..holds {
            let released = store.unlock(&key, owner).await;
            assert_eq!(released, Ok(OwnerChecked::Applied));
        }
    }
    assert_eq!(store.inspect(&key).await.unwrap(), None);
}

/// On a key held shared, a waiter is woken when any holder leaves, not only the first: the
/// place the second one frees is a place the waiter can take.
#[tokio::test]
async fn any_shared_holder_that_leaves_wakes_a_waiter() {
    let store = store().await;
    let key = format!("lock||app||{}", unique("shared-wake"));
    for owner in ["first", "second"] {
        granted(&*store, &key, owner, Kind::shared(2)).await;
    }
    let waiter = {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.wait_for_release(&key, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter returned while the key was full"
    );
    let released = store.unlock(&key, "second").await;
    assert_eq!(released, Ok(OwnerChecked::Applied));
    let woken = tokio::time::timeout(Duration::from_secs(2), waiter).await;
    assert!(
        matches!(woken, Ok(Ok(Ok(())))),
        "the second holder's release did not wake the waiter: {woken:?}"
    );
    assert_eq!(store.unlock(&key, "first").await, Ok(OwnerChecked::Applied));
}

/// A sidecar whose own grant of a key left the key's line empty takes the key next without
/// reading the line: its create is conditional on the version that grant's entry left on the
/// key's node. Another sidecar's entry since moves that version on, so the next try reads the
/// line and a key the other sidecar holds is refused, never granted twice. A key node made
/// again (ZooKeeper reaps emptied ones) that has reached the same version with a holder in it
/// is told apart by its creation zxid: the holder there is not jumped either.
#[tokio::test]
async fn a_sidecar_takes_a_key_again_unread_only_while_no_one_else_entered() {
    const TTL: Duration = Duration::from_secs(30);
    let (here, there) = (store().await, store().await);
    let resource = unique("left-empty");
    let key = format!("lock||app||{resource}");
    let held = |tried| matches!(tried, Ok(TryLockOutcome::Held));
    for owner in ["a", "b"] {
        granted(&*here, &key, owner, Kind::PLAIN).await;
        assert_eq!(here.unlock(&key, owner).await, Ok(OwnerChecked::Applied));
    }
    granted(&*there, &key, "c", Kind::PLAIN).await;
    let tried = here.try_lock(&key, "d", TTL).await;
    assert!(held(tried.clone()), "granted while c held it: {tried:?}");
    assert_eq!(there.unlock(&key, "c").await, Ok(OwnerChecked::Applied));
    granted(&*here, &key, "d", Kind::PLAIN).await;
    assert_eq!(here.unlock(&key, "d").await, Ok(OwnerChecked::Applied));

    // The key node made again, with a holder, and written up to the version it had.
    let zk = raw().await;
    let key_node = format!("/dlock/{key}");
    let (_, old) = zk.get_data(&key_node).await.unwrap();
    zk.delete(&key_node, None).await.unwrap();
    let container =
        zookeeper_client::CreateMode::Container.with_acls(zookeeper_client::Acls::anyone_all());
    zk.create(&key_node, &[], &container).await.unwrap();
    let contender = zookeeper_client::CreateMode::EphemeralSequential
        .with_acls(zookeeper_client::Acls::anyone_all());
    let holder = br#"{"owner":"e","expiryMs":30000}"#;
    zk.create(&format!("{key_node}/lock-"), holder, &contender)
        .await
        .unwrap();
    for _ in 0..old.version {
        zk.set_data(&key_node, &[], None).await.unwrap();
    }
    let (_, new) = zk.get_data(&key_node).await.unwrap();
    assert_eq!((new.version, new.czxid != old.czxid), (old.version, true));
    let tried = here.try_lock(&key, "f", TTL).await;
    assert!(held(tried.clone()), "granted while e held it: {tried:?}");
    assert_eq!(zk.list_children(&key_node).await.unwrap().len(), 1);
}

/// `dlock bench` through dlockd on lock.zookeeper beside a bare client of the same server on
/// one session doing what a lock needs at the least: create an ephemeral sequential node under
/// the key's node and delete it. A benchmark that prints figures, not a test; run it alone:
///
/// `scripts/test.sh zookeeper::cost --ignored --nocapture 2>&1 | grep 'zookeeper cost'`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see its documentation"]
async fn cost() {
    use zookeeper_client::{Acls, CreateMode};
    const PAIRS: usize = 2000;
    let sidecar = Backend::Zookeeper.sidecar("app", &[("store", None)]);
    let client = raw().await;
    let root = format!("/{}", unique("raw"));
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create(&root, &[], &persistent).await.unwrap();
    for n in 0..50 {
        let key = format!("{root}/{n}");
        client.create(&key, &[], &persistent).await.unwrap();
    }
    for clients in [1, 50] {
        let rate = crate::support::bench::dlock_bench(&sidecar, "store", clients, PAIRS);
        let (client, root) = (client.clone(), root.clone());
        let bare = crate::support::bench::raw_pairs(clients, PAIRS, move |n| {
            let (client, prefix) = (client.clone(), format!("{root}/{n}/lock-"));
            async move {
                let contender = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
                let (_, sequence) = client.create(&prefix, b"o", &contender).await.unwrap();
                let node = format!("{prefix}{sequence}");
                client.delete(&node, None).await.unwrap();
            }
        })
        .await;
        eprintln!(
            "zookeeper cost: {clients} clients: dlock bench {rate:.0} pairs/s, bare \
             create+delete {bare:.0} pairs/s ({:.0}%)",
            rate / bare * 100.0
        );
    }
}
