//! lock.redis as daprd's twin: a lock taken with daprd's raw commands is the lock dlockd sees,
//! and the other way round; daprd's refusal of a master with replicas; metadata errors.

use std::time::Duration;

use redis::aio::MultiplexedConnection as Connection;
use serde_json::{json, Value};

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::servers::{shared, Redis};

/// daprd's release: read the key; missing → -1, another owner → -2, else delete it.
const DAPRD_UNLOCK: &str = r"
local v = redis.call('get', KEYS[1])
if v == false then return -1 end
if v ~= ARGV[1] then return -2 end
return redis.call('del', KEYS[1])
";

/// daprd's try-lock, SET key owner EX 30 NX: Some("OK") when set.
async fn daprd_lock(redis: &mut Connection, key: &str, owner: &str) -> Option<String> {
    redis::cmd("SET")
        .arg(key)
        .arg(owner)
        .arg("EX")
        .arg(30)
        .arg("NX")
        .query_async(redis)
        .await
        .unwrap()
}

/// daprd's release, by its script: -1 for a missing key, -2 for another owner's.
async fn daprd_unlock(redis: &mut Connection, key: &str, owner: &str) -> i64 {
    redis::Script::new(DAPRD_UNLOCK)
        .key(key)
        .arg(owner)
        .invoke_async(redis)
        .await
        .unwrap()
}

pub(crate) async fn raw() -> Connection {
    let client = redis::Client::open(format!("redis://{}", shared("DLOCK_TEST_REDIS"))).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn daprd_and_dlockd_share_locks_both_ways() {
    let sidecar = Backend::Redis.sidecar("bpm", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    let mut redis = raw().await;
    for protocol in [Protocol::Grpc, Protocol::Http] {
        // daprd takes a lock: SET key owner EX n NX on the key docs/contract.md §3 builds.
        let resource = unique("interop");
        let key = format!("lock||bpm||{resource}");
        assert_eq!(
            daprd_lock(&mut redis, &key, "daprd-server")
                .await
                .as_deref(),
            Some("OK")
        );
        // dlockd sees it held, by anyone else and by daprd's owner too (not reentrant).
        assert_eq!(
            api.lock(protocol, "store", &resource, "dlockd-server", 30)
                .await,
            Ok(false)
        );
        assert_eq!(
            api.lock(protocol, "store", &resource, "daprd-server", 30)
                .await,
            Ok(false)
        );
        assert_eq!(
            api.unlock(protocol, "store", &resource, "dlockd-server")
                .await,
            Ok(LOCK_BELONGS_TO_OTHERS)
        );
        // daprd's owner releases it through dlockd.
        assert_eq!(
            api.unlock(protocol, "store", &resource, "daprd-server")
                .await,
            Ok(SUCCESS)
        );
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(!exists);

        // dlockd takes a lock: the key holds the raw owner with the expiry, as daprd's would.
        assert_eq!(
            api.lock(protocol, "store", &resource, "dlockd-server", 30)
                .await,
            Ok(true)
        );
        let value: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(value, "dlockd-server");
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!((28..=30).contains(&ttl), "{ttl}");
        // daprd's SET NX is refused, and daprd's release script answers as daprd expects.
        assert_eq!(daprd_lock(&mut redis, &key, "daprd-server").await, None);
        assert_eq!(daprd_unlock(&mut redis, &key, "daprd-server").await, -2);
        assert!(daprd_unlock(&mut redis, &key, "dlockd-server").await >= 0);
        assert_eq!(
            api.unlock(protocol, "store", &resource, "dlockd-server")
                .await,
            Ok(LOCK_DOES_NOT_EXIST)
        );
        // And it is free for anyone, dlockd included.
        assert_eq!(
            api.lock(protocol, "store", &resource, "next", 30).await,
            Ok(true)
        );
    }
}

/// dlock's acquire in the kind `kind` (JSON fields merged into the request), answered at once.
async fn acquire(api: &Api, resource: &str, owner: &str, kind: Value) -> Value {
    let mut body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": 30,
                          "waitTimeoutMs": 0});
    body.as_object_mut()
        .unwrap()
        .extend(kind.as_object().unwrap().clone());
    api.post("/dlock/v1/acquire/store", body.to_string())
        .await
        .unwrap()
}

/// A shared lock is a record at daprd's key, which daprd's `SET NX` finds held and daprd's
/// release finds another owner's; Dapr's unlock by a shared holder releases its place. A plain
/// lock taken through Dapr's API is entered again by its owner's reentrant acquire (one more
/// hold, the plain grant's token), and Dapr's unlock gives the holds back one at a time.
#[tokio::test]
async fn kinds_share_daprds_key_and_a_plain_lock_is_entered_again() {
    let sidecar = Backend::Redis.sidecar("bpm", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    let mut redis = raw().await;
    let resource = unique("kinds");
    let key = format!("lock||bpm||{resource}");
    let shared = json!({"mode": "SHARED", "limit": 2});
    assert_eq!(
        acquire(&api, &resource, "reader", shared).await["acquired"],
        true
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((28..=30).contains(&ttl), "{ttl}");
    assert_eq!(daprd_lock(&mut redis, &key, "daprd-server").await, None);
    assert_eq!(daprd_unlock(&mut redis, &key, "reader").await, -2);
    for protocol in [Protocol::Grpc, Protocol::Http] {
        let taken = api.lock(protocol, "store", &resource, "reader", 30).await;
        assert_eq!(taken, Ok(false), "a plain try by a shared holder");
    }
    assert_eq!(
        api.unlock(Protocol::Http, "store", &resource, "reader")
            .await,
        Ok(SUCCESS)
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists);

    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "o", 30).await,
        Ok(true)
    );
    let plain = inspect(&api, &resource).await;
    let again = acquire(&api, &resource, "o", json!({"reentrant": true})).await;
    assert_eq!(
        (&again["acquired"], &again["holds"]),
        (&json!(true), &json!(2))
    );
    assert_eq!(again["fencingToken"], plain["lock"]["fencingToken"]);
    assert_eq!(daprd_lock(&mut redis, &key, "daprd-server").await, None);
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "o").await,
        Ok(SUCCESS)
    );
    let one = inspect(&api, &resource).await;
    assert_eq!(one["lock"]["holders"][0]["holds"], 1, "{one}");
    assert_eq!(
        api.unlock(Protocol::Http, "store", &resource, "o").await,
        Ok(SUCCESS)
    );
    assert_eq!(inspect(&api, &resource).await["held"], false);
}

async fn inspect(api: &Api, resource: &str) -> Value {
    let body = json!({ "resourceId": resource });
    api.post("/dlock/v1/inspect/store", body.to_string())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_waiter_notices_a_release_by_daprd() {
    let sidecar = Backend::Redis.sidecar("bpm", &[("store", None)]);
    let locks = sidecar.locks().await;
    let mut redis = raw().await;
    let resource = unique("interop");
    let key = format!("lock||bpm||{resource}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("daprd-server")
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        crate::support::locks::acquire(
            &locks,
            &resource,
            "dlockd-waiter",
            30,
            Duration::from_secs(10),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The waiting sidecar listens on its waiter's own channel in the lock's line, and only
    // while it waits.
    let channels = format!("dlock||turn||{key}||*");
    assert_eq!(listened(&mut redis, &channels).await, 1);
    // daprd's release publishes nothing; the waiter still notices by polling, within 200 ms.
    daprd_unlock(&mut redis, &key, "daprd-server").await;
    let released = std::time::Instant::now();
    assert!(waiter.await.unwrap().unwrap().is_some());
    assert!(
        released.elapsed() < Duration::from_millis(500),
        "{:?}",
        released.elapsed()
    );
    for _ in 0..50 {
        if listened(&mut redis, &channels).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sidecar still listens on {channels} after its waiter was served");
}

/// A multi-lock's release wakes the waiter first in line for each of its resources on the
/// waiter's own channel, as a release of one resource does, rather than leaving it to find
/// the release at its next poll.
#[tokio::test]
async fn a_multi_locks_release_wakes_the_first_waiter_in_line() {
    use futures_util::StreamExt;
    let sidecar = Backend::Redis.sidecar("bpm", &[("store", None)]);
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let (first, second) = (unique("together-a"), unique("together-b"));
    let taken = json!({"resourceIds": [&first, &second], "lockOwner": "batch",
                       "expiryInSeconds": 60});
    let taken = api.post("/dlock/v1/acquire/store", taken.to_string()).await;
    assert_eq!(taken.unwrap()["acquired"], true);
    let client = redis::Client::open(format!("redis://{}", shared("DLOCK_TEST_REDIS"))).unwrap();
    let mut turns = client.get_async_pubsub().await.unwrap();
    let key = format!("lock||bpm||{second}");
    turns
        .psubscribe(format!("dlock||turn||{key}||*"))
        .await
        .unwrap();
    let resource = second.clone();
    let waiter = tokio::spawn(async move {
        crate::support::locks::acquire(&locks, &resource, "single", 30, Duration::from_secs(10))
            .await
    });
    let mut redis = raw().await;
    let channels = format!("dlock||turn||{key}||*");
    while listened(&mut redis, &channels).await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let released = json!({"resourceIds": [&first, &second], "lockOwner": "batch"});
    let released = api
        .post("/dlock/v1/release/store", released.to_string())
        .await;
    assert_eq!(released.unwrap()["status"], json!(SUCCESS));
    let woken = tokio::time::timeout(Duration::from_secs(2), turns.on_message().next()).await;
    assert!(
        matches!(woken, Ok(Some(_))),
        "the release published nothing on the waiter's channel"
    );
    assert!(waiter.await.unwrap().unwrap().is_some());
}

/// How many channels matching `pattern` someone listens on.
async fn listened(redis: &mut Connection, pattern: &str) -> usize {
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(pattern)
        .query_async(redis)
        .await
        .unwrap();
    channels.len()
}

#[tokio::test]
async fn a_master_with_replicas_is_refused_as_daprd_does() {
    let master = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    // Wait for the replica to attach.
    let client = redis::Client::open(format!("redis://{}", master.address())).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = component("store", "lock.redis", &[("redisHost", &master.address())]);
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("field spec.metadata 'redisHost'"),
        "{failed}"
    );
    assert!(
        failed.contains("replica") && failed.contains("failover: true"),
        "{failed}"
    );
    drop(replica);
}

#[tokio::test]
async fn metadata_errors_name_the_field_and_hide_the_password() {
    let cases = [
        (vec![("redisPassword", "hunter2-secret")], "redisHost"),
        (
            vec![
                ("redisHost", "127.0.0.1:notaport"),
                ("redisPassword", "hunter2-secret"),
            ],
            "redisHost",
        ),
        (
            vec![("redisHost", "127.0.0.1:1"), ("redisDB", "first")],
            "redisDB",
        ),
        (
            vec![("redisHost", "127.0.0.1:1"), ("readTimeout", "3 seconds")],
            "readTimeout",
        ),
    ];
    for (metadata, field) in cases {
        crate::support::dlockd::refused_component("lock.redis", &metadata, field, "hunter2-secret");
    }
    // Unreachable Redis: a clear error naming the address, and the password nowhere.
    let file = component(
        "store",
        "lock.redis",
        &[
            ("redisHost", "127.0.0.1:1"),
            ("redisPassword", "hunter2-secret"),
            ("dialTimeout", "500ms"),
        ],
    );
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("can't connect to Redis at 127.0.0.1:1"),
        "{failed}"
    );
    assert!(!failed.contains("hunter2-secret"));
}

/// The connections to `redis` other than the one asking.
async fn other_clients(redis: &mut Connection) -> usize {
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(redis)
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(redis)
        .await
        .unwrap();
    let me = format!("id={me} ");
    list.lines().filter(|l| !l.starts_with(&me)).count()
}

#[tokio::test]
async fn a_store_taken_away_closes_its_connections() {
    let redis = Redis::start(&[]);
    let file = component("store", "lock.redis", &[("redisHost", &redis.address())]);
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let client = redis::Client::open(format!("redis://{}", redis.address())).unwrap();
    let mut asking = client.get_multiplexed_async_connection().await.unwrap();
    let limit = Duration::from_secs(15);
    let deadline = std::time::Instant::now() + limit;
    // The requests' connection and the release signal's.
    while other_clients(&mut asking).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The component goes (a live reload): the store is dropped, and nothing of it may stay
    // connected, the release signal's listener included, though no message ever comes.
    let resources = sidecar.resources.clone().expect("a resources folder");
    std::fs::remove_file(resources.join("store.yaml")).unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = other_clients(&mut asking).await;
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} connection(s) of a removed store still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wrong_or_missing_password_names_the_password_field() {
    let redis = Redis::start(&["--requirepass", "right-pw-s3cret"]);
    let address = redis.address();
    for (password, said) in [
        (Some("wrong-pw-s3cret"), "it refused the password"),
        (None, "it requires a password: set redisPassword"),
    ] {
        let mut metadata = vec![("redisHost", address.as_str()), ("dialTimeout", "2s")];
        metadata.extend(password.map(|p| ("redisPassword", p)));
        let file = component("store", "lock.redis", &metadata);
        let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
        assert!(
            failed.contains("field spec.metadata 'redisPassword'"),
            "{failed}"
        );
        assert!(failed.contains(said), "{failed}");
        assert!(
            failed.contains(&format!("Redis at {address} was reached")),
            "{failed}"
        );
        assert!(!failed.contains("s3cret"), "{failed}");
    }
}
