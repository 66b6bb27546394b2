//! dlock's own API (`dlock.v1.Locks` over gRPC, `/dlock/v1/…` over HTTP) seen from outside,
//! one idea a file.

mod api_token;
mod doors_agree;
mod errors;
mod force_release;
mod kinds;
mod multi;
mod shared_with_dapr;

use crate::support::dlockd::Options;

/// An admin token distinctive enough that finding it in the logs means it leaked.
const ADMIN: &str = "adm-7f3c9e1b-force";

/// One in-memory store, with force release open to `ADMIN`.
fn with_admin() -> Options {
    Options {
        env: vec![("DLOCK_ADMIN_TOKEN".into(), ADMIN.into())],
        ..Options::in_memory()
    }
}
