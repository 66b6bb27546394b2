//! Dapr's API (TryLockAlpha1/UnlockAlpha1 over gRPC, `/v1.0-alpha1/…` over HTTP) as
//! docs/contract.md §2 says, to the letter: every row of the error table, in its order, answered
//! the same on HTTP and gRPC; the HTTP body rules; health, metadata, the API token and the body
//! limit.

use serde_json::json;
use tonic::Code;

use crate::support::api::{Api, Failure, Protocol, BOTH};
use crate::support::dlockd::{Dlockd, Options};
use crate::support::expected::{check, check_unreadable_body, Expected};

#[tokio::test]
async fn error_table_rows_in_order_on_both_protocols() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    // Each case also fails the checks of the rows after its own, which must not answer first:
    // row 1 comes before every other check (here the store is missing and ids are empty), row
    // 3 before rows 4 and 5, row 4 before row 5, row 5 before row 6 (the key check).
    let expiry = || Expected::expiry_not_positive("nope");
    let resource = || Expected::no_resource("nope");
    let owner = || Expected::no_owner("nope");
    // daprd's text to the letter: the stores there are go to the log, not the message.
    let store = || {
        Expected::new(
            400,
            "ERR_LOCK_STORE_NOT_FOUND",
            Code::InvalidArgument,
            "lock store nope not found",
        )
    };
    // (case, store, resource, owner, expiry, the answer)
    let locks = [
        ("expiry", "nope", "", "", 0, expiry()),
        ("expiry", "nope", "", "", -5, expiry()),
        ("resource", "nope", "", "", 5, resource()),
        ("owner", "nope", "r", "", 5, owner()),
        ("store", "nope", "a||b", "o", 5, store()),
        (
            "key",
            "store",
            "a||b",
            "o",
            5,
            Expected::key_with_pipes("ERR_TRY_LOCK", "failed to try acquiring lock", "a||b"),
        ),
    ];
    // (case, store, resource, owner, the answer)
    let unlocks = [
        ("resource", "nope", "", "", resource()),
        ("owner", "nope", "r", "", owner()),
        ("store", "nope", "a||b", "o", store()),
        (
            "key",
            "store",
            "x||",
            "o",
            Expected::key_with_pipes("ERR_UNLOCK", "failed to release lock", "x||"),
        ),
    ];
    for protocol in BOTH {
        for (case, store, resource, owner, expiry, want) in &locks {
            let got = api.lock(protocol, store, resource, owner, *expiry).await;
            check(protocol, &format!("lock: {case}"), got, want);
        }
        for (case, store, resource, owner, want) in &unlocks {
            let got = api.unlock(protocol, store, resource, owner).await;
            check(protocol, &format!("unlock: {case}"), got, want);
        }
    }
    // Nothing above was granted by mistake.
    for protocol in BOTH {
        assert_eq!(
            api.lock(protocol, "store", "a", "o", 5).await,
            Ok(protocol == Protocol::Grpc)
        );
    }
    // The log names the stores there are, once for the name asked for four times.
    let listed = "the lock stores loaded are: store";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !sidecar.logs().contains(listed) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logs = sidecar.logs();
    assert_eq!(logs.matches(listed).count(), 1, "{logs}");
    assert!(logs.contains("lock store nope not found"), "{logs}");
}

#[tokio::test]
async fn without_a_lock_store_every_call_says_not_configured() {
    // Components given, but none of them a lock store.
    let secrets = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: env}\nspec: {type: secretstores.local.env, version: v1}\n";
    let files = &[("env.yaml", secrets.to_string())];
    // Refused at start-up unless asked for.
    let refused = Dlockd::start_fails(Options::with_files("app", files)).output;
    assert!(
        refused.contains("no lock store was loaded from"),
        "{refused}"
    );
    assert!(refused.contains("--allow-no-lock-store"), "{refused}");
    let sidecar = Dlockd::start(Options {
        extra_args: vec!["--allow-no-lock-store".into()],
        ..Options::with_files("app", files)
    });
    let api = Api::new(&sidecar).await;
    let want = Expected::new(
        500,
        "ERR_LOCK_STORE_NOT_CONFIGURED",
        Code::FailedPrecondition,
        "lock store is not configured",
    );
    for protocol in BOTH {
        // Row 1 still comes first.
        check(
            protocol,
            "expiry",
            api.lock(protocol, "s", "r", "o", 0).await,
            &Expected::expiry_not_positive("s"),
        );
        // Row 2 comes before rows 3 to 5.
        check(
            protocol,
            "lock",
            api.lock(protocol, "s", "", "", 5).await,
            &want,
        );
        check(
            protocol,
            "unlock",
            api.unlock(protocol, "s", "", "").await,
            &want,
        );
    }
}

#[tokio::test]
async fn http_bodies_are_read_the_protobuf_json_way() {
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    let lock = |body: &str| api.post("/v1.0-alpha1/lock/store", body.to_string());

    // Row 0: not JSON, or not this message.
    for body in [
        "{",
        "[1]",
        r#"{"resourceId": 5}"#,
        r#"{"expiryInSeconds": "soon"}"#,
        // Numbers in strings as strictly as Go's protobuf JSON reader takes them (each of
        // these was once granted).
        r#"{"resourceId":"r0","lockOwner":"o","expiryInSeconds":" 30"}"#,
        r#"{"resourceId":"r0","lockOwner":"o","expiryInSeconds":"30 "}"#,
        r#"{"resourceId":"r0","lockOwner":"o","expiryInSeconds":"+30"}"#,
        r#"{"resourceId":"r0","lockOwner":"o","expiryInSeconds":"030"}"#,
    ] {
        check_unreadable_body(body, lock(body).await);
    }
    // snake_case, a numeric string, unknown fields, a storeName in the body (the URL wins).
    let body = r#"{"resource_id":"r1","lock_owner":"o","expiry_in_seconds":"30","storeName":"other","x":{}}"#;
    assert_eq!(lock(body).await, Ok(json!({"success": true})));
    assert_eq!(lock(body).await, Ok(json!({"success": false})));
    // The unlock status is written out, 0 included.
    let unlock = |body: &str| api.post("/v1.0-alpha1/unlock/store", body.to_string());
    assert_eq!(
        unlock(r#"{"resourceId":"r1","lockOwner":"o"}"#).await,
        Ok(json!({"status": 0}))
    );
    assert_eq!(
        unlock(r#"{"resourceId":"r1","lockOwner":"o"}"#).await,
        Ok(json!({"status": 1}))
    );
    // An empty body is all defaults: for a lock, a zero expiry.
    match lock("").await {
        Err(Failure::Http {
            status: 400,
            message,
            ..
        }) => {
            assert_eq!(
                message,
                "ExpiryInSeconds is not positive in lock store store"
            )
        }
        other => panic!("{other:?}"),
    }
    match unlock("").await {
        Err(Failure::Http {
            status: 400,
            message,
            ..
        }) => {
            assert_eq!(message, "ResourceId is empty in lock store store")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn health_and_metadata_answer_and_unserved_rpcs_are_unimplemented() {
    let sidecar = Dlockd::start(Options {
        app_id: "bpm".into(),
        ..Options::in_memory()
    });
    let http = sidecar.http_client();
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        assert_eq!(http.get(path).await.unwrap().status, 204, "{path}");
    }
    let metadata = http.get("/v1.0/metadata").await.unwrap();
    assert_eq!(metadata.status, 200);
    let metadata = metadata.json();
    assert_eq!(metadata["id"], "bpm");
    assert!(metadata["runtimeVersion"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(metadata["components"][0]["name"], "store");
    assert_eq!(metadata["components"][0]["type"], "lock.in-memory");
    assert_eq!(metadata["components"][0]["version"], "v1");

    let mut client = sidecar.client().await;
    let grpc = client
        .get_metadata(dlock::proto::dapr::GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.id, "bpm");
    assert_eq!(grpc.registered_components[0].name, "store");

    // An RPC of Dapr's service that dlockd does not serve.
    let channel = tonic::transport::Endpoint::from_shared(sidecar.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/dapr.proto.runtime.v1.Dapr/GetState",
    );
    let answer: Result<tonic::Response<()>, _> = raw
        .unary(
            tonic::Request::new(()),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(answer.unwrap_err().code(), Code::Unimplemented);
}

#[tokio::test]
async fn api_token_is_enforced_on_both_protocols() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DAPR_API_TOKEN".into(), "s3cret-token".into())],
        ..Options::in_memory()
    });
    // HTTP: health is open, everything else needs the header.
    let anonymous = sidecar.http_client();
    assert_eq!(anonymous.get("/v1.0/healthz").await.unwrap().status, 204);
    assert_eq!(
        anonymous
            .get("/v1.0/healthz/outbound")
            .await
            .unwrap()
            .status,
        204
    );
    for path in ["/v1.0/metadata"] {
        let answer = anonymous.get(path).await.unwrap();
        assert_eq!(
            (answer.status, &answer.body[..]),
            (401, &b"invalid api token"[..])
        );
    }
    let body = r#"{"resourceId":"r","lockOwner":"o","expiryInSeconds":5}"#;
    let answer = anonymous
        .post("/v1.0-alpha1/lock/store", body)
        .await
        .unwrap();
    assert_eq!(answer.status, 401);
    let wrong = dlock::cli::http_client::HttpClient::new(&sidecar.http, Some("wrong".into()));
    assert_eq!(
        wrong
            .post("/v1.0-alpha1/lock/store", body)
            .await
            .unwrap()
            .status,
        401
    );
    let right =
        dlock::cli::http_client::HttpClient::new(&sidecar.http, Some("s3cret-token".into()));
    let answer = right.post("/v1.0-alpha1/lock/store", body).await.unwrap();
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"success": true}))
    );

    // gRPC: without the metadata, UNAUTHENTICATED; with it, served.
    let mut client = sidecar.client().await;
    let request = dlock::proto::dapr::TryLockRequest {
        store_name: "store".into(),
        resource_id: "g".into(),
        lock_owner: "o".into(),
        expiry_in_seconds: 5,
    };
    let refused = client.try_lock_alpha1(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let mut authed = tonic::Request::new(request);
    authed
        .metadata_mut()
        .insert("dapr-api-token", "s3cret-token".parse().unwrap());
    assert!(
        client
            .try_lock_alpha1(authed)
            .await
            .unwrap()
            .into_inner()
            .success
    );
    // The token never reaches the logs.
    assert!(!sidecar.logs().contains("s3cret-token"));
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_refused() {
    let sidecar = Dlockd::start(Options {
        extra_args: vec!["--max-body-size".into(), "64Ki".into()],
        ..Options::in_memory()
    });
    let api = Api::new(&sidecar).await;
    let big = "x".repeat(70 * 1024);
    // On Dapr's route and on dlock's own, in Dapr's error shape (`post` checks it is JSON).
    for path in ["/v1.0-alpha1/lock/store", "/dlock/v1/acquire/store"] {
        let body = format!(r#"{{"resourceId":"{big}","lockOwner":"o","expiryInSeconds":5}}"#);
        match api.post(path, body).await {
            Err(Failure::Http {
                status: 413,
                error_code,
                message,
            }) => {
                assert_eq!(error_code, "ERR_MALFORMED_REQUEST", "{path}");
                assert!(message.contains("--max-body-size"), "{path}: {message}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    let refused = api
        .lock(Protocol::Grpc, "store", &big, "o", 5)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Failure::Grpc {
                code: Code::OutOfRange | Code::ResourceExhausted,
                ..
            }
        ),
        "{refused:?}"
    );
    // Under the limit is fine on both.
    let fits = "y".repeat(60 * 1024);
    for protocol in BOTH {
        let resource = format!("{fits}{protocol:?}");
        assert_eq!(
            api.lock(protocol, "store", &resource, "o", 5).await,
            Ok(true)
        );
    }
}

#[tokio::test]
async fn transport_errors_answer_in_daprs_error_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar = Dlockd::start(Options::in_memory());
    let api = Api::new(&sidecar).await;
    // A chunked body whose chunk size is not hexadecimal.
    let address = sidecar.http.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(address).await.unwrap();
    conn.write_all(
        b"POST /v1.0-alpha1/lock/store HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(
        answer.contains(r#""errorCode":"ERR_MALFORMED_REQUEST""#),
        "{answer}"
    );
    // A lock route asked with GET.
    let answer = sidecar
        .http_client()
        .get("/v1.0-alpha1/lock/store")
        .await
        .unwrap();
    assert_eq!(answer.status, 405);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["errorCode"], "ERR_MALFORMED_REQUEST");
    assert_eq!(json["message"], "method GET is not allowed on this route");
    // Nothing was granted.
    assert_eq!(
        api.lock(Protocol::Grpc, "store", "hello", "o", 5).await,
        Ok(true)
    );
}

#[tokio::test]
async fn a_body_cut_short_answers_in_daprs_error_shape_on_every_lock_route() {
    let sidecar = Dlockd::start(Options::in_memory());
    let address = sidecar.http.trim_start_matches("http://").to_string();
    let body = br#"{"resourceId":"cut","lockOwner":"o","expiryInSeconds":5}"#;
    let routes = [
        "/v1.0-alpha1/lock/store",
        "/v1.0-alpha1/unlock/store",
        "/dlock/v1/acquire/store",
        "/dlock/v1/renew/store",
        "/dlock/v1/inspect/store",
        "/dlock/v1/list/store",
        "/dlock/v1/force-release/store",
    ];
    let head = |route: &str, length: usize| {
        format!("POST {route} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n")
    };
    for route in routes {
        // Whole, part or none of the body sent, under a Content-Length that promises more.
        for sent in [body.len(), body.len() / 2, 0] {
            let request = [head(route, body.len() + 7).as_bytes(), &body[..sent]].concat();
            let answer = sent_then_half_closed(&address, &request).await;
            let case = format!("{route} with {sent} bytes sent: {answer}");
            let error = one_dapr_error(&case, &answer, 400);
            assert_eq!(error["errorCode"], "ERR_MALFORMED_REQUEST", "{case}");
            let message = error["message"].as_str().unwrap();
            assert!(
                message.starts_with("failed reading the HTTP body"),
                "{case}"
            );
        }
        // A Content-Length shorter than the body, on a connection kept alive: the body read
        // ends inside its JSON, and the rest of it must not be read as a next request (which
        // the HTTP layer would refuse with an empty 400 of its own).
        for short in [1, body.len() / 2] {
            let request = [head(route, body.len() - short).as_bytes(), body].concat();
            let answer = sent_then_half_closed(&address, &request).await;
            let case = format!("{route} with a Content-Length {short} short: {answer}");
            // Force release checks the admin token (there is none here) before the body.
            let (status, error_code) = if route.contains("force-release") {
                (403, "ERR_FORBIDDEN")
            } else {
                (400, "ERR_MALFORMED_REQUEST")
            };
            let error = one_dapr_error(&case, &answer, status);
            assert_eq!(error["errorCode"], error_code, "{case}");
        }
    }
    // Nothing was granted: the lock is free for another owner.
    let api = Api::new(&sidecar).await;
    assert_eq!(
        api.lock(Protocol::Grpc, "store", "cut", "other", 5).await,
        Ok(true)
    );
}

/// Sends `request` on a new connection, then closes the sending side, as a client that gives
/// up does, and reads all the sidecar answers before it closes.
async fn sent_then_half_closed(address: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(address).await.unwrap();
    conn.write_all(request).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let read = conn.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The body of `answer`, which must be one HTTP answer with `status` and Dapr's error shape.
fn one_dapr_error(case: &str, answer: &str, status: u16) -> serde_json::Value {
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{case}");
    assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{case}");
    let (_, body) = answer.split_once("\r\n\r\n").expect(case);
    let error: serde_json::Value = serde_json::from_str(body).expect(case);
    assert!(error["errorCode"].is_string(), "{case}");
    assert!(error["message"].is_string(), "{case}");
    error
}

/// An app configured for daprd that calls another building block here hears why nothing
/// answers: 404 in Dapr's error shape, not an empty body.
#[tokio::test]
async fn other_building_blocks_answer_404_saying_only_the_lock_api_is_served() {
    let sidecar = Dlockd::start(Options::in_memory());
    let http = sidecar.http_client();
    let state = http.get("/v1.0/state/statestore/order-1").await.unwrap();
    let published = http
        .post("/v1.0/publish/pubsub/orders", "{}")
        .await
        .unwrap();
    for (path, answer) in [
        ("/v1.0/state/statestore/order-1", state),
        ("/v1.0/publish/pubsub/orders", published),
    ] {
        assert_eq!(answer.status, 404, "{path}");
        let json = answer.json();
        assert_eq!(json["errorCode"], "ERR_NOT_SERVED", "{json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{path} is not served")),
            "{message}"
        );
        assert!(message.contains("need daprd"), "{message}");
    }
}
