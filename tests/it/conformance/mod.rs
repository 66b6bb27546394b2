//! CONFORMANCE.md's suite, written once against the sidecar's public API and run for every
//! backend by `conformance_suite!`.

pub mod blocking;
pub mod exclusion;
pub mod expiry;
pub mod failures;
pub mod keys;
pub mod names;
pub mod renewal;
pub mod store_line;
pub mod try_unlock;

/// Instantiates every conformance test for one backend, as a module of its own.
macro_rules! conformance_suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use crate::conformance::*;
            use crate::support::backend::Backend;

            const BACKEND: Backend = $backend;

            #[tokio::test]
            async fn c1_try_lock() {
                try_unlock::try_lock(BACKEND).await;
            }
            #[tokio::test]
            async fn c2_unlock() {
                try_unlock::unlock(BACKEND).await;
            }
            #[tokio::test]
            async fn c3_expiry() {
                expiry::expiry(BACKEND).await;
            }
            #[tokio::test]
            async fn c4_key_prefixes() {
                keys::key_prefixes(BACKEND).await;
            }
            #[tokio::test]
            async fn c4_two_sidecars() {
                keys::two_sidecars(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn c5_mutual_exclusion() {
                exclusion::mutual_exclusion(BACKEND).await;
            }
            #[tokio::test]
            async fn c6_holder_crash() {
                failures::holder_crash(BACKEND).await;
            }
            #[tokio::test]
            async fn c7_store_outage() {
                failures::store_outage(BACKEND).await;
            }
            #[tokio::test]
            async fn c8_names() {
                names::names(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_wait_bounds() {
                blocking::wait_bounds(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_first_come_first_served() {
                blocking::first_come_first_served(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_cancelled_waiter_leaves_no_trace() {
                blocking::cancelled_waiter_leaves_no_trace(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_release_wakes_a_waiter() {
                blocking::release_wakes_a_waiter(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_release_on_another_sidecar_wakes_a_waiter() {
                blocking::release_on_another_sidecar_wakes_a_waiter(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_arrival_order_across_sidecars() {
                store_line::arrival_order_across_sidecars(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_waiters_that_give_up_leave_the_line() {
                store_line::waiters_that_give_up_leave_the_line(BACKEND).await;
            }
            #[tokio::test]
            async fn c9_a_dead_sidecars_waiter_is_skipped() {
                store_line::a_dead_sidecars_waiter_is_skipped(BACKEND).await;
            }
            #[tokio::test]
            async fn c10_renewal() {
                renewal::renewal(BACKEND).await;
            }
            #[tokio::test]
            async fn c10_fencing() {
                renewal::fencing(BACKEND).await;
            }
            #[tokio::test]
            async fn c10_sessions() {
                renewal::sessions(BACKEND).await;
            }
        }
    };
}

conformance_suite!(memory, Backend::Memory);
conformance_suite!(redis, Backend::Redis);
conformance_suite!(redis_cluster, Backend::RedisCluster);
conformance_suite!(etcd, Backend::Etcd);
conformance_suite!(zookeeper, Backend::Zookeeper);
