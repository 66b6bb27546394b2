//! What the SQL lock stores (`lock.postgresql`, `lock.mysql`) share, written once: the
//! settings every SQL store reads the same way (`settings.rs`), the layout-version check that
//! decides whether a lock table is created, migrated or refused (`layout.rs`), the background
//! removal of expired rows (`cleanup.rs`), the released keys a sidecar's waiters listen to
//! (`releases.rs`), and the reading of an owner-checked statement's
//! answer (below). The statements themselves are each database's own: their dialects differ
//! exactly where a lock table needs them (upserts, sequences, index limits, clocks).
//!
//! Both stores follow one design: a row per held lock, keyed by the store key, holding the
//! owner, the expiry as a time of the database's clock and the fencing token. Every decision is
//! one statement that the database runs atomically, and every comparison with "now" is made by
//! the database, so sidecars with skewed clocks still agree on who holds a lock.

pub(crate) mod cleanup;
pub(crate) mod layout;
#[cfg(test)]
pub(crate) mod raw_bench;
pub(crate) mod releases;
pub(crate) mod settings;

use crate::lock::OwnerChecked;

/// The answer to a release or a renewal from what its statement saw: whether it changed the
/// owner's row, and otherwise who holds the key now (`None`: nobody, or the lock expired).
pub(crate) fn owner_checked(applied: bool, holder: Option<&str>) -> OwnerChecked {
    match (applied, holder) {
        (true, _) => OwnerChecked::Applied,
        (false, Some(_)) => OwnerChecked::HeldByOther,
        (false, None) => OwnerChecked::NotHeld,
    }
}

/// A TTL in whole milliseconds for a statement, at least one (a zero TTL would grant a lock
/// that is expired at once).
pub(crate) fn ttl_millis(ttl: std::time::Duration) -> i64 {
    ttl.as_millis().clamp(1, i64::MAX as u128) as i64
}

/// Milliseconds left as the database counted them, as a duration (never negative).
pub(crate) fn millis_left(millis: i64) -> std::time::Duration {
    std::time::Duration::from_millis(millis.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_owner_checked_statements() {
        assert_eq!(owner_checked(true, None), OwnerChecked::Applied);
        assert_eq!(owner_checked(false, Some("b")), OwnerChecked::HeldByOther);
        assert_eq!(owner_checked(false, None), OwnerChecked::NotHeld);
        assert_eq!(ttl_millis(std::time::Duration::ZERO), 1);
        assert_eq!(millis_left(-5), std::time::Duration::ZERO);
    }
}
