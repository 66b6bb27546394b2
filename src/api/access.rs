//! The API allow and deny lists of daprd's Configuration (`spec.api`), applied as daprd applies
//! them, so a Configuration written for daprd closes the same doors on dlockd.
//!
//! A rule is `{name, version, protocol}`. dlockd's endpoints, by the names rules give them:
//!
//! | name | version | HTTP | gRPC |
//! |---|---|---|---|
//! | `lock` | `v1alpha1` | `POST /v1.0-alpha1/lock/{store}` | `Dapr/TryLockAlpha1` |
//! | `unlock` | `v1alpha1` | `POST /v1.0-alpha1/unlock/{store}` | `Dapr/UnlockAlpha1` |
//! | `metadata` | `v1` | `GET /v1.0/metadata` | `Dapr/GetMetadata` |
//! | `dlock` | `v1` | every route under `/dlock/v1/` | every RPC of `dlock.v1.Locks` |
//!
//! The health routes are always served. HTTP counts the rules whose protocol is `http` in any
//! case; a rule matches an endpoint by `version/name`, or (daprd's older form) when
//! `version/name` begins the route as daprd writes it (`v1.0-alpha1/lock`). gRPC counts the
//! rules whose protocol is exactly `grpc` and whose `name.version` daprd knows (or is
//! `dlock.v1`). On each protocol a denied endpoint is closed; when the allow list names
//! anything, whatever it does not name is closed, dlock's own API included.
//!
//! A closed HTTP route is not registered, so it answers 404 as any unknown route. A closed RPC
//! answers UNIMPLEMENTED with daprd's message, `Not Implemented`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::config::configuration::ApiRule;

/// dlockd's endpoints, by the group a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Lock,
    Unlock,
    Metadata,
    Dlock,
}

impl Endpoint {
    const ALL: [Endpoint; 4] = [
        Endpoint::Lock,
        Endpoint::Unlock,
        Endpoint::Metadata,
        Endpoint::Dlock,
    ];

    /// The rule's name and version for this endpoint.
    fn group(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Lock => ("lock", "v1alpha1"),
            Endpoint::Unlock => ("unlock", "v1alpha1"),
            Endpoint::Metadata => ("metadata", "v1"),
            Endpoint::Dlock => ("dlock", "v1"),
        }
    }

    /// The route as daprd writes it for the older, prefix form of HTTP rules. dlock's own
    /// routes never had that form.
    fn daprd_route(self) -> Option<&'static str> {
        match self {
            Endpoint::Lock => Some("v1.0-alpha1/lock/{storeName}"),
            Endpoint::Unlock => Some("v1.0-alpha1/unlock/{storeName}"),
            Endpoint::Metadata => Some("v1.0/metadata"),
            Endpoint::Dlock => None,
        }
    }

    /// The endpoint a gRPC method path belongs to; None for anything else (which no rule
    /// closes).
    fn of_grpc_path(path: &str) -> Option<Endpoint> {
        match path {
            "/dapr.proto.runtime.v1.Dapr/TryLockAlpha1" => Some(Endpoint::Lock),
            "/dapr.proto.runtime.v1.Dapr/UnlockAlpha1" => Some(Endpoint::Unlock),
            "/dapr.proto.runtime.v1.Dapr/GetMetadata" => Some(Endpoint::Metadata),
            _ if path.starts_with("/dlock.v1.Locks/") => Some(Endpoint::Dlock),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn describe(self) -> String {
        let (name, version) = self.group();
        format!("{name} {version}")
    }
}

/// The `name.version` keys of daprd 1.18's gRPC rules (pkg/api/grpc/endpoints.go). A gRPC rule
/// counts only when its key is one of these: an allow list of `state.v1` alone closes the lock
/// RPCs, one of `nosuch.v1` closes nothing.
const DAPRD_GRPC_KEYS: &[&str] = &[
    "invoke.v1",
    "state.v1",
    "state.v1alpha1",
    "publish.v1",
    "publish.v1alpha1",
    "bindings.v1",
    "secrets.v1",
    "actors.v1",
    "actors.v1alpha1",
    "metadata.v1",
    "configuration.v1alpha1",
    "configuration.v1",
    "lock.v1alpha1",
    "unlock.v1alpha1",
    "subtlecrypto.v1alpha1",
    "crypto.v1alpha1",
    "workflows.v1alpha1",
    "workflows.v1beta1",
    "jobs.v1alpha1",
    "jobs.v1",
    "shutdown.v1",
    "subscribe.v1alpha1",
    "conversation.v1alpha1",
    "conversation.v1alpha2",
];

/// Which endpoints each protocol serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    /// Bits of `Endpoint`s closed on HTTP and on gRPC.
    http_closed: u8,
    grpc_closed: u8,
}

impl Default for ApiAccess {
    /// Everything open, as without a Configuration.
    fn default() -> Self {
        ApiAccess {
            http_closed: 0,
            grpc_closed: 0,
        }
    }
}

impl ApiAccess {
    /// Applies a Configuration's `spec.api.allowed` and `spec.api.denied`.
    pub fn new(allowed: &[ApiRule], denied: &[ApiRule]) -> ApiAccess {
        let closed = |matches: &dyn Fn(Endpoint, &[&ApiRule]) -> bool,
                      keep: &dyn Fn(&ApiRule) -> bool| {
            let allowed: Vec<&ApiRule> = allowed.iter().filter(|r| keep(r)).collect();
            let denied: Vec<&ApiRule> = denied.iter().filter(|r| keep(r)).collect();
            Endpoint::ALL
                .into_iter()
                .filter(|&e| matches(e, &denied) || (!allowed.is_empty() && !matches(e, &allowed)))
                .fold(0, |bits, e| bits | e.bit())
        };
        ApiAccess {
            http_closed: closed(&http_matches, &|r| r.protocol.eq_ignore_ascii_case("http")),
            grpc_closed: closed(&grpc_matches, &|r| {
                r.protocol == "grpc" && grpc_key_known(&grpc_key(r))
            }),
        }
    }

    /// Whether the HTTP API serves the endpoint.
    pub(crate) fn http_serves(&self, endpoint: Endpoint) -> bool {
        self.http_closed & endpoint.bit() == 0
    }

    /// Whether the gRPC API serves the method at `path` (`/package.Service/Method`).
    fn grpc_serves(&self, path: &str) -> bool {
        Endpoint::of_grpc_path(path).is_none_or(|e| self.grpc_closed & e.bit() == 0)
    }

    /// The closed endpoints, for the log: `HTTP: dlock v1; gRPC: dlock v1`, or None when every
    /// endpoint is served.
    pub fn describe_closed(&self) -> Option<String> {
        let list = |bits: u8| {
            let names: Vec<String> = Endpoint::ALL
                .into_iter()
                .filter(|e| bits & e.bit() != 0)
                .map(Endpoint::describe)
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        (self.http_closed | self.grpc_closed != 0).then(|| {
            format!(
                "HTTP: {}; gRPC: {}",
                list(self.http_closed),
                list(self.grpc_closed)
            )
        })
    }

    /// The layer that closes RPCs on the gRPC server; None when every RPC is served, so an
    /// open sidecar pays nothing per call.
    pub(crate) fn grpc_layer(&self) -> Option<GrpcGateLayer> {
        (self.grpc_closed != 0).then_some(GrpcGateLayer(*self))
    }
}

fn http_matches(endpoint: Endpoint, rules: &[&ApiRule]) -> bool {
    let (name, version) = endpoint.group();
    rules.iter().any(|rule| {
        let key = format!("{}/{}", rule.version, rule.name);
        key == format!("{version}/{name}")
            || endpoint
                .daprd_route()
                .is_some_and(|route| route.starts_with(&key))
    })
}

fn grpc_key(rule: &ApiRule) -> String {
    format!("{}.{}", rule.name, rule.version)
}

fn grpc_key_known(key: &str) -> bool {
    key == "dlock.v1" || DAPRD_GRPC_KEYS.contains(&key)
}

fn grpc_matches(endpoint: Endpoint, rules: &[&ApiRule]) -> bool {
    let (name, version) = endpoint.group();
    let key = format!("{name}.{version}");
    rules.iter().any(|rule| grpc_key(rule) == key)
}

/// Closes the RPCs the rules close, in front of every gRPC service.
#[derive(Clone)]
pub(crate) struct GrpcGateLayer(ApiAccess);

impl<S> Layer<S> for GrpcGateLayer {
    type Service = GrpcGate<S>;

    fn layer(&self, inner: S) -> GrpcGate<S> {
        GrpcGate {
            inner,
            access: self.0,
        }
    }
}

#[derive(Clone)]
pub(crate) struct GrpcGate<S> {
    inner: S,
    access: ApiAccess,
}

type Answer = http::Response<Body>;

impl<S, B> Service<http::Request<B>> for GrpcGate<S>
where
    S: Service<http::Request<B>, Response = Answer, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.access.grpc_serves(request.uri().path()) {
            Box::pin(self.inner.call(request))
        } else {
            // daprd's answer to a closed RPC.
            let closed = tonic::Status::unimplemented("Not Implemented").into_http();
            Box::pin(std::future::ready(Ok(closed)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, version: &str, protocol: &str) -> ApiRule {
        ApiRule {
            name: name.into(),
            version: version.into(),
            protocol: protocol.into(),
        }
    }

    const TRY_LOCK: &str = "/dapr.proto.runtime.v1.Dapr/TryLockAlpha1";
    const UNLOCK: &str = "/dapr.proto.runtime.v1.Dapr/UnlockAlpha1";
    const ACQUIRE: &str = "/dlock.v1.Locks/Acquire";

    #[test]
    fn no_rules_serve_everything() {
        let open = ApiAccess::new(&[], &[]);
        assert_eq!(open, ApiAccess::default());
        assert!(open.grpc_layer().is_none());
        assert_eq!(open.describe_closed(), None);
    }

    #[test]
    fn denied_closes_only_its_protocol() {
        let access = ApiAccess::new(&[], &[rule("dlock", "v1", "grpc")]);
        assert!(!access.grpc_serves(ACQUIRE));
        assert!(access.grpc_serves(TRY_LOCK));
        assert!(access.http_serves(Endpoint::Dlock));
        assert_eq!(
            access.describe_closed().unwrap(),
            "HTTP: none; gRPC: dlock v1"
        );
    }

    #[test]
    fn an_allow_list_closes_what_it_does_not_name_dlock_included() {
        let access = ApiAccess::new(
            &[
                rule("lock", "v1alpha1", "HTTP"),
                rule("unlock", "v1alpha1", "grpc"),
            ],
            &[],
        );
        assert!(access.http_serves(Endpoint::Lock));
        assert!(!access.http_serves(Endpoint::Unlock));
        assert!(!access.http_serves(Endpoint::Dlock));
        assert!(!access.http_serves(Endpoint::Metadata));
        assert!(access.grpc_serves(UNLOCK));
        assert!(!access.grpc_serves(TRY_LOCK));
        assert!(!access.grpc_serves(ACQUIRE));
        // What no rule can name stays served.
        assert!(access.grpc_serves("/grpc.health.v1.Health/Check"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let both = [
            rule("lock", "v1alpha1", "http"),
            rule("unlock", "v1alpha1", "http"),
        ];
        let access = ApiAccess::new(&both, &[rule("unlock", "v1alpha1", "http")]);
        assert!(access.http_serves(Endpoint::Lock));
        assert!(!access.http_serves(Endpoint::Unlock));
    }

    #[test]
    fn daprd_older_http_form_matches_a_route_prefix() {
        let access = ApiAccess::new(&[], &[rule("lock", "v1.0-alpha1", "http")]);
        assert!(!access.http_serves(Endpoint::Lock));
        // `v1.0-alpha1/lock` does not begin `v1.0-alpha1/unlock/…`.
        assert!(access.http_serves(Endpoint::Unlock));
        // …and is no gRPC key.
        assert!(ApiAccess::new(&[], &[rule("lock", "v1.0-alpha1", "grpc")])
            .grpc_layer()
            .is_none());
    }

    #[test]
    fn grpc_counts_known_keys_and_the_exact_protocol_only() {
        // An allow list of another building block closes the lock RPCs, as in daprd.
        let state_only = ApiAccess::new(&[rule("state", "v1", "grpc")], &[]);
        assert!(!state_only.grpc_serves(TRY_LOCK));
        // A key daprd does not know resolves to nothing: no allow list at all.
        let unknown = ApiAccess::new(&[rule("nosuch", "v1", "grpc")], &[]);
        assert!(unknown.grpc_serves(TRY_LOCK));
        let upper = ApiAccess::new(&[], &[rule("lock", "v1alpha1", "GRPC")]);
        assert!(upper.grpc_serves(TRY_LOCK));
        let empty = ApiAccess::new(&[], &[rule("lock", "v1alpha1", "")]);
        assert_eq!(empty, ApiAccess::default());
    }
}
