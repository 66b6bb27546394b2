//! A store server's restart costs no failed call: the sidecar's next call after the server is
//! back succeeds at once, whether or not calls came in while it was away (issue 10, item 4).

use std::time::Duration;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::servers::Redis;

/// Takes and releases a lock, restarts the store's server (calls during the outage if
/// `traffic`; the server away for at least `away`), then locks and unlocks once each, at
/// once: every call must succeed.
async fn restart_costs_no_call(backend: Backend, traffic: bool, away: Duration) {
    let (mut server, file) = backend.private_server().expect("a store with a server");
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    let before = unique("reconnect");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &before, "a", 60).await,
        Ok(true)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &before, "a").await,
        Ok(SUCCESS)
    );

    server.stop();
    let stopped = std::time::Instant::now();
    if traffic {
        // Calls while the server is away fail; they must not poison the ones after it.
        for _ in 0..3 {
            let refused = api
                .lock(Protocol::Grpc, "store", &unique("away"), "b", 60)
                .await;
            assert!(
                refused.is_err(),
                "granted with the server away: {refused:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    tokio::time::sleep(away.saturating_sub(stopped.elapsed())).await;
    server.resume();

    for protocol in [Protocol::Grpc, Protocol::Http] {
        let key = unique("reconnect");
        assert_eq!(
            api.lock(protocol, "store", &key, "c", 60).await,
            Ok(true),
            "{protocol:?}: the first lock after the restart\n{}",
            sidecar.logs()
        );
        assert_eq!(
            api.unlock(protocol, "store", &key, "c").await,
            Ok(SUCCESS),
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn redis_restart_without_traffic() {
    restart_costs_no_call(Backend::Redis, false, Duration::ZERO).await;
}

#[tokio::test]
async fn redis_restart_with_traffic() {
    restart_costs_no_call(Backend::Redis, true, Duration::ZERO).await;
}

#[tokio::test]
async fn etcd_restart_without_traffic() {
    restart_costs_no_call(Backend::Etcd, false, Duration::ZERO).await;
}

#[tokio::test]
async fn etcd_restart_with_traffic() {
    restart_costs_no_call(Backend::Etcd, true, Duration::ZERO).await;
}

#[tokio::test]
async fn zookeeper_restart_without_traffic() {
    restart_costs_no_call(Backend::Zookeeper, false, Duration::ZERO).await;
}

#[tokio::test]
async fn zookeeper_restart_with_traffic() {
    restart_costs_no_call(Backend::Zookeeper, true, Duration::ZERO).await;
}

/// Stopped for 2.5 s, the server is back 3.5 to 5 s after the stop (it takes 1 to 2.5 s to
/// start), while the ZooKeeper client library waits for its next try to reconnect, at 5.6 s
/// (1.4 session timeouts, after tries at 1.5 and 3.1 s): a call made meanwhile waited for it
/// and failed. The store gives a session cut off for 2 s (half its timeout) up and opens a new
/// one.
#[tokio::test]
async fn zookeeper_restart_after_a_long_outage() {
    restart_costs_no_call(Backend::Zookeeper, false, Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn redis_without_resp3_still_serves() {
    // A server that does not know HELLO, as before Redis 6: the sidecar falls back to RESP2.
    let redis = Redis::start(&["--rename-command", "HELLO", ""]);
    let file = component("store", "lock.redis", &[("redisHost", &redis.address())]);
    let sidecar = Dlockd::start(Options::with_component("app", file));
    Api::new(&sidecar).await.smoke("store").await;
}

#[tokio::test]
async fn postgresql_restart_without_traffic() {
    restart_costs_no_call(Backend::Postgresql, false, Duration::ZERO).await;
}

#[tokio::test]
async fn postgresql_restart_with_traffic() {
    restart_costs_no_call(Backend::Postgresql, true, Duration::ZERO).await;
}

#[tokio::test]
async fn mysql_restart_without_traffic() {
    restart_costs_no_call(Backend::Mysql, false, Duration::ZERO).await;
}

#[tokio::test]
async fn mysql_restart_with_traffic() {
    restart_costs_no_call(Backend::Mysql, true, Duration::ZERO).await;
}
