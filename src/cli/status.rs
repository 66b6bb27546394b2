//! `dlock status`: the sidecar's lock stores, one a line: name, type, servers, capabilities
//! and health (ok, or failing since when, for how long, and the last error); then each edit of
//! a component file that did not load, and why. Exits 1 when a store is failing, an edit did
//! not load, or no store is served at all, so a script or a probe can act on it.

use std::time::Duration;

use super::connect;
use super::connect::report;
use super::Exit;
use crate::proto::dlock::{LoadProblem, StoreStatus, StoresRequest};

pub async fn status(endpoint: &str) -> Exit {
    let mut locks = match connect::locks(endpoint, Duration::from_secs(5)).await {
        Ok(locks) => locks,
        Err(message) => {
            errln!("dlock: {message}");
            return Exit::Unreachable;
        }
    };
    let answer = match locks.stores(StoresRequest {}).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return report(endpoint, &status),
    };
    outln!("app id '{}'", answer.app_id);
    for store in &answer.stores {
        outln!("{}", describe(store));
    }
    for problem in &answer.load_problems {
        outln!("{}", describe_problem(problem));
    }
    // A sidecar serving no lock store at all answers every lock call with an error: as
    // unhealthy as one whose store fails.
    if answer.stores.is_empty() {
        errln!("dlock: the sidecar serves no lock store");
        return Exit::Failed;
    }
    if answer.stores.iter().all(|s| s.healthy) && answer.load_problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

pub(super) fn describe(store: &StoreStatus) -> String {
    let servers = if store.servers.is_empty() {
        "in process".to_string()
    } else {
        store.servers.join(",")
    };
    let health = if store.healthy {
        "ok".to_string()
    } else {
        format!(
            "failing since {} ({:.1}s): {}",
            utc(store.failing_since_unix_ms),
            store.failing_for_ms as f64 / 1000.0,
            store.last_error
        )
    };
    format!(
        "{}\t{}\t{servers}\t{}\t{health}",
        store.name,
        store.r#type,
        store.capabilities.join(",")
    )
}

/// An edit that did not load, and whether a version of the component still serves.
fn describe_problem(problem: &LoadProblem) -> String {
    let component = if problem.component.is_empty() {
        String::new()
    } else {
        format!(" of component '{}'", problem.component)
    };
    format!(
        "edit{component} not loaded (the running version, if any, still serves): {}: {}",
        problem.file, problem.reason
    )
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC to the second, e.g.
/// `2026-12-02T07:40:01Z`.
pub(super) fn utc(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: the calendar repeats every 400 years
/// (146,097 days), and counting years from March puts the leap day at the end of each year.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_197_201_999), "2026-12-02T07:40:01Z");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn a_store_per_line() {
        let mut store = StoreStatus {
            name: "orders".into(),
            r#type: "lock.redis".into(),
            servers: vec!["10.0.0.5:6379".into()],
            capabilities: vec!["FENCING".into(), "LISTING".into()],
            healthy: true,
            ..StoreStatus::default()
        };
        assert_eq!(
            describe(&store),
            "orders\tlock.redis\t10.0.0.5:6379\tFENCING,LISTING\tok"
        );
        store.healthy = false;
        store.failing_since_unix_ms = 1_796_197_201_000;
        store.failing_for_ms = 12_345;
        store.last_error = "lock store unavailable: refused".into();
        assert_eq!(
            describe(&store),
            "orders\tlock.redis\t10.0.0.5:6379\tFENCING,LISTING\tfailing since \
             2026-12-02T07:40:01Z (12.3s): lock store unavailable: refused"
        );
    }

    #[test]
    fn an_edit_that_did_not_load() {
        let mut problem = LoadProblem {
            component: "orders".into(),
            file: "/etc/dlock/orders.yaml".into(),
            reason: "component 'orders': field spec.metadata 'redisDB': not a number".into(),
        };
        assert_eq!(
            describe_problem(&problem),
            "edit of component 'orders' not loaded (the running version, if any, still \
             serves): /etc/dlock/orders.yaml: component 'orders': field spec.metadata \
             'redisDB': not a number"
        );
        problem.component.clear();
        assert!(describe_problem(&problem).starts_with("edit not loaded"));
    }
}
