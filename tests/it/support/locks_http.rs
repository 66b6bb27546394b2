//! A small client of dlock's own API over HTTP (`/dlock/v1/…`) for the tests, and readers
//! that turn its JSON answers into the gRPC types, so a test can compare the two doors. The
//! calls work on the store named `store`, but for force release, which takes the store so its
//! error cases can name a missing one; a test that wants another posts with `Api::post`.

use dlock::proto::dlock::{AcquireResponse, Holder, LockInfo, LockMode};
use serde_json::{json, Value};

use super::api::{Api, Failure};

/// Force release, with the admin header when `admin` is given.
pub async fn force_release_http(
    api: &Api,
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
    api.post_with(&path, body, &headers).await
}

pub fn acquire_body(resource: &str, owner: &str, expiry: i32, wait_ms: i64) -> Value {
    json!({
        "resourceId": resource,
        "lockOwner": owner,
        "expiryInSeconds": expiry,
        "waitTimeoutMs": wait_ms,
    })
}

pub async fn acquire_http(
    api: &Api,
    resource: &str,
    owner: &str,
    expiry: i32,
    wait_ms: i64,
) -> Result<Value, Failure> {
    api.post(
        "/dlock/v1/acquire/store",
        acquire_body(resource, owner, expiry, wait_ms).to_string(),
    )
    .await
}

pub async fn renew_http(
    api: &Api,
    resource: &str,
    owner: &str,
    expiry: i32,
) -> Result<Value, Failure> {
    let body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
    api.post("/dlock/v1/renew/store", body.to_string()).await
}

pub async fn inspect_http(api: &Api, resource: &str) -> Result<Value, Failure> {
    api.post(
        "/dlock/v1/inspect/store",
        json!({"resourceId": resource}).to_string(),
    )
    .await
}

pub async fn list_http(api: &Api, prefix: &str) -> Result<Value, Failure> {
    api.post(
        "/dlock/v1/list/store",
        json!({"prefix": prefix}).to_string(),
    )
    .await
}

/// The JSON the HTTP door should give for a gRPC AcquireResponse.
pub fn acquire_json(answer: &AcquireResponse) -> Value {
    json!({
        "acquired": answer.acquired,
        "fencingToken": answer.fencing_token.to_string(),
        "hasFencing": answer.has_fencing,
        "holds": answer.holds,
    })
}

/// A granted HTTP acquire: checks its shape and returns the fencing token.
pub fn granted_token(answer: &Value) -> u64 {
    let object = answer.as_object().expect("an object");
    assert_eq!(object.len(), 4, "{answer}");
    assert_eq!(answer["acquired"], json!(true), "{answer}");
    assert_eq!(answer["holds"], json!(1), "{answer}");
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
        [
            "expiresInMs",
            "fencingToken",
            "holders",
            "limit",
            "lockOwner",
            "mode",
            "resourceId",
            "waitingHere"
        ],
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
        waiting_here: value["waitingHere"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_else(|| panic!("waitingHere is not a u32: {value}")),
        mode: match value["mode"].as_str() {
            Some("EXCLUSIVE") => LockMode::Exclusive,
            Some("SHARED") => LockMode::Shared,
            _ => panic!("mode is not a LockMode name: {value}"),
        }
        .into(),
        limit: value["limit"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_else(|| panic!("limit is not a u32: {value}")),
        holders: value["holders"]
            .as_array()
            .unwrap_or_else(|| panic!("holders is not an array: {value}"))
            .iter()
            .map(|holder| Holder {
                lock_owner: holder["lockOwner"].as_str().unwrap().to_string(),
                expires_in_ms: holder["expiresInMs"].as_str().unwrap().parse().unwrap(),
                fencing_token: holder["fencingToken"].as_str().unwrap().parse().unwrap(),
                holds: holder["holds"].as_u64().unwrap() as u32,
            })
            .collect(),
    }
}

/// An HTTP inspect answer: Some(lock) when held, None for exactly `{"held":false}`.
pub fn inspected(answer: &Value) -> Option<LockInfo> {
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

pub fn listed(answer: &Value) -> Vec<LockInfo> {
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    answer["locks"]
        .as_array()
        .unwrap_or_else(|| panic!("list answer without a locks array: {answer}"))
        .iter()
        .map(lock_of)
        .collect()
}
