//! The store contract as a test suite: what `LockStore` promises (see `store.rs`), checked
//! against a store in-process, before any sidecar starts, so a store's contract is checked in
//! seconds. Public because the integration tests (tests/it/contract.rs) run it against every
//! real store; the in-memory store runs it in its unit tests.
//!
//! Every store runs the checks of what every store does; a check of a capability (listing,
//! fencing, the release signal, a line of waiters) is instantiated only for a store that
//! declares it, and each instantiation checks that the store's capabilities are exactly the
//! ones it declares, so a store that loses or gains a capability fails instead of silently
//! skipping checks. One line instantiates the suite for a store:
//!
//! ```ignore
//! dlock::store_contract!(redis, store: build_redis(), short_ttl: Duration::from_millis(300),
//!     capabilities: [fencing, listing, release_signal]);
//! ```
//!
//! This makes a module `redis` of tests, one per check. `store` is an expression whose
//! `.await` is a fresh `Arc<impl LockStore>` (each test builds its own: a store's background
//! tasks live on the test's runtime); it is awaited twice, the second instance standing for a
//! second sidecar on the same server, unless `one_instance: true` (a store kept in one
//! process, whose instances do not share locks); `short_ttl` is the shortest lock the expiry checks take
//! (see `Subject::short_ttl`); `fair_line: <lease>` says that the store's line takes every
//! kind (`LockStore::line_takes`) and holds each waiter's place on a lease of that length, and
//! brings the checks of `fair.rs` that need it; `kinds_in_line: true` says that the line takes
//! every kind but holds a waiter's place by its sidecar's session rather than a lease
//! (ZooKeeper), and brings the kinds' check of `fair.rs` alone. Each check takes keys of its own, so checks and test runs can
//! share one store server.

pub mod exclusion;
pub mod expiry;
pub mod fair;
pub mod fencing;
pub mod force;
pub mod inspect;
pub mod kinds;
pub mod line;
pub mod listing;
pub mod multi;
pub mod release;
pub mod renewal;
pub mod signal;
pub(crate) mod subject;

pub use subject::Subject;

/// Instantiates the store contract for one store, as a module of tests (see the module's
/// documentation). The checks each capability brings are listed here, once.
#[macro_export]
macro_rules! store_contract {
    (@fencing) => {
        $crate::store_contract!(@checks
            fencing::fencing_through_release,
            fencing::fencing_through_expiry,
            fencing::take_back_spares_a_later_grant,
        );
    };
    (@listing) => {
        $crate::store_contract!(@checks listing::list);
    };
    (@release_signal) => {
        $crate::store_contract!(@checks signal::release_wakes_a_waiter);
    };
    (@shared) => {
        $crate::store_contract!(@checks
            kinds::shared_holders_coexist_and_exclude_a_writer,
            kinds::inspect_shows_every_holder,
            kinds::each_holder_expires_on_its_own,
        );
    };
    (@limit) => {
        $crate::store_contract!(@checks
            kinds::a_limit_admits_exactly_n_under_contention,
            kinds::a_dead_holders_permit_returns_and_a_limit_mismatch_is_refused,
        );
    };
    (@reentrant) => {
        $crate::store_contract!(@checks
            kinds::reentrant_holds_count_through_two_sidecars,
            kinds::all_holds_go_together_and_a_reentry_keeps_its_mode,
        );
    };
    (@multi) => {
        $crate::store_contract!(@checks multi::all_or_none);
    };
    // A reader on another thread than the tries, so that a store kept in this process is
    // looked at between its steps too.
    (@multi_atomic) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_failed_try_is_never_seen() {
            $crate::lock::contract::multi::a_failed_try_is_never_seen(&subject().await).await;
        }
    };
    (@line) => {
        $crate::store_contract!(@checks
            line::line_order,
            line::leave,
            line::wait_turn,
            fair::grants_follow_arrival_across_sidecars,
        );
    };
    (@is_fair) => {
        false
    };
    (@is_fair $lease:expr) => {
        true
    };
    (@kinds_in_line true) => {
        $crate::store_contract!(@checks
            fair::a_writer_waits_for_readers_ahead_and_holds_back_readers_behind,
        );
    };
    (@fair_line $lease:expr) => {
        $crate::store_contract!(@checks
            fair::a_writer_waits_for_readers_ahead_and_holds_back_readers_behind,
        );
        #[tokio::test]
        async fn a_dead_waiter_frees_the_line_at_its_lease_expiry() {
            let lease: std::time::Duration = $lease;
            $crate::lock::contract::fair::a_dead_waiter_frees_the_line_at_its_lease_expiry(
                &subject().await,
                lease,
            )
            .await;
        }
    };
    (@checks $($module:ident::$check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::lock::contract::$module::$check(&subject().await).await;
            }
        )*
    };
    (@peer $store:expr, true) => {
        $crate::lock::contract::Subject::new($store.await, CONTRACT_SHORT_TTL)
    };
    (@peer $store:expr $(, false)?) => {
        $crate::lock::contract::Subject::new($store.await, CONTRACT_SHORT_TTL).with_peer($store.await)
    };
    (
        $suite:ident,
        store: $store:expr,
        short_ttl: $short_ttl:expr,
        $(one_instance: $one:tt,)?
        $(fair_line: $lease:expr,)?
        $(kinds_in_line: $kinds:tt,)?
        capabilities: [$($capability:ident),* $(,)?] $(,)?
    ) => {
        mod $suite {
            #[allow(unused_imports)]
            use super::*;

            const CONTRACT_SHORT_TTL: std::time::Duration = $short_ttl;

            async fn subject() -> $crate::lock::contract::Subject {
                $crate::store_contract!(@peer $store $(, $one)?)
            }

            #[tokio::test]
            async fn capabilities() {
                #[allow(unused_mut)]
                let mut declared = $crate::lock::Capabilities::default();
                $(declared.$capability = true;)*
                let subject = subject().await;
                subject.assert_capabilities(declared);
                let fair_line = $crate::store_contract!(@is_fair $($lease)?) $(|| $kinds)?;
                $crate::lock::contract::fair::assert_fair_line(&subject, fair_line);
            }

            $crate::store_contract!(@checks
                exclusion::grant,
                exclusion::refuse,
                release::release,
                renewal::renew_extends,
                renewal::renewals_keep_a_lock,
                renewal::renewal_is_owner_checked,
                expiry::expiry,
                inspect::inspect,
                force::force_release,
                signal::wait_is_bounded,
            );
            $($crate::store_contract!(@$capability);)*
            $($crate::store_contract!(@fair_line $lease);)?
            $($crate::store_contract!(@kinds_in_line $kinds);)?
        }
    };
}
