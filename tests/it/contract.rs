//! The store contract (`dlock::lock::contract`) against every real store, in-process: each
//! store is built from a component's metadata, as dlockd builds it, but no sidecar starts, so
//! a store's contract is checked in seconds (`scripts/test.sh contract::etcd`). The servers
//! are the shared ones scripts/test.sh starts; a missing one fails the tests.

use std::sync::Arc;
use std::time::Duration;

use dlock::config::Metadata;
use dlock::lock::LockStore;

use crate::support::backend::{
    Backend, AZURE_BLOB_WAITER_LEASE, REDIS_WAITER_LEASE, SQL_WAITER_LEASE,
};

/// The TTL of the expiry checks for stores that keep time to the millisecond (Redis,
/// ZooKeeper): short, yet long enough that a pause of a busy machine or a slow round trip does
/// not expire a lock a check still needs.
const SHORT_TTL: Duration = Duration::from_millis(300);

/// etcd's leases are whole seconds, and the test server grants one second at the least (see
/// scripts/test.sh).
const ETCD_SHORT_TTL: Duration = Duration::from_secs(1);

/// How long a waiter's key in etcd's line outlives its sidecar: its lease (the store's
/// `place.rs`, `WAITER_LEASE`).
const ETCD_WAITER_LEASE: Duration = Duration::from_secs(3);

/// Builds `backend`'s store, connected to its shared test server, as a component would get it.
pub(crate) async fn store(backend: Backend) -> Arc<dyn LockStore> {
    let metadata = backend.connection();
    let metadata: Metadata = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let type_name = backend.type_name();
    dlock::startup::StoreTypes::new()
        .build(type_name, &metadata)
        .await
        .unwrap_or_else(|| panic!("this build has no {type_name}"))
        .unwrap_or_else(|e| panic!("{type_name} did not start: {e}"))
}

dlock::store_contract!(
    redis,
    store: store(Backend::Redis),
    short_ttl: SHORT_TTL,
    fair_line: REDIS_WAITER_LEASE,
    capabilities: [fencing, listing, release_signal, line, shared, limit, reentrant, multi, multi_atomic],
);

dlock::store_contract!(
    redis_cluster,
    store: store(Backend::RedisCluster),
    short_ttl: SHORT_TTL,
    fair_line: REDIS_WAITER_LEASE,
    capabilities: [fencing, listing, release_signal, line, shared, limit, reentrant, multi],
);

dlock::store_contract!(
    etcd,
    store: store(Backend::Etcd),
    short_ttl: ETCD_SHORT_TTL,
    fair_line: ETCD_WAITER_LEASE,
    capabilities: [fencing, listing, release_signal, line, shared, limit, reentrant, multi, multi_atomic],
);

dlock::store_contract!(
    zookeeper,
    store: store(Backend::Zookeeper),
    short_ttl: SHORT_TTL,
    kinds_in_line: true,
    capabilities: [fencing, listing, release_signal, line, shared, limit, reentrant, multi, multi_atomic],
);

dlock::store_contract!(
    postgresql,
    store: store(Backend::Postgresql),
    short_ttl: SHORT_TTL,
    fair_line: SQL_WAITER_LEASE,
    capabilities: [fencing, listing, release_signal, line, shared, limit, reentrant, multi, multi_atomic],
);

dlock::store_contract!(
    mysql,
    store: store(Backend::Mysql),
    short_ttl: SHORT_TTL,
    fair_line: SQL_WAITER_LEASE,
    capabilities: [fencing, listing, line, shared, limit, reentrant, multi, multi_atomic],
);

// Azurite keeps time to the millisecond, but the store knows the service's clock only to a
// few tens of milliseconds (its Date header is in whole seconds; see the store's clock.rs).
dlock::store_contract!(
    azure_blob,
    store: store(Backend::AzureBlob),
    short_ttl: SHORT_TTL,
    fair_line: AZURE_BLOB_WAITER_LEASE,
    capabilities: [fencing, listing, line, shared, limit, reentrant, multi],
);
