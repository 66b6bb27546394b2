//! The statements of `lock.postgresql`, each one decision run atomically by PostgreSQL, with
//! every "now" taken from PostgreSQL's clock (`now()`, the statement's start under autocommit).
//!
//! - **take**: an `INSERT … ON CONFLICT (key) DO UPDATE … WHERE` the row has expired. Under
//!   READ COMMITTED a conflicting insert waits for the other transaction and then evaluates the
//!   `WHERE` on the row as it committed, so two takes of one key never both succeed. The fencing
//!   token is `nextval` of the store's sequence, evaluated for the `VALUES` row before the
//!   conflict is seen (a refused take burns a number, which only leaves a gap); the `WHERE` also
//!   asks for it to be above the expired holder's, so a take whose number was drawn before a
//!   stall can never hand out a smaller token than the lock had while the row is there.
//! - **release** and **renew**: an `UPDATE` of the owner's unexpired row in a common table
//!   expression (a release sets its expiry to now), and beside it who holds the key, from the
//!   same snapshot, so the one statement tells "released" from "not held" and "held by
//!   another". A release notifies the store's channel (`pg_notify`, sent when the statement
//!   commits) with the key: every sidecar listening wakes its waiters at once. A release (and
//!   a force release) keeps the row, expired, rather than deleting it: a take that drew its
//!   token and then stalled, while another take was granted a larger one and released, must
//!   still find the row and its larger token, not an empty slot to insert into.
//! - **plain statements and records**: a key held in another kind keeps its holders in the
//!   row's `holders` column (`stores::sql::holders`), with the first holder as `owner` and the
//!   last deadline as `expires_at`, so a take finds it held. A take over an expired row
//!   clears the column; a release, take-back or renewal leaves a row that has one alone and
//!   says so (a third answer column), and the store serves the request with a transaction.
//! - **the transaction** of a key with holders: under READ COMMITTED, `lock_row` inserts an
//!   expired placeholder row when the key has none, or locks the row it has (`ON CONFLICT DO
//!   UPDATE … WHERE false` changes nothing but locks the row), and `lock_existing` only locks;
//!   then `read_row` reads it and `clock_timestamp()`, the clock at that moment, since `now()`
//!   is when the transaction began, before it may have waited for the row. The clock is read
//!   once, in whole milliseconds rounded down, and the expiry is rounded up while it runs but
//!   down once it has passed, so a key a release stamped expired a moment ago is free to the
//!   transaction as it is to the plain statements (rounded up regardless, it looked held for
//!   the rest of that millisecond). A grant draws its
//!   token (`draw_token`) only once the row is locked, so it exceeds every earlier grant of the
//!   key; `write_row` writes the row back and notifies the key's waiters when asked.
//! - **the line** (`stores::sql::line`): a waiter is a row of the waiters table, numbered by
//!   its `bigserial` at arrival, on a lease by `now()`. `look` renews a waiter's lease and
//!   counts the live waiters ahead of it in one statement; in the transaction that takes, after
//!   the key's row is locked, `ahead` counts them again, and `leave_line` takes the granted
//!   waiter out before the commit. The plain `take` proposes its row only while nobody waits
//!   (`INSERT … SELECT … WHERE NOT EXISTS`): with no row proposed there is no conflict, so
//!   neither a free key nor an expired row is taken past the line.
//! - **cleanup** removes rows that expired more than a grace period ago (the timeout, which
//!   is also every session's `statement_timeout`), so a take that drew its token before the
//!   row was removed has finished, or been cancelled by the server, by then.

/// The SQL text of every statement, for one table.
pub(crate) struct Statements {
    pub(crate) take: String,
    pub(crate) release: String,
    /// A release of one grant only, by its fencing token (`LockStore::take_back`).
    pub(crate) take_back: String,
    pub(crate) renew: String,
    pub(crate) inspect: String,
    pub(crate) list: String,
    pub(crate) force_release: String,
    pub(crate) cleanup: String,
    /// Removes the waiters whose lease lapsed.
    pub(crate) cleanup_waiters: String,
    /// key, lease ms: the new waiter's arrival.
    pub(crate) join_line: String,
    /// key, waiter, lease ms: whether the waiter's lease still ran (and is renewed), and how
    /// many live waiters are ahead of it.
    pub(crate) look: String,
    /// key, arrival: how many live waiters arrived before it.
    pub(crate) ahead: String,
    /// waiter.
    pub(crate) leave_line: String,
    /// key: creates the key's row if missing, and locks it.
    pub(crate) lock_row: String,
    /// key: locks the key's row if there is one.
    pub(crate) lock_existing: String,
    /// key: owner, expiry in ms (up while it runs, down once passed), token, holders, the
    /// clock in ms (rounded down).
    pub(crate) read_row: String,
    pub(crate) draw_token: String,
    /// key, owner, expiry in ms, token, holders, whether to notify.
    pub(crate) write_row: String,
}

/// The names the store's objects go by, quoted for statements.
pub(crate) struct Names {
    /// `"schema"."table"` or `"table"`.
    pub(crate) table: String,
    /// The fencing-token sequence, beside the table.
    pub(crate) sequence: String,
    /// The waiters table, beside the table.
    pub(crate) waiters: String,
    /// The schema, quoted, when one is named.
    pub(crate) schema: Option<String>,
    /// The notification channel, unquoted (as `pg_notify` takes it).
    pub(crate) channel: String,
}

impl Names {
    /// Names for `table` in `schema`: both already checked to be plain identifiers.
    pub(crate) fn new(schema: Option<&str>, table: &str) -> Names {
        let qualified = |name: &str| match schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        };
        Names {
            table: qualified(table),
            sequence: qualified(&format!("{table}_fencing")),
            waiters: qualified(&format!("{table}_waiters")),
            schema: schema.map(|s| format!("\"{s}\"")),
            channel: format!("{table}_released"),
        }
    }
}

impl Statements {
    pub(crate) fn new(names: &Names) -> Statements {
        let Names {
            table,
            sequence,
            waiters,
            channel,
            ..
        } = names;
        let lease = "now() + $2::bigint * interval '1 millisecond'";
        let nobody_waits =
            format!("NOT EXISTS (SELECT 1 FROM {waiters} WHERE key = $1 AND expires_at > now())");
        let expiry = "now() + $3::bigint * interval '1 millisecond'";
        let holder = format!("(SELECT owner FROM {table} WHERE key = $1 AND expires_at > now())");
        let millis_left = "(extract(epoch FROM expires_at - now()) * 1000)::bigint";
        let record = format!(
            "EXISTS (SELECT 1 FROM {table} \
             WHERE key = $1 AND expires_at > now() AND holders IS NOT NULL)"
        );
        let now_ms = "floor(extract(epoch FROM now()) * 1000)::bigint";
        Statements {
            take: format!(
                "INSERT INTO {table} AS held (key, owner, expires_at, fencing_token) \
                 SELECT $1::text, $2::text, {expiry}, nextval('{sequence}') WHERE {nobody_waits} \
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, \
                 expires_at = excluded.expires_at, fencing_token = excluded.fencing_token, \
                 holders = NULL \
                 WHERE held.expires_at <= now() AND held.fencing_token < excluded.fencing_token \
                 RETURNING held.fencing_token"
            ),
            release: format!(
                "WITH released AS (UPDATE {table} SET expires_at = now() \
                 WHERE key = $1 AND owner = $2 AND expires_at > now() AND holders IS NULL \
                 RETURNING key) \
                 SELECT (SELECT count(pg_notify('{channel}', key)) FROM released) > 0, {holder}, \
                 {record}"
            ),
            take_back: format!(
                "WITH released AS (UPDATE {table} SET expires_at = now() \
                 WHERE key = $1 AND owner = $2 AND fencing_token = $3 AND expires_at > now() \
                 AND holders IS NULL RETURNING key) \
                 SELECT (SELECT count(pg_notify('{channel}', key)) FROM released) > 0, {holder}, \
                 {record}"
            ),
            renew: format!(
                "WITH renewed AS (UPDATE {table} SET expires_at = {expiry} \
                 WHERE key = $1 AND owner = $2 AND expires_at > now() AND holders IS NULL \
                 RETURNING key) \
                 SELECT EXISTS (SELECT 1 FROM renewed), {holder}, {record}"
            ),
            inspect: format!(
                "SELECT key, owner, {millis_left}, fencing_token, holders, {now_ms} \
                 FROM {table} WHERE key = $1 AND expires_at > now()"
            ),
            list: format!(
                "SELECT key, owner, {millis_left}, fencing_token, holders, {now_ms} \
                 FROM {table} WHERE starts_with(key, $1) AND expires_at > now() ORDER BY key"
            ),
            force_release: format!(
                "WITH released AS (UPDATE {table} SET expires_at = now(), holders = NULL \
                 WHERE key = $1 AND expires_at > now() RETURNING key) \
                 SELECT count(pg_notify('{channel}', key)), count(*) > 0 FROM released"
            ),
            cleanup: format!(
                "DELETE FROM {table} \
                 WHERE expires_at < now() - $1::bigint * interval '1 millisecond'"
            ),
            cleanup_waiters: format!("DELETE FROM {waiters} WHERE expires_at <= now()"),
            join_line: format!(
                "INSERT INTO {waiters} (key, expires_at) VALUES ($1, {lease}) RETURNING arrival"
            ),
            look: format!(
                "WITH renewed AS (UPDATE {waiters} \
                 SET expires_at = now() + $3::bigint * interval '1 millisecond' \
                 WHERE arrival = $2 AND expires_at > now() RETURNING arrival) \
                 SELECT EXISTS (SELECT 1 FROM renewed), (SELECT count(*) FROM {waiters} \
                 WHERE key = $1 AND expires_at > now() AND arrival < $2)"
            ),
            ahead: format!(
                "SELECT count(*) FROM {waiters} \
                 WHERE key = $1 AND expires_at > now() AND arrival < $2"
            ),
            leave_line: format!("DELETE FROM {waiters} WHERE arrival = $1"),
            lock_row: format!(
                "INSERT INTO {table} AS held (key, owner, expires_at, fencing_token) \
                 VALUES ($1, '', 'epoch', 0) \
                 ON CONFLICT (key) DO UPDATE SET owner = held.owner WHERE false"
            ),
            lock_existing: format!("SELECT 1 FROM {table} WHERE key = $1 FOR UPDATE"),
            read_row: format!(
                "SELECT owner, CASE WHEN expires_at > clock.now \
                 THEN ceil(extract(epoch FROM expires_at) * 1000) \
                 ELSE floor(extract(epoch FROM expires_at) * 1000) END::bigint, \
                 fencing_token, holders, floor(extract(epoch FROM clock.now) * 1000)::bigint \
                 FROM {table}, (SELECT clock_timestamp() AS now) AS clock WHERE key = $1"
            ),
            draw_token: format!("SELECT nextval('{sequence}')"),
            write_row: format!(
                "WITH written AS (UPDATE {table} SET owner = $2, \
                 expires_at = 'epoch'::timestamptz + $3::bigint * interval '1 millisecond', \
                 fencing_token = $4, holders = $5 WHERE key = $1 RETURNING key) \
                 SELECT count(pg_notify('{channel}', key)) FROM written WHERE $6::boolean"
            ),
        }
    }
}
