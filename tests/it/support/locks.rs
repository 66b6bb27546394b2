//! A small client of dlock's own API (`dlock.v1.Locks`) for the tests: acquire, renew,
//! inspect, force release, and held sessions driven message by message.

use std::time::Duration;

use dlock::cli::connect::Locks;
use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::hold_request::Action;
use dlock::proto::dlock::{
    AcquireRequest, ForceReleaseRequest, HoldEvent, HoldRequest, InspectRequest, ListRequest,
    LockInfo, Release, RenewRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Acquire with a wait; Ok(Some(token or 0)) when granted, Ok(None) when the wait ran out.
pub async fn acquire(
    locks: &Locks,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait: Duration,
) -> Result<Option<u64>, tonic::Status> {
    let answer = locks
        .clone()
        .acquire(request(resource, owner, expiry, wait))
        .await?
        .into_inner();
    Ok(answer.acquired.then_some(answer.fencing_token))
}

pub fn request(resource: &str, owner: &str, expiry: i32, wait: Duration) -> AcquireRequest {
    AcquireRequest {
        store_name: "store".into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: expiry,
        wait_timeout_ms: wait.as_millis() as i64,
        require_fencing: false,
    }
}

pub async fn renew(locks: &Locks, resource: &str, owner: &str, expiry: i32) -> i32 {
    let request = RenewRequest {
        store_name: "store".into(),
        resource_id: resource.into(),
        lock_owner: owner.into(),
        expiry_in_seconds: expiry,
    };
    locks
        .clone()
        .renew(request)
        .await
        .unwrap()
        .into_inner()
        .status
}

pub async fn inspect(locks: &Locks, resource: &str) -> Option<LockInfo> {
    let request = InspectRequest {
        store_name: "store".into(),
        resource_id: resource.into(),
    };
    let answer = locks.clone().inspect(request).await.unwrap().into_inner();
    assert_eq!(answer.held, answer.lock.is_some());
    answer.lock
}

pub async fn list(locks: &Locks, prefix: &str) -> Vec<LockInfo> {
    let request = ListRequest {
        store_name: "store".into(),
        prefix: prefix.into(),
    };
    locks
        .clone()
        .list(request)
        .await
        .unwrap()
        .into_inner()
        .locks
}

pub async fn force_release(
    locks: &Locks,
    resource: &str,
    admin: Option<&str>,
) -> Result<bool, tonic::Status> {
    let mut request = tonic::Request::new(ForceReleaseRequest {
        store_name: "store".into(),
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
