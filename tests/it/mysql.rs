//! `lock.mysql`'s own behaviour beyond the suites and `sql_stores.rs`: TLS with the server's
//! certificate checked.

use crate::support::api::Api;
use crate::support::certs::Certs;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::servers::Mariadb;

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
