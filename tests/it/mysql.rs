//! `lock.mysql`'s own behaviour beyond the suites: a refused password names the field and
//! never shows, a table an older dlock made is migrated with its locks, rows of expired
//! locks are removed in the background, and TLS with the server's certificate checked.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{mysql_dsn, unique};
use crate::support::certs::Certs;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::servers::Mariadb;

#[tokio::test]
async fn a_wrong_password_names_the_field_and_never_shows() {
    let password = std::env::var("DLOCK_TEST_MYSQL_PASSWORD").unwrap();
    let wrong = mysql_dsn().replace(&password, "hunter2-wrong-guess");
    let file = component("store", "lock.mysql", &[("connectionString", &wrong)]);
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("field spec.metadata 'connectionString'"),
        "{failed}"
    );
    assert!(
        failed.contains("MySQL refused the user or its password"),
        "{failed}"
    );
    assert!(!failed.contains("hunter2"), "{failed}");
}

/// A connection to the shared test server, for a test to look at or prepare the table.
async fn connection() -> mysql_async::Conn {
    let address = std::env::var("DLOCK_TEST_MYSQL").unwrap();
    let (host, port) = address.rsplit_once(':').unwrap();
    let options = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().unwrap())
        .user(Some("dlock"))
        .pass(std::env::var("DLOCK_TEST_MYSQL_PASSWORD").ok());
    mysql_async::Conn::new(options).await.unwrap()
}

#[tokio::test]
async fn rows_of_expired_locks_are_removed() {
    let table = format!("cleaned_{}", std::process::id());
    let dsn = mysql_dsn();
    // Rows stay one timeout past their expiry, then the next round removes them.
    let file = component(
        "store",
        "lock.mysql",
        &[
            ("connectionString", &dsn),
            ("tableName", &table),
            ("timeout", "1s"),
            ("cleanupInterval", "200ms"),
        ],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    for _ in 0..3 {
        let resource = unique("cleaned");
        assert_eq!(
            api.lock(Protocol::Grpc, "store", &resource, "a", 1).await,
            Ok(true)
        );
    }
    let mut db = connection().await;
    let count = format!("SELECT count(*) FROM dlock.{table}");
    let rows = |n: Option<i64>| n.unwrap();
    assert_eq!(rows(db.query_first(&count).await.unwrap()), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(db.query_first(&count).await.unwrap()) > 0 {
        assert!(Instant::now() < deadline, "expired rows were never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sidecar);
    db.query_drop(format!("DROP TABLE dlock.{table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_older_layout_is_migrated_with_its_locks() {
    let mut db = connection().await;
    let table = format!("classic_{}", std::process::id());
    let resource = unique("migrated");
    // Layout 1, the classic lock table, holding a live lock of another owner.
    db.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS dlock;
         DROP TABLE IF EXISTS dlock.{table};
         CREATE TABLE dlock.{table} (lock_key VARBINARY(255) PRIMARY KEY,
             owner VARBINARY(255) NOT NULL, expires_at DATETIME(6) NOT NULL);
         INSERT INTO dlock.{table}
             VALUES ('lock||app||{resource}', 'old', UTC_TIMESTAMP(6) + INTERVAL 1 HOUR);"
    ))
    .await
    .unwrap();

    let dsn = mysql_dsn();
    let file = component(
        "store",
        "lock.mysql",
        &[("connectionString", &dsn), ("tableName", &table)],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    // The old lock survived the migration, and its owner still holds it.
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "new", 60)
            .await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "old").await,
        Ok(SUCCESS)
    );
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &resource, "new", 60)
            .await,
        Ok(true)
    );
    let comment: Option<String> = db
        .exec_first(
            "SELECT table_comment FROM information_schema.tables \
             WHERE table_schema = 'dlock' AND table_name = ?",
            (&table,),
        )
        .await
        .unwrap();
    assert_eq!(comment.as_deref(), Some("dlock lock table, layout 2"));
    // The migration numbered the old row 1; the new grant came after it.
    let token: Option<u64> = db
        .query_first(format!(
            "SELECT fencing_token FROM dlock.{table} WHERE owner = 'new'"
        ))
        .await
        .unwrap();
    assert!(token.unwrap() > 1);
    db.query_drop(format!("DROP TABLE dlock.{table}"))
        .await
        .unwrap();
}

/// A server whose user must connect over TLS: a sidecar that checks the server's certificate
/// against its CA (`tls=custom` with `pemPath`), or encrypts without checking
/// (`tls=skip-verify`), serves; one that trusts another CA, or does not use TLS, stops at
/// start-up naming the field.
#[tokio::test]
async fn tls_with_the_server_checked() {
    let certs = Certs::new();
    let server = Mariadb::start_tls(&certs);
    let dsn = server.dsn();
    let password = std::env::var("DLOCK_TEST_MYSQL_PASSWORD").unwrap();
    let ca = certs.ca.display().to_string();
    let sidecar_on = |dsn: String, pem: &str| {
        let mut metadata = vec![("connectionString", dsn.as_str())];
        if !pem.is_empty() {
            metadata.push(("pemPath", pem));
        }
        Options::with_component("app", component("store", "lock.mysql", &metadata))
    };
    for (dsn, pem) in [
        (format!("{dsn}?tls=custom"), ca.as_str()),
        (format!("{dsn}?tls=skip-verify"), ""),
    ] {
        let sidecar = Dlockd::start(sidecar_on(dsn, pem));
        Api::new(&sidecar).await.smoke("store").await;
    }
    let other_ca = Certs::new().ca.display().to_string();
    for (dsn, pem) in [
        (format!("{dsn}?tls=custom"), other_ca.as_str()),
        (dsn.clone(), ""),
    ] {
        let failed = Dlockd::start_fails(sidecar_on(dsn.clone(), pem)).output;
        assert!(
            failed.contains("field spec.metadata 'connectionString'"),
            "{dsn}: {failed}"
        );
        assert!(!failed.contains(&password), "{failed}");
    }
}
