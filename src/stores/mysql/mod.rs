//! `lock.mysql`: locks as rows of a table in a MySQL or MariaDB database, one row per held
//! lock (layout in `table.rs`, statements and their reasons in `statements.rs`). Every
//! decision is one statement, atomic in InnoDB and timed by the server's clock; expired rows
//! count as free at once and are removed in the background (`cleanupInterval`). Fencing tokens
//! come from the table's `AUTO_INCREMENT` counter. A key held in another kind (shared,
//! limited, reentrant) keeps its holders in its row and is changed by one transaction that
//! locks the row (`stores::sql::holders`, `statements.rs`).
//!
//! MySQL has no notifications: a waiter polls. The core backs its polls off; this store adds
//! jitter, so sidecars waiting for one key do not all ask at the same instant, and bounds each
//! pause by the holder's expiry as the refused take read it, so a lock that runs out is taken
//! on time. A release through the same sidecar wakes its waiters at once. Blocking acquires
//! of every kind wait in one line kept in a waiters table (`stores::sql::line`), fair across
//! sidecars; only the first two waiters poll at the core's pace, the others rarely.
//!
//! Client library: mysql_async, the tokio-native MySQL driver, with its own pool (which checks
//! an idle connection before handing it out, so a server restart costs no failed call),
//! prepared-statement cache and rustls TLS on ring; built without its default compression and
//! derive features. sqlx was weighed against it (see `stores::postgresql`).

#[cfg(test)]
mod raw_bench;
mod settings;
mod statements;
mod table;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{
    Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, SslOpts, Transaction, TxOpts,
};
use tokio::time::Instant;

use crate::config::{ConfigError, Metadata};
use crate::lock::multi::{self, granted};
use crate::lock::{
    Capabilities, Grant, Kind, LockInfo, LockStore, ManyOutcome, OwnerChecked, Place, Released,
    StoreError, TryLockOutcome,
};
use crate::stores::sql;
use crate::stores::sql::cleanup::{self, Cleanup};
use crate::stores::sql::holders::{self, Applied, Change, Stored};
use crate::stores::sql::line::{self, LineStore, Turn, WAITER_LEASE};
use crate::stores::sql::releases::Releases;
use settings::{Server, Settings, Tls};
use statements::Statements;

/// Connections kept open per sidecar: enough for a burst of contending clients.
const POOL_SIZE: usize = 16;

/// How long an idle pooled connection stays open. mysql_async closes a connection above the
/// pool's minimum (0) as soon as it is returned unless given this, which made every statement
/// open a connection of its own; a minute keeps a busy sidecar's connections while an idle one
/// holds none for long.
const IDLE_KEPT: Duration = Duration::from_secs(60);

/// At most this many refused keys' expiries are remembered for their waiters; past it the
/// memory starts over (a waiter then just polls without the bound).
const REMEMBERED: usize = 4096;

/// MySQL's error for a duplicate primary key.
const DUPLICATE_KEY: u16 = 1062;

/// MySQL's error for a deadlock, after which it rolled the statement back.
const DEADLOCK: u16 = 1213;

/// How often a take that InnoDB chose as a deadlock's victim is tried again.
const DEADLOCK_RETRIES: usize = 5;

pub(crate) struct MysqlStore {
    pool: Pool,
    statements: Statements,
    timeout: Duration,
    /// Keys released through this sidecar, for its waiters and sessions.
    released: Releases,
    /// When each key refused to a take here expires, as far as that take saw.
    expiries: Mutex<HashMap<String, Instant>>,
    jitter: RandomState,
    /// The server, for the ready line and the status API.
    server: String,
    /// The table, quoted, for errors about its values.
    table: String,
    /// The removal of expired rows, ended with the store.
    _cleanup: Cleanup,
    /// The store itself, for the places of its line.
    me: Weak<MysqlStore>,
}

impl MysqlStore {
    /// Connects as a `lock.mysql` component's metadata says, checks the credentials (a
    /// refusal names the field), brings the table to the current layout, and starts the
    /// cleanup.
    pub(crate) async fn connect(metadata: &Metadata) -> Result<Arc<MysqlStore>, ConfigError> {
        let settings = Settings::from_metadata(metadata)?;
        let timeout = settings.table.timeout;
        let pool = Pool::new(options(&settings));
        let mut conn = tokio::time::timeout(timeout, pool.get_conn())
            .await
            .map_err(|_| {
                ConfigError::field(
                    "connectionString",
                    format!("MySQL did not answer within {timeout:?}"),
                )
            })?
            .map_err(|e| refused(&e))?;
        table::ensure(&mut conn, &settings.schema, &settings.table.table).await?;
        drop(conn);
        let table = format!("`{}`.`{}`", settings.schema, settings.table.table);
        let waiters = format!("`{}`.`{}_waiters`", settings.schema, settings.table.table);
        let grace = micros(timeout);
        let cleanup_interval = settings.table.cleanup_interval;
        let store = Arc::new_cyclic(|store| MysqlStore {
            _cleanup: cleanup::spawn(
                store.clone(),
                cleanup_interval,
                move |store: Arc<MysqlStore>| async move {
                    store
                        .run(|mut conn, s| async move {
                            conn.exec_drop(&s.cleanup, (grace,)).await?;
                            let rows = conn.affected_rows();
                            conn.exec_drop(&s.cleanup_waiters, ()).await?;
                            Ok(rows + conn.affected_rows())
                        })
                        .await
                        .map_err(|e| e.to_string())
                },
            ),
            pool,
            statements: Statements::new(&table, &waiters),
            me: store.clone(),
            table,
            timeout,
            released: Releases::new(),
            expiries: Mutex::new(HashMap::new()),
            jitter: RandomState::new(),
            server: match &settings.server {
                Server::Tcp(address) => address.to_string(),
                Server::Socket(path) => format!("unix:{path}"),
            },
        });
        Ok(store)
    }

    /// Runs `work` on a pooled connection, bounded by the timeout.
    async fn run<'a, T, F, Fut>(&'a self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn, &'a Statements) -> Fut,
        Fut: std::future::Future<Output = Result<T, mysql_async::Error>>,
    {
        let attempt = async {
            let conn = self.pool.get_conn().await.map_err(store_error)?;
            work(conn, &self.statements).await.map_err(store_error)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!("MySQL did not answer within {:?}", self.timeout))
            })?
    }

    fn remember(&self, key: &str, left: Duration) {
        let mut expiries = self.expiries.lock().unwrap_or_else(|e| e.into_inner());
        if expiries.len() >= REMEMBERED {
            expiries.clear();
        }
        expiries.insert(key.to_string(), Instant::now() + left);
    }

    /// A release's answer: applied when it changed a row (and its waiters are told), else
    /// why not; `None` when the key keeps holders, which the statement left to a transaction.
    async fn released_or_refused(
        &self,
        key: &str,
        released: u64,
    ) -> Result<Option<OwnerChecked>, StoreError> {
        if released > 0 {
            self.released.announce(key);
            return Ok(Some(OwnerChecked::Applied));
        }
        self.refusal(key).await
    }

    /// Explains an owner-checked change that changed nothing: `None` when the key keeps
    /// holders.
    async fn refusal(&self, key: &str) -> Result<Option<OwnerChecked>, StoreError> {
        let row: Option<Row> = self
            .run(|mut conn, s| async move { conn.exec_first(&s.holder, (key,)).await })
            .await?;
        let holder = match row {
            Some(mut row) => {
                if self.column::<bool>(&mut row, 1, "holders")? {
                    return Ok(None);
                }
                Some(self.text(&mut row, 0, "owner")?)
            }
            None => None,
        };
        Ok(Some(sql::owner_checked(false, holder.as_deref())))
    }

    /// Applies `change` to `key`'s holders in one transaction (see `statements.rs`), again
    /// when InnoDB picked it as a deadlock's victim (and rolled it back whole).
    /// The line check `turn` comes first (see `step`).
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
    /// refuses, whose transaction is rolled back. Again when InnoDB picked it as a deadlock's
    /// victim.
    async fn change_many<T, C: Change<T>>(
        &self,
        keys: &[String],
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C + Copy,
        keep: impl Fn(&T) -> bool + Copy,
    ) -> Result<Vec<T>, StoreError> {
        let applied = self
            .run(|mut conn, s| async move {
                let mut tries = 0;
                loop {
                    let tx = conn.start_transaction(TxOpts::default()).await?;
                    match self.transact(tx, s, keys, grant, turn, change, keep).await {
                        Err(mysql_async::Error::Server(e))
                            if e.code == DEADLOCK && tries < DEADLOCK_RETRIES =>
                        {
                            tries += 1;
                        }
                        done => return done,
                    }
                }
            })
            .await??;
        let mut answers = Vec::with_capacity(applied.len());
        for (key, applied) in keys.iter().zip(applied) {
            if applied.freed {
                self.released.announce(key);
            }
            answers.push(applied.answer);
        }
        Ok(answers)
    }

    /// The transaction's steps, key by key; it is committed when every change applied
    /// cleanly and `keep` took every answer, else rolled back.
    #[allow(clippy::too_many_arguments)]
    async fn transact<T, C: Change<T>>(
        &self,
        mut tx: Transaction<'_>,
        s: &Statements,
        keys: &[String],
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C + Copy,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Result<Vec<Applied<T>>, StoreError>, mysql_async::Error> {
        let mut all = Vec::with_capacity(keys.len());
        for key in keys {
            let applied = match self.step(&mut tx, s, key, grant, turn, change).await? {
                Ok(applied) => applied,
                Err(e) => return tx.rollback().await.map(|()| Err(e)),
            };
            let kept = keep(&applied.answer);
            all.push(applied);
            if !kept {
                return tx.rollback().await.map(|()| Ok(all));
            }
        }
        tx.commit().await?;
        Ok(Ok(all))
    }

    /// One key's change inside `tx`: locks its row, reads it and the server's clock, counts
    /// the live waiters ahead of the take where `turn` asks (`change` is made knowing whether
    /// any are), and writes back what the change made of the row; a granted waiter leaves the
    /// line in the same transaction.
    async fn step<T, C: Change<T>>(
        &self,
        tx: &mut Transaction<'_>,
        s: &Statements,
        key: &str,
        grant: bool,
        turn: Turn,
        change: impl Fn(bool) -> C,
    ) -> Result<Result<Applied<T>, StoreError>, mysql_async::Error> {
        if grant {
            tx.exec_drop(&s.lock_row, (key, key)).await?;
        } else {
            tx.exec_drop(&s.lock_existing, (key,)).await?;
        }
        let row: Option<Row> = tx.exec_first(&s.read_row, (key,)).await?;
        let read = match row.map(|row| self.stored(row)).transpose() {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        // Without a row nothing is held, whatever the time.
        let now_ms = read.as_ref().map_or(0, |(_, now_ms)| *now_ms);
        let stored = read.map(|(stored, _)| stored);
        let others_ahead = match turn.ahead_of() {
            Some(arrival) => {
                let ahead: Option<i64> = tx.exec_first(&s.ahead, (key, arrival)).await?;
                ahead.unwrap_or(0) > 0
            }
            None => false,
        };
        let change = change(others_ahead);
        let mut applied = holders::apply(&self.table, stored.as_ref(), now_ms, change, 0);
        if matches!(&applied, Ok(a) if a.drew_token) {
            tx.exec_drop(&s.delete_row, (key,)).await?;
            tx.exec_drop(&s.insert, (key, key, "", 1i64)).await?;
            let drawn: Option<u64> = tx.exec_first(&s.drawn, ()).await?;
            let token = drawn.unwrap_or(0);
            applied = holders::apply(&self.table, stored.as_ref(), now_ms, change, token);
        }
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(row) = &applied.write {
            let deadline = row.deadline_ms.saturating_mul(1000);
            let params = (&row.owner, deadline, row.token, &row.holders, key);
            tx.exec_drop(&s.write_row, params).await?;
            if let Some(waiter) = turn.waiter() {
                tx.exec_drop(&s.leave_line, (waiter,)).await?;
            }
        }
        Ok(Ok(applied))
    }

    /// The key's row as `read_row` answers it, and the server's clock in milliseconds.
    fn stored(&self, mut row: Row) -> Result<(Stored, u64), StoreError> {
        let deadline_ms: i64 = self.column(&mut row, 1, "expires_at")?;
        let holders: Option<Vec<u8>> = self.column(&mut row, 3, "holders")?;
        let stored = Stored {
            owner: self.text(&mut row, 0, "owner")?,
            deadline_ms: deadline_ms.max(0) as u64,
            token: self.column(&mut row, 2, "fencing_token")?,
            holders: holders.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        };
        let now_ms: i64 = self.column(&mut row, 4, "expires_at")?;
        Ok((stored, now_ms.max(0) as u64))
    }

    /// Column `index` of a row, which the statement takes from the table's `column`.
    fn column<T: FromValue>(
        &self,
        row: &mut Row,
        index: usize,
        column: &str,
    ) -> Result<T, StoreError> {
        match row.take_opt(index) {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(sql::unreadable(&self.table, column, &e).with_source(e)),
            None => Err(sql::unreadable(&self.table, column, "no value")),
        }
    }

    /// A text column, stored as bytes.
    fn text(&self, row: &mut Row, index: usize, column: &str) -> Result<String, StoreError> {
        let bytes: Vec<u8> = self.column(row, index, column)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A live row of Inspect or List: `None` when its holders have all expired.
    fn info(&self, mut row: Row) -> Result<Option<LockInfo>, StoreError> {
        let key = self.text(&mut row, 0, "lock_key")?;
        let holders: Option<Vec<u8>> = self.column(&mut row, 4, "holders")?;
        if let Some(encoded) = holders {
            let now_ms: i64 = self.column(&mut row, 5, "expires_at")?;
            let encoded = String::from_utf8_lossy(&encoded);
            return holders::info(&self.table, &key, &encoded, now_ms.max(0) as u64);
        }
        Ok(Some(LockInfo::exclusive(
            key,
            self.text(&mut row, 1, "owner")?,
            sql::millis_left(self.column(&mut row, 2, "expires_at")?),
            Some(self.column(&mut row, 3, "fencing_token")?),
        )))
    }
}

/// What a take found.
enum Take {
    Granted(u64),
    /// Held, expiring in this many milliseconds.
    Held(i64),
    /// Refused while others wait in the key's line.
    Waited,
}

#[async_trait]
impl LockStore for MysqlStore {
    async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<TryLockOutcome, StoreError> {
        let ttl = micros(ttl);
        let taken = self
            .run(|mut conn, s| async move {
                // A deadlock rolled back only the statement it stopped, and every step of a
                // take may be run again: a take it stopped starts over.
                let mut tries = 0;
                loop {
                    match take(&mut conn, s, key, owner, ttl).await {
                        Err(mysql_async::Error::Server(e))
                            if e.code == DEADLOCK && tries < DEADLOCK_RETRIES =>
                        {
                            tries += 1;
                        }
                        done => return done,
                    }
                }
            })
            .await?;
        Ok(match taken {
            Take::Granted(token) => TryLockOutcome::Granted(Grant::first(Some(token))),
            Take::Held(left) => {
                self.remember(key, sql::millis_left(left));
                TryLockOutcome::Held
            }
            Take::Waited => TryLockOutcome::Held,
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
        let released = self
            .run(|mut conn, s| async move { changed(&mut conn, &s.release, (key, owner)).await })
            .await?;
        match self.released_or_refused(key, released).await? {
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
        let Some(token) = grant.fencing_token else {
            return self.unlock(key, owner).await;
        };
        let released = self
            .run(|mut conn, s| async move {
                changed(&mut conn, &s.take_back, (key, owner, token)).await
            })
            .await?;
        match self.released_or_refused(key, released).await? {
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
        let micros = micros(ttl);
        let renewed =
            self.run(|mut conn, s| async move {
                changed(&mut conn, &s.renew, (micros, key, owner)).await
            })
            .await?;
        if renewed > 0 {
            return Ok(OwnerChecked::Applied);
        }
        match self.refusal(key).await? {
            Some(outcome) => Ok(outcome),
            None => {
                let renew = |_| holders::renew(owner, ttl);
                self.change(key, false, Turn::Aside, renew).await
            }
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockInfo>, StoreError> {
        let row: Option<Row> = self
            .run(|mut conn, s| async move { conn.exec_first(&s.inspect, (key,)).await })
            .await?;
        Ok(match row {
            Some(row) => self.info(row)?,
            None => None,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LockInfo>, StoreError> {
        let rows: Vec<Row> = self
            .run(|mut conn, s| async move { conn.exec(&s.list, (prefix, prefix)).await })
            .await?;
        let mut held = Vec::with_capacity(rows.len());
        for row in rows {
            held.extend(self.info(row)?);
        }
        Ok(held)
    }

    async fn force_release(&self, key: &str) -> Result<bool, StoreError> {
        let released = self
            .run(|mut conn, s| async move { changed(&mut conn, &s.force_release, (key,)).await })
            .await?;
        if released > 0 {
            self.released.announce(key);
        }
        Ok(released > 0)
    }

    /// A pause of between half and all of `max_wait`, ending no later than the holder's
    /// expiry as the last refused take here read it, or at once on a release through this
    /// sidecar (a session's lock released by force, say).
    async fn wait_for_release(&self, key: &str, max_wait: Duration) -> Result<(), StoreError> {
        let fraction = (self.jitter.hash_one(Instant::now()) % 1000) as u32;
        let mut pause = max_wait / 2 + max_wait / 2 * fraction / 1000;
        let expires = self
            .expiries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(expires) = expires {
            pause = pause.min(expires.saturating_duration_since(Instant::now()));
        }
        self.released.wait(key, pause).await;
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
        vec![self.server.clone()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            fencing: true,
            listing: true,
            release_signal: false,
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
impl LineStore for MysqlStore {
    async fn join_line(&self, key: &str) -> Result<i64, StoreError> {
        let lease = micros(WAITER_LEASE);
        let arrival = self
            .run(|mut conn, s| async move {
                conn.exec_drop(&s.join_line, (key, lease)).await?;
                Ok(conn.last_insert_id())
            })
            .await?;
        let arrival = arrival.ok_or_else(|| StoreError::failed("MySQL numbered no waiter"))?;
        i64::try_from(arrival).map_err(|_| StoreError::failed("MySQL numbered a waiter past i64"))
    }

    async fn look(&self, key: &str, waiter: i64) -> Result<Option<u64>, StoreError> {
        let lease = micros(WAITER_LEASE);
        self.run(|mut conn, s| async move {
            if changed(&mut conn, &s.renew_waiter, (lease, waiter)).await? == 0 {
                return Ok(None);
            }
            let ahead: Option<i64> = conn.exec_first(&s.ahead, (key, waiter)).await?;
            Ok(Some(ahead.unwrap_or(0).max(0) as u64))
        })
        .await
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
        self.run(|mut conn, s| async move { changed(&mut conn, &s.leave_line, (waiter,)).await })
            .await
            .map(drop)
    }
}

/// One take, refused while anyone waits in the key's line: the insert; when the key has a
/// row, that row out if it has expired (a released lock's row has: releases keep it, see
/// `statements.rs`) and the insert once more; else the holder's time left. Removing first and
/// asking only when nothing was removed keeps a take over a released key at four statements,
/// the look at the line included.
async fn take(
    conn: &mut Conn,
    s: &Statements,
    key: &str,
    owner: &str,
    ttl_micros: i64,
) -> Result<Take, mysql_async::Error> {
    let waiting: Option<i64> = conn.exec_first(&s.ahead, (key, i64::MAX)).await?;
    if waiting.unwrap_or(0) > 0 {
        return Ok(Take::Waited);
    }
    let insert = (key, key, owner, ttl_micros);
    for attempt in 0..2 {
        match conn.exec_drop(&s.insert, insert).await {
            Ok(()) => return Ok(Take::Granted(conn.last_insert_id().unwrap_or(0))),
            Err(mysql_async::Error::Server(e)) if e.code == DUPLICATE_KEY => {}
            Err(e) => return Err(e),
        }
        if attempt == 0 {
            conn.exec_drop(&s.remove_expired_row, (key,)).await?;
            if conn.affected_rows() > 0 {
                continue;
            }
        }
        // NULL when the row's expiry is no time (a table changed outside dlock): held, for
        // no time that can be known.
        let left: Option<Option<i64>> = conn.exec_first(&s.expires_in, (key,)).await?;
        if let Some(left) = left {
            return Ok(Take::Held(left.unwrap_or(0)));
        }
    }
    // Taken by another between the removal and the second insert, and gone again since.
    Ok(Take::Held(0))
}

/// Runs one owner-checked change and counts the rows it found. InnoDB may pick it as the
/// victim of a deadlock with the background cleanup (both touch the expiry index); the victim
/// is rolled back whole, so it runs again.
async fn changed<P>(conn: &mut Conn, statement: &str, params: P) -> Result<u64, mysql_async::Error>
where
    P: Into<mysql_async::Params> + Clone + Send,
{
    let mut tries = 0;
    loop {
        match conn.exec_drop(statement, params.clone()).await {
            Err(mysql_async::Error::Server(e))
                if e.code == DEADLOCK && tries < DEADLOCK_RETRIES =>
            {
                tries += 1;
            }
            done => return done.map(|()| conn.affected_rows()),
        }
    }
}

/// A duration in whole microseconds, MySQL's finest interval, at least one.
fn micros(d: Duration) -> i64 {
    d.as_micros().clamp(1, i64::MAX as u128) as i64
}

/// The driver's options from the settings.
fn options(settings: &Settings) -> OptsBuilder {
    let mut options = OptsBuilder::default()
        .user(Some(&settings.user))
        .pass(settings.password.as_ref())
        .client_found_rows(true)
        .prefer_socket(false)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(PoolConstraints::new(0, POOL_SIZE).expect("0 ≤ the pool's size"))
                .with_inactive_connection_ttl(IDLE_KEPT)
                // The store keeps no session state (no variables, no open transactions), so a
                // returned connection needs no COM_RESET_CONNECTION round trip.
                .with_reset_connection(false),
        );
    options = match &settings.server {
        Server::Tcp(address) => options
            .ip_or_hostname(address.host.clone())
            .tcp_port(address.port),
        Server::Socket(path) => options.socket(Some(path)),
    };
    match &settings.tls {
        Tls::Off => options,
        Tls::Verified { ca } => {
            let mut ssl = SslOpts::default();
            if let Some(ca) = ca {
                ssl = ssl.with_root_certs(vec![ca.clone().into_bytes().into()]);
            }
            options.ssl_opts(Some(ssl))
        }
        Tls::Unverified => options.ssl_opts(Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        )),
    }
}

/// A driver error in words: the server's own message where it sent one.
fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(e) => format!("{} ({})", e.message, e.code),
        other => other.to_string(),
    }
}

/// A failed statement as the core sees it: the server away, read-only, or out of time or
/// connections is an outage; any other server error is a failure.
fn store_error(e: mysql_async::Error) -> StoreError {
    const OUTAGE: [u16; 6] = [
        1040, // too many connections
        1205, // lock wait timeout
        1213, // deadlock
        1290, // read-only (--read-only)
        1792, // read-only transaction
        1836, // read-only mode
    ];
    match &e {
        mysql_async::Error::Server(server) if !OUTAGE.contains(&server.code) => {
            StoreError::failed(describe(&e)).with_source(e)
        }
        _ => StoreError::unavailable(describe(&e)).with_source(e),
    }
}

/// Why the first connection failed, naming the field: a refused user or password is the
/// connection string's.
fn refused(e: &mysql_async::Error) -> ConfigError {
    let message = match e {
        mysql_async::Error::Server(server) if server.code == 1045 => {
            format!("MySQL refused the user or its password: {}", describe(e))
        }
        other => format!("can't connect to MySQL: {}", describe(other)),
    };
    ConfigError::field("connectionString", message)
}
