//! docs/conformance.md's suite, written once against the sidecar's public API and run for every
//! backend by `conformance_suite!`.
//!
//! Each backend runs the items every store can, and names the groups of further items that fit
//! it; an item a backend cannot run is not instantiated for it, so every test that passes has
//! asserted something. The groups:
//! - `shared`: two sidecars on the store see the same locks (item 4 across sidecars);
//! - `release_signal`: a release through one sidecar wakes a waiter on another at once
//!   (RELEASE_SIGNAL; item 9 across sidecars). Every shared store checks that it reports
//!   RELEASE_SIGNAL exactly when it runs this group;
//! - `per_process`: each sidecar has a keyspace of its own (the embedded store);
//! - `outage`: the store is a server that a test can stop and start again (item 7);
//! - `store_line`: the store keeps its own line of waiters (WAIT_QUEUE), served in arrival
//!   order across sidecars (item 9). Every backend checks that it reports WAIT_QUEUE exactly
//!   when it runs this group, so a store that loses its line fails rather than skipping.

pub mod blocking;
pub mod exclusion;
pub mod expiry;
pub mod failures;
pub mod keys;
pub mod names;
pub mod renewal;
pub mod store_line;
pub mod try_unlock;

/// Instantiates the conformance items for one backend, as a module of its own: the items
/// every store runs, then those of each group named.
macro_rules! conformance_suite {
    ($name:ident, $backend:expr, [$($group:ident),* $(,)?]) => {
        mod $name {
            use crate::conformance::*;
            use crate::support::backend::Backend;

            const BACKEND: Backend = $backend;
            /// The groups this backend runs, for the checks that tie a capability to them.
            const GROUPS: &[&str] = &[$(stringify!($group)),*];

            conformance_suite!(@every_store);
            $(conformance_suite!(@$group);)*
        }
    };
    // One test a line: its name, and the item it runs on BACKEND.
    (@tests $($test:ident => $item:path),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $item(BACKEND).await;
            }
        )*
    };
    (@every_store) => {
        conformance_suite!(@tests
            c1_try_lock_is_immediate_and_not_reentrant => try_unlock::try_lock,
            c2_unlock_is_owner_checked => try_unlock::unlock,
            c3_a_lock_expires_on_time => expiry::expiry,
            c4_key_prefixes_share_or_separate_keys => keys::key_prefixes,
            c6_a_crashed_holders_locks_are_freed => failures::holder_crash,
            c8_resource_ids_are_opaque => names::names,
            c9_a_wait_is_bounded => blocking::wait_bounds,
            c9_first_come_first_served => blocking::first_come_first_served,
            c9_cancelled_waiter_leaves_no_trace => blocking::cancelled_waiter_leaves_no_trace,
            c9_release_wakes_a_waiter => blocking::release_wakes_a_waiter,
            c10_renewal_extends_only_the_holders_lock => renewal::renewal,
            c10_fencing_tokens_increase_across_holders => renewal::fencing,
            c10_sessions_keep_their_lock_and_report_its_loss => renewal::sessions,
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn c5_mutual_exclusion() {
            exclusion::mutual_exclusion(BACKEND).await;
        }
        #[tokio::test]
        async fn c9_reports_a_release_signal_exactly_where_it_runs_the_item() {
            let runs_the_signal_item = GROUPS.contains(&"release_signal");
            blocking::reports_a_release_signal_exactly_where_it_runs_the_item(
                BACKEND,
                runs_the_signal_item,
            )
            .await;
        }
        #[tokio::test]
        async fn c9_reports_a_line_exactly_where_it_keeps_one() {
            let runs_the_line_items = GROUPS.contains(&"store_line");
            store_line::reports_a_line_exactly_where_it_keeps_one(BACKEND, runs_the_line_items)
                .await;
        }
    };
    (@shared) => {
        conformance_suite!(@tests
            c4_sidecars_share_keys_by_app_id => keys::sidecars_share_keys_by_app_id,
        );
    };
    (@release_signal) => {
        conformance_suite!(@tests
            c9_release_on_another_sidecar_wakes_a_waiter =>
                blocking::release_on_another_sidecar_wakes_a_waiter,
        );
    };
    (@per_process) => {
        conformance_suite!(@tests c4_sidecars_never_share_keys => keys::sidecars_never_share_keys);
    };
    (@outage) => {
        conformance_suite!(@tests
            c7_an_outage_fails_requests_fast_and_the_sidecar_recovers => failures::store_outage,
        );
    };
    (@store_line) => {
        conformance_suite!(@tests
            c9_arrival_order_across_sidecars => store_line::arrival_order_across_sidecars,
            c9_waiters_that_give_up_leave_the_line =>
                store_line::waiters_that_give_up_leave_the_line,
            c9_a_dead_sidecars_waiter_is_skipped => store_line::a_dead_sidecars_waiter_is_skipped,
        );
    };
}

// The embedded store lives inside one dlockd: no server to lose, no keys or line shared with
// another sidecar.
conformance_suite!(memory, Backend::Memory, [per_process]);
conformance_suite!(
    redis,
    Backend::Redis,
    [shared, release_signal, outage, store_line]
);
conformance_suite!(
    redis_cluster,
    Backend::RedisCluster,
    [shared, release_signal, outage, store_line]
);
conformance_suite!(
    etcd,
    Backend::Etcd,
    [shared, release_signal, outage, store_line]
);
conformance_suite!(
    zookeeper,
    Backend::Zookeeper,
    [shared, release_signal, outage, store_line]
);
// The SQL stores keep their line in a waiters table, each waiter on a lease.
conformance_suite!(
    postgresql,
    Backend::Postgresql,
    [shared, release_signal, outage, store_line]
);
// MySQL has no notifications: a waiter on another sidecar finds a release at its next poll.
conformance_suite!(mysql, Backend::Mysql, [shared, outage, store_line]);
// Azure Blob Storage keeps the line in the lock's blob but sends no release signal: waiters
// poll.
conformance_suite!(azure_blob, Backend::AzureBlob, [shared, outage, store_line]);
