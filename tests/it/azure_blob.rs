//! lock.azure.blobstorage beyond the conformance suite: a one-second lock freed on time by the
//! storage service's clock, its holder's sidecar alive or killed; the container created on
//! first use; the ways in that start a sidecar against Azurite; a wrong key refused at
//! start-up, naming its field.

use std::time::{Duration, Instant};

use crate::support::backend::{azurite_metadata, unique, Backend, AZURITE_ACCOUNT, AZURITE_KEY};
use crate::support::dlockd::{component, refused_component, Dlockd, Options};
use crate::support::locks::{acquire, try_acquire};
use crate::support::servers::shared;

const TYPE: &str = "lock.azure.blobstorage";

/// A sidecar with one `lock.azure.blobstorage` component named `store` with this metadata.
fn sidecar_with(metadata: &[(&str, String)]) -> Dlockd {
    let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Dlockd::start(Options::with_component(
        "app",
        component("store", TYPE, &pairs),
    ))
}

/// A one-second lock is held until shortly before its expiry and taken by a waiter on another
/// sidecar within a second after it.
async fn one_second_lock_frees_on_time(kill_the_holder: bool) {
    let holder = Backend::AzureBlob.sidecar("app", &[("store", None)]);
    let waiter = Backend::AzureBlob.sidecar("app", &[("store", None)]);
    let waiter_locks = waiter.locks().await;
    let key = unique("azure-1s");
    let taken = Instant::now();
    assert!(try_acquire(&holder.locks().await, &key, "holder", 1)
        .await
        .is_some());
    if kill_the_holder {
        holder.kill();
    }
    let granted = acquire(&waiter_locks, &key, "waiter", 30, Duration::from_secs(10))
        .await
        .unwrap();
    let waited = taken.elapsed();
    assert!(granted.is_some());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(2),
        "a one-second lock was taken over after {waited:?}"
    );
}

#[tokio::test]
async fn a_one_second_lock_frees_on_time_while_its_holder_lives() {
    one_second_lock_frees_on_time(false).await;
}

#[tokio::test]
async fn a_one_second_lock_frees_on_time_after_its_holder_was_killed() {
    one_second_lock_frees_on_time(true).await;
}

#[tokio::test]
async fn the_container_is_created_on_first_use() {
    let container = unique("dlock-new");
    let metadata = azurite_metadata(&shared("DLOCK_TEST_AZURITE"), &container);
    let first = sidecar_with(&metadata);
    assert!(
        first.logs().contains("created the lock container"),
        "{}",
        first.logs()
    );
    let key = unique("azure-new");
    assert!(try_acquire(&first.locks().await, &key, "a", 30)
        .await
        .is_some());
    // The container exists now: the next sidecar finds it, and the lock in it.
    let second = sidecar_with(&metadata);
    assert!(!second.logs().contains("created the lock container"));
    assert!(try_acquire(&second.locks().await, &key, "b", 30)
        .await
        .is_none());
}

#[tokio::test]
async fn an_account_name_with_its_key_and_endpoint_starts_a_sidecar() {
    let endpoint = format!("http://{}", shared("DLOCK_TEST_AZURITE"));
    let sidecar = sidecar_with(&[
        ("accountName", AZURITE_ACCOUNT.into()),
        ("accountKey", AZURITE_KEY.into()),
        ("endpoint", endpoint),
        ("containerName", "dlock-test".into()),
    ]);
    let key = unique("azure-parts");
    assert!(try_acquire(&sidecar.locks().await, &key, "a", 30)
        .await
        .is_some());
}

#[tokio::test]
async fn a_wrong_key_stops_start_up_naming_the_field() {
    // A valid base64 key, but not the account's.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmc=";
    let address = shared("DLOCK_TEST_AZURITE");
    let connection_string = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={wrong};\
         BlobEndpoint=http://{address}/{AZURITE_ACCOUNT};"
    );
    refused_component(
        TYPE,
        &[
            ("connectionString", &connection_string),
            ("containerName", "dlock-test"),
        ],
        "connectionString",
        wrong,
    );
    let endpoint = format!("http://{address}");
    refused_component(
        TYPE,
        &[
            ("accountName", AZURITE_ACCOUNT),
            ("accountKey", wrong),
            ("endpoint", &endpoint),
            ("containerName", "dlock-test"),
        ],
        "accountKey",
        wrong,
    );
}
