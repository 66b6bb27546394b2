//! lock.redis beyond one plain server: Sentinel failover (and the window in which it loses a
//! grant, with and without waitReplicas), a Redis Cluster's masters seen as one store, and TLS
//! (a private CA, client certificates, skipped verification).

use std::time::{Duration, Instant};

use dlock::cli::connect::Locks;
use dlock::proto::dlock::{AcquireRequest, LockMode};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::certs::Certs;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks;
use crate::support::servers::{free_port, Outage, Redis, RedisCluster};

async fn connect(address: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{address}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn path(file: &std::path::Path) -> String {
    file.display().to_string()
}

fn sidecar_on(metadata: &[(&str, &str)]) -> Result<Dlockd, String> {
    let file = component("store", "lock.redis", metadata);
    Dlockd::try_start(Options::with_component("app", file)).map_err(|f| f.output)
}

/// A master, its replica and a Sentinel watching them, with Sentinel aware of the replica (or
/// there would be nothing to promote when the master dies).
async fn sentinel_set_up() -> (Redis, Redis, Redis) {
    let master = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let sentinel = Redis::start_sentinel("locks", master.port);
    let asked = connect(&sentinel.address()).await;
    eventually(
        Duration::from_secs(20),
        "Sentinel finding the replica",
        || {
            let mut asked = asked.clone();
            async move {
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg("locks")
                    .query_async(&mut asked)
                    .await
                    .unwrap_or_default();
                !replicas.is_empty()
            }
        },
    )
    .await;
    // And the replica has had its first copy of the master (a diskless sync waits 5 s for
    // more replicas), so it acknowledges writes from here on.
    replicated(&master).await;
    (master, replica, sentinel)
}

/// Waits until the replica has every write the master made so far.
async fn replicated(master: &Redis) {
    let on_master = connect(&master.address()).await;
    eventually(Duration::from_secs(10), "the replica acknowledging", || {
        let mut on_master = on_master.clone();
        async move {
            // Short waits: the test connection times out requests after 500 ms.
            let acknowledged: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(300)
                .query_async(&mut on_master)
                .await
                .unwrap();
            acknowledged == 1
        }
    })
    .await;
}

/// Waits until Sentinel has made `replica` the master.
async fn promoted(replica: &Redis) {
    eventually(
        Duration::from_secs(30),
        "Sentinel promoting the replica",
        || async {
            // A connection of its own each time: a replica that changes role closes its clients'.
            let mut on_replica = connect(&replica.address()).await;
            let role: Vec<redis::Value> = redis::cmd("ROLE")
                .query_async(&mut on_replica)
                .await
                .unwrap_or_default();
            role.first() == Some(&redis::Value::BulkString(b"master".to_vec()))
        },
    )
    .await;
}

/// A sidecar on the master Sentinel names, quick to give up on a dead one.
fn sentinel_sidecar(sentinel: &Redis, extra: &[(&str, &str)]) -> Dlockd {
    let address = sentinel.address();
    let mut metadata = vec![
        ("redisHost", address.as_str()),
        ("failover", "true"),
        ("sentinelMasterName", "locks"),
        ("readTimeout", "1s"),
        ("dialTimeout", "1s"),
    ];
    // What `extra` names replaces the value above.
    metadata.retain(|(name, _)| extra.iter().all(|(given, _)| given != name));
    metadata.extend_from_slice(extra);
    sidecar_on(&metadata).unwrap()
}

/// Stops replication behind Sentinel's back: the replica now follows a master on a port
/// nobody listens on, so nothing the master writes from here on reaches it. Sentinel would
/// point it back only while the master is up and after its failover timeout (10 s). Returns
/// once the master has seen its replica go.
async fn cut_replication(master: &Redis, replica: &Redis) {
    let mut on_replica = connect(&replica.address()).await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(free_port())
        .query_async(&mut on_replica)
        .await
        .unwrap();
    let on_master = connect(&master.address()).await;
    eventually(
        Duration::from_secs(10),
        "the master losing its replica",
        || {
            let mut on_master = on_master.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut on_master)
                    .await
                    .unwrap();
                info.contains("connected_slaves:0")
            }
        },
    )
    .await;
}

/// The token of a grant of `resource` to `owner` through a sidecar that is finding the new
/// master; a refusal because the lock is held fails the test.
async fn granted_after_failover(locks: &Locks, resource: &str, owner: &str) -> u64 {
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    // What each refused try answered, for the message if the lock turns up held.
    let mut refusals = Vec::new();
    loop {
        match locks::acquire(locks, resource, owner, 120, Duration::ZERO).await {
            Ok(Some(token)) => return token,
            Ok(None) => panic!("{resource} is held after the failover; before: {refusals:#?}"),
            Err(failure) => {
                assert!(
                    Instant::now() < deadline,
                    "not granted within {limit:?}: {failure:?}"
                );
                refusals.push(failure.message().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sentinel_failover_keeps_locks_working() {
    let (mut master, replica, sentinel) = sentinel_set_up().await;
    let sidecar = sentinel_sidecar(&sentinel, &[]);
    let api = Api::new(&sidecar).await;
    let before = unique("sentinel");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &before, "a", 120).await,
        Ok(true)
    );
    // The lock reached the replica before the master goes (replication is asynchronous: a
    // lock granted in the last moment before a crash can be lost; the next tests show it).
    replicated(&master).await;

    master.stop();
    let failed_at = Instant::now();
    // Locks keep working once Sentinel has promoted the replica: the same sidecar, no restart.
    let after = unique("sentinel");
    eventually(
        Duration::from_secs(30),
        "locking after the failover",
        || {
            let api = &api;
            let after = after.clone();
            async move { api.lock(Protocol::Grpc, "store", &after, "b", 120).await == Ok(true) }
        },
    )
    .await;
    eprintln!(
        "locks worked again {:?} after the master died",
        failed_at.elapsed()
    );
    let mut promoted = connect(&replica.address()).await;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut promoted).await.unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    // The lock taken before the failover is still held, and still its owner's to release.
    for protocol in [Protocol::Grpc, Protocol::Http] {
        assert_eq!(
            api.lock(protocol, "store", &before, "b", 60).await,
            Ok(false)
        );
    }
    assert_eq!(
        api.unlock(Protocol::Http, "store", &before, "a").await,
        Ok(SUCCESS)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &after, "b").await,
        Ok(SUCCESS)
    );
}

#[tokio::test]
async fn a_grant_lost_in_a_failover_is_granted_again_with_a_larger_token() {
    let (mut master, replica, sentinel) = sentinel_set_up().await;
    let sidecar = sentinel_sidecar(&sentinel, &[]);
    let locks = sidecar.locks().await;
    // The replica has the fencing counter as of this grant.
    let seen = locks::try_acquire(&locks, &unique("seen"), "a", 120)
        .await
        .expect("granted");
    replicated(&master).await;

    cut_replication(&master, &replica).await;
    let resource = unique("lost");
    let lost = locks::try_acquire(&locks, &resource, "a", 120)
        .await
        .expect("granted by the master alone");
    assert!(lost > seen, "{lost} after {seen}");
    master.stop();
    promoted(&replica).await;

    // Without waitReplicas the promoted replica, which never saw a's grant, grants the lock
    // again while a still holds it, as the README says; but its token is larger than every
    // token the old master gave, so a fenced resource refuses a.
    let again = granted_after_failover(&locks, &resource, "b").await;
    assert!(
        again > lost,
        "token {again} after the failover repeats or undercuts {lost}"
    );
}

#[tokio::test]
async fn with_wait_replicas_a_grant_the_replica_lacks_is_refused_not_lost() {
    let (mut master, replica, sentinel) = sentinel_set_up().await;
    let sidecar = sentinel_sidecar(&sentinel, &[("waitReplicas", "1")]);
    let locks = sidecar.locks().await;
    // With the replica following, grants and renewals are confirmed and go through.
    let held = unique("seen");
    let seen = locks::try_acquire(&locks, &held, "a", 120)
        .await
        .expect("granted");
    assert_eq!(
        locks::renew_grpc(&locks, "store", &held, "a", 120).await,
        Ok(SUCCESS)
    );

    cut_replication(&master, &replica).await;
    let renewal = locks::renew_grpc(&locks, "store", &held, "a", 120)
        .await
        .expect_err("no renewal that the replica lacks");
    assert!(renewal.message().contains("waitReplicas"), "{renewal:?}");
    let resource = unique("unconfirmed");
    let started = Instant::now();
    let refused = locks::acquire(&locks, &resource, "a", 120, Duration::ZERO)
        .await
        .expect_err("no grant that the replica lacks");
    assert!(
        refused.message().contains("waitReplicas"),
        "{refused:?} after {:?}",
        started.elapsed()
    );
    // Nor is it left on the master to expire.
    let mut on_master = connect(&master.address()).await;
    for key in [
        format!("lock||app||{resource}"),
        format!("dlock||token||lock||app||{resource}"),
    ] {
        let left: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut on_master)
            .await
            .unwrap();
        assert_eq!(left, None, "{key}");
    }

    master.stop();
    promoted(&replica).await;
    // The old master returns empty and Sentinel makes it the new master's replica; then
    // grants are confirmed again. The lock's first holder is b: nobody held it twice.
    master.resume();
    let token = granted_after_failover(&locks, &resource, "b").await;
    assert!(token > seen, "{token} after {seen}");
}

#[tokio::test]
async fn with_wait_replicas_a_grant_answered_too_late_is_taken_back() {
    let (master, _replica, sentinel) = sentinel_set_up().await;
    // A read timeout (the longer of the two) shorter than the pause below, which is shorter
    // than Sentinel's down-after time (1 s): the master stays the master.
    let sidecar = sentinel_sidecar(
        &sentinel,
        &[
            ("waitReplicas", "1"),
            ("readTimeout", "400ms"),
            ("writeTimeout", "400ms"),
        ],
    );
    let locks = sidecar.locks().await;
    locks::try_acquire(&locks, &unique("confirmed"), "a", 120)
        .await
        .expect("granted with the replica in place");

    // Writes wait 600 ms on the master: the grant is sent, runs after the sidecar stopped
    // waiting for its answer, and the replica confirms it.
    let mut on_master = connect(&master.address()).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("WRITE")
        .query_async(&mut on_master)
        .await
        .unwrap();
    let resource = unique("late");
    let started = Instant::now();
    let failure = match locks::acquire(&locks, &resource, "a", 120, Duration::ZERO).await {
        Err(failure) => failure,
        Ok(answer) => panic!(
            "answered {answer:?} after {:?}, past the read timeout",
            started.elapsed()
        ),
    };
    // The caller was told it failed, so the grant that landed late is not left held.
    assert_eq!(
        locks::try_acquire(&locks, &resource, "b", 120)
            .await
            .map(|_| ()),
        Some(()),
        "a's late grant still holds {resource} ({failure:?} after {:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cluster_is_one_store_across_its_masters() {
    let addresses = crate::support::servers::shared("DLOCK_TEST_REDIS_CLUSTER");
    let holder = Backend::RedisCluster.sidecar("app", &[("store", None)]);
    let waiter = Backend::RedisCluster.sidecar("app", &[("store", None)]);
    let holder_locks = holder.locks().await;
    let waiter_locks = waiter.locks().await;

    // Forty locks land on every master, and one list finds them all.
    let prefix = unique("spread");
    for i in 0..40 {
        let resource = format!("{prefix}/{i}");
        assert!(locks::try_acquire(&holder_locks, &resource, "o", 60)
            .await
            .is_some());
    }
    for address in addresses.split(',') {
        let mut node = connect(address).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{*}}lock||app||{prefix}/*"))
            .query_async(&mut node)
            .await
            .unwrap();
        assert!(!keys.is_empty(), "no lock on the master at {address}");
    }
    let listed = locks::list(&waiter_locks, &prefix).await;
    assert_eq!(listed.len(), 40, "{listed:?}");
    assert!(listed
        .iter()
        .all(|l| l.lock_owner == "o" && l.fencing_token > 0));

    // A release on one sidecar wakes a waiter on another through the release signal,
    // whichever master holds the key.
    let resource = format!("{prefix}/0");
    let waiting = tokio::spawn(async move {
        locks::acquire(
            &waiter_locks,
            &resource,
            "next",
            60,
            Duration::from_secs(20),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api = Api::new(&holder).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &format!("{prefix}/0"), "o")
            .await,
        Ok(SUCCESS)
    );
    let released = Instant::now();
    assert!(waiting.await.unwrap().unwrap().is_some());
    // The sidecar's poll backs off to 200 ms; the signal is much faster.
    assert!(
        released.elapsed() < Duration::from_millis(150),
        "woken after {:?}",
        released.elapsed()
    );
}

#[tokio::test]
async fn with_wait_replicas_a_cluster_without_replicas_grants_nothing_and_keeps_nothing() {
    // The shared cluster has no replicas, so no grant can be confirmed: each is refused on
    // whichever master its key lives, and released there, so a sidecar that does not wait
    // for replicas finds every key free.
    let addresses = crate::support::servers::shared("DLOCK_TEST_REDIS_CLUSTER");
    let waiting = sidecar_on(&[
        ("redisHost", &addresses),
        ("redisType", "cluster"),
        ("waitReplicas", "1"),
        ("waitReplicasTimeout", "100ms"),
    ])
    .unwrap();
    let not_waiting = sidecar_on(&[("redisHost", &addresses), ("redisType", "cluster")]).unwrap();
    let (waiting, not_waiting) = (waiting.locks().await, not_waiting.locks().await);
    let prefix = unique("unconfirmed");
    for i in 0..12 {
        let resource = format!("{prefix}/{i}");
        let refused = locks::acquire(&waiting, &resource, "a", 60, Duration::ZERO)
            .await
            .expect_err("no grant without a replica");
        assert!(
            refused.message().contains("0 of the 1 replica"),
            "{refused:?}"
        );
        assert!(
            locks::try_acquire(&not_waiting, &resource, "b", 60)
                .await
                .is_some(),
            "{resource} was left held"
        );
        // A shared grant is a record in the lock key; unconfirmed, it is taken back too.
        let shared = format!("{prefix}/shared-{i}");
        let request = AcquireRequest {
            mode: LockMode::Shared.into(),
            ..locks::request(&shared, "a", 60, Duration::ZERO)
        };
        let refused = waiting
            .clone()
            .acquire(request)
            .await
            .expect_err("no shared grant without a replica");
        assert!(
            refused.message().contains("0 of the 1 replica"),
            "{refused:?}"
        );
        assert!(
            locks::inspect(&not_waiting, &shared).await.is_none(),
            "{shared} was left held"
        );
    }
}

#[tokio::test]
async fn a_lost_cluster_master_fails_only_its_keys_until_it_returns() {
    // One master of three stopped: its keys fail (never granted), the others' keys still work,
    // and when it returns everything works again.
    let mut cluster = RedisCluster::start();
    let sidecar = sidecar_on(&[
        ("redisHost", &cluster.addresses()),
        ("redisType", "cluster"),
        ("readTimeout", "1s"),
        ("dialTimeout", "1s"),
    ])
    .unwrap();
    let api = Api::new(&sidecar).await;
    cluster.nodes[1].stop();
    let mut granted = 0;
    let mut refused = 0;
    for i in 0..12 {
        match api
            .lock(Protocol::Grpc, "store", &format!("lost-{i}"), "o", 60)
            .await
        {
            Ok(true) => granted += 1,
            Ok(false) => panic!("a fresh key was held"),
            Err(_) => refused += 1,
        }
    }
    assert!(
        granted > 0 && refused > 0,
        "granted {granted}, refused {refused}"
    );
    cluster.nodes[1].resume();
    eventually(Duration::from_secs(20), "every key working again", || {
        let api = &api;
        async move {
            for i in 0..12 {
                if api
                    .lock(Protocol::Grpc, "store", &format!("back-{i}"), "o", 60)
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
}

#[tokio::test]
async fn tls_with_a_private_ca_a_client_certificate_or_no_verification() {
    let certs = Certs::new();
    let server = |auth_clients: &str| {
        Redis::start_tls(&[
            "--tls-cert-file",
            &path(&certs.server.0),
            "--tls-key-file",
            &path(&certs.server.1),
            "--tls-ca-cert-file",
            &path(&certs.ca),
            "--tls-auth-clients",
            auth_clients,
        ])
    };
    let open = server("no");
    let mutual = server("yes");
    let works = |sidecar: Dlockd| async move { Api::new(&sidecar).await.smoke("store").await };
    let base = |server: &Redis| {
        vec![
            ("redisHost", server.address()),
            ("enableTLS", "true".to_string()),
            ("dialTimeout", "2s".to_string()),
        ]
    };
    let with = |server: &Redis, extra: &[(&str, String)]| {
        let mut metadata = base(server);
        metadata.extend(extra.iter().cloned());
        let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sidecar_on(&pairs)
    };

    // The server's certificate is checked against the CA given…
    works(with(&open, &[("caCert", path(&certs.ca))]).unwrap()).await;
    // …and, with no CA given, against the system's roots, which don't know it.
    let refused = with(&open, &[])
        .err()
        .expect("an unknown issuer is refused");
    assert!(
        refused.contains("'redisHost'") && refused.contains("certificate"),
        "{refused}"
    );
    // insecureSkipTLSVerify: encrypted, the server not authenticated.
    works(with(&open, &[("insecureSkipTLSVerify", "true".into())]).unwrap()).await;

    // A server that asks for a client certificate gets one from clientCert/clientKey.
    let refused = with(&mutual, &[("caCert", path(&certs.ca))])
        .err()
        .expect("no client certificate, no connection");
    assert!(refused.contains("'redisHost'"), "{refused}");
    works(
        with(
            &mutual,
            &[
                ("caCert", path(&certs.ca)),
                ("clientCert", path(&certs.client.0)),
                ("clientKey", path(&certs.client.1)),
            ],
        )
        .unwrap(),
    )
    .await;
}
