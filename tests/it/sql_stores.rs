//! What `lock.postgresql` and `lock.mysql` share beyond the suites, written once and run for
//! each: a refused password names the field and never shows, rows of expired locks are
//! removed in the background, a table of the classic layout (key, owner, expiry) that an
//! older dlock made is migrated with its locks, as is a table of layout 2 (before shared
//! locks, gaining the holders column and the waiters table), a plain take over an expired
//! shared lock leaves no trace of its holders, a released key is free at once to a take made
//! in a transaction, and values of a table changed outside dlock that the store cannot use (a
//! NULL owner, a negative token) are a clear error, not a crash. Each database's own behaviour
//! is in `postgresql.rs` and `mysql.rs`.

use std::time::{Duration, Instant};

use dlock::config::Metadata;
use dlock::lock::{Kind, OwnerChecked, TryLockOutcome};
use mysql_async::prelude::Queryable;
use tokio_postgres::NoTls;

use crate::support::api::{Api, Failure, Protocol, SUCCESS};
use crate::support::backend::{mysql_dsn, postgres_connection_string, unique};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::{inspect_grpc, list_grpc};

#[derive(Clone, Copy)]
enum Sql {
    Postgresql,
    Mysql,
}

impl Sql {
    fn type_name(self) -> &'static str {
        match self {
            Sql::Postgresql => "lock.postgresql",
            Sql::Mysql => "lock.mysql",
        }
    }

    /// The connection string of the shared test server.
    fn connection_string(self) -> String {
        match self {
            Sql::Postgresql => postgres_connection_string(),
            Sql::Mysql => mysql_dsn(),
        }
    }

    /// The database's name as the store's errors give it.
    fn name(self) -> &'static str {
        match self {
            Sql::Postgresql => "PostgreSQL",
            Sql::Mysql => "MySQL",
        }
    }

    fn password(self) -> String {
        let name = match self {
            Sql::Postgresql => "DLOCK_TEST_POSTGRES_PASSWORD",
            Sql::Mysql => "DLOCK_TEST_MYSQL_PASSWORD",
        };
        std::env::var(name).unwrap()
    }

    /// A sidecar with one store named `store` on the shared server, with `metadata` besides
    /// the connection string.
    fn sidecar(self, metadata: &[(&str, &str)]) -> Dlockd {
        let connection = self.connection_string();
        let mut all = vec![("connectionString", connection.as_str())];
        all.extend_from_slice(metadata);
        let file = component("store", self.type_name(), &all);
        Dlockd::start(Options::with_component("app", file))
    }

    /// `table` as statements name it: MySQL's stores live in the schema `dlock`.
    fn table(self, table: &str) -> String {
        match self {
            Sql::Postgresql => table.to_string(),
            Sql::Mysql => format!("dlock.{table}"),
        }
    }

    /// Runs statements, separated by `;`.
    async fn execute(self, statements: &str) {
        match self {
            Sql::Postgresql => postgres().await.batch_execute(statements).await.unwrap(),
            Sql::Mysql => mysql().await.query_drop(statements).await.unwrap(),
        }
    }

    /// The first column of the first row of a query, as text.
    async fn query(self, query: &str) -> Option<String> {
        match self {
            Sql::Postgresql => postgres()
                .await
                .query_opt(&format!("SELECT ({query})::text"), &[])
                .await
                .unwrap()
                .and_then(|row| row.get(0)),
            Sql::Mysql => mysql()
                .await
                .query_first::<Option<String>, _>(format!("SELECT CAST(({query}) AS CHAR)"))
                .await
                .unwrap()
                .flatten(),
        }
    }

    /// Drops the store's table and whatever the store made beside it.
    async fn drop_store(self, table: &str) {
        match self {
            Sql::Postgresql => {
                self.execute(&format!(
                    "DROP TABLE {table}, {table}_waiters; DROP SEQUENCE {table}_fencing"
                ))
                .await
            }
            Sql::Mysql => {
                self.execute(&format!("DROP TABLE dlock.{table}, dlock.{table}_waiters"))
                    .await
            }
        }
    }
}

pub(crate) async fn postgres() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_connection_string(), NoTls)
        .await
        .expect("the test server answers");
    tokio::spawn(connection);
    client
}

pub(crate) async fn mysql() -> mysql_async::Conn {
    let address = std::env::var("DLOCK_TEST_MYSQL").unwrap();
    let (host, port) = address.rsplit_once(':').unwrap();
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().unwrap())
        .user(Some("dlock"))
        .pass(std::env::var("DLOCK_TEST_MYSQL_PASSWORD").ok());
    mysql_async::Conn::new(options).await.unwrap()
}

async fn a_wrong_password_names_the_field_and_never_shows(sql: Sql) {
    let wrong = sql
        .connection_string()
        .replace(&sql.password(), "hunter2-wrong-guess");
    let file = component("store", sql.type_name(), &[("connectionString", &wrong)]);
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("field spec.metadata 'connectionString'"),
        "{failed}"
    );
    let refused = format!("{} refused the user or its password", sql.name());
    assert!(failed.contains(&refused), "{failed}");
    assert!(!failed.contains("hunter2"), "{failed}");
}

async fn rows_of_expired_locks_are_removed(sql: Sql) {
    let table = format!("cleaned_{}", std::process::id());
    // Rows stay one timeout past their expiry, then the next round removes them.
    let sidecar = sql.sidecar(&[
        ("tableName", &table),
        ("timeout", "1s"),
        ("cleanupInterval", "200ms"),
    ]);
    let api = Api::new(&sidecar).await;
    for _ in 0..3 {
        let resource = unique("cleaned");
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &resource, "a", 1).await,
            Ok(true)
        );
    }
    let count = format!("SELECT count(*) FROM {}", sql.table(&table));
    assert_eq!(sql.query(&count).await.as_deref(), Some("3"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while sql.query(&count).await.as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "expired rows were never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sidecar);
    sql.drop_store(&table).await;
}

async fn an_older_layout_is_migrated_with_its_locks(sql: Sql) {
    let table = format!("classic_{}", std::process::id());
    let resource = unique("migrated");
    let key = format!("lock||app||{resource}");
    // Layout 1, the classic lock table, holding a live lock of another owner.
    let classic = match sql {
        Sql::Postgresql => format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (key text PRIMARY KEY, owner text NOT NULL,
                                   expires_at timestamptz NOT NULL);
             INSERT INTO {table} VALUES ('{key}', 'old', now() + interval '1 hour');"
        ),
        Sql::Mysql => format!(
            "CREATE DATABASE IF NOT EXISTS dlock;
             DROP TABLE IF EXISTS dlock.{table};
             CREATE TABLE dlock.{table} (lock_key VARBINARY(255) PRIMARY KEY,
                 owner VARBINARY(255) NOT NULL, expires_at DATETIME(6) NOT NULL);
             INSERT INTO dlock.{table}
                 VALUES ('{key}', 'old', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR);"
        ),
    };
    sql.execute(&classic).await;

    let sidecar = sql.sidecar(&[("tableName", &table)]);
    let api = Api::new(&sidecar).await;
    // The old lock survived the migration, and its owner still holds it.
    let lock = || api.lock(Protocol::Grpc, "store", &resource, "new", 60);
    assert_eq!(lock().await, Ok(false));
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "old").await,
        Ok(SUCCESS)
    );
    assert_eq!(lock().await, Ok(true));
    let comment = match sql {
        Sql::Postgresql => format!("obj_description('{table}'::regclass, 'pg_class')"),
        Sql::Mysql => format!(
            "SELECT table_comment FROM information_schema.tables \
             WHERE table_schema = 'dlock' AND table_name = '{table}'"
        ),
    };
    assert_eq!(
        sql.query(&comment).await.as_deref(),
        Some("dlock lock table, layout 4")
    );
    // The migration numbered the old row 1; the new grant came after it.
    let token = sql
        .query(&format!(
            "SELECT fencing_token FROM {} WHERE owner = 'new'",
            sql.table(&table)
        ))
        .await
        .expect("the new owner's row");
    assert!(token.parse::<u64>().unwrap() > 1, "token {token}");
    drop(sidecar);
    sql.drop_store(&table).await;
}

async fn a_layout_2_table_gains_the_holders_column_with_its_locks(sql: Sql) {
    let table = format!("layout2_{}", std::process::id());
    let resource = unique("kept");
    let key = format!("lock||app||{resource}");
    // Layout 2, as the dlock before shared locks made it, holding a live lock of another
    // owner under token 5.
    let made = match sql {
        Sql::Postgresql => format!(
            "DROP TABLE IF EXISTS {table};
             DROP SEQUENCE IF EXISTS {table}_fencing;
             CREATE SEQUENCE {table}_fencing START 6;
             CREATE TABLE {table} (key text PRIMARY KEY, owner text NOT NULL,
                 expires_at timestamptz NOT NULL, fencing_token bigint NOT NULL);
             CREATE INDEX ON {table} (expires_at);
             COMMENT ON TABLE {table} IS 'dlock lock table, layout 2';
             INSERT INTO {table} VALUES ('{key}', 'old', now() + interval '1 hour', 5);"
        ),
        Sql::Mysql => format!(
            "CREATE DATABASE IF NOT EXISTS dlock;
             DROP TABLE IF EXISTS dlock.{table};
             CREATE TABLE dlock.{table} (key_hash BINARY(32) NOT NULL PRIMARY KEY,
                 lock_key BLOB NOT NULL, owner BLOB NOT NULL, expires_at DATETIME(6) NOT NULL,
                 fencing_token BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
                 UNIQUE KEY fencing (fencing_token), KEY expires (expires_at))
                 ENGINE = InnoDB COMMENT = 'dlock lock table, layout 2';
             INSERT INTO dlock.{table} (key_hash, lock_key, owner, expires_at, fencing_token)
                 VALUES (UNHEX(SHA2('{key}', 256)), '{key}', 'old',
                         UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, 5);"
        ),
    };
    sql.execute(&made).await;

    let sidecar = sql.sidecar(&[("tableName", &table)]);
    let api = Api::new(&sidecar).await;
    let lock = || api.lock(Protocol::Grpc, "store", &resource, "new", 60);
    assert_eq!(
        lock().await,
        Ok(false),
        "the lock held before is held after"
    );
    let schema = match sql {
        Sql::Postgresql => "current_schema()",
        Sql::Mysql => "'dlock'",
    };
    let holders = format!(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = {schema} \
         AND table_name = '{table}' AND column_name = 'holders'"
    );
    assert_eq!(sql.query(&holders).await.as_deref(), Some("1"));
    let waiters = format!(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = {schema} \
         AND table_name = '{table}_waiters'"
    );
    assert_eq!(
        sql.query(&waiters).await.as_deref(),
        Some("1"),
        "the migration made the waiters table"
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "old").await,
        Ok(SUCCESS)
    );
    assert_eq!(lock().await, Ok(true));
    let token = sql
        .query(&format!(
            "SELECT fencing_token FROM {} WHERE owner = 'new'",
            sql.table(&table)
        ))
        .await
        .expect("the new owner's row");
    assert!(token.parse::<u64>().unwrap() > 5, "token {token}");
    drop(sidecar);
    sql.drop_store(&table).await;
}

/// The store on `sql`'s database, driven directly rather than through a sidecar.
async fn store_on(sql: &Sql) -> std::sync::Arc<dyn dlock::lock::LockStore> {
    let connection = sql.connection_string();
    let metadata: Metadata = [("connectionString", connection.as_str())]
        .into_iter()
        .collect();
    dlock::startup::StoreTypes::new()
        .build(sql.type_name(), &metadata)
        .await
        .expect("a build with the SQL stores")
        .expect("the store starts")
}

/// A plain take over a shared lock that expired leaves no trace of its holders: a shared
/// request then finds the plain lock held, and only its owner may release it.
async fn a_plain_take_over_an_expired_shared_lock_leaves_no_holders(sql: Sql) {
    let store = store_on(&sql).await;
    let key = format!("lock||app||{}", unique("taken-over"));
    let long = Duration::from_secs(60);
    let shared = store.acquire(&key, "reader", Duration::from_millis(200), Kind::shared(0));
    assert!(matches!(shared.await, Ok(TryLockOutcome::Granted(_))));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let plain = store.try_lock(&key, "writer", long).await;
    assert!(matches!(plain, Ok(TryLockOutcome::Granted(_))), "{plain:?}");
    let reader = store.acquire(&key, "reader", long, Kind::shared(0)).await;
    assert_eq!(reader, Ok(TryLockOutcome::Held));
    assert_eq!(
        store.unlock(&key, "reader").await,
        Ok(OwnerChecked::HeldByOther)
    );
    assert_eq!(
        store.unlock(&key, "writer").await,
        Ok(OwnerChecked::Applied)
    );
}

/// A released key is free at once to a take made in a transaction (any kind but the plain
/// try), as it is to the plain statements: a release stamps the row's expiry to the
/// microsecond, and a transaction's take that reads it within the same millisecond must not
/// count it held. Many rounds, since each meets that millisecond only by chance.
async fn a_released_key_is_free_at_once_to_every_kind_of_take(sql: Sql) {
    let store = store_on(&sql).await;
    let key = format!("lock||app||{}", unique("released"));
    let long = Duration::from_secs(60);
    for round in 0..200 {
        let plain = store.try_lock(&key, "plain", long).await;
        assert!(matches!(plain, Ok(TryLockOutcome::Granted(_))), "{plain:?}");
        assert_eq!(store.unlock(&key, "plain").await, Ok(OwnerChecked::Applied));
        let reentrant = store.acquire(&key, "reentrant", long, Kind::PLAIN.reentrant());
        let reentrant = reentrant.await;
        assert!(
            matches!(reentrant, Ok(TryLockOutcome::Granted(_))),
            "round {round}: a take right after a release found the key {reentrant:?}"
        );
        assert_eq!(
            store.unlock(&key, "reentrant").await,
            Ok(OwnerChecked::Applied)
        );
    }
}

async fn unusable_values_in_the_table_are_an_error_naming_the_column(sql: Sql) {
    let table = format!("unusable_{}", std::process::id());
    let (null_owner, negative) = (unique("null-owner"), unique("negative"));
    let key = |resource: &str| format!("lock||app||{resource}");
    let (null_key, negative_key) = (key(&null_owner), key(&negative));
    // Layout 2 (migrated on start), made by hand: the owner may be NULL, the token negative.
    let made = match sql {
        Sql::Postgresql => format!(
            "DROP TABLE IF EXISTS {table};
             CREATE SEQUENCE IF NOT EXISTS {table}_fencing;
             CREATE TABLE {table} (key text PRIMARY KEY, owner text,
                 expires_at timestamptz NOT NULL, fencing_token bigint NOT NULL);
             COMMENT ON TABLE {table} IS 'dlock lock table, layout 2';
             INSERT INTO {table} VALUES
                 ('{null_key}', NULL, now() + interval '1 hour', 1),
                 ('{negative_key}', 'x', now() + interval '1 hour', -3);"
        ),
        Sql::Mysql => format!(
            "CREATE DATABASE IF NOT EXISTS dlock;
             DROP TABLE IF EXISTS dlock.{table};
             CREATE TABLE dlock.{table} (key_hash BINARY(32) NOT NULL PRIMARY KEY,
                 lock_key BLOB NOT NULL, owner BLOB NULL, expires_at DATETIME(6) NOT NULL,
                 fencing_token BIGINT NOT NULL AUTO_INCREMENT, UNIQUE KEY fencing (fencing_token))
                 ENGINE = InnoDB COMMENT = 'dlock lock table, layout 2';
             INSERT INTO dlock.{table} (key_hash, lock_key, owner, expires_at, fencing_token) VALUES
                 (UNHEX(SHA2('{null_key}', 256)), '{null_key}', NULL,
                  UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, 1),
                 (UNHEX(SHA2('{negative_key}', 256)), '{negative_key}', 'x',
                  UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, -3);"
        ),
    };
    sql.execute(&made).await;
    let sidecar = sql.sidecar(&[("tableName", &table)]);
    let locks = sidecar.locks().await;
    let quoted = match sql {
        Sql::Postgresql => format!("\"{table}\""),
        Sql::Mysql => format!("`dlock`.`{table}`"),
    };
    let refused = |failure: Option<Failure>, column: &str| {
        let Some(Failure::Grpc { message, .. }) = failure else {
            panic!("not refused over gRPC: {failure:?}");
        };
        let named =
            format!("the lock table {quoted} holds a value dlock can't use in its column {column}");
        assert!(message.contains(&named), "{message}");
    };
    refused(
        inspect_grpc(&locks, "store", &null_owner).await.err(),
        "owner",
    );
    refused(list_grpc(&locks, "store", &null_owner).await.err(), "owner");
    let token = inspect_grpc(&locks, "store", &negative).await.err();
    assert!(format!("{token:?}").contains("-3"), "{token:?}");
    refused(token, "fencing_token");
    // The sidecar is still up, and the store works for every other key.
    let api = Api::new(&sidecar).await;
    let free = unique("free");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &free, "a", 60).await,
        Ok(true)
    );
    assert!(!sidecar.logs().contains("panicked"), "{}", sidecar.logs());
    drop(sidecar);
    sql.drop_store(&table).await;
}

/// The tests above, for one database.
macro_rules! sql_store_tests {
    ($module:ident, $sql:expr) => {
        mod $module {
            #[tokio::test]
            async fn a_wrong_password_names_the_field_and_never_shows() {
                super::a_wrong_password_names_the_field_and_never_shows($sql).await;
            }

            #[tokio::test]
            async fn rows_of_expired_locks_are_removed() {
                super::rows_of_expired_locks_are_removed($sql).await;
            }

            #[tokio::test]
            async fn an_older_layout_is_migrated_with_its_locks() {
                super::an_older_layout_is_migrated_with_its_locks($sql).await;
            }

            #[tokio::test]
            async fn a_layout_2_table_gains_the_holders_column_with_its_locks() {
                super::a_layout_2_table_gains_the_holders_column_with_its_locks($sql).await;
            }

            #[tokio::test]
            async fn a_plain_take_over_an_expired_shared_lock_leaves_no_holders() {
                super::a_plain_take_over_an_expired_shared_lock_leaves_no_holders($sql).await;
            }

            #[tokio::test]
            async fn a_released_key_is_free_at_once_to_every_kind_of_take() {
                super::a_released_key_is_free_at_once_to_every_kind_of_take($sql).await;
            }

            #[tokio::test]
            async fn unusable_values_in_the_table_are_an_error_naming_the_column() {
                super::unusable_values_in_the_table_are_an_error_naming_the_column($sql).await;
            }
        }
    };
}

sql_store_tests!(postgresql, super::Sql::Postgresql);
sql_store_tests!(mysql, super::Sql::Mysql);
