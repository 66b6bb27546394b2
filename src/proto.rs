//! The Rust types and gRPC stubs generated from `proto/` by build.rs.

/// Dapr's runtime API, the subset dlockd serves (package `dapr.proto.runtime.v1`).
pub mod dapr {
    tonic::include_proto!("dapr.proto.runtime.v1");
}

/// dlock's own API beyond Dapr's (package `dlock.v1`).
pub mod dlock {
    tonic::include_proto!("dlock.v1");
}

/// The subset of etcd's v3 API that lock.etcd calls (packages `etcdserverpb` and `mvccpb`).
pub mod etcd {
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
}
