//! The layout of a lock table, by version, so that a table an older dlock created is migrated
//! in place, never dropped (it may hold live locks), and a table a newer dlock created is left
//! alone with a clear error. The version is kept in the table's comment, which every SQL
//! database has and which needs no second table: `dlock lock table, layout N`.
//!
//! Layout 1 is the classic lock table: the key, the owner and the expiry, without fencing
//! tokens. A table of that shape without a comment of ours counts as layout 1. Layout 2 adds
//! the fencing token; each store's migration adds the column, filling it from the store's
//! counter so tokens keep increasing. Layout 3 adds `holders`, the record of a key held in
//! another kind than the plain one (`holders.rs`), NULL for every plain lock, so its migration
//! is one added column and the locks held meanwhile stay held. Layout 4 (the current one) adds
//! the waiters table beside the lock table (`line.rs`, named after it with `_waiters`), created
//! before the comment is set. A migration takes a table through each later layout in turn and
//! then sets the comment.
//!
//! A sidecar of an older dlock refuses a table at a later layout, so during an upgrade the
//! older sidecars keep running but cannot restart until upgraded; a running older sidecar sees
//! a shared key held, as every plain statement does, but it could release the first shared
//! holder's place for all of them, so shared locks wait until every sidecar is upgraded; nor
//! does it look at the waiters table, so its tries and waiters may pass the line meanwhile.

/// The layout this build writes.
pub(crate) const CURRENT: u32 = 4;

/// The comment that marks a table as ours, at `version`.
pub(crate) fn comment(version: u32) -> String {
    format!("dlock lock table, layout {version}")
}

/// What to do with the table found at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No table: create it at the current layout.
    Create,
    /// A table at an older layout: migrate it from this version.
    Migrate(u32),
    /// A table at the current layout: nothing to do.
    Current,
    /// A table a newer dlock wrote (this version): refuse, changing nothing.
    Newer(u32),
}

/// Decides from the table's comment, `None` when there is no table. A table without our
/// comment is taken as layout 1, the classic shape (the caller checks its columns).
pub(crate) fn decide(table_comment: Option<Option<&str>>) -> Decision {
    let Some(comment) = table_comment else {
        return Decision::Create;
    };
    let version = comment
        .and_then(|c| c.strip_prefix("dlock lock table, layout "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1);
    match version {
        v if v < CURRENT => Decision::Migrate(v),
        CURRENT => Decision::Current,
        v => Decision::Newer(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_by_the_table_comment() {
        assert_eq!(decide(None), Decision::Create);
        assert_eq!(decide(Some(None)), Decision::Migrate(1));
        assert_eq!(decide(Some(Some("the team's locks"))), Decision::Migrate(1));
        assert_eq!(decide(Some(Some(&comment(1)))), Decision::Migrate(1));
        assert_eq!(decide(Some(Some(&comment(2)))), Decision::Migrate(2));
        assert_eq!(decide(Some(Some(&comment(3)))), Decision::Migrate(3));
        assert_eq!(decide(Some(Some(&comment(CURRENT)))), Decision::Current);
        assert_eq!(decide(Some(Some(&comment(7)))), Decision::Newer(7));
    }
}
