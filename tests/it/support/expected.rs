//! The error answer a test expects, written once for both front doors. Dapr's routes and dlock's
//! own answer errors from one table (docs/contract.md §2): an HTTP status and errorCode, a gRPC
//! code, and the same message on both. A test names the row it expects and checks each door's
//! answer against it.

use tonic::Code;

use super::api::{Failure, Protocol};

/// What one error case answers, on either door.
pub struct Expected {
    pub http_status: u16,
    pub error_code: &'static str,
    pub grpc: Code,
    pub message: String,
}

impl Expected {
    pub fn new(http_status: u16, error_code: &'static str, grpc: Code, message: &str) -> Expected {
        Expected {
            http_status,
            error_code,
            grpc,
            message: message.to_string(),
        }
    }

    /// A request that fails a check of its own fields.
    pub fn malformed(message: &str) -> Expected {
        Expected::new(400, "ERR_MALFORMED_REQUEST", Code::InvalidArgument, message)
    }

    /// Row 1: an expiry of zero or less, on a request to `store`.
    pub fn expiry_not_positive(store: &str) -> Expected {
        Expected::malformed(&format!(
            "ExpiryInSeconds is not positive in lock store {store}"
        ))
    }

    /// Row 3: an empty resource id.
    pub fn no_resource(store: &str) -> Expected {
        Expected::malformed(&format!("ResourceId is empty in lock store {store}"))
    }

    /// Row 4: an empty owner.
    pub fn no_owner(store: &str) -> Expected {
        Expected::malformed(&format!("LockOwner is empty in lock store {store}"))
    }

    /// Row 5: a request naming a store that is not loaded, on a sidecar whose stores are
    /// `loaded`: Dapr's message, then the stores there are.
    pub fn store_not_found(store: &str, loaded: &[&str]) -> Expected {
        Expected::new(
            400,
            "ERR_LOCK_STORE_NOT_FOUND",
            Code::InvalidArgument,
            &format!(
                "lock store {store} not found; the lock stores loaded are: {}",
                loaded.join(", ")
            ),
        )
    }

    /// Row 6: a resource id with `||`, refused by the store call whose error code is `error_code`
    /// and whose messages start with `prefix`.
    pub fn key_with_pipes(error_code: &'static str, prefix: &str, key: &str) -> Expected {
        Expected::new(
            500,
            error_code,
            Code::Internal,
            &format!("{prefix}: input key/keyPrefix '{key}' can't contain '||'"),
        )
    }

    /// The failure this case answers over `protocol`.
    fn over(&self, protocol: Protocol) -> Failure {
        match protocol {
            Protocol::Http => Failure::Http {
                status: self.http_status,
                error_code: self.error_code.into(),
                message: self.message.clone(),
            },
            Protocol::Grpc => Failure::Grpc {
                code: self.grpc,
                message: self.message.clone(),
            },
        }
    }
}

/// Asserts that `got`, the answer to `case` over `protocol`, is the error `want`.
pub fn check(
    protocol: Protocol,
    case: &str,
    got: Result<impl std::fmt::Debug, Failure>,
    want: &Expected,
) {
    let failure = got
        .err()
        .unwrap_or_else(|| panic!("{case} over {protocol:?}: expected an error"));
    assert_eq!(failure, want.over(protocol), "{case} over {protocol:?}");
}

/// Asserts that both doors answered `case` with the error `want`.
pub fn check_both(
    case: &str,
    http: Result<impl std::fmt::Debug, Failure>,
    grpc: Result<impl std::fmt::Debug, Failure>,
    want: &Expected,
) {
    check(Protocol::Http, case, http, want);
    check(Protocol::Grpc, case, grpc, want);
}

/// Asserts that `got` is the HTTP door's refusal of a body that is not JSON, or not the
/// route's message (row 0): 400 ERR_MALFORMED_REQUEST, with the parser's complaint.
pub fn check_unreadable_body(case: &str, got: Result<impl std::fmt::Debug, Failure>) {
    match got {
        Err(Failure::Http {
            status: 400,
            error_code,
            message,
        }) => {
            assert_eq!(error_code, "ERR_MALFORMED_REQUEST", "{case}");
            assert!(
                message.starts_with("failed deserializing HTTP body: "),
                "{case}: {message}"
            );
        }
        other => panic!("{case}: {other:?}"),
    }
}
