//! The Rust types and gRPC stubs generated from `proto/` by build.rs.

/// Dapr's runtime API, the subset dlockd serves (package `dapr.proto.runtime.v1`).
pub mod dapr {
    tonic::include_proto!("dapr.proto.runtime.v1");
}

/// dlock's own API beyond Dapr's (package `dlock.v1`).
pub mod dlock {
    tonic::include_proto!("dlock.v1");
}
