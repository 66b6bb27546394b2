//! The local secret stores a component's `secretKeyRef` can point at: `secretstores.local.env`
//! (environment variables) and `secretstores.local.file` (a JSON file), as Dapr defines them.
//! Secret values are never logged nor put in error messages.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, Metadata};

/// Every secret store type, and how it opens from its metadata.
const TYPES: &[(&str, Open)] = &[
    ("secretstores.local.env", |_| Ok(SecretStore::Env)),
    ("secretstores.local.file", open_file),
];

type Open = fn(&Metadata) -> Result<SecretStore, ConfigError>;

/// A loaded secret store.
pub(crate) enum SecretStore {
    Env,
    File {
        /// Every leaf of the JSON file, its path joined by the separator.
        values: HashMap<String, String>,
        separator: String,
        multi_valued: bool,
    },
}

impl SecretStore {
    /// Opens a store of type `type_name` from its metadata; `None` when this build has no
    /// such type.
    pub(crate) fn open(type_name: &str, metadata: &Metadata) -> Option<Result<Self, ConfigError>> {
        let (_, open) = TYPES.iter().find(|(name, _)| *name == type_name)?;
        Some(open(metadata))
    }

    /// The `spec.type` of every secret store type this build serves.
    pub(crate) fn names() -> impl Iterator<Item = &'static str> {
        TYPES.iter().map(|(name, _)| *name)
    }

    /// The secret `name`, field `key` (Dapr: an empty key means the secret's own name).
    pub(crate) fn get(&self, name: &str, key: &str) -> Result<String, String> {
        let key = if key.is_empty() { name } else { key };
        let missing = || format!("secret '{name}' has no key '{key}'");
        match self {
            SecretStore::Env => {
                if key != name {
                    return Err(missing());
                }
                std::env::var(name).map_err(|_| format!("environment variable '{name}' is not set"))
            }
            SecretStore::File {
                values,
                separator,
                multi_valued,
            } => {
                let path = if *multi_valued {
                    format!("{name}{separator}{key}")
                } else if key == name {
                    name.to_string()
                } else {
                    return Err(missing());
                };
                values.get(&path).cloned().ok_or_else(missing)
            }
        }
    }
}

fn open_file(metadata: &Metadata) -> Result<SecretStore, ConfigError> {
    let path = metadata.required("secretsFile", "the path of the secrets file is required")?;
    let separator = metadata.get("nestedSeparator").unwrap_or(":").to_string();
    let multi_valued = metadata.flag("multiValued")?;
    let values = read_json_secrets(Path::new(path), &separator)
        .map_err(|e| ConfigError::field("secretsFile", e))?;
    Ok(SecretStore::File {
        values,
        separator,
        multi_valued,
    })
}

fn read_json_secrets(path: &Path, separator: &str) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("can't read secrets file {}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("secrets file {} is not valid JSON: {e}", path.display()))?;
    let mut values = HashMap::new();
    flatten("", &json, separator, &mut values);
    Ok(values)
}

fn flatten(
    path: &str,
    value: &serde_json::Value,
    separator: &str,
    out: &mut HashMap<String, String>,
) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}{separator}{key}")
        }
    };
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                flatten(&join(key), value, separator, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), value, separator, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_store(multi_valued: bool) -> SecretStore {
        let mut values = HashMap::new();
        let json =
            serde_json::json!({"redis": {"password": "pw", "user": "u"}, "plain": "p", "n": 5});
        flatten("", &json, ":", &mut values);
        SecretStore::File {
            values,
            separator: ":".into(),
            multi_valued,
        }
    }

    #[test]
    fn file_store_single_and_multi_valued() {
        let single = file_store(false);
        assert_eq!(single.get("redis:password", "").as_deref(), Ok("pw"));
        assert_eq!(single.get("plain", "plain").as_deref(), Ok("p"));
        assert_eq!(single.get("n", "").as_deref(), Ok("5"));
        assert!(single.get("plain", "other").is_err());
        let multi = file_store(true);
        assert_eq!(multi.get("redis", "user").as_deref(), Ok("u"));
        let err = multi.get("redis", "nope").unwrap_err();
        assert!(!err.contains("pw"));
    }

    #[test]
    fn env_store() {
        std::env::set_var("DLOCK_TEST_SECRET_ENV", "v");
        assert_eq!(
            SecretStore::Env.get("DLOCK_TEST_SECRET_ENV", "").as_deref(),
            Ok("v")
        );
        assert!(SecretStore::Env.get("DLOCK_TEST_SECRET_ENV", "x").is_err());
        assert!(SecretStore::Env.get("DLOCK_TEST_SECRET_UNSET", "").is_err());
    }
}
