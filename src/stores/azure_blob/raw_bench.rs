//! The raw minimum a lock costs on the blob service, for the figures scripts/bench.sh sets
//! beside `dlock bench`: one lease acquired and released on a blob, straight through this
//! store's client (the same HTTP stack and signing), no record, no checks; 2 requests per
//! pair. The clients and pairs are the SQL kit's measuring loop's (`DLOCK_BENCH_CLIENTS`,
//! `DLOCK_BENCH_PAIRS`). Not run by the suite:
//!
//! ```text
//! DLOCK_BENCH_AZURITE=127.0.0.1:10100 cargo test --release --lib raw_lease_pairs -- --ignored --nocapture
//! ```

use std::sync::Arc;

use super::account::{DEV_ACCOUNT, DEV_ACCOUNT_KEY};
use super::client::{BlobClient, LeaseAction, Written};
use super::lease_id;
use super::settings::Settings;
use crate::config::Metadata;
use crate::stores::sql::raw_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: needs DLOCK_BENCH_AZURITE"]
async fn raw_lease_pairs() {
    let address = std::env::var("DLOCK_BENCH_AZURITE").expect("DLOCK_BENCH_AZURITE=host:port");
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};\
         BlobEndpoint=http://{address}/{DEV_ACCOUNT};"
    );
    let metadata: Metadata = [
        ("connectionString", connection.as_str()),
        ("containerName", "dlock-bench"),
    ]
    .into_iter()
    .collect();
    let client = Arc::new(BlobClient::new(&Settings::from_metadata(&metadata).unwrap()).unwrap());
    client.create_container().await.unwrap();
    for clients in raw_bench::client_counts() {
        // Each client's blob, made once, as the store makes a key's blob once.
        for c in 0..clients {
            client.create(&format!("raw-{c}")).await.unwrap();
        }
        let client = client.clone();
        raw_bench::measure("lease acquire+release", clients, move |blob| {
            let client = client.clone();
            async move {
                let id = lease_id(&blob);
                let taken = client
                    .lease(&blob, LeaseAction::Acquire(&id), None)
                    .await
                    .unwrap();
                assert!(matches!(taken, Written::Done(_)), "{blob}: not leased");
                client
                    .lease(&blob, LeaseAction::Release(&id), None)
                    .await
                    .unwrap();
            }
        })
        .await;
    }
}
