//! `lock.postgresql`'s own behaviour beyond the suites and `sql_stores.rs`: a take that
//! stalls after drawing its fencing token never hands out a token below a later grant's, a
//! promoted standby keeps locks working for a sidecar whose connection string lists both
//! servers, and TLS with the server's certificate checked and a client certificate shown.

use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{postgres_connection_string, unique};
use crate::support::certs::Certs;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::try_acquire;
use crate::support::servers::{Outage, Postgres};

/// A client of the shared test server, for a test to look at or prepare the table.
async fn client(connection_string: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(connection_string, NoTls)
        .await
        .expect("the test server answers");
    tokio::spawn(connection);
    client
}

/// A take draws its token (`nextval`, in the `VALUES` row) before PostgreSQL looks for the
/// key's row. A trigger stalls one owner's take right after that draw, while another owner
/// takes the lock with a larger token and releases it; the stalled take must then find the
/// lock's row with that larger token and be refused, not insert a fresh row below it.
#[tokio::test]
async fn a_take_stalled_after_drawing_its_token_never_goes_below_a_later_grant() {
    let connection = postgres_connection_string();
    let table = format!("stalled_{}", std::process::id());
    let file = component(
        "store",
        "lock.postgresql",
        &[("connectionString", &connection), ("tableName", &table)],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file.clone()));
    let db = client(&connection).await;
    db.batch_execute(&format!(
        "CREATE FUNCTION {table}_stall() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.owner = 'stalled' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$;
         CREATE TRIGGER {table}_stall BEFORE INSERT ON {table}
         FOR EACH ROW EXECUTE FUNCTION {table}_stall();"
    ))
    .await
    .unwrap();
    // A fresh sequence's first draw changes is_called, not last_value.
    let drawn = format!("SELECT last_value::text || is_called::text FROM {table}_fencing");
    let before: String = db.query_one(&drawn, &[]).await.unwrap().get(0);

    let resource = unique("stalled");
    let stalled = {
        let (locks, resource) = (sidecar.locks().await, resource.clone());
        tokio::spawn(async move { try_acquire(&locks, &resource, "stalled", 60).await })
    };
    // The stalled take has drawn its token once the sequence moves.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.query_one(&drawn, &[]).await.unwrap().get::<_, String>(0) == before {
        assert!(
            Instant::now() < deadline,
            "the stalled take never drew a token"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Through another sidecar: this one's line would keep the second take behind the first.
    let other = Dlockd::start(Options::with_component("app", file));
    let later = try_acquire(&other.locks().await, &resource, "fast", 60)
        .await
        .expect("the lock is free while the other take stalls");
    let api = Api::new(&other).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "fast").await,
        Ok(SUCCESS)
    );
    if let Some(token) = stalled.await.unwrap() {
        assert!(
            token > later,
            "the stalled take was granted token {token} after token {later} was"
        );
    }
    drop((sidecar, other));
    db.batch_execute(&format!(
        "DROP TABLE {table}; DROP SEQUENCE {table}_fencing; DROP FUNCTION {table}_stall()"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_promoted_standby_keeps_locks_working() {
    let mut primary = Postgres::start();
    let standby = Postgres::standby_of(&primary);
    let both = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=dlock password={} dbname=postgres \
         target_session_attrs=read-write",
        primary.port,
        standby.port,
        std::env::var("DLOCK_TEST_POSTGRES_PASSWORD").unwrap()
    );
    let file = component(
        "store",
        "lock.postgresql",
        &[("connectionString", &both), ("timeout", "1s")],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    let held = unique("failover");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &held, "a", 120).await,
        Ok(true)
    );
    // Streaming replication is asynchronous: wait until the standby has the lock.
    let replica = client(&standby.connection_string()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = replica
            .query(
                "SELECT 1 FROM dlock_locks WHERE key = $1",
                &[&format!("lock||app||{held}")],
            )
            .await
            .unwrap_or_default();
        if !rows.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never had the lock");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    primary.stop();
    standby.promote();
    // The sidecar finds the new primary by itself; calls may fail until it has.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = unique("after-failover");
    loop {
        match api.lock(Protocol::Grpc, "store", &fresh, "b", 60).await {
            Ok(true) => break,
            other => assert!(
                Instant::now() < deadline,
                "no lock after the promotion: {other:?}\n{}",
                sidecar.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The lock taken before the failover is still held, by its owner only.
    assert_eq!(
        api.lock(Protocol::Http, "store", &held, "b", 60).await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &held, "a").await,
        Ok(SUCCESS)
    );
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &held, "b", 60).await,
        Ok(true)
    );
}

/// A server that takes TLS only, from clients with a certificate its CA signed: a sidecar that
/// checks the server's certificate and shows its own serves; one without a client certificate,
/// or that trusts another CA, or that does not use TLS, stops at start-up naming the field.
#[tokio::test]
async fn tls_with_the_server_checked_and_a_client_certificate() {
    let certs = Certs::new();
    let server = Postgres::start_tls(&certs);
    let base = server.connection_string();
    let password = std::env::var("DLOCK_TEST_POSTGRES_PASSWORD").unwrap();
    let (ca, (cert, key)) = (certs.ca.display(), &certs.client);
    let (cert, key) = (cert.display(), key.display());
    let sidecar_on = |connection: &str| {
        Options::with_component(
            "app",
            component(
                "store",
                "lock.postgresql",
                &[("connectionString", connection)],
            ),
        )
    };

    let good = format!("{base} sslmode=verify-full sslrootcert={ca} sslcert={cert} sslkey={key}");
    let sidecar = Dlockd::start(sidecar_on(&good));
    Api::new(&sidecar).await.smoke("store").await;

    let other_ca = Certs::new();
    for refused in [
        format!("{base} sslmode=verify-full sslrootcert={ca}"),
        format!(
            "{base} sslmode=require sslrootcert={} sslcert={cert} sslkey={key}",
            other_ca.ca.display()
        ),
        format!("{base} sslmode=disable"),
    ] {
        let failed = Dlockd::start_fails(sidecar_on(&refused)).output;
        assert!(
            failed.contains("field spec.metadata 'connectionString'"),
            "{refused}: {failed}"
        );
        assert!(!failed.contains(&password), "{failed}");
    }
}
