//! What the SQL lock stores (`lock.postgresql`, `lock.mysql`) share, written once: the
//! settings every SQL store reads the same way (`settings.rs`), the layout-version check that
//! decides whether a lock table is created, migrated or refused (`layout.rs`), the background
//! removal of expired rows (`cleanup.rs`), the released keys a sidecar's waiters listen to
//! (`releases.rs`), shared, limited and reentrant locks kept in a row (`holders.rs`), the fair
//! line of waiters kept in a table beside the locks (`line.rs`), and the
//! reading of answers (below): an owner-checked statement's, and
//! values of the table that cannot be used, which are an error naming the table and the column,
//! never a panic: a table made or changed outside dlock may hold a NULL, a value of another
//! type, or a negative fencing token. The statements themselves are each database's own: their dialects differ
//! exactly where a lock table needs them (upserts, sequences, index limits, clocks).
//!
//! Both stores follow one design: a row per held lock, keyed by the store key, holding the
//! owner, the expiry as a time of the database's clock and the fencing token. Every decision on
//! a plain lock is one statement that the database runs atomically, every decision on a key
//! held in another kind one transaction that locks its row (`holders.rs`), and every
//! comparison with "now" is made by the database, so sidecars with skewed clocks still agree on
//! who holds a lock.

pub(crate) mod cleanup;
pub(crate) mod holders;
pub(crate) mod layout;
pub(crate) mod line;
#[cfg(test)]
pub(crate) mod raw_bench;
pub(crate) mod releases;
pub(crate) mod settings;

use std::fmt::Display;

use crate::lock::{OwnerChecked, StoreError};

/// A value of `table`'s `column` that the store cannot use, and why.
pub(crate) fn unreadable(table: &str, column: &str, reason: impl Display) -> StoreError {
    StoreError::failed(format!(
        "the lock table {table} holds a value dlock can't use in its column {column}: {reason}"
    ))
}

/// A fencing token as the table stores it (a signed 64-bit integer): never negative, since a
/// negative one would read as a token below every other.
pub(crate) fn fencing_token(table: &str, stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored)
        .map_err(|_| unreadable(table, "fencing_token", format!("{stored} is negative")))
}

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

    #[test]
    fn a_negative_fencing_token_is_refused_naming_the_table() {
        assert_eq!(fencing_token("\"locks\"", 7).unwrap(), 7);
        let refused = fencing_token("\"locks\"", -1).unwrap_err().to_string();
        assert!(refused.contains("\"locks\"") && refused.contains("fencing_token"));
        assert!(refused.contains("-1 is negative"), "{refused}");
    }
}
