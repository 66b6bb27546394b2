//! Request bodies of the HTTP lock routes, read the way daprd reads them (protobuf's JSON
//! mapping): unknown fields ignored, snake_case names accepted beside camelCase, `null` as the
//! default, integers as numbers or numeric strings, and an empty body as all defaults.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;

/// `POST /v1.0-alpha1/lock/{store}`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TryLockBody {
    #[serde(
        rename = "resourceId",
        alias = "resource_id",
        deserialize_with = "string"
    )]
    pub resource_id: String,
    #[serde(
        rename = "lockOwner",
        alias = "lock_owner",
        deserialize_with = "string"
    )]
    pub lock_owner: String,
    #[serde(
        rename = "expiryInSeconds",
        alias = "expiry_in_seconds",
        deserialize_with = "int32"
    )]
    pub expiry_in_seconds: i32,
}

/// `POST /v1.0-alpha1/unlock/{store}`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct UnlockBody {
    #[serde(
        rename = "resourceId",
        alias = "resource_id",
        deserialize_with = "string"
    )]
    pub resource_id: String,
    #[serde(
        rename = "lockOwner",
        alias = "lock_owner",
        deserialize_with = "string"
    )]
    pub lock_owner: String,
}

/// Parses a body; the error text is the detail of Dapr's `failed deserializing HTTP body`.
pub fn parse<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(T::default()),
        // serde would also take a struct from a JSON array; protobuf's JSON mapping does not.
        Some(b'{') => {}
        Some(_) => return Err("the body must be a JSON object".into()),
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

fn int32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(serde_json::Number),
        Text(String),
    }
    let number = match Option::<Wire>::deserialize(deserializer)? {
        None => return Ok(0),
        Some(Wire::Number(n)) => n.as_i64().map(|i| i as f64).or_else(|| n.as_f64()),
        Some(Wire::Text(text)) => text.trim().parse::<f64>().ok(),
    };
    match number {
        Some(n) if n.fract() == 0.0 && n >= i32::MIN as f64 && n <= i32::MAX as f64 => Ok(n as i32),
        _ => Err(D::Error::custom("expiryInSeconds must be a 32-bit integer")),
    }
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
            body,
            TryLockBody {
                resource_id: "r".into(),
                lock_owner: "o".into(),
                expiry_in_seconds: 10
            }
        );
        let body: TryLockBody = parse(br#"{"expiry_in_seconds":7.0,"resourceId":null}"#).unwrap();
        assert_eq!((body.expiry_in_seconds, body.resource_id.as_str()), (7, ""));
        assert_eq!(parse::<UnlockBody>(b"").unwrap(), UnlockBody::default());
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
        assert!(parse::<TryLockBody>(br#"{"resourceId":"a","resource_id":"b"}"#).is_err());
    }
}
