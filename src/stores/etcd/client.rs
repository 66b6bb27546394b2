//! The connection to an etcd cluster, through our own subset of etcd's gRPC API (see
//! proto/etcd). Every call is bounded by the request timeout and tried on the members in turn:
//! a member that is stopped or cut off costs one failed attempt, and the member that answered
//! last is asked first next time. With a user name, the token from etcd's Authenticate call
//! rides on every call as the `token` header, and a token etcd no longer knows (simple tokens
//! expire when idle) is replaced by authenticating again.
//!
//! A write is sent once. When its answer is lost (a timeout, a connection that broke after
//! the request went out) the write may or may not have run, and a copy sent again would be
//! answered as if the first had not: an unlock that ran would come back "not held". So a
//! write is tried on another member only when it certainly never reached etcd (no connection
//! could be made, or etcd turned it away for want of a leader); otherwise the caller is told
//! the outcome is unknown (`Sent::Unknown`) and reads the key back to learn what happened.
//! Reads, and writes whose effect is the same done twice (a lease kept alive or revoked), are
//! tried again freely.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, ConnectError, Request, Status, Streaming};

use super::settings::{Credentials, Settings};
use crate::config::ConfigError;
use crate::lock::StoreError;
use crate::proto::etcd::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
    watch_client::WatchClient, AuthenticateRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, WatchRequest, WatchResponse,
};

/// The answer to a write sent once, or word that none came though the write may have run.
pub(crate) enum Sent<T> {
    Answered(T),
    /// Why no answer came: the caller reads back what the write would have changed.
    Unknown(String),
}

/// Whether a failed call may be sent again, here or to another member.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A read, or a write that does the same done twice.
    Always,
    /// A write: only when it certainly never reached etcd.
    IfUnsent,
}

/// Why a call failed.
enum Failure {
    Store(StoreError),
    /// A write's answer was lost after it was sent.
    Unknown(String),
}

/// The pauses between rounds of attempts on every member.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

pub(crate) struct Client {
    members: Vec<Member>,
    /// The member to ask first: the next one after the last that failed.
    preferred: AtomicUsize,
    credentials: Option<Credentials>,
    token: RwLock<Option<AsciiMetadataValue>>,
    timeout: Duration,
}

struct Member {
    address: String,
    channel: Channel,
}

/// What every request carries: the time left and the auth token.
pub(crate) struct Stamp {
    timeout: Duration,
    token: Option<AsciiMetadataValue>,
}

impl Stamp {
    /// A unary request (or a one-message stream), bounded in etcd too by `grpc-timeout`.
    fn request<M>(&self, message: M) -> Request<M> {
        let mut request = self.long_lived(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A stream that stays open (a watch): no deadline, and etcd ends it when the member loses
    /// its leader, so the watcher moves to a member that can see changes.
    fn long_lived<M>(&self, message: M) -> Request<M> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
            .metadata_mut()
            .insert("hasleader", AsciiMetadataValue::from_static("true"));
        request
    }
}

/// An error that another member, or the same one a moment later, might not give.
fn worth_another_member(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// The request never reached etcd, or etcd turned it away before running it: no connection
/// could be made (tonic reports that as a `ConnectError` in the status's sources), or the
/// member has no leader (the `hasleader` header makes etcd refuse at once rather than queue).
fn never_ran(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<ConnectError>().is_some() {
            return true;
        }
        source = error.source();
    }
    status.code() == Code::Unavailable && status.message().contains("etcdserver: no leader")
}

/// etcd no longer knows the token (expired, or the auth store changed since it was issued).
fn stale_token(status: &Status) -> bool {
    let message = status.message();
    message.contains("invalid auth token")
        || message.contains("auth store is old")
        || message.contains("user name is empty")
}

impl Client {
    /// Prepares a channel per member; nothing connects until the first call.
    pub(crate) fn new(settings: &Settings) -> Result<Client, ConfigError> {
        let tls = match &settings.tls {
            None => None,
            Some(tls) => {
                let mut config =
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
                if let Some((cert, key)) = &tls.identity {
                    config = config.identity(Identity::from_pem(cert, key));
                }
                Some(config)
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut members = Vec::with_capacity(settings.endpoints.len());
        for address in &settings.endpoints {
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
                .map_err(|e| ConfigError::field("endpoints", format!("'{address}': {e}")))?
                .connect_timeout(settings.dial_timeout)
                .tcp_nodelay(true)
                // A member that vanishes without closing the connection is noticed, and the
                // release watch moves on.
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            if let Some(tls) = &tls {
                endpoint = endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| ConfigError::field("ca", format!("TLS set-up failed: {e}")))?;
            }
            members.push(Member {
                address: address.clone(),
                channel: endpoint.connect_lazy(),
            });
        }
        Ok(Client {
            members,
            preferred: AtomicUsize::new(0),
            credentials: settings.credentials.clone(),
            token: RwLock::new(None),
            timeout: settings.request_timeout,
        })
    }

    /// The members, for messages.
    pub(crate) fn addresses(&self) -> String {
        self.members().join(",")
    }

    /// Each member's `host:port`.
    pub(crate) fn members(&self) -> Vec<String> {
        self.members.iter().map(|m| m.address.clone()).collect()
    }

    fn stamp(&self, timeout: Duration) -> Stamp {
        Stamp {
            timeout,
            token: self.token.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Runs `call` (a read, or a write that does the same done twice) as `attempts` does,
    /// sending it again whatever the failure.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: Fn(Channel, Stamp) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.attempts(Resend::Always, call)
            .await
            .map_err(|failure| match failure {
                Failure::Store(error) => error,
                Failure::Unknown(reason) => StoreError::unavailable(reason),
            })
    }

    /// Runs a write once as `attempts` does: sent again only where it certainly never ran.
    async fn write<T, F, Fut>(&self, call: F) -> Result<Sent<T>, StoreError>
    where
        F: Fn(Channel, Stamp) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        match self.attempts(Resend::IfUnsent, call).await {
            Ok(answer) => Ok(Sent::Answered(answer)),
            Err(Failure::Unknown(reason)) => Ok(Sent::Unknown(reason)),
            Err(Failure::Store(error)) => Err(error),
        }
    }

    /// Runs `call` on the preferred member, then on the others in turn while the failure is
    /// one another member might not give and `resend` allows another copy. When every member
    /// has failed (no leader during an election, or etcd down), it pauses a little and goes
    /// round again, until the request timeout: an election is ridden out, an outage fails
    /// within the timeout.
    async fn attempts<T, F, Fut>(&self, resend: Resend, call: F) -> Result<T, Failure>
    where
        F: Fn(Channel, Stamp) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let count = self.members.len();
        let mut index = self.preferred.load(Ordering::Relaxed) % count;
        let mut failed_attempts = 0;
        let mut last_failure = String::new();
        let mut pause = FIRST_PAUSE;
        let mut reauthenticated = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let member = &self.members[index];
            let answer =
                tokio::time::timeout(left, call(member.channel.clone(), self.stamp(left))).await;
            let status = match answer {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("no answer within {left:?}")),
            };
            if self.credentials.is_some() && stale_token(&status) && !reauthenticated {
                reauthenticated = true;
                // etcd checks the token before it runs anything: nothing ran.
                match self.authenticate_on(member, left).await {
                    Ok(()) => continue, // the same member again, with the new token
                    Err(status) if worth_another_member(&status) => {}
                    Err(status) => return Err(Failure::Store(failed(member, status))),
                }
            } else if !worth_another_member(&status) {
                return Err(Failure::Store(failed(member, status)));
            }
            last_failure = format!("{}: {}", member.address, status.message());
            // Every caller moves on: this member may be the one that is gone.
            index = (index + 1) % count;
            self.preferred.store(index, Ordering::Relaxed);
            if resend == Resend::IfUnsent && !never_ran(&status) {
                return Err(Failure::Unknown(format!(
                    "etcd's answer was lost, the write may have run: {last_failure}"
                )));
            }
            failed_attempts += 1;
            if failed_attempts % count == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
        if last_failure.is_empty() {
            last_failure = "no answer".into();
        }
        Err(Failure::Store(StoreError::unavailable(format!(
            "etcd did not answer within {:?}: {last_failure}",
            self.timeout
        ))))
    }

    /// Authenticates on one member and keeps the token for every later call.
    async fn authenticate_on(&self, member: &Member, timeout: Duration) -> Result<(), Status> {
        let Some(credentials) = &self.credentials else {
            return Ok(());
        };
        let request = AuthenticateRequest {
            name: credentials.username.clone(),
            password: credentials.password.clone(),
        };
        let stamp = Stamp {
            timeout,
            token: None,
        };
        let mut auth = AuthClient::new(member.channel.clone());
        let answer = tokio::time::timeout(timeout, auth.authenticate(stamp.request(request)))
            .await
            .map_err(|_| Status::deadline_exceeded(format!("no answer within {timeout:?}")))??;
        let token = AsciiMetadataValue::try_from(answer.into_inner().token)
            .map_err(|_| Status::internal("etcd sent an auth token that is not ASCII"))?;
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    /// Authenticates before the first call, so start-up reports bad credentials at once.
    /// Answers the member's status when etcd refused, for the caller to word.
    pub(crate) async fn authenticate(&self) -> Result<(), AuthFailure> {
        let mut last = None;
        for member in &self.members {
            match self.authenticate_on(member, self.timeout).await {
                Ok(()) => return Ok(()),
                Err(status) if worth_another_member(&status) => {
                    last = Some(format!("{}: {}", member.address, status.message()))
                }
                Err(status) => return Err(AuthFailure::Refused(status.message().to_string())),
            }
        }
        Err(AuthFailure::Unreachable(last.unwrap_or_default()))
    }

    pub(crate) async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.call(|channel, stamp| {
            let request = stamp.request(request.clone());
            async move { Ok(KvClient::new(channel).range(request).await?.into_inner()) }
        })
        .await
    }

    /// A transaction, sent once (see the module's doc).
    pub(crate) async fn txn(&self, request: TxnRequest) -> Result<Sent<TxnResponse>, StoreError> {
        self.write(|channel, stamp| {
            let request = stamp.request(request.clone());
            async move { Ok(KvClient::new(channel).txn(request).await?.into_inner()) }
        })
        .await
    }

    /// A new lease of `seconds`; etcd may grant more (its minimum), and says so in the answer.
    /// Sent again freely: a lease granted twice leaves one unused, which expires by itself.
    pub(crate) async fn grant(&self, seconds: i64) -> Result<LeaseGrantResponse, StoreError> {
        let request = LeaseGrantRequest {
            ttl: seconds,
            id: 0,
        };
        let granted = self
            .call(|channel, stamp| {
                let request = stamp.request(request);
                async move {
                    Ok(LeaseClient::new(channel)
                        .lease_grant(request)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        if granted.error.is_empty() {
            Ok(granted)
        } else {
            Err(StoreError::failed(format!(
                "etcd refused a lease: {}",
                granted.error
            )))
        }
    }

    /// Revokes a lease, deleting whatever key is still attached to it. A lease etcd no longer
    /// knows is gone already, as a copy sent again after a lost answer finds it.
    pub(crate) async fn revoke(&self, id: i64) -> Result<(), StoreError> {
        self.call(|channel, stamp| {
            let request = stamp.request(LeaseRevokeRequest { id });
            async move {
                match LeaseClient::new(channel).lease_revoke(request).await {
                    Ok(_) => Ok(()),
                    Err(status) if status.code() == Code::NotFound => Ok(()),
                    Err(status) => Err(status),
                }
            }
        })
        .await
    }

    /// Revokes a lease that no key needs any more, in the background: nothing waits on it,
    /// and a lease left behind expires by itself.
    pub(crate) fn discard(self: &Arc<Self>, lease: i64) {
        if lease == 0 {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            if let Err(error) = client.revoke(lease).await {
                tracing::debug!("lease {lease:x} left to expire: {error}");
            }
        });
    }

    /// Restarts a lease's time to live; answers the TTL it now has, 0 when the lease is gone.
    pub(crate) async fn keep_alive(&self, id: i64) -> Result<i64, StoreError> {
        self.call(|channel, stamp| {
            let once = tokio_stream::once(LeaseKeepAliveRequest { id });
            let request = stamp.request(once);
            async move {
                let mut answers = LeaseClient::new(channel)
                    .lease_keep_alive(request)
                    .await?
                    .into_inner();
                match answers.message().await? {
                    Some(answer) => Ok(answer.ttl),
                    None => Err(Status::unavailable(
                        "the keep-alive stream ended unanswered",
                    )),
                }
            }
        })
        .await
    }

    /// Whole seconds left on a lease; negative when it is gone.
    pub(crate) async fn time_to_live(&self, id: i64) -> Result<i64, StoreError> {
        self.call(|channel, stamp| {
            let request = stamp.request(LeaseTimeToLiveRequest { id, keys: false });
            async move {
                match LeaseClient::new(channel).lease_time_to_live(request).await {
                    Ok(answer) => Ok(answer.into_inner().ttl),
                    Err(status) if status.code() == Code::NotFound => Ok(-1),
                    Err(status) => Err(status),
                }
            }
        })
        .await
    }

    /// Opens a watch stream with one watcher; the stream stays open until etcd or the
    /// connection ends it, or `open`'s sender is dropped. Dropping the answer alone would
    /// not do: the request side, still open, would keep the stream (and the connection under
    /// it) alive in etcd and here.
    pub(crate) async fn watch(
        &self,
        request: WatchRequest,
        open: watch::Receiver<()>,
    ) -> Result<Streaming<WatchResponse>, StoreError> {
        self.call(|channel, stamp| {
            // The request side stays open while `open` does: etcd ends a watch stream whose
            // client stops sending; once the request side ends and the answer is dropped, the
            // stream is reset, which ends the watch in etcd at once.
            let mut open = open.clone();
            let until_closed =
                futures_util::stream::once(async move { while open.changed().await.is_ok() {} });
            let requests = tokio_stream::StreamExt::chain(
                tokio_stream::once(request.clone()),
                futures_util::StreamExt::filter_map(until_closed, |()| std::future::ready(None)),
            );
            let request = stamp.long_lived(requests);
            async move { Ok(WatchClient::new(channel).watch(request).await?.into_inner()) }
        })
        .await
    }
}

/// Why authentication failed at start-up.
pub(crate) enum AuthFailure {
    /// etcd answered and said no (wrong user name or password, auth not enabled).
    Refused(String),
    /// No member answered.
    Unreachable(String),
}

fn failed(member: &Member, status: Status) -> StoreError {
    StoreError::failed(format!("etcd at {}: {}", member.address, status.message()))
        .with_source(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_write_that_never_ran_is_sent_again() {
        let refused = ConnectError("tcp connect error: Connection refused".into());
        assert!(never_ran(&Status::from_error(Box::new(refused))));
        assert!(never_ran(&Status::unavailable("etcdserver: no leader")));
        // Sent, and then nothing: it may have run.
        assert!(!never_ran(&Status::unavailable(
            "h2 protocol error: broken pipe"
        )));
        assert!(!never_ran(&Status::deadline_exceeded(
            "no answer within 3s"
        )));
        assert!(!never_ran(&Status::unavailable(
            "etcdserver: leader changed"
        )));
    }
}
