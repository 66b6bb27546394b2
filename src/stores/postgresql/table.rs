//! The lock table and its sequence: created when missing, migrated when an older dlock made
//! them (see `stores::sql::layout`), and refused, unchanged, when a newer one did. Sidecars
//! starting together take a transaction-scoped advisory lock first, so one of them does the
//! work and the others find it done.
//!
//! The layout (3): `key text PRIMARY KEY` (PostgreSQL's B-tree takes entries up to about
//! 2.7 kB, above any key a 1 KiB resource id makes), `owner text`, `expires_at timestamptz`
//! (PostgreSQL's clock), `fencing_token bigint` from the sequence `<table>_fencing`, `holders
//! text` (NULL but for a key held in another kind than the plain one, see
//! `stores::sql::holders`), and an index on `expires_at` for the cleanup. Beside it the waiters
//! table `<table>_waiters` (`stores::sql::line`): `arrival bigserial PRIMARY KEY` (its
//! sequence hands later arrivals larger numbers), `key text`, `expires_at timestamptz` (the
//! waiter's lease), indexed by key and arrival for the look at a waiter's turn.

use tokio_postgres::Client;

use super::statements::Names;
use crate::config::ConfigError;
use crate::stores::sql::layout::{self, Decision};

/// Brings the table to the current layout. Errors name `tableName` when the table is not one
/// this build can use.
pub(crate) async fn ensure(client: &mut Client, names: &Names) -> Result<(), ConfigError> {
    let failed = |what: &str, e: tokio_postgres::Error| {
        ConfigError::field(
            "tableName",
            format!("{what} {}: {}", names.table, super::describe(&e)),
        )
    };
    let transaction = client
        .transaction()
        .await
        .map_err(|e| failed("can't prepare", e))?;
    // Waiting for another sidecar's setup, or migrating a large table, may take longer than
    // the statement timeout that bounds lock requests.
    transaction
        .batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(|e| failed("can't prepare", e))?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&names.table],
        )
        .await
        .map_err(|e| failed("can't prepare", e))?;
    let found = transaction
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, obj_description(to_regclass($1), 'pg_class')",
            &[&names.table],
        )
        .await
        .map_err(|e| failed("can't look for", e))?;
    let exists: bool = found.get(0);
    let comment: Option<String> = found.get(1);
    let decision = layout::decide(exists.then_some(comment.as_deref()));
    let Names {
        table, sequence, ..
    } = names;
    let current = layout::comment(layout::CURRENT);
    let waiters = format!(
        "CREATE TABLE IF NOT EXISTS {waiters} (
             arrival bigserial PRIMARY KEY,
             key text NOT NULL,
             expires_at timestamptz NOT NULL);
         CREATE INDEX IF NOT EXISTS {index} ON {waiters} (key, arrival);",
        waiters = names.waiters,
        index = unqualified(names, "_waiters_key"),
    );
    let steps = match decision {
        Decision::Current => return Ok(()),
        Decision::Newer(version) => {
            return Err(ConfigError::field(
                "tableName",
                format!(
                    "{table} has layout {version}, written by a newer dlock; this one writes \
                     layout {}: upgrade this sidecar or name another table",
                    layout::CURRENT
                ),
            ))
        }
        Decision::Create => {
            let schema = names
                .schema
                .as_ref()
                .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {s};"))
                .unwrap_or_default();
            format!(
                "{schema}
                 CREATE SEQUENCE IF NOT EXISTS {sequence};
                 CREATE TABLE {table} (
                     key text PRIMARY KEY,
                     owner text NOT NULL,
                     expires_at timestamptz NOT NULL,
                     fencing_token bigint NOT NULL,
                     holders text);
                 CREATE INDEX ON {table} (expires_at);
                 {waiters}
                 COMMENT ON TABLE {table} IS '{current}';"
            )
        }
        Decision::Migrate(3) => {
            tracing::info!(
                "migrating the lock table {table} to layout {}",
                layout::CURRENT
            );
            format!("{waiters} COMMENT ON TABLE {table} IS '{current}';")
        }
        Decision::Migrate(2) => {
            tracing::info!(
                "migrating the lock table {table} to layout {}",
                layout::CURRENT
            );
            format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS holders text;
                 {waiters}
                 COMMENT ON TABLE {table} IS '{current}';"
            )
        }
        Decision::Migrate(_) => {
            // Layout 1, the classic lock table: it must have the three columns.
            let columns = transaction
                .query_one(
                    "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attname IN ('key', 'owner', 'expires_at') AND NOT attisdropped",
                    &[&names.table],
                )
                .await
                .map_err(|e| failed("can't read the columns of", e))?;
            if columns.get::<_, i64>(0) != 3 {
                return Err(ConfigError::field(
                    "tableName",
                    format!(
                        "{table} exists but is no lock table (it lacks the columns key, owner \
                         and expires_at): name another table"
                    ),
                ));
            }
            tracing::info!(
                "migrating the lock table {table} to layout {}",
                layout::CURRENT
            );
            // Every row gets a token above any handed out before (there were none).
            format!(
                "CREATE SEQUENCE IF NOT EXISTS {sequence};
                 ALTER TABLE {table} ADD COLUMN fencing_token bigint;
                 UPDATE {table} SET fencing_token = nextval('{sequence}');
                 ALTER TABLE {table} ALTER COLUMN fencing_token SET NOT NULL;
                 ALTER TABLE {table} ADD COLUMN holders text;
                 CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);
                 {waiters}
                 COMMENT ON TABLE {table} IS '{current}';",
                index = unqualified(names, "_expires"),
            )
        }
    };
    transaction
        .batch_execute(&steps)
        .await
        .map_err(|e| failed("can't set up", e))?;
    transaction
        .commit()
        .await
        .map_err(|e| failed("can't set up", e))
}

/// The name of an index of the table's, the table's name with `suffix` (the expiry index's
/// when a migration adds it; a created table lets PostgreSQL name it): unqualified, since an
/// index lives in its table's schema.
fn unqualified(names: &Names, suffix: &str) -> String {
    let table = names.table.rsplit('.').next().unwrap_or(&names.table);
    format!("\"{}{suffix}\"", table.trim_matches('"'))
}
