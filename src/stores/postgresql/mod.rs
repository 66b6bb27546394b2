//! `lock.postgresql`: locks as rows of a table in a PostgreSQL database, one row per held lock
//! (layout in `table.rs`, statements in `statements.rs`). Every decision is one statement,
//! atomic in PostgreSQL and timed by its clock; expired rows count as free at once and are
//! removed in the background (`cleanupInterval`). Fencing tokens come from a sequence, which
//! PostgreSQL never hands back, whatever restarts; they strictly increase per key. A release
//! notifies every sidecar at once (`listen.rs`); waiters also poll, so a missed notification
//! costs a poll. Blocking acquires of every kind wait in one line kept in a waiters table
//! (`stores::sql::line`), each waiter on a lease of its own, so the line is fair across
//! sidecars and a dead sidecar's waiter holds it up only until its lease lapses.
//!
//! Client libraries: tokio-postgres, with deadpool-postgres as the pool and
//! tokio-postgres-rustls for TLS. tokio-postgres is the tokio-native driver: it delivers
//! LISTEN/NOTIFY messages from a connection it leaves us to drive, parses libpq's connection
//! strings (both forms, several hosts, `target_session_attrs=read-write`, so a promoted standby
//! is found by itself), and builds with rustls and ring, which the sidecar already carries.
//! deadpool-postgres adds the pool and nothing else (a closed connection is dropped before
//! reuse, so a database restart costs no failed call). sqlx was weighed: one crate for both
//! databases, but its LISTEN support sits on its own pool, it pulls a large tree of macros and
//! drivers, and its MySQL and PostgreSQL parts share little a lock store uses.
//!
//! After a failover to a streaming standby, the locks are those the standby had received:
//! with asynchronous replication a grant made just before the primary died may be lost, and
//! a second holder may then be granted the same key. Synchronous replication
//! (`synchronous_commit = on` with a synchronous standby) closes that gap. Fencing tokens keep
//! increasing through a failover: PostgreSQL logs sequences ahead of their use.

mod listen;
#[cfg(test)]
mod raw_bench;
mod settings;
mod statements;
mod table;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::task::AbortHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConfigError, Metadata};
use crate::lock::multi::{self, granted};
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
};
use crate::stores::sql;
use crate::stores::sql::cleanup::{self, Cleanup};
use crate::stores::sql::holders::{self, Change, Stored};
use crate::stores::sql::line::{self, LineStore, Turn, WAITER_LEASE};
use crate::stores::sql::releases::Releases;
use settings::Settings;
use statements::{Names, Statements};

/// Connections kept open per sidecar: enough for a burst of contending clients.
const POOL_SIZE: usize = 16;

pub(crate) struct PostgresStore {
    pool: Pool,
    statements: Statements,
    timeout: Duration,
    /// Released keys, from the listening connection.
    released: Releases,
    /// The listening task, ended with the store (see `Drop`).
    listener: AbortHandle,
    /// The hosts of the connection string, for the ready line and the status API.
    servers: Vec<String>,
    /// The table, quoted, for errors about its values.
    table: String,
    /// The removal of expired rows, ended with the store.
    _cleanup: Cleanup,
    /// The store itself, for the places of its line.
    me: Weak<PostgresStore>,
}

/// A store replaced by a reload, or removed, stops listening at once: its connection closes
/// rather than staying open until the next notification.
impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects as a `lock.postgresql` component's metadata says, checks the credentials (a
    /// refusal names the field), brings the table to the current layout, and starts the
    /// listener and the cleanup.
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<PostgresStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let tls = tls(&settings)?;
        let manager = Manager::from_config(
            settings.connection.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| ConfigError::new(format!("can't set up the connection pool: {e}")))?;
        let timeout = settings.table.timeout;
        let mut client = tokio::time::timeout(timeout, pool.get())
            .await
            .map_err(|_| {
                ConfigError::field(
                    "connectionString",
                    format!("PostgreSQL did not answer within {timeout:?}"),
                )
            })?
            .map_err(|e| refused(&e))?;
        let names = Names::new(settings.table.schema.as_deref(), &settings.table.table);
        table::ensure(&mut client, &names).await?;
        drop(client);

        let released = Releases::new();
        let listener = tokio::spawn(listen::relay_releases(
            settings.connection.clone(),
            tls,
            names.channel.clone(),
            released.sender(),
        ))
        .abort_handle();
        // Rows stay a grace period past their expiry: see `statements.rs`.
        let grace = sql::ttl_millis(timeout);
        let cleanup_interval = settings.table.cleanup_interval;
        let store = Arc::new_cyclic(|store| PostgresStore {
            _cleanup: cleanup::spawn(
                store.clone(),
                cleanup_interval,
                move |store: Arc<PostgresStore>| async move {
                    store.remove_expired(grace).await.map_err(|e| e.to_string())
                },
            ),
            pool,
            statements: Statements::new(&names),
            timeout,
            released,
            listener,
            servers: servers(&settings.connection),
            table: names.table.clone(),
            me: store.clone(),
        });
        Ok(store)
    }

    /// Runs one statement on a pooled connection, bounded by the timeout.
    async fn query(
        &self,
        statement: impl Fn(&Statements) -> &String,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let work = async {
            let client = self.pool.get().await.map_err(|e| {
                StoreError::unavailable(format!("no connection to PostgreSQL: {e}")).with_source(e)
            })?;
            let prepared = client
                .prepare_cached(statement(&self.statements))
                .await
                .map_err(store_error)?;
            client.query(&prepared, params).await.map_err(store_error)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.timeout
                ))
            })?
    }

    /// Removes the rows that expired more than `grace_millis` ago.
    async fn remove_expired(&self, grace_millis: i64) -> Result<u64, StoreError> {
        let work = async {
            let client = self.pool.get().await.map_err(|e| {
                StoreError::unavailable(format!("no connection to PostgreSQL: {e}")).with_source(e)
            })?;
            let rows = client
                .execute(&self.statements.cleanup, &[&grace_millis])
                .await
                .map_err(store_error)?;
            let waiters = client
                .execute(&self.statements.cleanup_waiters, &[])
                .await
                .map_err(store_error)?;
            Ok(rows + waiters)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError::unavailable("PostgreSQL did not answer in time"))?
    }

    /// Column `index` of a row, which the statement takes from the table's `column`.
    fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
        &self,
        row: &'a Row,
        index: usize,
        column: &str,
    ) -> Result<T, StoreError> {
        row.try_get(index).map_err(|e| {
            // The driver's own words name the column by number; the reason is its source.
            let reason = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            sql::unreadable(&self.table, column, reason).with_source(e)
        })
    }

    /// The one answer row of an owner-checked statement, read as release or renewal: `None`
    /// when the key keeps holders, which the statement leaves to a transaction.
    fn owner_checked(&self, rows: &[Row]) -> Result<Option<OwnerChecked>, StoreError> {
        let row = rows
            .first()
            .ok_or_else(|| StoreError::failed("PostgreSQL answered no row"))?;
        let applied: bool = row.try_get(0).map_err(unexpected)?;
        let holder: Option<String> = self.column(row, 1, "owner")?;
        let record: bool = row.try_get(2).map_err(unexpected)?;
        Ok((!record).then(|| sql::owner_checked(applied, holder.as_deref())))
    }

    /// A live row of Inspect or List: `None` when its holders have all expired.
    fn info(&self, row: &Row) -> Result<Option<LockInfo>, StoreError> {
        let key = self.column::<String>(row, 0, "key")?;
        if let Some(encoded) = self.column::<Option<String>>(row, 4, "holders")? {
            let now_ms: i64 = row.try_get(5).map_err(unexpected)?;
            return holders::info(&self.table, &key, &encoded, now_ms.max(0) as u64);
        }
        Ok(Some(LockInfo::exclusive(
            key,
            self.column::<String>(row, 1, "owner")?,
            sql::millis_left(self.column(row, 2, "expires_at")?),
            Some(sql::fencing_token(
                &self.table,
                self.column(row, 3, "fencing_token")?,
            )?),
        )))
    }

    /// Applies a change to `key`'s holders in one transaction (see `statements.rs`), after
    /// the line check `turn` (see `change_in`).
    async fn change<T, C: Change<T>>(
        &self,
        key: &str,
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C + Copy,
    ) -> Result<T, StoreError> {
        let keys = [key.to_string()];
        let mut answers = self
            .change_many(&keys, grant, turn, change, |_| true)
            .await?;
        answers
            .pop()
            .ok_or_else(|| StoreError::failed("a change of one key answered nothing"))
    }

    /// Applies `change` to the holders of each of `keys` in one transaction, locking their
    /// rows in the order given (sorted, so two transactions never wait on each other), and
    /// commits only when `keep` accepts every key's answer: the answers up to the first it
    /// refuses, whose transaction is rolled back.
    async fn change_many<T, C: Change<T>>(
        &self,
        keys: &[String],
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C + Copy,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, StoreError> {
        let db = |e: tokio_postgres::Error| store_error(e);
        let work = async {
            let mut client = self.pool.get().await.map_err(|e| {
                StoreError::unavailable(format!("no connection to PostgreSQL: {e}")).with_source(e)
            })?;
            let transaction = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
                .start()
                .await
                .map_err(db)?;
            let mut answers = Vec::with_capacity(keys.len());
            for key in keys {
                let answer = self
                    .change_in(&transaction, key, grant, turn, change)
                    .await?;
                let kept = keep(&answer);
                answers.push(answer);
                if !kept {
                    // Dropped without a commit, the transaction rolls back.
                    return Ok(answers);
                }
            }
            transaction.commit().await.map_err(db)?;
            Ok(answers)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.timeout
                ))
            })?
    }

    /// A change of one key's holders inside `transaction`: locks the key's row, reads it and
    /// the database's clock, counts the live waiters ahead of the take where `turn` asks
    /// (`change` is made knowing whether any are), and writes back what the change made of
    /// the row; a granted waiter leaves the line in the same transaction.
    async fn change_in<T, C: Change<T>>(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        key: &str,
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C,
    ) -> Result<T, StoreError> {
        let db = |e: tokio_postgres::Error| store_error(e);
        let s = &self.statements;
        let lock = if grant { &s.lock_row } else { &s.lock_existing };
        let lock = transaction.prepare_cached(lock).await.map_err(db)?;
        transaction.execute(&lock, &[&key]).await.map_err(db)?;
        let read = transaction.prepare_cached(&s.read_row).await.map_err(db)?;
        let stored = match transaction.query_opt(&read, &[&key]).await.map_err(db)? {
            Some(row) => Some((
                self.stored(&row)?,
                row.try_get::<_, i64>(4).map_err(unexpected)?,
            )),
            None => None,
        };
        // Without a row nothing is held, whatever the time.
        let now_ms = stored.as_ref().map_or(0, |(_, now)| (*now).max(0) as u64);
        let stored = stored.map(|(row, _)| row);
        let others_ahead = match turn.ahead_of() {
            Some(arrival) => {
                let ahead = transaction.prepare_cached(&s.ahead).await.map_err(db)?;
                let row = transaction
                    .query_one(&ahead, &[&key, &arrival])
                    .await
                    .map_err(db)?;
                row.try_get::<_, i64>(0).map_err(unexpected)? > 0
            }
            None => false,
        };
        let change = change(others_ahead);
        let mut applied = holders::apply(&self.table, stored.as_ref(), now_ms, change, 0)?;
        if applied.drew_token {
            let draw = transaction
                .prepare_cached(&s.draw_token)
                .await
                .map_err(db)?;
            let drawn: i64 = transaction.query_one(&draw, &[]).await.map_err(db)?.get(0);
            let token = sql::fencing_token(&self.table, drawn)?;
            applied = holders::apply(&self.table, stored.as_ref(), now_ms, change, token)?;
        }
        if let Some(row) = &applied.write {
            let write = transaction.prepare_cached(&s.write_row).await.map_err(db)?;
            let deadline_ms = i64::try_from(row.deadline_ms).unwrap_or(i64::MAX);
            let token = i64::try_from(row.token).unwrap_or(i64::MAX);
            transaction
                .execute(
                    &write,
                    &[
                        &key,
                        &row.owner,
                        &deadline_ms,
                        &token,
                        &row.holders,
                        &applied.freed,
                    ],
                )
                .await
                .map_err(db)?;
            if let Some(waiter) = turn.waiter() {
                let leave = transaction
                    .prepare_cached(&s.leave_line)
                    .await
                    .map_err(db)?;
                transaction.execute(&leave, &[&waiter]).await.map_err(db)?;
            }
        }
        Ok(applied.answer)
    }

    /// The key's row as `read_row` answers it.
    fn stored(&self, row: &Row) -> Result<Stored, StoreError> {
        let deadline_ms: i64 = self.column(row, 1, "expires_at")?;
        Ok(Stored {
            owner: self.column(row, 0, "owner")?,
            deadline_ms: deadline_ms.max(0) as u64,
            token: sql::fencing_token(&self.table, self.column(row, 2, "fencing_token")?)?,
            holders: self.column(row, 3, "holders")?,
        })
    }
}

#[async_trait]
impl LockStore for PostgresStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let rows = self
            .query(|s| &s.take, &[&key, &owner, &sql::ttl_millis(ttl)])
            .await?;
        Ok(match rows.first() {
            Some(row) => TryLockOutcome::Granted(Grant::first(Some(sql::fencing_token(
                &self.table,
                self.column(row, 0, "fencing_token")?,
            )?))),
            None => TryLockOutcome::Held,
        })
    }

    async fn acquire_kind(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<TryLockOutcome, StoreError> {
        self.change(key, true, Turn::Try, |others_ahead| {
            holders::acquire_in_line(owner, ttl, kind, others_ahead)
        })
        .await
    }

    async fn acquire_many(
        &self,
        keys: &[String],
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<ManyOutcome, StoreError> {
        let acquire = |_| holders::acquire(owner, ttl, kind);
        let answers = self
            .change_many(keys, true, Turn::Aside, acquire, granted)
            .await?;
        Ok(multi::outcome(answers))
    }

    async fn release_many(
        &self,
        keys: &[String],
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let release = |_| holders::release(owner, all_holds);
        let answers = self
            .change_many(keys, false, Turn::Aside, release, |_| true)
            .await?;
        Ok(multi::released_whole(&answers))
    }

    async fn release(
        &self,
        key: &str,
        owner: &str,
        all_holds: bool,
    ) -> Result<Released, StoreError> {
        let rows = self.query(|s| &s.release, &[&key, &owner]).await?;
        match self.owner_checked(&rows)? {
            Some(outcome) => Ok(Released {
                outcome,
                holds_left: 0,
            }),
            None => {
                let release = |_| holders::release(owner, all_holds);
                self.change(key, false, Turn::Aside, release).await
            }
        }
    }

    async fn take_back(
        &self,
        key: &str,
        owner: &str,
        grant: Grant,
    ) -> Result<OwnerChecked, StoreError> {
        let Some(token) = grant.fencing_token.and_then(|t| i64::try_from(t).ok()) else {
            return self.unlock(key, owner).await;
        };
        let rows = self
            .query(|s| &s.take_back, &[&key, &owner, &token])
            .await?;
        match self.owner_checked(&rows)? {
            Some(outcome) => Ok(outcome),
            None => {
                let take_back = |_| holders::take_back(owner, grant);
                self.change(key, false, Turn::Aside, take_back).await
            }
        }
    }

    async fn renew(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<OwnerChecked, StoreError> {
        let millis = sql::ttl_millis(ttl);
        let rows = self.query(|s| &s.renew, &[&key, &owner, &millis]).await?;
        match self.owner_checked(&rows)? {
            Some(outcome) => Ok(outcome),
            None => {
                let renew = |_| holders::renew(owner, ttl);
                self.change(key, false, Turn::Aside, renew).await
            }
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let rows = self.query(|s| &s.inspect, &[&key]).await?;
        Ok(match rows.first() {
            Some(row) => self.info(row)?,
            None => None,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let rows = self.query(|s| &s.list, &[&prefix]).await?;
        let mut held = Vec::with_capacity(rows.len());
        for row in &rows {
            held.extend(self.info(row)?);
        }
        Ok(held)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let rows = self.query(|s| &s.force_release, &[&key]).await?;
        match rows.first() {
            Some(row) => row.try_get(1).map_err(unexpected),
            None => Ok(false),
        }
    }

    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        self.released.wait(key, max_wait).await;
        Ok(())
    }

    async fn join(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
    ) -> Result<Box<dyn Place>, StoreError> {
        let me = crate::lock::store::for_a_place(&self.me)?;
        line::join(me, key, owner, ttl, kind).await
    }

    /// Every kind waits in the one line.
    fn line_takes(&self, _kind: Kind) -> bool {
        true
    }

    fn servers(&self) -> Vec<String> {
        self.servers.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: true,
            line: true,
            shared: true,
            limit: true,
            reentrant: true,
            multi: true,
            multi_atomic: true,
        }
    }
}

#[async_trait]
impl LineStore for PostgresStore {
    async fn join_line(&self, key: &str) -> Result<i64, StoreError> {
        let lease = sql::ttl_millis(WAITER_LEASE);
        let rows = self.query(|s| &s.join_line, &[&key, &lease]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::failed("PostgreSQL answered no row"))?;
        row.try_get(0).map_err(unexpected)
    }

    async fn look(&self, key: &str, waiter: i64) -> Result<Option<u64>, StoreError> {
        let lease = sql::ttl_millis(WAITER_LEASE);
        let rows = self.query(|s| &s.look, &[&key, &waiter, &lease]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::failed("PostgreSQL answered no row"))?;
        let renewed: bool = row.try_get(0).map_err(unexpected)?;
        let ahead: i64 = row.try_get(1).map_err(unexpected)?;
        Ok(renewed.then_some(ahead.max(0) as u64))
    }

    async fn take_turn(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        kind: Kind,
        waiter: i64,
    ) -> Result<TryLockOutcome, StoreError> {
        self.change(key, true, Turn::Waiter(waiter), |others_ahead| {
            holders::acquire_in_line(owner, ttl, kind, others_ahead)
        })
        .await
    }

    async fn leave_line(&self, waiter: i64) -> Result<(), StoreError> {
        self.query(|s| &s.leave_line, &[&waiter]).await.map(drop)
    }
}

/// A computed value of a statement's answer that is not what the statement gives: a value of
/// the table is named by `PostgresStore::column` instead.
fn unexpected(e: tokio_postgres::Error) -> StoreError {
    StoreError::failed(format!("PostgreSQL answered unexpectedly: {e}")).with_source(e)
}

/// The TLS connector: certificates are checked against `sslrootcert`, else the system's
/// roots, and the client shows `sslcert` where given. It is only used where `sslmode` asks
/// for TLS.
fn tls(settings: &Settings) -> Result<MakeRustlsConnect, ConfigError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let field = |m: String| ConfigError::field("connectionString", m);
    match &settings.root_cert {
        Some(pem) => {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| field(format!("sslrootcert: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| field(format!("sslrootcert: {e}")))?;
            }
        }
        None if settings.connection.get_ssl_mode() != tokio_postgres::config::SslMode::Disable => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        None => {}
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match &settings.client_cert {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| field(format!("sslcert: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| field(format!("sslkey: {e}")))?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| field(format!("sslcert and sslkey: {e}")))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// A database error in words: PostgreSQL's own message where it sent one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // tokio-postgres says what failed, and why in the error's source.
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A failed statement as the core sees it: PostgreSQL away, read-only (a standby, during a
/// failover) or out of resources is an outage; anything else is a failure.
fn store_error(e: tokio_postgres::Error) -> StoreError {
    let outage = match e.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            matches!(class, "08" | "53" | "57" | "58")
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    };
    if outage {
        StoreError::unavailable(describe(&e)).with_source(e)
    } else {
        StoreError::failed(describe(&e)).with_source(e)
    }
}

/// Why the first connection failed, naming the field: a refused password or user is the
/// connection string's.
fn refused(e: &deadpool_postgres::PoolError) -> ConfigError {
    let message = match e {
        deadpool_postgres::PoolError::Backend(e) => {
            let code = e.code();
            if code == Some(&SqlState::INVALID_PASSWORD)
                || code == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            {
                format!(
                    "PostgreSQL refused the user or its password: {}",
                    describe(e)
                )
            } else {
                format!("can't connect to PostgreSQL: {}", describe(e))
            }
        }
        other => format!("can't connect to PostgreSQL: {other}"),
    };
    ConfigError::field("connectionString", message)
}

/// `host:port` of each host a connection string names (a Unix socket by its folder); a port
/// given once applies to every host, as libpq reads it.
fn servers(connection: &tokio_postgres::Config) -> Vec<String> {
    let ports = connection.get_ports();
    connection
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) if name.contains(':') => {
                    format!("[{name}]:{port}")
                }
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(folder) => format!("unix:{}", folder.display()),
            }
        })
        .collect()
}
