//! lock.redis beyond one plain server: Sentinel failover, a Redis Cluster's masters seen as one
//! store, and TLS (a private CA, client certificates, skipped verification).

use std::time::{Duration, Instant};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::certs::Certs;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks;
use crate::support::servers::{Outage, Redis, RedisCluster};

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

#[tokio::test]
async fn sentinel_failover_keeps_locks_working() {
    let mut master = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let sentinel = Redis::start_sentinel("locks", master.port);
    // Sentinel must know the replica before the master dies, or there is nothing to promote.
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

    let sidecar = sidecar_on(&[
        ("redisHost", &sentinel.address()),
        ("failover", "true"),
        ("sentinelMasterName", "locks"),
        ("readTimeout", "1s"),
        ("dialTimeout", "1s"),
    ])
    .unwrap();
    let api = Api::new(&sidecar).await;
    let before = unique("sentinel");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &before, "a", 120).await,
        Ok(true)
    );
    // The lock reached the replica before the master goes (replication is asynchronous: a
    // lock granted in the last moment before a crash can be lost; the README says so).
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
