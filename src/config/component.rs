//! Reading Dapr component files (docs/contract.md §5): folders read non-recursively, `.yaml`/`.yml`
//! files of any case, several documents per file, only `dapr.io/v1alpha1` `Component`
//! documents kept. Parsing here only checks shape; what the values mean is start-up's job
//! (`startup::load`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::{duration, ConfigError};

const API_VERSION: &str = "dapr.io/v1alpha1";
const KIND: &str = "Component";
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One component document, shape-checked.
#[derive(Debug, Clone)]
pub struct Component {
    pub(crate) file: PathBuf,
    pub(crate) name: String,
    pub(crate) type_name: String,
    pub(crate) version: String,
    pub(crate) ignore_errors: bool,
    pub(crate) init_timeout: Duration,
    pub(crate) metadata: Vec<MetadataItem>,
    /// `auth.secretStore`: where `secretKeyRef`s are resolved.
    pub(crate) secret_store: Option<String>,
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct MetadataItem {
    pub(crate) name: String,
    pub(crate) source: ValueSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueSource {
    Value(String),
    SecretKeyRef { name: String, key: String },
    EnvRef(String),
}

impl Component {
    /// An error about this component, optionally naming a field.
    pub(crate) fn error(&self, field: Option<&str>, message: impl Into<String>) -> ConfigError {
        let error = match field {
            Some(field) => ConfigError::field(field, message),
            None => ConfigError::new(message),
        };
        self.place(error)
    }

    /// `error`, found in this component.
    fn place(&self, error: ConfigError) -> ConfigError {
        error.in_file(&self.file).in_component(&self.name)
    }
}

/// Reads every component of the folders, in folder order, files sorted by name.
pub(crate) fn read_folders(folders: &[PathBuf]) -> Result<Vec<Component>, ConfigError> {
    let mut components = Vec::new();
    for folder in folders {
        for file in component_files(folder)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError::new(format!("can't read: {e}")).in_file(&file))?;
            components.extend(parse_file(&file, &text)?);
        }
    }
    Ok(components)
}

/// The component files of a `--resources-path`: a folder's YAML files, or one named file.
fn component_files(folder: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    if folder.is_file() {
        return Ok(vec![folder.to_path_buf()]);
    }
    let entries = std::fs::read_dir(folder).map_err(|e| {
        ConfigError::new(format!("can't read the resources folder: {e}")).in_file(folder)
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| ConfigError::new(format!("can't list: {e}")).in_file(folder))?
            .path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses one file's documents, keeping the components.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Component>, ConfigError> {
    let mut components = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| {
            ConfigError::new(format!("document {} is not valid YAML: {e}", index + 1)).in_file(file)
        })?;
        let is_component = str_at(&value, &["apiVersion"]) == Some(API_VERSION)
            && str_at(&value, &["kind"]) == Some(KIND);
        if is_component {
            components.push(parse_component(file, &value)?);
        } else if !value.is_null() {
            tracing::debug!(file = %file.display(), document = index + 1, "not a component, skipped");
        }
    }
    Ok(components)
}

fn parse_component(file: &Path, doc: &Value) -> Result<Component, ConfigError> {
    let name = match at(doc, &["metadata", "name"]) {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            return Err(
                ConfigError::field("metadata.name", "a component needs a name").in_file(file),
            );
        }
    };
    let fail = |field: &str, message: String| {
        Err(ConfigError::field(field, message)
            .in_file(file)
            .in_component(&name))
    };

    let type_name = match at(doc, &["spec", "type"]) {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return fail(
                "spec.type",
                "a component needs a type, e.g. lock.redis".into(),
            )
        }
    };
    let version = match at(doc, &["spec", "version"]) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(v)) if ["v1", "v0", ""].contains(&v.as_str()) => v.clone(),
        Some(other) => {
            return fail(
                "spec.version",
                format!(
                    "version {} is not supported (v1, v0 or empty)",
                    scalar_text(other)
                ),
            )
        }
    };
    let ignore_errors = match at(doc, &["spec", "ignoreErrors"]) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.parse::<bool>().is_ok() => s.parse().unwrap_or_default(),
        Some(other) => {
            return fail(
                "spec.ignoreErrors",
                format!("expected true or false, found {}", scalar_text(other)),
            )
        }
    };
    let init_timeout = match at(doc, &["spec", "initTimeout"]) {
        None | Some(Value::Null) => DEFAULT_INIT_TIMEOUT,
        Some(Value::String(s)) => match duration::parse(s) {
            Ok(d) => d,
            Err(e) => return fail("spec.initTimeout", e),
        },
        Some(other) => {
            return fail(
                "spec.initTimeout",
                format!(
                    "expected a duration such as 5s, found {}",
                    scalar_text(other)
                ),
            )
        }
    };

    let mut metadata = Vec::new();
    match at(doc, &["spec", "metadata"]) {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for (i, item) in items.iter().enumerate() {
                match parse_metadata_item(item) {
                    Ok(item) => metadata.push(item),
                    Err(e) => return fail(&format!("spec.metadata[{i}]"), e),
                }
            }
        }
        Some(_) => {
            return fail(
                "spec.metadata",
                "expected a list of name/value items".into(),
            )
        }
    }

    let secret_store = match at(doc, &["auth", "secretStore"]) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return fail("auth.secretStore", "expected a secret store's name".into()),
    };
    let scopes = match doc.get("scopes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => {
            let mut scopes = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => scopes.push(s.clone()),
                    other => {
                        return fail(
                            "scopes",
                            format!("expected app ids, found {}", scalar_text(other)),
                        )
                    }
                }
            }
            scopes
        }
        Some(_) => return fail("scopes", "expected a list of app ids".into()),
    };

    Ok(Component {
        file: file.to_path_buf(),
        name,
        type_name,
        version,
        ignore_errors,
        init_timeout,
        metadata,
        secret_store,
        scopes,
    })
}

fn parse_metadata_item(item: &Value) -> Result<MetadataItem, String> {
    let name = match item.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => return Err("a metadata item needs a name".into()),
    };
    let value = item.get("value").filter(|v| !v.is_null());
    let secret = item.get("secretKeyRef").filter(|v| !v.is_null());
    let env = item.get("envRef").filter(|v| !v.is_null());
    let source = match (value, secret, env) {
        (Some(value), None, None) => ValueSource::Value(match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => scalar_text(value),
            _ => {
                return Err(format!(
                    "'{name}': value must be a string, number or boolean"
                ))
            }
        }),
        (None, Some(secret), None) => {
            let name_of_secret = match secret.get("name") {
                Some(Value::String(n)) if !n.is_empty() => n.clone(),
                _ => return Err(format!("'{name}': secretKeyRef needs a name")),
            };
            let key = match secret.get("key") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(k)) => k.clone(),
                Some(_) => return Err(format!("'{name}': secretKeyRef.key must be a string")),
            };
            ValueSource::SecretKeyRef {
                name: name_of_secret,
                key,
            }
        }
        (None, None, Some(Value::String(var))) if !var.is_empty() => {
            ValueSource::EnvRef(var.clone())
        }
        (None, None, Some(_)) => {
            return Err(format!(
                "'{name}': envRef must name an environment variable"
            ))
        }
        // Dapr treats an item with no value as an empty value.
        (None, None, None) => ValueSource::Value(String::new()),
        _ => {
            return Err(format!(
                "'{name}': give only one of value, secretKeyRef and envRef"
            ))
        }
    };
    Ok(MetadataItem { name, source })
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// A scalar as text (how a number or boolean `value` becomes a metadata string); other values
/// are described, for error messages.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "nothing".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Component>, ConfigError> {
        parse_file(Path::new("test.yaml"), text)
    }

    #[test]
    fn full_component_and_other_kinds() {
        let components = parse(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: config}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: lockstore
spec:
  type: lock.redis
  version: v1
  ignoreErrors: true
  initTimeout: 10s
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: redisDB
    value: 3
  - name: redisPassword
    secretKeyRef: {name: redis-secret, key: password}
  - name: keyPrefix
    envRef: LOCK_PREFIX
auth:
  secretStore: envstore
scopes: [bpm-server]
---
"#,
        )
        .unwrap();
        assert_eq!(components.len(), 1);
        let c = &components[0];
        assert_eq!(
            (c.name.as_str(), c.type_name.as_str()),
            ("lockstore", "lock.redis")
        );
        assert!(c.ignore_errors);
        assert_eq!(c.init_timeout, Duration::from_secs(10));
        assert_eq!(c.metadata[1].source, ValueSource::Value("3".into()));
        assert_eq!(
            c.metadata[2].source,
            ValueSource::SecretKeyRef {
                name: "redis-secret".into(),
                key: "password".into()
            }
        );
        assert_eq!(
            c.metadata[3].source,
            ValueSource::EnvRef("LOCK_PREFIX".into())
        );
        assert_eq!(c.secret_store.as_deref(), Some("envstore"));
        assert_eq!(c.scopes, ["bpm-server"]);
    }

    #[test]
    fn errors_name_file_component_and_field() {
        let err = parse(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: lock.in-memory\n  initTimeout: soon\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("test.yaml: component 's': field spec.initTimeout:"),
            "{text}"
        );

        let err =
            parse("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {}\n")
                .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.type"));

        let err = parse("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: lock.in-memory\n  metadata:\n  - name: a\n    value: x\n    envRef: Y\n")
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.metadata[0]"));

        let err = parse("a: [unclosed").unwrap_err();
        assert!(err.message.contains("not valid YAML"), "{err}");
    }
}
