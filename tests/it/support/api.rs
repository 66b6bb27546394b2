//! One client for both of a sidecar's front doors, so a test can say "lock this" and run over
//! gRPC and HTTP alike, and compare what the two answer.

use dlock::cli::connect::Client;
use dlock::cli::http_client::HttpClient;
use dlock::proto::dapr::{TryLockRequest, UnlockRequest};
use serde_json::json;

use super::backend::unique;
use super::dlockd::Dlockd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

pub const BOTH: [Protocol; 2] = [Protocol::Grpc, Protocol::Http];

/// An error answer, from either door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Http {
        status: u16,
        error_code: String,
        message: String,
    },
    Grpc {
        code: tonic::Code,
        message: String,
    },
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        Failure::Grpc {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Http { message, .. } | Failure::Grpc { message, .. } => message,
        }
    }
}

#[derive(Clone)]
pub struct Api {
    pub grpc: Client,
    pub http: HttpClient,
}

impl Api {
    pub async fn new(sidecar: &Dlockd) -> Api {
        Api {
            grpc: sidecar.client().await,
            http: sidecar.http_client(),
        }
    }

    /// TryLock; Ok(granted).
    pub async fn lock(
        &self,
        protocol: Protocol,
        store: &str,
        resource: &str,
        owner: &str,
        expiry: i32,
    ) -> Result<bool, Failure> {
        match protocol {
            Protocol::Grpc => self
                .grpc
                .clone()
                .try_lock_alpha1(TryLockRequest {
                    store_name: store.into(),
                    resource_id: resource.into(),
                    lock_owner: owner.into(),
                    expiry_in_seconds: expiry,
                })
                .await
                .map(|r| r.into_inner().success)
                .map_err(Failure::from),
            Protocol::Http => {
                let body =
                    json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry});
                let answer = self
                    .post(&format!("/v1.0-alpha1/lock/{store}"), body.to_string())
                    .await?;
                let success = answer["success"].as_bool();
                Ok(success
                    .unwrap_or_else(|| panic!("lock answer without a boolean success: {answer}")))
            }
        }
    }

    /// Unlock; Ok(Dapr's numeric status).
    pub async fn unlock(
        &self,
        protocol: Protocol,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> Result<i32, Failure> {
        match protocol {
            Protocol::Grpc => self
                .grpc
                .clone()
                .unlock_alpha1(UnlockRequest {
                    store_name: store.into(),
                    resource_id: resource.into(),
                    lock_owner: owner.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .map_err(Failure::from),
            Protocol::Http => {
                let body = json!({"resourceId": resource, "lockOwner": owner});
                let answer = self
                    .post(&format!("/v1.0-alpha1/unlock/{store}"), body.to_string())
                    .await?;
                let status = answer["status"].as_i64();
                Ok(
                    status.unwrap_or_else(|| panic!("unlock answer without a status: {answer}"))
                        as i32,
                )
            }
        }
    }

    /// The short proof that a store works through this sidecar: a lock on a fresh key is
    /// granted, refused to another owner, released by its owner and granted again, over gRPC
    /// and HTTP in turn.
    pub async fn smoke(&self, store: &str) {
        let key = unique("smoke");
        let (grpc, http) = (Protocol::Grpc, Protocol::Http);
        assert_eq!(
            self.lock(grpc, store, &key, "a", 30).await,
            Ok(true),
            "{store}: granted"
        );
        assert_eq!(
            self.lock(http, store, &key, "b", 30).await,
            Ok(false),
            "{store}: refused to another owner"
        );
        assert_eq!(
            self.unlock(grpc, store, &key, "a").await,
            Ok(SUCCESS),
            "{store}"
        );
        assert_eq!(
            self.lock(http, store, &key, "b", 30).await,
            Ok(true),
            "{store}: granted again"
        );
    }

    /// POSTs a raw body; the JSON answer on 200, a Failure otherwise.
    /// A blocking acquire of `resource` on `store` by `owner` (over HTTP, waiting up to a
    /// minute), left to wait in the background: a waiter for a test to see counted.
    pub fn wait_in_background(
        &self,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> tokio::task::JoinHandle<Result<serde_json::Value, Failure>> {
        let body = json!({"resourceId": resource, "lockOwner": owner,
                          "expiryInSeconds": 60, "waitTimeoutMs": 60_000});
        let (api, path) = (self.clone(), format!("/dlock/v1/acquire/{store}"));
        tokio::spawn(async move { api.post(&path, body.to_string()).await })
    }

    pub async fn post(&self, path: &str, body: String) -> Result<serde_json::Value, Failure> {
        self.post_with(path, body, &[]).await
    }

    /// POSTs a raw body with extra headers; the JSON answer on 200, a Failure otherwise. Every
    /// answer must be JSON, and say so.
    pub async fn post_with(
        &self,
        path: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> Result<serde_json::Value, Failure> {
        let answer = self
            .http
            .post_with(path, body, headers)
            .await
            .expect("HTTP answers");
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/json"),
            "content type of {path}"
        );
        let json: serde_json::Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {:?}", answer.body));
        if answer.status == 200 {
            return Ok(json);
        }
        Err(Failure::Http {
            status: answer.status,
            error_code: json["errorCode"].as_str().unwrap_or_default().to_string(),
            message: json["message"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// Dapr's unlock statuses.
pub const SUCCESS: i32 = 0;
pub const LOCK_DOES_NOT_EXIST: i32 = 1;
pub const LOCK_BELONGS_TO_OTHERS: i32 = 2;

/// The capabilities the metadata API reports for the component named `store`.
pub async fn capabilities(sidecar: &Dlockd, store: &str) -> Vec<String> {
    let metadata = sidecar
        .http_client()
        .get("/v1.0/metadata")
        .await
        .unwrap()
        .json();
    let component = metadata["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == store)
        .unwrap_or_else(|| panic!("no component {store} in {metadata}"))
        .clone();
    serde_json::from_value(component["capabilities"].clone()).unwrap_or_default()
}
