//! DAPR_API_TOKEN guards dlock's own routes as it guards Dapr's: every route refuses a call
//! without the token, on both doors, and serves one with it.

use std::time::Duration;

use dlock::cli::http_client::HttpClient;
use serde_json::json;
use tonic::Code;

use crate::support::api::Failure;
use crate::support::backend::unique;
use crate::support::dlockd::{Dlockd, Options};
use crate::support::locks::{acquire_grpc, inspect_grpc, request};
use crate::support::locks_http::{acquire_body, granted_token, inspected};

#[tokio::test]
async fn dapr_api_token_covers_our_routes_too() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DAPR_API_TOKEN".into(), "t".into())],
        ..Options::in_memory()
    });
    let resource = unique("token");
    let body = acquire_body(&resource, "o", 30, 0).to_string();

    // HTTP: every route of ours needs the header.
    let anonymous = sidecar.http_client();
    let wrong = HttpClient::new(&sidecar.http, Some("u".into()));
    for client in [&anonymous, &wrong] {
        for route in [
            "acquire",
            "renew",
            "release",
            "inspect",
            "list",
            "force-release",
        ] {
            let path = format!("/dlock/v1/{route}/store");
            let answer = client.post(&path, body.clone()).await.unwrap();
            assert_eq!(
                (answer.status, &answer.body[..]),
                (401, &b"invalid api token"[..]),
                "{path}"
            );
        }
    }
    let authorized = HttpClient::new(&sidecar.http, Some("t".into()));
    let answer = authorized
        .post("/dlock/v1/acquire/store", body.clone())
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    // Granted to "o": the refused calls took nothing.
    granted_token(&answer.json());
    let answer = authorized
        .post(
            "/dlock/v1/inspect/store",
            json!({"resourceId": resource}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(inspected(&answer.json()).unwrap().lock_owner, "o");

    // gRPC: without metadata, UNAUTHENTICATED; with it, served.
    assert!(
        std::env::var_os("DAPR_API_TOKEN").is_none(),
        "the test process must not set DAPR_API_TOKEN"
    );
    let locks = sidecar.locks().await;
    let other = unique("token-grpc");
    let acquired = acquire_grpc(&locks, "store", &other, "o", 30, 0).await;
    let inspected = inspect_grpc(&locks, "store", &other).await;
    for refused in [acquired.map(|_| ()), inspected.map(|_| ())] {
        assert!(
            matches!(
                refused,
                Err(Failure::Grpc {
                    code: Code::Unauthenticated,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    let mut request = tonic::Request::new(request(&other, "o", 30, Duration::ZERO));
    request
        .metadata_mut()
        .insert("dapr-api-token", "t".parse().unwrap());
    let answer = locks.clone().acquire(request).await.unwrap().into_inner();
    assert!(answer.acquired, "{answer:?}");
}
