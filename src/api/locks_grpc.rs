//! dlock's own gRPC service, `dlock.v1.Locks`: blocking acquire, renewal, held sessions,
//! inspection, listing and force release, on the same core as Dapr's API.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::{auth, lock_request, status, stores, ApiState};
use crate::lock::session::Started;
use crate::lock::{self, ApiError, Grant, HeldLock};
use crate::proto::dlock::hold_event::Event;
use crate::proto::dlock::hold_request::Action;
use crate::proto::dlock::locks_server::Locks;
use crate::proto::dlock::{
    AcquireRequest, AcquireResponse, ForceReleaseRequest, ForceReleaseResponse, HoldEvent,
    HoldRequest, Holder, InspectRequest, InspectResponse, ListRequest, ListResponse, LockInfo,
    LockMode, Lost, ReleaseRequest, ReleaseResponse, Released, RenewRequest, RenewResponse,
    StoresRequest, StoresResponse, TimedOut,
};

/// Answers a little before the caller's deadline, so it hears "not acquired" rather than
/// DEADLINE_EXCEEDED. The margin covers the last attempt on the store after the wait: a
/// consensus store (etcd) answers a read only once its log is applied, which takes tens of
/// milliseconds when the disk is busy.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

pub(crate) struct LocksGrpc {
    state: Arc<ApiState>,
}

impl LocksGrpc {
    pub(crate) fn new(state: Arc<ApiState>) -> Self {
        LocksGrpc { state }
    }
}

/// The core's request for an acquire, its wait bounded by the call's `deadline`.
fn acquire_request(
    r: AcquireRequest,
    deadline: Option<Duration>,
) -> Result<lock::AcquireRequest, ApiError> {
    let asked = lock::wait_timeout(r.wait_timeout_ms)?;
    let mode = match r.mode() {
        LockMode::Exclusive => lock::Mode::Exclusive,
        LockMode::Shared => lock::Mode::Shared,
    };
    Ok(lock::AcquireRequest {
        lock: lock_request!(r),
        wait: match deadline {
            Some(deadline) => asked.min(deadline.saturating_sub(DEADLINE_MARGIN)),
            None => asked,
        },
        require_fencing: r.require_fencing,
        kind: lock::Kind {
            mode,
            limit: r.limit,
            reentrant: r.reentrant,
        },
        resource_ids: r.resource_ids,
    })
}

/// The call's deadline, from its `grpc-timeout` header.
fn call_deadline(metadata: &MetadataMap) -> Option<Duration> {
    metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
}

/// Parses gRPC's `grpc-timeout` header: digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(crate) fn acquired(grant: Option<Grant>) -> AcquireResponse {
    let token = grant.and_then(|g| g.fencing_token);
    AcquireResponse {
        acquired: grant.is_some(),
        fencing_token: token.unwrap_or(0),
        has_fencing: token.is_some(),
        holds: grant.map_or(0, |g| g.holds),
    }
}

fn lock_mode(mode: lock::Mode) -> LockMode {
    match mode {
        lock::Mode::Exclusive => LockMode::Exclusive,
        lock::Mode::Shared => LockMode::Shared,
    }
}

fn millis(time: Duration) -> i64 {
    time.as_millis().min(i64::MAX as u128) as i64
}

pub(crate) fn lock_info(held: HeldLock) -> LockInfo {
    LockInfo {
        resource_id: held.resource_id,
        lock_owner: held.owner,
        expires_in_ms: millis(held.expires_in),
        fencing_token: held.fencing_token.unwrap_or(0),
        waiting_here: held.waiting,
        mode: lock_mode(held.mode).into(),
        limit: held.limit,
        holders: held
            .holders
            .into_iter()
            .map(|holder| Holder {
                lock_owner: holder.owner,
                expires_in_ms: millis(holder.expires_in),
                fencing_token: holder.fencing_token.unwrap_or(0),
                holds: holder.holds,
            })
            .collect(),
    }
}

type Events = mpsc::Sender<Result<HoldEvent, Status>>;

fn event(event: Event) -> Result<HoldEvent, Status> {
    Ok(HoldEvent { event: Some(event) })
}

/// One held session, from acquisition to release or loss.
async fn run_session(
    state: Arc<ApiState>,
    acquire: lock::AcquireRequest,
    mut inbound: Streaming<HoldRequest>,
    events: Events,
) {
    let starting = state.locks.start_session(acquire);
    // A client that goes away while waiting leaves the line.
    let started = tokio::select! {
        started = starting => started,
        _ = events.closed() => return,
    };
    let session = match started {
        Err(error) => {
            let _ = events.send(Err(error.into())).await;
            return;
        }
        Ok(Started::TimedOut) => {
            let _ = events.send(event(Event::TimedOut(TimedOut {}))).await;
            return;
        }
        Ok(Started::Held(session)) => session,
    };
    if events
        .send(event(Event::Acquired(acquired(Some(session.grant)))))
        .await
        .is_err()
    {
        let _ = session.release().await;
        return;
    }
    let asked_release = tokio::select! {
        reason = session.keep() => {
            // Not ours any more: nothing to release.
            let _ = events.send(event(Event::Lost(Lost { reason }))).await;
            return;
        }
        message = inbound.message() => match message {
            Ok(Some(HoldRequest { action: Some(Action::Release(_)) })) | Ok(None) => true,
            Ok(Some(_)) => {
                let _ = events
                    .send(Err(Status::invalid_argument("a session takes one acquire, then only release")))
                    .await;
                false
            }
            // The client disappeared.
            Err(_) => false,
        },
        _ = events.closed() => false,
    };
    match session.release().await {
        Ok(_) if asked_release => {
            let _ = events.send(event(Event::Released(Released {}))).await;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!("releasing a session's lock failed: {error}");
            let _ = events.send(Err(error.into())).await;
        }
    }
}

#[tonic::async_trait]
impl Locks for LocksGrpc {
    async fn acquire(
        &self,
        request: Request<AcquireRequest>,
    ) -> Result<Response<AcquireResponse>, Status> {
        let deadline = call_deadline(request.metadata());
        let request = acquire_request(request.into_inner(), deadline)?;
        let grant = self.state.locks.acquire(request).await?;
        Ok(Response::new(acquired(grant)))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let r = request.into_inner();
        let request = lock_request!(r);
        let outcome = self.state.locks.renew(request).await?;
        Ok(Response::new(RenewResponse {
            status: status(outcome),
        }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        let r = request.into_inner();
        let request = lock::ReleaseRequest {
            unlock: lock::UnlockRequest {
                store: r.store_name,
                resource_id: r.resource_id,
                owner: r.lock_owner,
            },
            all_holds: r.all_holds,
            expected_holds: (r.holds != 0).then_some(r.holds),
            resource_ids: r.resource_ids,
        };
        let released = self.state.locks.release_holds(request).await?;
        Ok(Response::new(ReleaseResponse {
            status: status(released.outcome),
            holds_remaining: released.holds_left,
        }))
    }

    type HoldStream = ReceiverStream<Result<HoldEvent, Status>>;

    async fn hold(
        &self,
        request: Request<Streaming<HoldRequest>>,
    ) -> Result<Response<Self::HoldStream>, Status> {
        let deadline = call_deadline(request.metadata());
        let mut inbound = request.into_inner();
        let acquire = match inbound.message().await? {
            Some(HoldRequest {
                action: Some(Action::Acquire(acquire)),
            }) => acquire,
            _ => return Err(Status::invalid_argument("a session starts with an acquire")),
        };
        let acquire = acquire_request(acquire, deadline)?;
        let (events, stream) = mpsc::channel(4);
        tokio::spawn(run_session(self.state.clone(), acquire, inbound, events));
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<InspectResponse>, Status> {
        let r = request.into_inner();
        let held = self
            .state
            .locks
            .inspect(&r.store_name, &r.resource_id)
            .await?;
        Ok(Response::new(InspectResponse {
            held: held.is_some(),
            lock: held.map(lock_info),
        }))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let r = request.into_inner();
        let locks = self.state.locks.list(&r.store_name, &r.prefix).await?;
        Ok(Response::new(ListResponse {
            locks: locks.into_iter().map(lock_info).collect(),
        }))
    }

    async fn force_release(
        &self,
        request: Request<ForceReleaseRequest>,
    ) -> Result<Response<ForceReleaseResponse>, Status> {
        let given = request
            .metadata()
            .get(auth::ADMIN_HEADER)
            .map(|v| v.as_bytes());
        auth::admin(&self.state.admin_token, given)?;
        let r = request.into_inner();
        let released = self
            .state
            .locks
            .force_release(&r.store_name, &r.resource_id)
            .await?;
        Ok(Response::new(ForceReleaseResponse { released }))
    }

    async fn stores(
        &self,
        _request: Request<StoresRequest>,
    ) -> Result<Response<StoresResponse>, Status> {
        Ok(Response::new(stores::describe(&self.state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout("x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
