//! A small client of dlock's own API over gRPC (`dlock.v1.Locks`) for the tests: acquire,
//! renew, inspect, list, force release, and held sessions driven message by message. The
//! `_grpc` calls take any store and answer as the door does, for tests that compare with HTTP
//! or expect an error; the short ones work on the store named `store`.

use std::time::Duration;

use dlock::cli::connect::Locks;
use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::hold_request::Action;
use dlock::proto::dlock::{
    AcquireRequest, AcquireResponse, ForceReleaseRequest, HoldEvent, HoldRequest, InspectRequest,
    ListRequest, LockInfo, Release, RenewRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::api::Failure;

/// Acquire with a wait on the store named `store`; the answer as the door gives it. The wait
/// is in milliseconds, so a test can send a negative one.
pub async fn acquire_grpc(
    locks: &Locks,
    store: &str,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait_ms: i64,
) -> Result<AcquireResponse, Failure> {
    let request = request_on(store, resource, owner, expiry, wait_ms);
    let answer = locks.clone().acquire(request).await?;
    Ok(answer.into_inner())
}

pub async fn renew_grpc(
    locks: &Locks,
    store: &str,
    resource: &str,
    owner: &str,
    expiry: i32,
) -> Result<i32, Failure> {
    let request = RenewRequest {
        store_name: store.into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: expiry,
    };
    Ok(locks.clone().renew(request).await?.into_inner().status)
}

/// Inspect; Ok(None) for a free lock, after checking that `held` says the same.
pub async fn inspect_grpc(
    locks: &Locks,
    store: &str,
    resource: &str,
) -> Result<Option<LockInfo>, Failure> {
    let request = InspectRequest {
        store_name: store.into(),
        resource_id: resource.into(),
    };
    let answer = locks.clone().inspect(request).await?.into_inner();
    assert_eq!(answer.held, answer.lock.is_some(), "{answer:?}");
    Ok(answer.lock)
}

pub async fn list_grpc(locks: &Locks, store: &str, prefix: &str) -> Result<Vec<LockInfo>, Failure> {
    let request = ListRequest {
        store_name: store.into(),
        prefix: prefix.into(),
    };
    Ok(locks.clone().list(request).await?.into_inner().locks)
}

/// Force release, with the admin token in the call's metadata when `admin` is given.
pub async fn force_release_grpc(
    locks: &Locks,
    store: &str,
    resource: &str,
    admin: Option<&str>,
) -> Result<bool, Failure> {
    let mut request = tonic::Request::new(ForceReleaseRequest {
        store_name: store.into(),
        resource_id: resource.into(),
    });
    if let Some(token) = admin {
        request
            .metadata_mut()
            .insert("dlock-admin-token", token.parse().unwrap());
    }
    Ok(locks
        .clone()
        .force_release(request)
        .await?
        .into_inner()
        .released)
}

// ---- The same on the store named `store`, as most tests want them ----

/// Acquire with a wait; Ok(Some(token or 0)) when granted, Ok(None) when the wait ran out.
pub async fn acquire(
    locks: &Locks,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait: Duration,
) -> Result<Option<u64>, Failure> {
    let wait_ms = wait.as_millis() as i64;
    let answer = acquire_grpc(locks, "store", resource, owner, expiry, wait_ms).await?;
    Ok(answer.acquired.then_some(answer.fencing_token))
}

/// A try (no wait); Some(token or 0) when granted, None when held by another owner.
pub async fn try_acquire(locks: &Locks, resource: &str, owner: &str, expiry: i32) -> Option<u64> {
    acquire(locks, resource, owner, expiry, Duration::ZERO)
        .await
        .unwrap()
}

pub fn request(resource: &str, owner: &str, expiry: i32, wait: Duration) -> AcquireRequest {
    request_on("store", resource, owner, expiry, wait.as_millis() as i64)
}

pub fn request_on(
    store: &str,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait_ms: i64,
) -> AcquireRequest {
    AcquireRequest {
        store_name: store.into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: expiry,
        wait_timeout_ms: wait_ms,
        require_fencing: false,
        ..Default::default()
    }
}

pub async fn renew(locks: &Locks, resource: &str, owner: &str, expiry: i32) -> i32 {
    renew_grpc(locks, "store", resource, owner, expiry)
        .await
        .unwrap()
}

pub async fn inspect(locks: &Locks, resource: &str) -> Option<LockInfo> {
    inspect_grpc(locks, "store", resource).await.unwrap()
}

pub async fn list(locks: &Locks, prefix: &str) -> Vec<LockInfo> {
    list_grpc(locks, "store", prefix).await.unwrap()
}

pub async fn force_release(
    locks: &Locks,
    resource: &str,
    admin: Option<&str>,
) -> Result<bool, Failure> {
    force_release_grpc(locks, "store", resource, admin).await
}

/// A held session seen from the client.
pub struct Session {
    requests: Option<mpsc::Sender<HoldRequest>>,
    events: tonic::Streaming<HoldEvent>,
}

impl Session {
    pub async fn open(locks: &Locks, acquire: AcquireRequest) -> Session {
        let (requests, outbound) = mpsc::channel(4);
        requests
            .send(HoldRequest {
                action: Some(Action::Acquire(acquire)),
            })
            .await
            .unwrap();
        let events = locks
            .clone()
            .hold(ReceiverStream::new(outbound))
            .await
            .unwrap()
            .into_inner();
        Session {
            requests: Some(requests),
            events,
        }
    }

    /// The next event, within `within`.
    pub async fn next(&mut self, within: Duration) -> Event {
        let message = tokio::time::timeout(within, self.events.message())
            .await
            .expect("a session event in time")
            .expect("the stream stays healthy")
            .expect("the stream has an event");
        message.event.expect("an event")
    }

    /// Whether an event arrives within `within` (for asserting that none does).
    pub async fn quiet_for(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.events.message())
            .await
            .is_err()
    }

    pub async fn release(&mut self) {
        let release = HoldRequest {
            action: Some(Action::Release(Release {})),
        };
        self.requests.as_ref().unwrap().send(release).await.unwrap();
    }

    /// Drops the connection's request side and the stream, as a client that vanishes does.
    pub fn vanish(self) {}
}
