//! The background health probe: every store of the sidecar is asked a cheap question
//! (`LockStore::probe`) at a set interval (`--health-probe-interval`), and the answer moves its
//! health record (`health.rs`). Without it, health changed only when an application's call
//! failed, so an idle sidecar kept saying `ok` through an outage, and monitoring pointed at
//! `dlock status` or `dlock_store_healthy` learnt of it only from the next lock call.

use std::time::Duration;

use tokio::task::JoinSet;

use super::LockService;

/// The longest a probe may take before it counts as a failure, whatever the interval.
const MAX_PROBE_TIME: Duration = Duration::from_secs(5);

/// Probes the stores of `service` every `every`, each store on its own so that one that
/// hangs does not delay the others' probes. Runs until dropped.
pub async fn probe_stores(service: &LockService, every: Duration) {
    let limit = every.min(MAX_PROBE_TIME);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the stores were just checked by loading them.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let registry = service.registry();
        let mut probes = JoinSet::new();
        for store in registry.shared() {
            let store = store.clone();
            probes.spawn(async move { store.probe(limit).await });
        }
        while probes.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::sleep;

    use super::super::test_double::DoubleStore;
    use super::super::Health;
    use super::*;

    const EVERY: Duration = Duration::from_secs(5);

    fn health(service: &LockService) -> Health {
        service.registry().get("store").unwrap().health()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_sidecar_sees_an_outage_and_its_end_within_one_interval() {
        let double = DoubleStore::default();
        let service = double.service();
        let probing = probe_stores(&service, EVERY);
        let watched = async {
            double.set_unavailable(true);
            sleep(EVERY + Duration::from_millis(100)).await;
            assert!(matches!(health(&service), Health::Failing { .. }));
            double.set_unavailable(false);
            sleep(EVERY).await;
            assert_eq!(health(&service), Health::Ok);
        };
        tokio::select! {
            () = probing => unreachable!("the probe ended"),
            () = watched => {}
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_is_a_failure() {
        let double = DoubleStore::default();
        let service = double.service();
        let probing = probe_stores(&service, EVERY);
        let watched = async {
            double.set_answer_delay(Duration::from_secs(3600));
            sleep(EVERY + MAX_PROBE_TIME + Duration::from_millis(100)).await;
            match health(&service) {
                Health::Failing { last_error, .. } => {
                    assert!(last_error.contains("no answer within"), "{last_error}");
                }
                Health::Ok => panic!("a store that never answers is healthy"),
            }
        };
        tokio::select! {
            () = probing => unreachable!("the probe ended"),
            () = watched => {}
        }
    }
}
