//! Reading Dapr component files (docs/contract.md §5): folders read non-recursively, `.yaml`/`.yml`
//! files of any case, several documents per file, only `dapr.io/v1alpha1` `Component`
//! documents kept. Parsing here only checks shape; what the values mean is start-up's job
//! (`startup::load`).
//!
//! Files are read as users write them, on Windows too: a UTF-8 byte-order mark (at the start of
//! the file or of any document) and CRLF line endings are accepted. A component of a building
//! block dlockd does not serve (state, pub/sub, bindings, …) is recognised by its `spec.type`
//! alone and skipped, whatever the rest of it holds, so an app's existing components folder
//! never stops start-up. Only lock stores and secret stores (and types nobody serves, which
//! start-up reports) are parsed in full; a document that cannot be read as YAML stops start-up
//! naming its file, line and column, unless its text shows another building block's type.
//!
//! A document "looks like a component" when its `kind` is within two edits of `Component`
//! (any case) or its `spec.type` is a dotted Dapr type (`lock.redis`, `bindings.cron`): such a
//! document with another `kind` or `apiVersion` is a typo far more often than not. Skipped, a
//! typo would silently remove a lock store (at start-up, or from a running sidecar on a live
//! edit), so it is an error naming the file, the line and the field, unless the type is another
//! building block's, which is skipped with a warning as it would be anyway.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use super::spelling::edit_distance;
use super::{duration, ConfigError};

const API_VERSION: &str = "dapr.io/v1alpha1";
const KIND: &str = "Component";
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);
const BOM: char = '\u{feff}';

/// Building-block categories of Dapr that dlockd does not serve. Their components are skipped
/// with a note, so a Dapr app's existing components folder can be given as it is.
const OTHER_CATEGORIES: &[&str] = &[
    "state.",
    "pubsub.",
    "bindings.",
    "configuration.",
    "middleware.",
    "nameresolution.",
    "workflow.",
    "crypto.",
    "conversation.",
];
/// One component document, shape-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
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
pub(crate) fn component_files(folder: &Path) -> Result<Vec<PathBuf>, ConfigError> {
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

/// Parses one file's documents, keeping the components dlockd may serve.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Component>, ConfigError> {
    parse_noting(file, text, Notes::Logged)
}

/// Whether the documents a parse skips are noted in the log: at start-up, once; the reloader
/// parses the same files again at every change it sees, and notes nothing twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notes {
    Logged,
    Quiet,
}

impl Notes {
    /// A skipped document's note: at `warn` (a typo) or `info`, or at `debug` when quiet.
    fn note(self, warn: bool, file: &Path, number: usize, text: &str) {
        match (self, warn) {
            (Notes::Logged, true) => {
                tracing::warn!(file = %file.display(), document = number, "{text}");
            }
            (Notes::Logged, false) => {
                tracing::info!(file = %file.display(), document = number, "{text}");
            }
            (Notes::Quiet, _) => {
                tracing::debug!(file = %file.display(), document = number, "{text}");
            }
        }
    }
}

/// `parse_file`, noting what it skips as `notes` says.
pub(crate) fn parse_noting(
    file: &Path,
    text: &str,
    notes: Notes,
) -> Result<Vec<Component>, ConfigError> {
    let mut components = Vec::new();
    for (index, document) in documents(text).into_iter().enumerate() {
        let number = index + 1;
        let value = match serde_norway::from_str::<Value>(document.text) {
            Ok(value) => value,
            Err(error) => match loose_type(document.text).filter(|t| is_other_category(t)) {
                Some(type_name) => {
                    let text = format!(
                        "type {type_name} is not a lock store, skipped (it is not valid YAML: {error})"
                    );
                    notes.note(false, file, number, &text);
                    continue;
                }
                None => return Err(yaml_error(file, number, document.first_line, &error)),
            },
        };
        match classify(&value) {
            Document::Component(type_name) if is_other_category(type_name) => {
                let name = str_at(&value, &["metadata", "name"]).unwrap_or("");
                let text =
                    format!("component '{name}': type {type_name} is not a lock store, skipped");
                notes.note(false, file, number, &text);
            }
            Document::Component(_) => components.push(parse_component(file, &value)?),
            // Another building block's component, misspelt: not ours to refuse.
            Document::Misspelt { type_name, .. } if is_other_category(type_name) => {
                let text = format!(
                    "type {type_name} is not a lock store, skipped (and its kind or apiVersion is misspelt)"
                );
                notes.note(true, file, number, &text);
            }
            // A lock store (or a secret store, or a type nobody serves) that a typo would
            // silently remove: refused, so the running version keeps serving on a live edit
            // and start-up stops naming the line.
            Document::Misspelt { field, found, .. } => {
                let line = field_line(document.text, field)
                    .map_or(document.first_line, |l| document.first_line + l);
                let expected = if field == "kind" { KIND } else { API_VERSION };
                let message = format!(
                    "line {line}: document {number}: '{found}' is not '{expected}': this looks \
                     like a component with a typo (write {field}: {expected})"
                );
                return Err(ConfigError::field(field, message).in_file(file));
            }
            Document::Other => {
                tracing::debug!(file = %file.display(), document = number, "not a component, skipped");
            }
        }
    }
    Ok(components)
}

/// One YAML document of a file, and the file's line it starts on (1-based).
struct Source<'a> {
    text: &'a str,
    first_line: usize,
}

/// Splits a file at its `---` lines into documents, each without a leading byte-order mark.
/// Split here rather than by the YAML stream reader so that one broken document is reported with
/// its own line, a mark after `---` is dropped, and other documents are still looked at.
fn documents(text: &str) -> Vec<Source<'_>> {
    let mut documents = Vec::new();
    let (mut start, mut first_line) = (0, 1);
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_start_matches(BOM).trim_end();
        let is_marker = bare == "---" || bare.starts_with("--- #");
        if is_marker {
            documents.push(Source {
                text: text[start..offset].trim_start_matches(BOM),
                first_line,
            });
            start = offset + line.len();
            first_line = index + 2;
        }
        offset += line.len();
    }
    documents.push(Source {
        text: text[start..].trim_start_matches(BOM),
        first_line,
    });
    documents
}

/// A YAML syntax error, with the line and column in the file (not in the document).
fn yaml_error(
    file: &Path,
    number: usize,
    first_line: usize,
    error: &serde_norway::Error,
) -> ConfigError {
    let place = match error.location() {
        Some(at) => format!(
            "line {}, column {}",
            first_line + at.line() - 1,
            at.column()
        ),
        None => format!("the document starting at line {first_line}"),
    };
    // The parser's own text repeats a location relative to the document; keep only the reason.
    let text = error.to_string();
    let reason = text.split(" at line ").next().unwrap_or(&text);
    ConfigError::new(format!(
        "{place}: document {number} is not valid YAML: {reason}"
    ))
    .in_file(file)
}

/// What one parsed document is.
enum Document<'a> {
    /// A component, with its `spec.type` (empty when missing: full parsing reports it).
    Component(&'a str),
    /// Looks like a component, but `field` holds `found` instead of what Dapr reads.
    Misspelt {
        field: &'static str,
        found: String,
        type_name: &'a str,
    },
    Other,
}

fn classify(value: &Value) -> Document<'_> {
    let kind = str_at(value, &["kind"]);
    let api_version = str_at(value, &["apiVersion"]);
    let type_name = str_at(value, &["spec", "type"]).unwrap_or("");
    if kind == Some(KIND) && api_version == Some(API_VERSION) {
        return Document::Component(type_name);
    }
    let kind_is_close = kind.is_some_and(|k| edit_distance(&k.to_lowercase(), "component") <= 2);
    let dapr_type = type_name.contains('.') && !type_name.contains(char::is_whitespace);
    if !(kind_is_close || dapr_type) {
        return Document::Other;
    }
    let describe =
        |found: Option<&str>| found.map_or_else(|| "nothing".to_string(), str::to_string);
    if kind != Some(KIND) {
        Document::Misspelt {
            field: "kind",
            found: describe(kind),
            type_name,
        }
    } else {
        Document::Misspelt {
            field: "apiVersion",
            found: describe(api_version),
            type_name,
        }
    }
}

/// The line of a document's top-level `field:` key, counted from 0 within the document.
fn field_line(text: &str, field: &str) -> Option<usize> {
    text.lines().position(|line| {
        line.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// Whether `type_name` belongs to a building block dlockd does not serve.
fn is_other_category(type_name: &str) -> bool {
    OTHER_CATEGORIES.iter().any(|c| type_name.starts_with(c))
}

/// The `type:` of a document that is not valid YAML, read from its text: the first indented
/// `type: x` line (a component's `spec.type` is the only indented `type` key Dapr defines).
fn loose_type(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(|c: char| c == ' ' || c == '\t')?;
        let value = rest.trim_start().strip_prefix("type:")?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then_some(value)
    })
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

    const LOCK: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: lockstore\nspec:\n  type: lock.redis\n  metadata:\n  - name: redisHost\n    value: localhost:6379\n";

    #[test]
    fn byte_order_marks_and_crlf_are_accepted() {
        let binding = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cron\nspec:\n  type: bindings.cron\n";
        let text = format!("\u{feff}{binding}---\n\u{feff}{LOCK}").replace('\n', "\r\n");
        let components = parse(&text).unwrap();
        assert_eq!(components.len(), 1);
        assert_eq!(components[0].name, "lockstore");
        assert_eq!(
            components[0].metadata[0].source,
            ValueSource::Value("localhost:6379".into())
        );
    }

    #[test]
    fn other_building_blocks_are_skipped_whatever_they_hold() {
        // Shape our parser refuses (metadata not a list) and text that is not YAML at all.
        let text = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: b}}\nspec:\n  type: bindings.http\n  metadata: {{url: x}}\n  initTimeout: soon\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: s}}\nspec:\n  type: state.redis\n  metadata: [{{name: a, value: {{{{ .x }}}}\n---\n{LOCK}"
        );
        let components = parse(&text).unwrap();
        assert_eq!(components.len(), 1);
        assert_eq!(components[0].name, "lockstore");
    }

    #[test]
    fn a_lock_store_that_is_not_yaml_names_line_and_column() {
        let text = format!("{LOCK}---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: lock.redis\n  metadata: [\n");
        // The reader stops at the end of the file (line 18), still looking for the list.
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("test.yaml: line 18, column 1: document 2 is not valid YAML"),
            "{err}"
        );
    }

    #[test]
    fn documents_that_look_like_components_are_recognised() {
        let misspelt = |doc: &str| match classify(&serde_norway::from_str(doc).unwrap()) {
            Document::Misspelt { field, found, .. } => Some((field, found)),
            _ => None,
        };
        assert_eq!(
            misspelt("apiVersion: dapr.io/v1alpha1\nkind: Componnet\nspec: {type: lock.redis}"),
            Some(("kind", "Componnet".into()))
        );
        assert_eq!(
            misspelt("apiVersion: dapr.io/v1alpha1\nkind: component\nmetadata: {name: x}"),
            Some(("kind", "component".into()))
        );
        assert_eq!(
            misspelt("apiVersion: dapr.io/v1alpha\nkind: Component\nspec: {type: lock.redis}"),
            Some(("apiVersion", "dapr.io/v1alpha".into()))
        );
        assert_eq!(
            misspelt("apiVersion: v1\nkind: Secret\nspec: {type: lock.redis}"),
            Some(("kind", "Secret".into()))
        );
        // Neither a near-Component kind nor a dotted type: Dapr's other resources, Kubernetes'.
        for other in [
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec: {tracing: {}}",
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nspec: {topic: t}",
            "apiVersion: v1\nkind: Service\nspec: {type: ClusterIP}",
        ] {
            assert_eq!(misspelt(other), None, "{other}");
        }
    }
}

/// Property tests: the loader never panics, whatever the file holds, and every error it gives
/// names the file, and the component and field where it knows them.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::config::mutation::mutated;

    const FILE: &str = "components/lock.yaml";

    const FULL: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: lockstore\nspec:\n  type: lock.redis\n  version: v1\n  ignoreErrors: false\n  initTimeout: 10s\n  metadata:\n  - name: redisHost\n    value: localhost:6379\n  - name: redisPassword\n    secretKeyRef: {name: redis, key: password}\n  - name: keyPrefix\n    envRef: PREFIX\nauth:\n  secretStore: env\nscopes: [bpm]\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: cron}\nspec: {type: bindings.cron, metadata: [{name: schedule, value: '@every 1s'}]}\n";

    /// Read or refused; a refusal names the file.
    fn read_or_refused_naming_the_file(text: &str) -> Result<(), TestCaseError> {
        if let Err(error) = parse_file(Path::new(FILE), text) {
            prop_assert_eq!(error.file.as_deref(), Some(Path::new(FILE)), "{}", error);
            prop_assert!(error.to_string().starts_with(FILE), "{}", error);
        }
        Ok(())
    }

    /// The fields of `spec` (and beside it) that the loader reads, with their paths.
    const FIELDS: &[(&str, &str)] = &[
        ("version", "spec.version"),
        ("ignoreErrors", "spec.ignoreErrors"),
        ("initTimeout", "spec.initTimeout"),
        ("metadata", "spec.metadata"),
    ];

    /// A YAML value of any shape, written in flow style so it fits on one line. A mapping's
    /// keys are distinct: YAML with a key twice is not a value of some shape but a document
    /// that does not parse, refused before any component is known.
    fn any_yaml() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            "[a-z0-9][a-z0-9.]{0,7}",
            any::<i64>().prop_map(|n| n.to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("~".to_string()),
        ];
        leaf.prop_recursive(2, 6, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::btree_map("[a-z]{1,5}", inner, 0..3).prop_map(|v| {
                    let items: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!("{{{}}}", items.join(", "))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_is_read_or_refused_naming_the_file(text in any::<String>()) {
            read_or_refused_naming_the_file(&text)?;
        }

        #[test]
        fn a_mutated_file_is_read_or_refused_naming_the_file(text in mutated(FULL)) {
            read_or_refused_naming_the_file(&text)?;
        }

        #[test]
        fn a_field_of_any_shape_is_read_or_refused_naming_component_and_field(
            field in prop::sample::select(FIELDS),
            value in any_yaml(),
        ) {
            let (name, path) = field;
            let text = format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: s}}\nspec:\n  type: lock.in-memory\n  {name}: {value}\n"
            );
            if let Err(error) = parse_file(Path::new(FILE), &text) {
                let text = error.to_string();
                prop_assert_eq!(error.component.as_deref(), Some("s"), "{}", text);
                let field = error.field.clone().unwrap_or_default();
                prop_assert!(field.starts_with(path), "{} for {}", text, path);
                prop_assert!(text.starts_with(&format!("{FILE}: component 's': field {path}")), "{}", text);
            }
        }
    }
}
