//! lock.azure.blobstorage beyond the conformance suite: a one-second lock freed on time by the
//! storage service's clock, its holder's sidecar alive or killed; the container created on
//! first use; the ways in that start a sidecar against Azurite (a key, a shared access
//! signature, `UseDevelopmentStorage=true`); a wrong key or signature refused at start-up,
//! naming its field.

use std::time::{Duration, Instant};

use crate::support::api::Api;
use crate::support::azure_sas::account_sas;
use crate::support::backend::{azurite_metadata, unique, Backend, AZURITE_ACCOUNT, AZURITE_KEY};
use crate::support::dlockd::{component, refused_component, Dlockd, Options};
use crate::support::locks::{acquire, try_acquire};
use crate::support::servers::{shared, Azurite};

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

#[tokio::test]
async fn a_shared_access_signature_starts_a_sidecar_in_either_form() {
    let address = shared("DLOCK_TEST_AZURITE");
    let sas = account_sas("rwdlac");
    let in_the_string = sidecar_with(&[
        (
            "connectionString",
            format!("BlobEndpoint=http://{address}/{AZURITE_ACCOUNT};SharedAccessSignature={sas}"),
        ),
        ("containerName", unique("sas-string").to_lowercase()),
    ]);
    Api::new(&in_the_string).await.smoke("store").await;
    let in_fields = sidecar_with(&[
        ("accountName", AZURITE_ACCOUNT.into()),
        ("sasToken", format!("?{sas}")),
        ("endpoint", format!("http://{address}")),
        ("containerName", unique("sas-fields").to_lowercase()),
    ]);
    Api::new(&in_fields).await.smoke("store").await;
}

#[tokio::test]
async fn a_signature_the_service_refuses_stops_start_up_naming_the_field() {
    let address = shared("DLOCK_TEST_AZURITE");
    let endpoint = format!("http://{address}");
    // Read and list only: the container cannot be created with it.
    let read_only = account_sas("rl");
    refused_component(
        TYPE,
        &[
            ("accountName", AZURITE_ACCOUNT),
            ("sasToken", &read_only),
            ("endpoint", &endpoint),
            ("containerName", &unique("sas-read-only").to_lowercase()),
        ],
        "sasToken",
        read_only.split("sig=").nth(1).unwrap(),
    );
    // Permissions that do not match the signature.
    let forged = account_sas("rwdlac").replace("sp=rwdlac", "sp=rwdlacup");
    let connection_string =
        format!("BlobEndpoint=http://{address}/{AZURITE_ACCOUNT};SharedAccessSignature={forged}");
    refused_component(
        TYPE,
        &[
            ("connectionString", &connection_string),
            ("containerName", &unique("sas-forged").to_lowercase()),
        ],
        "connectionString",
        forged.split("sig=").nth(1).unwrap(),
    );
}

/// `UseDevelopmentStorage=true` means the emulator on its well-known port, 10000, so this test
/// starts a private Azurite there.
#[tokio::test]
async fn use_development_storage_starts_a_sidecar_on_the_emulator() {
    let _azurite = Azurite::start_on(10000);
    let sidecar = sidecar_with(&[
        ("connectionString", "UseDevelopmentStorage=true".into()),
        ("containerName", "dlock-dev".into()),
    ]);
    Api::new(&sidecar).await.smoke("store").await;
}
