//! The lock table: created (with its database) when missing, migrated when an older dlock
//! made it (see `stores::sql::layout`), and refused, unchanged, when a newer one did. MySQL's
//! DDL is not transactional: sidecars starting together serialize on a named lock
//! (`GET_LOCK`), so one does the work and the others find it done.
//!
//! The layout (3): `key_hash BINARY(32)` primary key (see `statements.rs`), `lock_key BLOB`,
//! `owner BLOB`, `expires_at DATETIME(6)` in UTC by the server's clock, `fencing_token`
//! `AUTO_INCREMENT`, `holders MEDIUMBLOB` (NULL but for a key held in another kind than the
//! plain one, see `stores::sql::holders`), and an index on `expires_at` for the cleanup. Layout 1, the classic lock
//! table, is `lock_key` as the primary key, `owner` and `expires_at`. Beside the table, from
//! layout 4, the waiters table `<table>_waiters` (`stores::sql::line`): `arrival` an
//! `AUTO_INCREMENT` primary key, `key_hash`, `expires_at` (the waiter's lease), indexed by key
//! and arrival. It is created first in every migration, so a sidecar stopped half-way never
//! finds the current comment without it.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::config::ConfigError;
use crate::stores::sql::layout::{self, Decision};

/// Brings `schema`.`table` to the current layout. Errors name `tableName` when the table is
/// not one this build can use.
pub(crate) async fn ensure(conn: &mut Conn, schema: &str, table: &str) -> Result<(), ConfigError> {
    let qualified = format!("`{schema}`.`{table}`");
    let failed = |what: &str, e: mysql_async::Error| {
        ConfigError::field(
            "tableName",
            format!("{what} {qualified}: {}", super::describe(&e)),
        )
    };
    let name = format!("dlock:{schema}.{table}");
    let got: Option<i64> = conn
        .exec_first("SELECT GET_LOCK(?, 30)", (&name,))
        .await
        .map_err(|e| failed("can't prepare", e))?;
    if got != Some(1) {
        return Err(ConfigError::field(
            "tableName",
            format!("another sidecar kept setting up {qualified} for 30 s"),
        ));
    }
    let result = steps(conn, schema, table, &qualified).await;
    let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (&name,)).await;
    result.map_err(|(what, e)| match e {
        Some(e) => failed(what, e),
        None => ConfigError::field("tableName", what.to_string()),
    })
}

type StepError = (&'static str, Option<mysql_async::Error>);

async fn steps(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    qualified: &str,
) -> Result<(), StepError> {
    let comment: Option<Option<String>> = conn
        .exec_first(
            "SELECT table_comment FROM information_schema.tables \
             WHERE table_schema = ? AND table_name = ?",
            (schema, table),
        )
        .await
        .map_err(|e| ("can't look for", Some(e)))?;
    let current = layout::comment(layout::CURRENT);
    let waiters = format!(
        "CREATE TABLE IF NOT EXISTS `{schema}`.`{table}_waiters` (
             arrival BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
             key_hash BINARY(32) NOT NULL,
             expires_at DATETIME(6) NOT NULL,
             KEY line (key_hash, arrival)
         ) ENGINE = InnoDB"
    );
    let batch =
        match layout::decide(comment.as_ref().map(|c| c.as_deref())) {
            Decision::Current => return Ok(()),
            Decision::Newer(_) => return Err((
                "the table was written by a newer dlock (a later layout): upgrade this sidecar \
                 or name another table",
                None,
            )),
            Decision::Create => vec![
                format!("CREATE DATABASE IF NOT EXISTS `{schema}`"),
                waiters,
                format!(
                    "CREATE TABLE IF NOT EXISTS {qualified} (
                     key_hash BINARY(32) NOT NULL PRIMARY KEY,
                     lock_key BLOB NOT NULL,
                     owner BLOB NOT NULL,
                     expires_at DATETIME(6) NOT NULL,
                     fencing_token BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
                     holders MEDIUMBLOB NULL,
                     UNIQUE KEY fencing (fencing_token),
                     KEY expires (expires_at)
                 ) ENGINE = InnoDB COMMENT = '{current}'"
                ),
            ],
            Decision::Migrate(3) => {
                tracing::info!(
                    "migrating the lock table {qualified} to layout {}",
                    layout::CURRENT
                );
                vec![
                    waiters,
                    format!("ALTER TABLE {qualified} COMMENT = '{current}'"),
                ]
            }
            Decision::Migrate(2) => {
                tracing::info!(
                    "migrating the lock table {qualified} to layout {}",
                    layout::CURRENT
                );
                // Table comment and column in one statement: DDL is not transactional, and a
                // sidecar stopped in between must not find the comment without the column.
                vec![
                    waiters,
                    format!(
                        "ALTER TABLE {qualified} ADD COLUMN holders MEDIUMBLOB NULL, \
                         COMMENT = '{current}'"
                    ),
                ]
            }
            Decision::Migrate(_) => {
                let columns: Vec<String> = conn
                    .exec(
                        "SELECT column_name FROM information_schema.columns \
                     WHERE table_schema = ? AND table_name = ?",
                        (schema, table),
                    )
                    .await
                    .map_err(|e| ("can't read the columns of", Some(e)))?;
                let has = |c: &str| columns.iter().any(|found| found.eq_ignore_ascii_case(c));
                if !(has("lock_key") && has("owner") && has("expires_at")) {
                    return Err((
                        "the table exists but is no lock table (it lacks the columns lock_key, \
                     owner and expires_at): name another table",
                        None,
                    ));
                }
                tracing::info!(
                    "migrating the lock table {qualified} to layout {}",
                    layout::CURRENT
                );
                // Adding the AUTO_INCREMENT column numbers the rows there are; the hash becomes
                // the primary key once every row has one.
                vec![
                    waiters,
                    format!(
                        "ALTER TABLE {qualified} ADD COLUMN key_hash BINARY(32) NULL FIRST, \
                     ADD COLUMN fencing_token BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, \
                     ADD COLUMN holders MEDIUMBLOB NULL, \
                     ADD UNIQUE KEY fencing (fencing_token)"
                    ),
                    format!("UPDATE {qualified} SET key_hash = UNHEX(SHA2(lock_key, 256))"),
                    format!(
                        "ALTER TABLE {qualified} DROP PRIMARY KEY, \
                     MODIFY key_hash BINARY(32) NOT NULL, ADD PRIMARY KEY (key_hash), \
                     MODIFY lock_key BLOB NOT NULL, MODIFY owner BLOB NOT NULL, \
                     MODIFY expires_at DATETIME(6) NOT NULL, ADD KEY expires (expires_at), \
                     COMMENT = '{current}'"
                    ),
                ]
            }
        };
    for statement in batch {
        conn.query_drop(statement)
            .await
            .map_err(|e| ("can't set up", Some(e)))?;
    }
    Ok(())
}
