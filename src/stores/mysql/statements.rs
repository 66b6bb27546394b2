//! The statements of `lock.mysql`, written for MySQL 8.0 and later and MariaDB 10.3 and later
//! (the tests run MariaDB: Debian ships no MySQL). Each decision is one statement run
//! atomically by InnoDB, with every "now" taken from the server's clock in UTC
//! (`UTC_TIMESTAMP(6)`, so the session's time zone never matters). Single-statement changes
//! under autocommit read the newest committed row and lock it, whatever the isolation level,
//! so REPEATABLE READ's snapshots play no part.
//!
//! - **take**: an `INSERT` of the key's row. It fails on the primary key when the key has a
//!   row; then, if that row has expired (by the server's clock), a `DELETE` of exactly that
//!   expired row and the `INSERT` once more. Each step is atomic on its own and the pair is
//!   safe: a take that lost the race to another after the `DELETE` fails its `INSERT`. MySQL
//!   has no `INSERT … ON CONFLICT … WHERE` that could hand a new fencing token to the updated
//!   row, which is why the take over is two steps; an uncontended take is one.
//! - **fencing tokens** are the table's `AUTO_INCREMENT` column: a fresh row, and every take
//!   makes one, gets a number above any the table handed out. The counter survives restarts
//!   of the server from MySQL 8.0 and MariaDB 10.2.4 on (older servers recompute it from the
//!   rows, and could repeat a token after the newest rows were deleted).
//! - **release** and **renew**: an `UPDATE` of the owner's unexpired row (a release sets its
//!   expiry to now); only a refusal reads the row once more, to tell "not held" from "held by
//!   another". Both count rows found, not changed (`CLIENT_FOUND_ROWS`), so a renewal to the
//!   same expiry in the same microsecond still counts. A release (and a force release) keeps
//!   the row, expired, rather than deleting it: a take whose `INSERT` drew its number and then
//!   stalled, while another take was granted a larger one and released, must still meet the
//!   row and fail on the key, then take over with a fresh, larger number.
//! - **plain statements and records**: a key held in another kind keeps its holders in the
//!   row's `holders` column (`stores::sql::holders`), with the first holder as `owner` and the
//!   last deadline as `expires_at`, so a take finds it held (and a take over it once it
//!   expired inserts a fresh row, without holders). A release, take-back or renewal leaves a
//!   row that has holders alone; `holder` then says so, and the store serves the request with
//!   a transaction.
//! - **the transaction** of a key with holders: `lock_row` inserts an expired placeholder row
//!   when the key has none, or locks the row it has (`ON DUPLICATE KEY UPDATE` with no change
//!   still locks it), and `lock_existing` only locks; then `read_row` reads it (a locking read,
//!   so the newest version whatever the isolation level) and the clock, which is read when
//!   that statement starts, after the row was locked. The clock is in whole milliseconds,
//!   rounded down, and the expiry is rounded up while it runs but down once it has passed, so
//!   the row is free to the transaction exactly when it is to the plain statements. A release
//!   stamps the row with the clock to the microsecond; rounded up regardless, the expiry made a
//!   key released a moment before look held to a transaction's take for the rest of that
//!   millisecond (a waiter whose turn had come was refused). A grant draws its token the only way the
//!   `AUTO_INCREMENT` counter hands one out: `delete_row` and the `insert` of a fresh row,
//!   whose number `drawn` reads; `write_row` then writes the row back. Nobody sees the row
//!   between the two: it is locked until the commit.
//! - **keys**: InnoDB's index entries are at most 3072 bytes, and a 1 KiB resource id in
//!   utf8mb4 can take 4 KiB; the primary key is the SHA-256 of the key (`key_hash`,
//!   32 bytes), computed by the server, and the key itself sits beside it in a `BLOB`.
//!   `owner` and the key are binary, so they compare byte for byte, never by a collation.
//! - **the line** (`stores::sql::line`): a waiter is a row of the waiters table, numbered by
//!   its `AUTO_INCREMENT` column at arrival (read back by `LAST_INSERT_ID()`), on a lease by
//!   the server's clock. A look renews the waiter's lease (`renew_waiter`) and counts the live
//!   waiters ahead of it (`ahead`, a plain read: it locks nothing a join or a take needs); in
//!   the transaction that takes, after the key's row is locked, `ahead` counts them again, and
//!   `leave_line` takes the granted waiter out before the commit. A plain take first asks
//!   `ahead` whether anyone waits at all: a waiter joining between that and the insert arrived
//!   after the take.
//! - **cleanup** removes rows that expired more than a grace period (the timeout) ago. No
//!   row is needed for tokens to increase (the counter is the table's, not the row's) except
//!   against a take stalled inside its `INSERT`: MariaDB bounds that with `max_statement_time`
//!   where set, MySQL cannot bound an `INSERT`, so a stall longer than the grace period is
//!   the one case left.

/// The SQL text of every statement, for one table. Parameters are `?`, in the order noted.
pub(crate) struct Statements {
    /// key, key, owner, ttl µs.
    pub(crate) insert: String,
    /// key.
    pub(crate) remove_expired_row: String,
    /// key.
    pub(crate) expires_in: String,
    /// key, owner.
    pub(crate) release: String,
    /// A release of one grant only, by its fencing token (`LockStore::take_back`).
    pub(crate) take_back: String,
    /// ttl µs, key, owner.
    pub(crate) renew: String,
    /// key.
    pub(crate) holder: String,
    /// key.
    pub(crate) inspect: String,
    /// prefix, prefix.
    pub(crate) list: String,
    /// key.
    pub(crate) force_release: String,
    /// grace µs.
    pub(crate) cleanup: String,
    /// Removes the waiters whose lease lapsed.
    pub(crate) cleanup_waiters: String,
    /// key, lease µs; the arrival is `LAST_INSERT_ID()`.
    pub(crate) join_line: String,
    /// lease µs, waiter: one row found while its lease still ran.
    pub(crate) renew_waiter: String,
    /// key, arrival: how many live waiters arrived before it.
    pub(crate) ahead: String,
    /// waiter.
    pub(crate) leave_line: String,
    /// key, key: creates the key's row if missing, and locks it.
    pub(crate) lock_row: String,
    /// key: locks the key's row if there is one.
    pub(crate) lock_existing: String,
    /// key: owner, expiry in ms (up while it runs, down once passed), token, holders, the
    /// clock in ms (rounded down).
    pub(crate) read_row: String,
    /// key.
    pub(crate) delete_row: String,
    /// The token the last `insert` drew.
    pub(crate) drawn: String,
    /// owner, expiry in µs since the epoch, token, holders, key.
    pub(crate) write_row: String,
}

/// The key's row, by the hash that is its primary key.
const ROW: &str = "key_hash = UNHEX(SHA2(?, 256))";
const LIVE: &str = "expires_at > UTC_TIMESTAMP(6)";
/// The start of the epoch, as a time the server adds intervals to without a time zone.
const EPOCH: &str = "CAST('1970-01-01' AS DATETIME(6))";

impl Statements {
    /// Statements for `table` and its `waiters` table, already quoted
    /// (`` `schema`.`table` ``).
    pub(crate) fn new(table: &str, waiters: &str) -> Statements {
        let millis_left = "TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) DIV 1000";
        let now_ms = format!("TIMESTAMPDIFF(MICROSECOND, {EPOCH}, UTC_TIMESTAMP(6)) DIV 1000");
        let columns = format!("lock_key, owner, {millis_left}, fencing_token, holders, {now_ms}");
        Statements {
            insert: format!(
                "INSERT INTO {table} (key_hash, lock_key, owner, expires_at) \
                 VALUES (UNHEX(SHA2(?, 256)), ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)"
            ),
            remove_expired_row: format!(
                "DELETE FROM {table} WHERE {ROW} AND expires_at <= UTC_TIMESTAMP(6)"
            ),
            expires_in: format!("SELECT {millis_left} FROM {table} WHERE {ROW} AND {LIVE}"),
            release: format!(
                "UPDATE {table} SET expires_at = UTC_TIMESTAMP(6) \
                 WHERE {ROW} AND owner = ? AND {LIVE} AND holders IS NULL"
            ),
            take_back: format!(
                "UPDATE {table} SET expires_at = UTC_TIMESTAMP(6) \
                 WHERE {ROW} AND owner = ? AND fencing_token = ? AND {LIVE} \
                 AND holders IS NULL"
            ),
            renew: format!(
                "UPDATE {table} SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE {ROW} AND owner = ? AND {LIVE} AND holders IS NULL"
            ),
            holder: format!(
                "SELECT owner, holders IS NOT NULL FROM {table} WHERE {ROW} AND {LIVE}"
            ),
            inspect: format!("SELECT {columns} FROM {table} WHERE {ROW} AND {LIVE}"),
            list: format!(
                "SELECT {columns} FROM {table} \
                 WHERE SUBSTRING(lock_key, 1, LENGTH(?)) = ? AND {LIVE} ORDER BY lock_key"
            ),
            force_release: format!(
                "UPDATE {table} SET expires_at = UTC_TIMESTAMP(6), holders = NULL \
                 WHERE {ROW} AND {LIVE}"
            ),
            cleanup: format!(
                "DELETE FROM {table} \
                 WHERE expires_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND"
            ),
            cleanup_waiters: format!("DELETE FROM {waiters} WHERE NOT {LIVE}"),
            join_line: format!(
                "INSERT INTO {waiters} (key_hash, expires_at) \
                 VALUES (UNHEX(SHA2(?, 256)), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)"
            ),
            renew_waiter: format!(
                "UPDATE {waiters} SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE arrival = ? AND {LIVE}"
            ),
            ahead: format!("SELECT COUNT(*) FROM {waiters} WHERE {ROW} AND {LIVE} AND arrival < ?"),
            leave_line: format!("DELETE FROM {waiters} WHERE arrival = ?"),
            lock_row: format!(
                "INSERT INTO {table} (key_hash, lock_key, owner, expires_at) \
                 VALUES (UNHEX(SHA2(?, 256)), ?, '', {EPOCH}) \
                 ON DUPLICATE KEY UPDATE owner = owner"
            ),
            lock_existing: format!("SELECT 1 FROM {table} WHERE {ROW} FOR UPDATE"),
            read_row: format!(
                "SELECT owner, (TIMESTAMPDIFF(MICROSECOND, {EPOCH}, expires_at) \
                 + IF({LIVE}, 999, 0)) DIV 1000, \
                 fencing_token, holders, {now_ms} FROM {table} WHERE {ROW} FOR UPDATE"
            ),
            delete_row: format!("DELETE FROM {table} WHERE {ROW}"),
            drawn: "SELECT LAST_INSERT_ID()".to_string(),
            write_row: format!(
                "UPDATE {table} SET owner = ?, expires_at = {EPOCH} + INTERVAL ? MICROSECOND, \
                 fencing_token = ?, holders = ? WHERE {ROW}"
            ),
        }
    }
}
