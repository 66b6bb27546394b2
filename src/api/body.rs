//! Request bodies of the HTTP lock routes, read the way daprd reads them (protobuf's JSON
//! mapping): unknown fields ignored, snake_case names accepted beside camelCase, `null` as the
//! default, integers as numbers or numeric strings, and an empty body as all defaults. As
//! strict as that mapping too: a numeric string holds a JSON number and nothing else (no
//! padding, no `+`, no leading zero), and an integer must fit its field's width.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;

use super::connections::RequestRead;
use super::error::ErrorBody;

use crate::lock::{wait_timeout, AcquireRequest, ApiError, ErrorKind, LockRequest, UnlockRequest};

/// `POST /dlock/v1/inspect/{store}` and `/dlock/v1/force-release/{store}`; its one field
/// opens every other lock body too.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct ResourceBody {
    #[serde(
        rename = "resourceId",
        alias = "resource_id",
        deserialize_with = "string"
    )]
    pub(crate) resource_id: String,
}

/// `POST /v1.0-alpha1/unlock/{store}`: a resource and the owner that releases it.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct UnlockBody {
    #[serde(flatten)]
    pub(crate) resource: ResourceBody,
    #[serde(
        rename = "lockOwner",
        alias = "lock_owner",
        deserialize_with = "string"
    )]
    pub(crate) lock_owner: String,
}

/// `POST /v1.0-alpha1/lock/{store}` and `/dlock/v1/renew/{store}`: an owner's lock, and for
/// how long.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct TryLockBody {
    #[serde(flatten)]
    pub(crate) unlock: UnlockBody,
    #[serde(
        rename = "expiryInSeconds",
        alias = "expiry_in_seconds",
        deserialize_with = "int32"
    )]
    pub(crate) expiry_in_seconds: i32,
}

/// `POST /dlock/v1/acquire/{store}`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct AcquireBody {
    #[serde(flatten)]
    pub(crate) try_lock: TryLockBody,
    #[serde(
        rename = "waitTimeoutMs",
        alias = "wait_timeout_ms",
        deserialize_with = "int64"
    )]
    pub(crate) wait_timeout_ms: i64,
    #[serde(
        rename = "requireFencing",
        alias = "require_fencing",
        deserialize_with = "boolean"
    )]
    pub(crate) require_fencing: bool,
}

impl UnlockBody {
    /// The core's request, for the store named in the path.
    pub(crate) fn request(self, store: String) -> UnlockRequest {
        UnlockRequest {
            store,
            resource_id: self.resource.resource_id,
            owner: self.lock_owner,
        }
    }
}

impl TryLockBody {
    /// The core's request, for the store named in the path.
    pub(crate) fn request(self, store: String) -> LockRequest {
        LockRequest {
            store,
            resource_id: self.unlock.resource.resource_id,
            owner: self.unlock.lock_owner,
            expiry_in_seconds: self.expiry_in_seconds,
        }
    }
}

impl AcquireBody {
    /// The core's request, for the store named in the path.
    pub(crate) fn request(self, store: String) -> Result<AcquireRequest, ApiError> {
        Ok(AcquireRequest {
            wait: wait_timeout(self.wait_timeout_ms)?,
            lock: self.try_lock.request(store),
            require_fencing: self.require_fencing,
        })
    }
}

/// `POST /dlock/v1/list/{store}`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct ListBody {
    #[serde(deserialize_with = "string")]
    pub(crate) prefix: String,
}

/// A lock route's body, read whole and parsed. Whatever goes wrong on the way answers in Dapr's
/// error shape, which SDKs parse: a bad message (`parse`), and before it a body over
/// `--max-body-size` (413) or one that breaks off or has a broken chunked encoding (400),
/// which axum would answer in plain text.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse(&bytes).map(Body).map_err(IntoResponse::into_response)
    }
}

/// A lock route's body, read whole but not parsed yet, for a route that checks something
/// else first (force release: the admin token); the reading fails as for `Body`.
pub(crate) struct RawBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let read = request.extensions().get::<RequestRead>().cloned();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(unreadable)?;
        // Read whole: from now on the request may take its time (a blocking acquire waits).
        if let Some(read) = read {
            read.done();
        }
        Ok(RawBody(bytes))
    }
}

fn unreadable(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is larger than the sidecar's limit (--max-body-size)".to_string()
    } else {
        format!("failed reading the HTTP body: {}", rejection.body_text())
    };
    let body = ErrorBody {
        error_code: "ERR_MALFORMED_REQUEST",
        message: &message,
    };
    (status, Json(body)).into_response()
}

/// Parses a body; a bad one is Dapr's ERR_MALFORMED_REQUEST, `failed deserializing HTTP body`.
pub(crate) fn parse<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |detail: String| {
        ApiError::new(
            ErrorKind::MalformedRequest,
            format!("failed deserializing HTTP body: {detail}"),
        )
    };
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        // serde would also take a struct from a JSON array; protobuf's JSON mapping does not.
        Some(b'{') => {}
        Some(_) => return Err(malformed("the body must be a JSON object".into())),
    }
    serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))
}

fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or_default())
}

fn int32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let n = whole_number(deserializer)?;
    i32::try_from(n).map_err(|_| D::Error::custom("expected a 32-bit integer"))
}

fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    whole_number(deserializer)
}

/// An integer given as a JSON number (`10`, `10.0`, `1e1`) or a string holding exactly one
/// (`"10"`, not `" 10"`, `"+10"` or `"010"`, which Go's protobuf JSON reader refuses); null
/// is 0.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(serde_json::Number),
        Text(String),
    }
    let number = match Option::<Wire>::deserialize(deserializer)? {
        None => return Ok(0),
        Some(Wire::Number(n)) => n,
        Some(Wire::Text(text)) => {
            // serde_json would skip whitespace around the number; the mapping does not.
            let padded = text.starts_with(|c: char| c.is_ascii_whitespace())
                || text.ends_with(|c: char| c.is_ascii_whitespace());
            match serde_json::from_str(&text) {
                Ok(n) if !padded => n,
                _ => {
                    return Err(D::Error::custom(
                        "expected an integer, as a number or a numeric string",
                    ))
                }
            }
        }
    };
    number
        .as_i64()
        .or_else(|| number.as_f64().and_then(integral))
        .ok_or_else(|| D::Error::custom("expected an integer"))
}

fn integral(n: f64) -> Option<i64> {
    (n.fract() == 0.0 && n >= i64::MIN as f64 && n < i64::MAX as f64).then_some(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protojson_rules() {
        let body: TryLockBody = parse(
            br#"{"resource_id":"r","lockOwner":"o","expiryInSeconds":"10","storeName":"x","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            body.request("s".into()),
            LockRequest {
                store: "s".into(),
                resource_id: "r".into(),
                owner: "o".into(),
                expiry_in_seconds: 10
            }
        );
        let body: TryLockBody = parse(br#"{"expiry_in_seconds":7.0,"resourceId":null}"#).unwrap();
        let request = body.request("s".into());
        assert_eq!(
            (request.expiry_in_seconds, request.resource_id.as_str()),
            (7, "")
        );
        assert_eq!(parse::<UnlockBody>(b"").unwrap(), UnlockBody::default());
        let body: AcquireBody =
            parse(br#"{"waitTimeoutMs":"9000000000","require_fencing":true}"#).unwrap();
        assert_eq!(
            (body.wait_timeout_ms, body.require_fencing),
            (9_000_000_000, true)
        );
        assert_eq!(parse::<UnlockBody>(b"  \n").unwrap(), UnlockBody::default());
    }

    #[test]
    fn malformed() {
        assert!(parse::<TryLockBody>(b"{").is_err());
        assert!(parse::<TryLockBody>(b"[]").is_err());
        assert!(parse::<TryLockBody>(br#"{"resourceId":5}"#).is_err());
        assert!(parse::<TryLockBody>(br#"{"expiryInSeconds":"ten"}"#).is_err());
        assert!(parse::<TryLockBody>(br#"{"expiryInSeconds":1.5}"#).is_err());
        assert!(parse::<TryLockBody>(br#"{"expiryInSeconds":4294967296}"#).is_err());
        for padded in [
            r#"" 30""#,
            r#""30 ""#,
            r#""+30""#,
            r#""030""#,
            r#""""#,
            r#""0x1e""#,
        ] {
            let body = format!(r#"{{"expiryInSeconds":{padded}}}"#);
            assert!(parse::<TryLockBody>(body.as_bytes()).is_err(), "{padded}");
        }
        assert!(parse::<AcquireBody>(br#"{"waitTimeoutMs":"9223372036854775808"}"#).is_err());
        let body: AcquireBody =
            parse(br#"{"expiryInSeconds":"1e1","waitTimeoutMs":"-0"}"#).unwrap();
        assert_eq!(
            (body.try_lock.expiry_in_seconds, body.wait_timeout_ms),
            (10, 0)
        );
        assert!(parse::<TryLockBody>(br#"{"resourceId":"a","resource_id":"b"}"#).is_err());
        assert!(parse::<AcquireBody>(br#"{"requireFencing":"yes"}"#).is_err());
        assert!(parse::<AcquireBody>(br#"{"waitTimeoutMs":"1.5"}"#).is_err());
        assert!(parse::<AcquireBody>(br#"{"lockOwner":"a","lock_owner":"b"}"#).is_err());
        assert!(parse::<AcquireBody>(br#"{"resourceId":"a","resource_id":"b"}"#).is_err());
    }
}
