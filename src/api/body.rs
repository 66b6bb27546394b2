//! Request bodies of the HTTP lock routes, read the way daprd reads them (protobuf's JSON
//! mapping): unknown fields ignored, snake_case names accepted beside camelCase, `null` as the
//! default, integers as numbers or numeric strings, and an empty body as all defaults. As
//! strict as that mapping too: a numeric string holds a JSON number and nothing else (no
//! padding, no `+`, no leading zero), and an integer must fit its field's width.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;

use super::connections::RequestRead;
use super::error::ErrorBody;

use crate::lock::{
    wait_timeout, AcquireRequest, ApiError, ErrorKind, Kind, LockRequest, Mode, ReleaseRequest,
    UnlockRequest,
};

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
    #[serde(deserialize_with = "mode")]
    pub(crate) mode: Mode,
    #[serde(deserialize_with = "uint32")]
    pub(crate) limit: u32,
    #[serde(deserialize_with = "boolean")]
    pub(crate) reentrant: bool,
    #[serde(
        rename = "resourceIds",
        alias = "resource_ids",
        deserialize_with = "strings"
    )]
    pub(crate) resource_ids: Vec<String>,
}

/// `POST /dlock/v1/release/{store}`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct ReleaseBody {
    #[serde(flatten)]
    pub(crate) unlock: UnlockBody,
    #[serde(rename = "allHolds", alias = "all_holds", deserialize_with = "boolean")]
    pub(crate) all_holds: bool,
    #[serde(deserialize_with = "uint32")]
    pub(crate) holds: u32,
    #[serde(
        rename = "resourceIds",
        alias = "resource_ids",
        deserialize_with = "strings"
    )]
    pub(crate) resource_ids: Vec<String>,
}

impl ReleaseBody {
    /// The core's request, for the store named in the path.
    pub(crate) fn request(self, store: String) -> ReleaseRequest {
        ReleaseRequest {
            unlock: self.unlock.request(store),
            all_holds: self.all_holds,
            expected_holds: (self.holds != 0).then_some(self.holds),
            resource_ids: self.resource_ids,
        }
    }
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
            kind: Kind {
                mode: self.mode,
                limit: self.limit,
                reentrant: self.reentrant,
            },
            resource_ids: self.resource_ids,
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
        parse(&bytes)
            .map(Body)
            .map_err(|error| refuse(&bytes, error))
    }
}

/// The answer to a request whose body was read whole (`bytes`) and refused for `error`, by
/// `parse` or a check that comes before it.
pub(crate) fn refuse(bytes: &[u8], error: ApiError) -> Response {
    let mut answer = error.into_response();
    if ends_inside_its_json(bytes) {
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// Whether the body stops partway through its JSON: most likely a Content-Length smaller than
/// what the client sent. The rest would then be read as the connection's next request, which
/// hyper refuses with an empty 400 of its own; the refusal closes the connection instead, so
/// the client gets one answer, in Dapr's shape.
fn ends_inside_its_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err_and(|e| e.is_eof())
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

/// A repeated string: a JSON array of strings; null is empty, as is a null element's string.
fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let strings = Option::<Vec<Option<String>>>::deserialize(deserializer)?;
    Ok(strings
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
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

fn uint32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = whole_number(deserializer)?;
    u32::try_from(n).map_err(|_| D::Error::custom("expected an unsigned 32-bit integer"))
}

/// An enum as protobuf's JSON mapping writes it: its name, or its number; null is the first.
fn mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Name(String),
        Number(i64),
    }
    match Option::<Wire>::deserialize(deserializer)? {
        None => Ok(Mode::Exclusive),
        Some(Wire::Name(name)) if name == "EXCLUSIVE" => Ok(Mode::Exclusive),
        Some(Wire::Name(name)) if name == "SHARED" => Ok(Mode::Shared),
        Some(Wire::Number(0)) => Ok(Mode::Exclusive),
        Some(Wire::Number(1)) => Ok(Mode::Shared),
        Some(_) => Err(D::Error::custom(
            "mode is not a LockMode: expected \"EXCLUSIVE\" or \"SHARED\" (or 0 or 1)",
        )),
    }
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
    fn lock_kinds_by_name_or_number() {
        let body: AcquireBody =
            parse(br#"{"mode":"SHARED","limit":"3","reentrant":true}"#).unwrap();
        assert_eq!(
            (body.mode, body.limit, body.reentrant),
            (Mode::Shared, 3, true)
        );
        let body: AcquireBody = parse(br#"{"mode":1,"limit":null}"#).unwrap();
        assert_eq!((body.mode, body.limit), (Mode::Shared, 0));
        for bad in [
            &br#"{"mode":"READ"}"#[..],
            br#"{"mode":2}"#,
            br#"{"limit":-1}"#,
        ] {
            let error = parse::<AcquireBody>(bad).unwrap_err();
            assert_eq!(error.kind, ErrorKind::MalformedRequest, "{error}");
        }
        let body: ReleaseBody =
            parse(br#"{"resourceId":"r","lockOwner":"o","allHolds":true}"#).unwrap();
        assert!(body.all_holds);
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

/// Property tests against a reference model of protobuf's JSON mapping, written out here
/// (a JSON number's grammar, integers read exactly from their decimal text) rather than
/// borrowed from serde_json, which the parser itself uses.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    /// Whether `text` is a JSON number (RFC 8259): what a numeric string must hold exactly.
    fn json_number(text: &str) -> bool {
        let b = text.as_bytes();
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        let mut i = usize::from(b.first() == Some(&b'-'));
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return false,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return false;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return false;
            }
        }
        i == b.len()
    }

    /// The integer a JSON number's text stands for, exactly; `None` when it has a fraction
    /// or is beyond i64.
    fn exact_integer(text: &str) -> Option<i64> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (
                &text[..at],
                text[at + 1..].parse::<i64>().unwrap_or(i64::MAX),
            ),
            None => (text, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut digits: String = format!("{whole}{fraction}");
        let mut shift = exponent.saturating_sub(fraction.len() as i64);
        // Trailing zeros moved into the exponent, leading ones dropped.
        while shift < 0 && digits.ends_with('0') {
            digits.pop();
            shift += 1;
        }
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Some(0);
        }
        if !(0..=19).contains(&shift) {
            return None;
        }
        let magnitude: i128 = format!("{digits}{}", "0".repeat(shift as usize))
            .parse()
            .ok()?;
        let value = if negative { -magnitude } else { magnitude };
        i64::try_from(value).ok()
    }

    /// What the mapping reads into an integer field of `range` from a JSON value.
    fn model_integer(value: &Value, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let text = match value {
            Value::Null => return Some(0),
            Value::Number(n) => n.to_string(),
            Value::String(s) if json_number(s) => s.clone(),
            _ => return None,
        };
        exact_integer(&text).filter(|n| range.contains(n))
    }

    fn model_string(value: &Value) -> Option<String> {
        match value {
            Value::Null => Some(String::new()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// One field under either of its names; both at once is an error (`Err`).
    fn field<'a>(object: &'a Map<String, Value>, json: &str, proto: &str) -> Result<&'a Value, ()> {
        match (object.get(json), object.get(proto)) {
            (Some(_), Some(_)) => Err(()),
            (Some(v), None) | (None, Some(v)) => Ok(v),
            (None, None) => Ok(&Value::Null),
        }
    }

    /// The reference model of a try-lock body.
    fn model_try_lock(value: &Value) -> Option<(String, String, i32)> {
        let object = value.as_object()?;
        let resource = model_string(field(object, "resourceId", "resource_id").ok()?)?;
        let owner = model_string(field(object, "lockOwner", "lock_owner").ok()?)?;
        let expiry = field(object, "expiryInSeconds", "expiry_in_seconds").ok()?;
        let expiry = model_integer(expiry, i32::MIN.into()..=i32::MAX.into())?;
        Some((resource, owner, expiry as i32))
    }

    fn parsed_try_lock(bytes: &[u8]) -> Option<(String, String, i32)> {
        let body = parse::<TryLockBody>(bytes).ok()?;
        let request = body.request(String::new());
        Some((
            request.resource_id,
            request.owner,
            request.expiry_in_seconds,
        ))
    }

    /// Integers f64 holds exactly: the parser reads a number with a fraction or an exponent
    /// through f64, so beyond these it may round (a wait of 285,000 years).
    const EXACT: u64 = 1 << 53;

    /// The ways protobuf's JSON mapping lets `n` be written: as a number, with a fraction of
    /// zeros, with an exponent.
    fn spellings(n: i64) -> Vec<String> {
        let mut all = vec![n.to_string()];
        if n.unsigned_abs() < EXACT {
            all.push(format!("{n}.0"));
            all.push(format!("{n}.000E0"));
            if n != 0 {
                all.push(format!("{n}0e-1"));
            }
            let (mut mantissa, mut exponent) = (n, 0);
            while mantissa != 0 && mantissa % 10 == 0 {
                mantissa /= 10;
                exponent += 1;
            }
            all.push(format!("{mantissa}e{exponent}"));
            all.push(format!("{mantissa}E+{exponent}"));
        }
        if n == 0 {
            all.push("-0".into());
        }
        all
    }

    fn any_integer() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            any::<i32>().prop_map(i64::from),
            -1000i64..1000,
            Just(i64::from(i32::MAX) + 1),
            Just(i64::from(i32::MIN) - 1),
            (0u32..19).prop_map(|k| 10i64.pow(k)),
        ]
    }

    /// JSON values that exercise the fields: numbers of every kind, numeric-looking strings,
    /// any strings, and nesting.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (-100i64..100).prop_map(Value::from),
            "[-+ 0-9.eE]{0,8}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const NAMES: &[&str] = &[
        "resourceId",
        "resource_id",
        "lockOwner",
        "lock_owner",
        "expiryInSeconds",
        "expiry_in_seconds",
        "storeName",
        "other",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_spelling_of_an_integer_reads_as_it(n in any_integer()) {
            for spelling in spellings(n) {
                for written in [spelling.clone(), format!("\"{spelling}\"")] {
                    let wait = format!(r#"{{"waitTimeoutMs":{written}}}"#);
                    let read = parse::<AcquireBody>(wait.as_bytes()).map(|b| b.wait_timeout_ms);
                    prop_assert_eq!(read.ok(), Some(n), "{}", wait);
                    let expiry = format!(r#"{{"expiry_in_seconds":{written}}}"#);
                    let read = parse::<TryLockBody>(expiry.as_bytes()).map(|b| b.expiry_in_seconds);
                    prop_assert_eq!(read.ok(), i32::try_from(n).ok(), "{}", expiry);
                }
            }
        }

        #[test]
        fn a_numeric_string_holds_a_number_and_nothing_else(
            n in any_integer(),
            pick in any::<prop::sample::Index>(),
            garnish in prop_oneof![
                Just(" {}"), Just("{} "), Just("\t{}"), Just("{}\n"), Just("+{}"),
                Just("0{}"), Just("{}x"), Just("{}."), Just(".{}"), Just("{}e"), Just("--{}"),
            ],
        ) {
            let spellings = spellings(n);
            let spelling = pick.get(&spellings);
            let garnished = garnish.replace("{}", spelling);
            // A leading zero is only a mistake before another digit.
            prop_assume!(!(garnish == "0{}" && spelling.starts_with('-')));
            let body = format!(r#"{{"expiryInSeconds":"{garnished}","waitTimeoutMs":"{garnished}"}}"#);
            prop_assert!(parse::<AcquireBody>(body.as_bytes()).is_err(), "{}", body);
            let body = format!(r#"{{"expiryInSeconds":"{garnished}"}}"#);
            prop_assert!(parse::<TryLockBody>(body.as_bytes()).is_err(), "{}", body);
        }

        #[test]
        fn any_object_reads_as_the_model_says(
            fields in prop::collection::vec((prop::sample::select(NAMES), any_json()), 0..5)
        ) {
            let object: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let value = Value::Object(object);
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(
                parsed_try_lock(&text),
                model_try_lock(&value),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }

        #[test]
        fn any_string_survives_the_round_trip(resource in any::<String>(), owner in any::<String>()) {
            let body = serde_json::json!({"resource_id": resource, "lockOwner": owner});
            let body: UnlockBody = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
            let request = body.request("s".into());
            prop_assert_eq!((request.resource_id, request.owner), (resource, owner));
        }

        #[test]
        fn any_bytes_are_read_or_refused_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let read = parse::<AcquireBody>(&bytes);
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first.is_some_and(|b| *b != b'{') {
                prop_assert!(read.is_err());
            }
            if first.is_none() {
                prop_assert_eq!(read.ok(), Some(AcquireBody::default()));
            }
        }
    }
}
