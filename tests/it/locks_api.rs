//! dlock's own API (`dlock.v1.Locks` over gRPC, `/dlock/v1/…` over HTTP) seen from outside:
//! the two doors answer alike for the same situations, validate alike, guard force release
//! with the admin token, honour DAPR_API_TOKEN, and share their locks with Dapr's
//! TryLockAlpha1/UnlockAlpha1.

use std::time::{Duration, Instant};

use dlock::cli::connect::Locks;
use dlock::cli::http_client::HttpClient;
use dlock::proto::dlock::{
    AcquireRequest, AcquireResponse, ForceReleaseRequest, InspectRequest, ListRequest, LockInfo,
    RenewRequest,
};
use hyper::body::Bytes;
use serde_json::{json, Value};
use tonic::Code;

use crate::support::api::{
    Api, Failure, Protocol, LOCK_BELONGS_TO_OTHERS, LOCK_DOES_NOT_EXIST, SUCCESS,
};
use crate::support::backend::unique;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks;

/// An admin token distinctive enough that finding it in the logs means it leaked.
const ADMIN: &str = "adm-7f3c9e1b-force";

fn one_store() -> Options {
    Options::with_files(
        "app",
        &[("s.yaml", component("store", "lock.in-memory", &[]))],
    )
}

fn with_admin() -> Options {
    Options {
        env: vec![("DLOCK_ADMIN_TOKEN".into(), ADMIN.into())],
        ..one_store()
    }
}

fn grpc_failure(status: tonic::Status) -> Failure {
    Failure::Grpc {
        code: status.code(),
        message: status.message().to_string(),
    }
}

/// POSTs a JSON body to one of our routes: the answer on 200, a Failure otherwise (with the
/// content type checked either way, by `Api::post`).
async fn post(api: &Api, path: &str, body: Value) -> Result<Value, Failure> {
    api.post(path, body.to_string()).await
}

/// POSTs a raw body with extra headers: (status, content type, body).
async fn raw_post(
    base: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Bytes) {
    let answer = HttpClient::new(base, None)
        .post_with(path, body.to_string(), headers)
        .await
        .expect("HTTP answers");
    (answer.status, answer.content_type, answer.body)
}

/// Force release over HTTP, with the admin header when `admin` is given: the JSON answer on
/// 200, a Failure otherwise.
async fn h_force_release(
    base: &str,
    store: &str,
    resource: &str,
    admin: Option<&str>,
) -> Result<Value, Failure> {
    let headers: Vec<(&str, &str)> = admin
        .map(|t| ("dlock-admin-token", t))
        .into_iter()
        .collect();
    let path = format!("/dlock/v1/force-release/{store}");
    let body = json!({"resourceId": resource}).to_string();
    let (status, content_type, bytes) = raw_post(base, &path, &body, &headers).await;
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "content type of {path}"
    );
    let json: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {bytes:?}"));
    if status == 200 {
        return Ok(json);
    }
    Err(Failure::Http {
        status,
        error_code: json["errorCode"].as_str().unwrap_or_default().to_string(),
        message: json["message"].as_str().unwrap_or_default().to_string(),
    })
}

// ---- gRPC calls answering Result<_, Failure>, for comparison with HTTP ----

async fn g_acquire(
    locks: &Locks,
    store: &str,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait_ms: i64,
) -> Result<AcquireResponse, Failure> {
    locks
        .clone()
        .acquire(AcquireRequest {
            store_name: store.into(),
            resource_id: resource.into(),
            lock_owner: owner.into(),
            expiry_in_seconds: expiry,
            wait_timeout_ms: wait_ms,
            require_fencing: false,
        })
        .await
        .map(|r| r.into_inner())
        .map_err(grpc_failure)
}

async fn g_renew(
    locks: &Locks,
    store: &str,
    resource: &str,
    owner: &str,
    expiry: i32,
) -> Result<i32, Failure> {
    locks
        .clone()
        .renew(RenewRequest {
            store_name: store.into(),
            resource_id: resource.into(),
            lock_owner: owner.into(),
            expiry_in_seconds: expiry,
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(grpc_failure)
}

async fn g_inspect(
    locks: &Locks,
    store: &str,
    resource: &str,
) -> Result<Option<LockInfo>, Failure> {
    let answer = locks
        .clone()
        .inspect(InspectRequest {
            store_name: store.into(),
            resource_id: resource.into(),
        })
        .await
        .map_err(grpc_failure)?
        .into_inner();
    assert_eq!(answer.held, answer.lock.is_some(), "{answer:?}");
    Ok(answer.lock)
}

async fn g_list(locks: &Locks, store: &str, prefix: &str) -> Result<Vec<LockInfo>, Failure> {
    locks
        .clone()
        .list(ListRequest {
            store_name: store.into(),
            prefix: prefix.into(),
        })
        .await
        .map(|r| r.into_inner().locks)
        .map_err(grpc_failure)
}

async fn g_force_release(
    locks: &Locks,
    store: &str,
    resource: &str,
    admin: Option<&str>,
) -> Result<bool, Failure> {
    let mut request = tonic::Request::new(ForceReleaseRequest {
        store_name: store.into(),
        resource_id: resource.into(),
    });
    if let Some(token) = admin {
        request
            .metadata_mut()
            .insert("dlock-admin-token", token.parse().unwrap());
    }
    locks
        .clone()
        .force_release(request)
        .await
        .map(|r| r.into_inner().released)
        .map_err(grpc_failure)
}

// ---- HTTP calls ----

fn acquire_body(resource: &str, owner: &str, expiry: i32, wait_ms: i64) -> Value {
    json!({
        "resourceId": resource,
        "lockOwner": owner,
        "expiryInSeconds": expiry,
        "waitTimeoutMs": wait_ms,
    })
}

async fn h_acquire(
    api: &Api,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait_ms: i64,
) -> Result<Value, Failure> {
    post(
        api,
        "/dlock/v1/acquire/store",
        acquire_body(resource, owner, expiry, wait_ms),
    )
    .await
}

async fn h_renew(api: &Api, resource: &str, owner: &str, expiry: i32) -> Result<Value, Failure> {
    let body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
    post(api, "/dlock/v1/renew/store", body).await
}

async fn h_inspect(api: &Api, resource: &str) -> Result<Value, Failure> {
    post(
        api,
        "/dlock/v1/inspect/store",
        json!({"resourceId": resource}),
    )
    .await
}

async fn h_list(api: &Api, prefix: &str) -> Result<Value, Failure> {
    post(api, "/dlock/v1/list/store", json!({"prefix": prefix})).await
}

/// The JSON the HTTP door should give for a gRPC AcquireResponse.
fn acquire_json(answer: &AcquireResponse) -> Value {
    json!({
        "acquired": answer.acquired,
        "fencingToken": answer.fencing_token.to_string(),
        "hasFencing": answer.has_fencing,
    })
}

/// A granted HTTP acquire: checks its shape and returns the fencing token.
fn granted_token(answer: &Value) -> u64 {
    let object = answer.as_object().expect("an object");
    assert_eq!(object.len(), 3, "{answer}");
    assert_eq!(answer["acquired"], json!(true), "{answer}");
    assert_eq!(answer["hasFencing"], json!(true), "{answer}");
    let token: u64 = answer["fencingToken"]
        .as_str()
        .unwrap_or_else(|| panic!("fencingToken is not a string: {answer}"))
        .parse()
        .unwrap_or_else(|e| panic!("fencingToken is not a u64 ({e}): {answer}"));
    assert!(token > 0, "{answer}");
    token
}

/// A lock object of the HTTP door, read into the gRPC type (string numbers parsed).
fn lock_of(value: &Value) -> LockInfo {
    let object = value.as_object().expect("a lock object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expiresInMs", "fencingToken", "lockOwner", "resourceId"],
        "{value}"
    );
    let number = |field: &str| -> &str {
        value[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string: {value}"))
    };
    LockInfo {
        resource_id: value["resourceId"].as_str().unwrap().to_string(),
        lock_owner: value["lockOwner"].as_str().unwrap().to_string(),
        expires_in_ms: number("expiresInMs").parse().unwrap(),
        fencing_token: number("fencingToken").parse().unwrap(),
    }
}

/// An HTTP inspect answer: Some(lock) when held, None for exactly `{"held":false}`.
fn inspected(answer: &Value) -> Option<LockInfo> {
    match answer["held"].as_bool() {
        Some(true) => {
            assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
            Some(lock_of(&answer["lock"]))
        }
        Some(false) => {
            assert_eq!(answer, &json!({"held": false}));
            None
        }
        None => panic!("inspect answer without a boolean held: {answer}"),
    }
}

fn listed(answer: &Value) -> Vec<LockInfo> {
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    answer["locks"]
        .as_array()
        .unwrap_or_else(|| panic!("list answer without a locks array: {answer}"))
        .iter()
        .map(lock_of)
        .collect()
}

/// Two views of one lock, taken moments apart, agree (the expiry within a second).
fn same_lock(http: &LockInfo, grpc: &LockInfo) {
    assert_eq!(http.resource_id, grpc.resource_id);
    assert_eq!(http.lock_owner, grpc.lock_owner, "{http:?} / {grpc:?}");
    assert_eq!(
        http.fencing_token, grpc.fencing_token,
        "{http:?} / {grpc:?}"
    );
    assert!(
        (http.expires_in_ms - grpc.expires_in_ms).abs() < 1000,
        "{http:?} / {grpc:?}"
    );
}

#[tokio::test]
async fn http_and_grpc_agree() {
    let sidecar = Dlockd::start(one_store());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;
    let on_http = unique("agree-http");
    let on_grpc = unique("agree-grpc");

    // Granted.
    let t_http = granted_token(&h_acquire(&api, &on_http, "a", 30, 0).await.unwrap());
    let granted = g_acquire(&locks, "store", &on_grpc, "a", 30, 0)
        .await
        .unwrap();
    assert!(granted.acquired && granted.has_fencing && granted.fencing_token > 0);
    let t_grpc = granted.fencing_token;
    assert_eq!(
        granted_token(&acquire_json(&granted)),
        t_grpc,
        "the gRPC answer has the HTTP answer's shape"
    );

    // Refused at once with waitTimeoutMs 0: the same answer on both.
    for wait_ms in [0, 300] {
        let started = Instant::now();
        let http = h_acquire(&api, &on_http, "b", 30, wait_ms).await.unwrap();
        let http_took = started.elapsed();
        let started = Instant::now();
        let grpc = g_acquire(&locks, "store", &on_grpc, "b", 30, wait_ms)
            .await
            .unwrap();
        let grpc_took = started.elapsed();
        let refused = json!({"acquired": false, "fencingToken": "0", "hasFencing": false});
        assert_eq!(http, refused, "HTTP, wait {wait_ms} ms");
        assert_eq!(acquire_json(&grpc), refused, "gRPC, wait {wait_ms} ms");
        let waited = Duration::from_millis(wait_ms as u64);
        for (door, took) in [("HTTP", http_took), ("gRPC", grpc_took)] {
            assert!(
                took >= waited,
                "{door} answered after {took:?}, before the {waited:?} wait ran out"
            );
            assert!(
                took < waited + Duration::from_millis(1000),
                "{door} answered after {took:?} for a {waited:?} wait"
            );
        }
    }

    // Inspect a held lock: the holder, the time left, the token acquire gave.
    for (resource, token) in [(&on_http, t_http), (&on_grpc, t_grpc)] {
        let http = inspected(&h_inspect(&api, resource).await.unwrap())
            .unwrap_or_else(|| panic!("{resource} is held"));
        let grpc = g_inspect(&locks, "store", resource)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{resource} is held"));
        assert_eq!(http.resource_id, *resource);
        assert_eq!(http.lock_owner, "a");
        assert_eq!(http.fencing_token, token);
        assert!(
            http.expires_in_ms > 0 && http.expires_in_ms <= 30_000,
            "{http:?}"
        );
        assert!(
            grpc.expires_in_ms > 0 && grpc.expires_in_ms <= 30_000,
            "{grpc:?}"
        );
        same_lock(&http, &grpc);
    }
    // Inspect a free lock.
    let free = unique("agree-free");
    assert_eq!(inspected(&h_inspect(&api, &free).await.unwrap()), None);
    assert_eq!(g_inspect(&locks, "store", &free).await.unwrap(), None);

    // Renew: by the holder, by another owner, of a lock nobody holds.
    for (owner, resource, want) in [
        ("a", &on_http, SUCCESS),
        ("b", &on_http, LOCK_BELONGS_TO_OTHERS),
        ("a", &free, LOCK_DOES_NOT_EXIST),
    ] {
        assert_eq!(
            h_renew(&api, resource, owner, 60).await.unwrap(),
            json!({"status": want}),
            "HTTP renew by {owner}"
        );
    }
    for (owner, resource, want) in [
        ("a", &on_grpc, SUCCESS),
        ("b", &on_grpc, LOCK_BELONGS_TO_OTHERS),
        ("a", &free, LOCK_DOES_NOT_EXIST),
    ] {
        assert_eq!(
            g_renew(&locks, "store", resource, owner, 60).await,
            Ok(want),
            "gRPC renew by {owner}"
        );
    }
    // The renewals took: past the first 30 s, within the new 60 s, token and owner unchanged.
    // A refused renewal created nothing.
    for (resource, token) in [(&on_http, t_http), (&on_grpc, t_grpc)] {
        let http = inspected(&h_inspect(&api, resource).await.unwrap()).unwrap();
        assert!(
            http.expires_in_ms > 30_000 && http.expires_in_ms <= 60_000,
            "{http:?}"
        );
        assert_eq!((http.lock_owner.as_str(), http.fencing_token), ("a", token));
        let grpc = g_inspect(&locks, "store", resource).await.unwrap().unwrap();
        same_lock(&http, &grpc);
    }
    assert_eq!(inspected(&h_inspect(&api, &free).await.unwrap()), None);

    // Successive holders of one lock, taken through either door, get increasing tokens, and
    // inspect on both doors reports the current holder's.
    let chain = unique("agree-chain");
    let mut last = 0u64;
    for (round, door) in [
        Protocol::Http,
        Protocol::Grpc,
        Protocol::Http,
        Protocol::Grpc,
    ]
    .into_iter()
    .enumerate()
    {
        let owner = format!("holder-{round}");
        let token = match door {
            Protocol::Http => granted_token(&h_acquire(&api, &chain, &owner, 30, 0).await.unwrap()),
            Protocol::Grpc => {
                let answer = g_acquire(&locks, "store", &chain, &owner, 30, 0)
                    .await
                    .unwrap();
                assert!(answer.acquired && answer.has_fencing, "{answer:?}");
                answer.fencing_token
            }
        };
        assert!(
            token > last,
            "round {round} over {door:?}: {token} after {last}"
        );
        last = token;
        let http = inspected(&h_inspect(&api, &chain).await.unwrap()).unwrap();
        let grpc = g_inspect(&locks, "store", &chain).await.unwrap().unwrap();
        assert_eq!(
            (http.lock_owner.as_str(), http.fencing_token),
            (owner.as_str(), token)
        );
        same_lock(&http, &grpc);
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &chain, &owner).await,
            Ok(SUCCESS)
        );
    }

    // List: prefix filtering, sorting by resource id, the same locks on both doors.
    let base = unique("agree-list");
    let other = unique("agree-elsewhere");
    let mut tokens = std::collections::HashMap::new();
    for (i, name) in ["c", "a", "b", "ab"].into_iter().enumerate() {
        let resource = format!("{base}/{name}");
        let owner = format!("owner-{name}");
        // Taken through alternating doors.
        let token = if i % 2 == 0 {
            granted_token(&h_acquire(&api, &resource, &owner, 30, 0).await.unwrap())
        } else {
            g_acquire(&locks, "store", &resource, &owner, 30, 0)
                .await
                .unwrap()
                .fencing_token
        };
        tokens.insert(resource, (owner, token));
    }
    granted_token(
        &h_acquire(&api, &format!("{other}/a"), "o", 30, 0)
            .await
            .unwrap(),
    );
    // A lock outside the prefix that shares its start but not the slash.
    granted_token(
        &h_acquire(&api, &format!("{base}x"), "o", 30, 0)
            .await
            .unwrap(),
    );

    let prefix = format!("{base}/");
    let http = listed(&h_list(&api, &prefix).await.unwrap());
    let grpc = g_list(&locks, "store", &prefix).await.unwrap();
    let ids: Vec<&str> = http.iter().map(|l| l.resource_id.as_str()).collect();
    let want: Vec<String> = ["a", "ab", "b", "c"]
        .iter()
        .map(|n| format!("{base}/{n}"))
        .collect();
    assert_eq!(ids, want, "HTTP list, sorted and filtered");
    assert_eq!(grpc.len(), http.len(), "{grpc:?}");
    for (h, g) in http.iter().zip(&grpc) {
        same_lock(h, g);
        let (owner, token) = &tokens[&h.resource_id];
        assert_eq!((&h.lock_owner, h.fencing_token), (owner, *token));
        assert!(h.expires_in_ms > 0 && h.expires_in_ms <= 30_000, "{h:?}");
    }
    // Each listed lock is what inspect says of it.
    for listed_lock in &http {
        let one = inspected(&h_inspect(&api, &listed_lock.resource_id).await.unwrap()).unwrap();
        same_lock(&one, listed_lock);
    }

    // An empty prefix lists every lock this sidecar holds, sorted.
    let all = listed(&h_list(&api, "").await.unwrap());
    let all_ids: Vec<&str> = all.iter().map(|l| l.resource_id.as_str()).collect();
    let mut sorted = all_ids.clone();
    sorted.sort_unstable();
    assert_eq!(all_ids, sorted);
    for expected in want
        .iter()
        .map(String::as_str)
        .chain([on_http.as_str(), on_grpc.as_str()])
    {
        assert!(all_ids.contains(&expected), "{expected} in {all_ids:?}");
    }
    assert!(!all_ids.contains(&chain.as_str()), "released: {all_ids:?}");
    let all_grpc = g_list(&locks, "store", "").await.unwrap();
    assert_eq!(
        all_grpc
            .iter()
            .map(|l| l.resource_id.as_str())
            .collect::<Vec<_>>(),
        all_ids
    );

    // No match: an empty list on both.
    let nothing = unique("agree-nothing");
    assert_eq!(h_list(&api, &nothing).await.unwrap(), json!({"locks": []}));
    assert_eq!(g_list(&locks, "store", &nothing).await.unwrap(), vec![]);
}

/// What an error case answers.
struct Want {
    http_status: u16,
    error_code: &'static str,
    grpc: Code,
    message: String,
}

fn want(http_status: u16, error_code: &'static str, grpc: Code, message: &str) -> Want {
    Want {
        http_status,
        error_code,
        grpc,
        message: message.to_string(),
    }
}

fn malformed(message: &str) -> Want {
    want(400, "ERR_MALFORMED_REQUEST", Code::InvalidArgument, message)
}

fn not_found() -> Want {
    want(
        400,
        "ERR_LOCK_STORE_NOT_FOUND",
        Code::InvalidArgument,
        "lock store nope not found",
    )
}

fn failed(error_code: &'static str, prefix: &str, key: &str) -> Want {
    want(
        500,
        error_code,
        Code::Internal,
        &format!("{prefix}: input key/keyPrefix '{key}' can't contain '||'"),
    )
}

fn check_both(
    case: &str,
    http: Result<impl std::fmt::Debug, Failure>,
    grpc: Result<impl std::fmt::Debug, Failure>,
    want: &Want,
) {
    let http = http
        .err()
        .unwrap_or_else(|| panic!("{case} over HTTP: expected an error"));
    assert_eq!(
        http,
        Failure::Http {
            status: want.http_status,
            error_code: want.error_code.into(),
            message: want.message.clone(),
        },
        "{case} over HTTP"
    );
    let grpc = grpc
        .err()
        .unwrap_or_else(|| panic!("{case} over gRPC: expected an error"));
    assert_eq!(
        grpc,
        Failure::Grpc {
            code: want.grpc,
            message: want.message.clone(),
        },
        "{case} over gRPC"
    );
}

#[tokio::test]
async fn errors_match_on_both_protocols() {
    let sidecar = Dlockd::start(with_admin());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;

    // ---- acquire ----
    let acquire =
        |store: &'static str, resource: &'static str, owner: &'static str, expiry, wait| {
            let api = api.clone();
            let locks = locks.clone();
            async move {
                let http = post(
                    &api,
                    &format!("/dlock/v1/acquire/{store}"),
                    acquire_body(resource, owner, expiry, wait),
                )
                .await;
                let grpc = g_acquire(&locks, store, resource, owner, expiry, wait).await;
                (http, grpc)
            }
        };
    for expiry in [0, -5] {
        let (h, g) = acquire("nope", "", "", expiry, 0).await;
        check_both(
            "acquire: expiry",
            h,
            g,
            &malformed("ExpiryInSeconds is not positive in lock store nope"),
        );
    }
    let (h, g) = acquire("nope", "", "", 5, 0).await;
    check_both(
        "acquire: resource",
        h,
        g,
        &malformed("ResourceId is empty in lock store nope"),
    );
    let (h, g) = acquire("nope", "r", "", 5, 0).await;
    check_both(
        "acquire: owner",
        h,
        g,
        &malformed("LockOwner is empty in lock store nope"),
    );
    let (h, g) = acquire("nope", "a||b", "o", 5, 0).await;
    check_both("acquire: store", h, g, &not_found());
    let (h, g) = acquire("store", "a||b", "o", 5, 0).await;
    check_both(
        "acquire: key",
        h,
        g,
        &failed("ERR_ACQUIRE", "failed to acquire lock", "a||b"),
    );
    let (h, g) = acquire("store", "r", "o", 5, -1).await;
    check_both(
        "acquire: negative wait",
        h,
        g,
        &malformed("WaitTimeoutMs is negative"),
    );

    // ---- renew ----
    let renew = |store: &'static str, resource: &'static str, owner: &'static str, expiry| {
        let api = api.clone();
        let locks = locks.clone();
        async move {
            let body =
                json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
            let http = post(&api, &format!("/dlock/v1/renew/{store}"), body).await;
            let grpc = g_renew(&locks, store, resource, owner, expiry).await;
            (http, grpc)
        }
    };
    for expiry in [0, -5] {
        let (h, g) = renew("nope", "", "", expiry).await;
        check_both(
            "renew: expiry",
            h,
            g,
            &malformed("ExpiryInSeconds is not positive in lock store nope"),
        );
    }
    let (h, g) = renew("nope", "", "", 5).await;
    check_both(
        "renew: resource",
        h,
        g,
        &malformed("ResourceId is empty in lock store nope"),
    );
    let (h, g) = renew("nope", "r", "", 5).await;
    check_both(
        "renew: owner",
        h,
        g,
        &malformed("LockOwner is empty in lock store nope"),
    );
    let (h, g) = renew("nope", "a||b", "o", 5).await;
    check_both("renew: store", h, g, &not_found());
    let (h, g) = renew("store", "x||", "o", 5).await;
    check_both(
        "renew: key",
        h,
        g,
        &failed("ERR_RENEW", "failed to renew lock", "x||"),
    );

    // ---- inspect ----
    let inspect = |store: &'static str, resource: &'static str| {
        let api = api.clone();
        let locks = locks.clone();
        async move {
            let http = post(
                &api,
                &format!("/dlock/v1/inspect/{store}"),
                json!({"resourceId": resource}),
            )
            .await;
            let grpc = g_inspect(&locks, store, resource).await;
            (http, grpc)
        }
    };
    let (h, g) = inspect("nope", "").await;
    check_both(
        "inspect: resource",
        h,
        g,
        &malformed("ResourceId is empty in lock store nope"),
    );
    let (h, g) = inspect("nope", "a||b").await;
    check_both("inspect: store", h, g, &not_found());
    let (h, g) = inspect("store", "a||b").await;
    check_both(
        "inspect: key",
        h,
        g,
        &failed("ERR_INSPECT", "failed to inspect lock", "a||b"),
    );

    // ---- list ----
    let http = post(&api, "/dlock/v1/list/nope", json!({"prefix": ""})).await;
    let grpc = g_list(&locks, "nope", "").await;
    check_both("list: store", http, grpc, &not_found());

    // ---- force release, with the right admin token so the checks behind it are reached ----
    let base = sidecar.http.clone();
    let force = |store: &'static str, resource: &'static str| {
        let base = base.clone();
        let locks = locks.clone();
        async move {
            let http = h_force_release(&base, store, resource, Some(ADMIN)).await;
            let grpc = g_force_release(&locks, store, resource, Some(ADMIN)).await;
            (http, grpc)
        }
    };
    let (h, g) = force("nope", "").await;
    check_both(
        "force release: resource",
        h,
        g,
        &malformed("ResourceId is empty in lock store nope"),
    );
    let (h, g) = force("nope", "a||b").await;
    check_both("force release: store", h, g, &not_found());
    let (h, g) = force("store", "a||b").await;
    check_both(
        "force release: key",
        h,
        g,
        &failed("ERR_FORCE_RELEASE", "failed to force-release lock", "a||b"),
    );

    // ---- HTTP bodies that are not JSON, or not this message, on every route ----
    for route in ["acquire", "renew", "inspect", "list", "force-release"] {
        let path = format!("/dlock/v1/{route}/store");
        let wrong_type = if route == "list" {
            r#"{"prefix": 5}"#
        } else {
            r#"{"resourceId": 5}"#
        };
        for body in ["{", "[1]", "not json", wrong_type] {
            // The admin header lets force release reach its body; the others ignore it.
            let (status, content_type, bytes) =
                raw_post(&sidecar.http, &path, body, &[("dlock-admin-token", ADMIN)]).await;
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert_eq!(
                (status, content_type.as_deref()),
                (400, Some("application/json")),
                "{path} {body}: {json}"
            );
            assert_eq!(
                json["errorCode"], "ERR_MALFORMED_REQUEST",
                "{path} {body}: {json}"
            );
            let message = json["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("failed deserializing HTTP body: "),
                "{path} {body}: {message}"
            );
        }
    }

    // Nothing above was granted by mistake.
    assert_eq!(h_list(&api, "").await, Ok(json!({"locks": []})));
    assert_eq!(g_list(&locks, "store", "").await, Ok(vec![]));
}

#[tokio::test]
async fn force_release_needs_the_admin_token() {
    // Without DLOCK_ADMIN_TOKEN in the sidecar's environment, force release is refused even
    // to a caller presenting a token.
    let closed = Dlockd::start(one_store());
    let locks = closed.locks().await;
    let api = Api::new(&closed).await;
    let resource = unique("force-closed");
    let token = g_acquire(&locks, "store", &resource, "a", 30, 0)
        .await
        .unwrap()
        .fencing_token;
    let mut messages = Vec::new();
    for admin in [Some(ADMIN), None] {
        match h_force_release(&closed.http, "store", &resource, admin).await {
            Err(Failure::Http {
                status: 403,
                error_code,
                message,
            }) if error_code == "ERR_FORBIDDEN" => messages.push(message),
            other => panic!("HTTP force release without DLOCK_ADMIN_TOKEN ({admin:?}): {other:?}"),
        }
        match g_force_release(&locks, "store", &resource, admin).await {
            Err(Failure::Grpc {
                code: Code::PermissionDenied,
                message,
            }) => messages.push(message),
            other => panic!("gRPC force release without DLOCK_ADMIN_TOKEN ({admin:?}): {other:?}"),
        }
    }
    assert!(!messages[0].is_empty());
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    let held = inspected(&h_inspect(&api, &resource).await.unwrap()).expect("still held");
    assert_eq!((held.lock_owner.as_str(), held.fencing_token), ("a", token));
    let refused = g_acquire(&locks, "store", &resource, "b", 30, 0)
        .await
        .unwrap();
    assert!(!refused.acquired, "{refused:?}");

    // With it: a missing or wrong token is refused, and the lock stays held.
    let open = Dlockd::start(with_admin());
    let locks = open.locks().await;
    let api = Api::new(&open).await;
    let resource = unique("force-open");
    let token = granted_token(&h_acquire(&api, &resource, "a", 30, 0).await.unwrap());
    let almost = &ADMIN[..ADMIN.len() - 1];
    let longer = format!("{ADMIN}x");
    let mut messages = Vec::new();
    for admin in [
        None,
        Some("wrong"),
        Some(almost),
        Some(longer.as_str()),
        Some(""),
    ] {
        match h_force_release(&open.http, "store", &resource, admin).await {
            Err(Failure::Http {
                status: 403,
                error_code,
                message,
            }) if error_code == "ERR_FORBIDDEN" => messages.push(message),
            other => panic!("HTTP force release with {admin:?}: {other:?}"),
        }
        match g_force_release(&locks, "store", &resource, admin).await {
            Err(Failure::Grpc {
                code: Code::PermissionDenied,
                message,
            }) => messages.push(message),
            other => panic!("gRPC force release with {admin:?}: {other:?}"),
        }
    }
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    let held = inspected(&h_inspect(&api, &resource).await.unwrap()).expect("still held");
    assert_eq!((held.lock_owner.as_str(), held.fencing_token), ("a", token));
    assert_eq!(
        g_renew(&locks, "store", &resource, "a", 30).await,
        Ok(SUCCESS)
    );

    // The right token: released, and free for another owner.
    assert_eq!(
        h_force_release(&open.http, "store", &resource, Some(ADMIN)).await,
        Ok(json!({"released": true}))
    );
    assert_eq!(inspected(&h_inspect(&api, &resource).await.unwrap()), None);
    assert_eq!(
        g_renew(&locks, "store", &resource, "a", 30).await,
        Ok(LOCK_DOES_NOT_EXIST)
    );
    let next = g_acquire(&locks, "store", &resource, "b", 30, 0)
        .await
        .unwrap();
    assert!(next.acquired, "{next:?}");
    assert!(next.fencing_token > token, "{next:?} after {token}");
    // The same over gRPC, then a second force release finds nothing on either door.
    assert_eq!(
        g_force_release(&locks, "store", &resource, Some(ADMIN)).await,
        Ok(true)
    );
    assert_eq!(
        h_force_release(&open.http, "store", &resource, Some(ADMIN)).await,
        Ok(json!({"released": false}))
    );
    assert_eq!(
        g_force_release(&locks, "store", &resource, Some(ADMIN)).await,
        Ok(false)
    );
    assert_eq!(g_inspect(&locks, "store", &resource).await, Ok(None));

    // The admin token never reaches the logs, not even from the wrong guesses.
    for sidecar in [&closed, &open] {
        let logs = sidecar.logs();
        assert!(!logs.contains(almost), "admin token in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn dapr_api_token_covers_our_routes_too() {
    let sidecar = Dlockd::start(Options {
        env: vec![("DAPR_API_TOKEN".into(), "t".into())],
        ..one_store()
    });
    let resource = unique("token");
    let body = acquire_body(&resource, "o", 30, 0).to_string();

    // HTTP: every route of ours needs the header.
    let anonymous = sidecar.http_client();
    let wrong = HttpClient::new(&sidecar.http, Some("u".into()));
    for client in [&anonymous, &wrong] {
        for route in ["acquire", "renew", "inspect", "list", "force-release"] {
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
    let refused = g_acquire(&locks, "store", &other, "o", 30, 0).await;
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
    let refused = g_inspect(&locks, "store", &other).await;
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
    let mut request = tonic::Request::new(locks::request(&other, "o", 30, Duration::ZERO));
    request
        .metadata_mut()
        .insert("dapr-api-token", "t".parse().unwrap());
    let answer = locks.clone().acquire(request).await.unwrap().into_inner();
    assert!(answer.acquired, "{answer:?}");
}

/// How soon a waiter must hear of a release. The waiting room's fallback poll backs off to
/// 200 ms, so a bound of 200 ms could not tell a real wake-up from polling; the unlocks below
/// also land just after a poll would have run (at about 310 and 510 ms into the wait).
const PROMPT: Duration = Duration::from_millis(100);

#[tokio::test]
async fn locks_taken_through_dapr_are_the_same_locks() {
    let sidecar = Dlockd::start(one_store());
    let api = Api::new(&sidecar).await;
    let locks = sidecar.locks().await;

    for dapr in [Protocol::Grpc, Protocol::Http] {
        // Taken with TryLockAlpha1: our acquire, renew and inspect see it.
        let resource = unique("dapr-first");
        assert_eq!(
            api.lock(dapr, "store", &resource, "dapr", 30).await,
            Ok(true)
        );
        let grpc = g_acquire(&locks, "store", &resource, "x", 30, 0)
            .await
            .unwrap();
        assert!(!grpc.acquired, "{dapr:?}: {grpc:?}");
        let http = h_acquire(&api, &resource, "x", 30, 0).await.unwrap();
        assert_eq!(http["acquired"], json!(false), "{dapr:?}: {http}");
        let held = inspected(&h_inspect(&api, &resource).await.unwrap()).expect("held");
        assert_eq!(held.lock_owner, "dapr");
        let held = g_inspect(&locks, "store", &resource)
            .await
            .unwrap()
            .expect("held");
        assert_eq!(held.lock_owner, "dapr");
        assert_eq!(
            g_renew(&locks, "store", &resource, "dapr", 60).await,
            Ok(SUCCESS)
        );
        assert!(
            g_inspect(&locks, "store", &resource)
                .await
                .unwrap()
                .unwrap()
                .expires_in_ms
                > 30_000,
            "renewed through dlock.v1"
        );
        assert_eq!(
            api.unlock(dapr, "store", &resource, "dapr").await,
            Ok(SUCCESS)
        );
        assert_eq!(g_inspect(&locks, "store", &resource).await, Ok(None));

        // Taken with our acquire: TryLockAlpha1 and UnlockAlpha1 see it.
        let resource = unique("dlock-first");
        let token = match dapr {
            Protocol::Grpc => {
                g_acquire(&locks, "store", &resource, "x", 30, 0)
                    .await
                    .unwrap()
                    .fencing_token
            }
            Protocol::Http => granted_token(&h_acquire(&api, &resource, "x", 30, 0).await.unwrap()),
        };
        assert!(token > 0);
        for door in [Protocol::Grpc, Protocol::Http] {
            assert_eq!(
                api.lock(door, "store", &resource, "dapr", 30).await,
                Ok(false),
                "TryLock over {door:?} of a lock taken with dlock.v1"
            );
        }
        assert_eq!(
            api.unlock(dapr, "store", &resource, "dapr").await,
            Ok(LOCK_BELONGS_TO_OTHERS)
        );
        assert_eq!(api.unlock(dapr, "store", &resource, "x").await, Ok(SUCCESS));
        assert_eq!(
            api.lock(dapr, "store", &resource, "dapr", 30).await,
            Ok(true)
        );
        let held = g_inspect(&locks, "store", &resource)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.lock_owner, "dapr");
        assert!(held.fencing_token > token, "{held:?} after {token}");
    }

    // A waiter blocked in our acquire is woken promptly by Dapr's unlock.
    for (dapr, waiter) in [
        (Protocol::Grpc, Protocol::Grpc),
        (Protocol::Http, Protocol::Http),
        (Protocol::Grpc, Protocol::Http),
        (Protocol::Http, Protocol::Grpc),
    ] {
        for before_unlock in [Duration::from_millis(330), Duration::from_millis(530)] {
            let resource = unique("wake");
            assert_eq!(
                api.lock(dapr, "store", &resource, "dapr", 30).await,
                Ok(true)
            );
            let (api2, locks2, resource2) = (api.clone(), locks.clone(), resource.clone());
            let started = Instant::now();
            let waiting = tokio::spawn(async move {
                let acquired = match waiter {
                    Protocol::Grpc => {
                        g_acquire(&locks2, "store", &resource2, "w", 30, 10_000)
                            .await
                            .unwrap()
                            .acquired
                    }
                    Protocol::Http => {
                        let answer = h_acquire(&api2, &resource2, "w", 30, 10_000).await.unwrap();
                        answer["acquired"].as_bool().unwrap()
                    }
                };
                (acquired, Instant::now())
            });
            tokio::time::sleep_until((started + before_unlock).into()).await;
            assert!(!waiting.is_finished(), "the waiter waits for the holder");
            let unlocking = Instant::now();
            assert_eq!(
                api.unlock(dapr, "store", &resource, "dapr").await,
                Ok(SUCCESS)
            );
            let (acquired, done) = waiting.await.unwrap();
            let latency = done.saturating_duration_since(unlocking);
            assert!(acquired, "{waiter:?} waiter after a {dapr:?} unlock");
            assert!(
                latency < PROMPT,
                "{waiter:?} waiter woke {latency:?} after a {dapr:?} unlock"
            );
            let held = g_inspect(&locks, "store", &resource)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(held.lock_owner, "w");
        }
    }
}
