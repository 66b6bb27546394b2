//! daprd's Configuration file (`--config`, `kind: Configuration`, the file `dapr init` writes),
//! read so that an existing daprd set-up starts unchanged. Only parsing happens here: which
//! routes and RPCs the API rules close is the API's business (`api::access`).
//!
//! What dlockd takes from the file: the API allow and deny lists (`spec.api`), the metrics switch
//! (`spec.metric.enabled`, or daprd's alias `spec.metrics`), the API log switch
//! (`spec.logging.apiLogging.enabled`), and daprd's `HotReload` feature (`spec.features`).
//! Every other section is listed in `ignored`, so the log can name it once, as are the other
//! feature flags: none of them exists in dlockd.
//!
//! As daprd does, unknown keys are no error and `kind` / `apiVersion` are not required to match
//! (a mismatch is a warning); a value of the wrong shape in a section dlockd applies stops
//! start-up naming the file and the field. The file is read as users write it on Windows too: a
//! UTF-8 byte-order mark and CRLF line endings are accepted.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::ConfigError;

const KIND: &str = "Configuration";
const API_VERSION: &str = "dapr.io/v1alpha1";
const BOM: char = '\u{feff}';

/// The parts of a Configuration that dlockd applies, and what it ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    pub file: PathBuf,
    /// `spec.api.allowed`: when it names anything for a protocol, only what it names is served
    /// on that protocol.
    pub allowed: Vec<ApiRule>,
    /// `spec.api.denied`: never served.
    pub denied: Vec<ApiRule>,
    /// `spec.metric.enabled`; daprd's default is on. Off, dlockd serves no metrics, whatever
    /// `--enable-metrics` says.
    pub metrics_enabled: bool,
    /// `spec.logging.apiLogging.enabled`, when the file sets it; `--enable-api-logging` wins.
    pub api_logging: Option<bool>,
    /// The `HotReload` feature's `enabled`, when `spec.features` names it; `--hot-reload` wins.
    /// daprd reloads components only when it is enabled; dlockd unless it is disabled.
    pub hot_reload: Option<bool>,
    /// The sections present that dlockd does not apply, as paths (`spec.tracing`), each with a
    /// word on why where there is more to say than "not a lock sidecar's business".
    pub ignored: Vec<String>,
    /// Mistakes daprd would also let pass (a `kind` that is not Configuration, a rule whose
    /// protocol matches neither API): logged as warnings.
    pub warnings: Vec<String>,
}

/// One entry of `spec.api.allowed` or `spec.api.denied`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRule {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) protocol: String,
}

impl Default for Configuration {
    /// What daprd runs with when no `--config` is given.
    fn default() -> Self {
        Configuration {
            file: PathBuf::new(),
            allowed: Vec::new(),
            denied: Vec::new(),
            metrics_enabled: true,
            api_logging: None,
            hot_reload: None,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Configuration {
    /// Reads and parses the file.
    pub fn read(file: &Path) -> Result<Configuration, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(format!("can't read: {e}")).in_file(file))?;
        parse(file, &text).map_err(|e| e.in_file(file))
    }
}

fn parse(file: &Path, text: &str) -> Result<Configuration, ConfigError> {
    let doc: Value = serde_norway::from_str(text.trim_start_matches(BOM)).map_err(|e| {
        let place = e.location().map_or(String::new(), |at| {
            format!("line {}, column {}: ", at.line(), at.column())
        });
        let text = e.to_string();
        let reason = text.split(" at line ").next().unwrap_or(&text).to_string();
        ConfigError::new(format!("{place}not valid YAML: {reason}"))
    })?;
    let mut config = Configuration {
        file: file.to_path_buf(),
        ..Configuration::default()
    };
    if doc.is_null() {
        return Ok(config);
    }
    let root = mapping(&doc, "the file")?;
    for (field, expected) in [("kind", KIND), ("apiVersion", API_VERSION)] {
        let found = root.get(field).and_then(Value::as_str);
        if found != Some(expected) {
            config.warnings.push(format!(
                "field {field}: {} instead of {expected}; read as a Configuration anyway, as \
                 daprd does",
                found.map_or("nothing".to_string(), |f| format!("'{f}'"))
            ));
        }
    }
    let Some(spec) = root.get("spec").filter(|s| !s.is_null()) else {
        return Ok(config);
    };
    for (key, value) in mapping(spec, "spec")? {
        let key = key_text(key);
        let path = format!("spec.{key}");
        match key.as_str() {
            "api" => read_api(&mut config, value)?,
            "metric" | "metrics" => read_metric(&mut config, &path, value)?,
            "logging" => read_logging(&mut config, value)?,
            "features" => read_features(&mut config, value)?,
            _ => config.ignored.push(path),
        }
    }
    Ok(config)
}

fn read_api(config: &mut Configuration, api: &Value) -> Result<(), ConfigError> {
    if api.is_null() {
        return Ok(());
    }
    for (key, value) in mapping(api, "spec.api")? {
        let key = key_text(key);
        let path = format!("spec.api.{key}");
        let list = match key.as_str() {
            "allowed" => &mut config.allowed,
            "denied" => &mut config.denied,
            _ => {
                config.ignored.push(path);
                continue;
            }
        };
        let rules = match value {
            Value::Null => continue,
            Value::Sequence(rules) => rules,
            other => {
                return Err(wrong_shape(
                    &path,
                    "a list of {name, version, protocol}",
                    other,
                ))
            }
        };
        for (index, rule) in rules.iter().enumerate() {
            let path = format!("{path}[{index}]");
            let rule = read_rule(&path, rule)?;
            if !matches!(rule.protocol.to_lowercase().as_str(), "http" | "grpc") {
                config.warnings.push(format!(
                    "field {path}.protocol: '{}' is neither http nor grpc, so the rule applies \
                     to neither API (as in daprd)",
                    rule.protocol
                ));
            } else if rule.protocol != "http" && rule.protocol != "grpc" {
                config.warnings.push(format!(
                    "field {path}.protocol: '{}' counts for HTTP only; daprd compares the gRPC \
                     protocol case-sensitively, so does dlockd",
                    rule.protocol
                ));
            }
            list.push(rule);
        }
    }
    Ok(())
}

fn read_rule(path: &str, rule: &Value) -> Result<ApiRule, ConfigError> {
    let rule = mapping(rule, path)?;
    let text = |field: &str| -> Result<String, ConfigError> {
        match rule.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(other) => Err(wrong_shape(&format!("{path}.{field}"), "a string", other)),
        }
    };
    Ok(ApiRule {
        name: text("name")?,
        version: text("version")?,
        protocol: text("protocol")?,
    })
}

/// `spec.metric` and `spec.metrics`: daprd copies the set fields of the second over the first,
/// so whichever is read last and sets `enabled` decides.
fn read_metric(config: &mut Configuration, path: &str, metric: &Value) -> Result<(), ConfigError> {
    if metric.is_null() {
        return Ok(());
    }
    for (key, value) in mapping(metric, path)? {
        let key = key_text(key);
        let field = format!("{path}.{key}");
        match (key.as_str(), value) {
            ("enabled", Value::Null) => {}
            ("enabled", Value::Bool(enabled)) => config.metrics_enabled = *enabled,
            ("enabled", other) => return Err(wrong_shape(&field, "true or false", other)),
            _ => config.ignored.push(field),
        }
    }
    Ok(())
}

fn read_logging(config: &mut Configuration, logging: &Value) -> Result<(), ConfigError> {
    if logging.is_null() {
        return Ok(());
    }
    for (key, value) in mapping(logging, "spec.logging")? {
        let key = key_text(key);
        if key != "apiLogging" {
            config.ignored.push(format!("spec.logging.{key}"));
            continue;
        }
        if value.is_null() {
            continue;
        }
        for (key, value) in mapping(value, "spec.logging.apiLogging")? {
            let key = key_text(key);
            let field = format!("spec.logging.apiLogging.{key}");
            match (key.as_str(), value) {
                ("enabled", Value::Null) => {}
                ("enabled", Value::Bool(enabled)) => config.api_logging = Some(*enabled),
                ("enabled", other) => return Err(wrong_shape(&field, "true or false", other)),
                ("obfuscateURLs" | "omitHealthChecks", _) => config.ignored.push(format!(
                    "{field} (the API log names methods, not URLs, and leaves out health \
                     checks)"
                )),
                _ => config.ignored.push(field),
            }
        }
    }
    Ok(())
}

/// `spec.features`: `HotReload` applies; the others are named in one ignored-line entry.
fn read_features(config: &mut Configuration, value: &Value) -> Result<(), ConfigError> {
    let features: &[Value] = match value {
        Value::Null => &[],
        Value::Sequence(features) => features,
        other => {
            return Err(wrong_shape(
                "spec.features",
                "a list of {name, enabled}",
                other,
            ))
        }
    };
    let mut names = Vec::new();
    for (index, feature) in features.iter().enumerate() {
        let name = feature
            .get("name")
            .map(key_text)
            .unwrap_or_else(|| "(no name)".into());
        if name != "HotReload" {
            names.push(name);
            continue;
        }
        match feature.get("enabled") {
            None | Some(Value::Null) => config.hot_reload = Some(false),
            Some(Value::Bool(enabled)) => config.hot_reload = Some(*enabled),
            Some(other) => {
                let field = format!("spec.features[{index}].enabled");
                return Err(wrong_shape(&field, "true or false", other));
            }
        }
    }
    if !names.is_empty() || features.is_empty() {
        config.ignored.push(ignored_features(&names));
    }
    Ok(())
}

/// The ignored-line entry for `spec.features`, naming the flags it sets.
fn ignored_features(names: &[String]) -> String {
    format!(
        "spec.features ({}: dlockd has no such feature; HotReload is the one it reads)",
        if names.is_empty() {
            "none set".to_string()
        } else {
            names.join(", ")
        }
    )
}

fn mapping<'a>(value: &'a Value, path: &str) -> Result<&'a Mapping, ConfigError> {
    value
        .as_mapping()
        .ok_or_else(|| wrong_shape(path, "a mapping", value))
}

fn wrong_shape(path: &str, expected: &str, found: &Value) -> ConfigError {
    let found = match found {
        Value::Null => "nothing".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    };
    if path == "the file" {
        ConfigError::new(format!("the file must be a mapping, found {found}"))
    } else {
        ConfigError::field(path, format!("must be {expected}, found {found}"))
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Configuration, ConfigError> {
        parse(Path::new("c.yaml"), text).map_err(|e| e.in_file("c.yaml"))
    }

    fn rule(name: &str, version: &str, protocol: &str) -> ApiRule {
        ApiRule {
            name: name.into(),
            version: version.into(),
            protocol: protocol.into(),
        }
    }

    /// What `dapr init` writes (dapr/cli pkg/standalone).
    const DAPR_INIT: &str = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  \
        name: daprConfig\nspec:\n  tracing:\n    samplingRate: \"1\"\n    zipkin:\n      \
        endpointAddress: http://localhost:9411/api/v2/spans\n";

    #[test]
    fn the_file_dapr_init_writes() {
        let config = parse_text(DAPR_INIT).unwrap();
        assert_eq!(config.ignored, ["spec.tracing"]);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert!(config.metrics_enabled);
        assert_eq!(config.api_logging, None);
        let slim = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: \
                    daprConfig\nspec: {}\n";
        assert_eq!(
            parse_text(slim).unwrap(),
            Configuration {
                file: "c.yaml".into(),
                ..Configuration::default()
            }
        );
    }

    #[test]
    fn what_applies_is_read_and_the_rest_named() {
        let text = "\u{feff}apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  api:\n    \
            allowed:\n      - name: lock\n        version: v1alpha1\n        protocol: grpc\n    \
            denied:\n      - {name: dlock, version: v1, protocol: HTTP}\n  metric:\n    \
            enabled: false\n    rules: []\n  logging:\n    apiLogging:\n      enabled: true\n      \
            omitHealthChecks: true\n  features:\n    - name: HotReload\n      enabled: false\n    \
            - name: Resiliency\n      enabled: true\n  mtls:\n    enabled: true\n"
            .replace('\n', "\r\n");
        let config = parse_text(&text).unwrap();
        assert_eq!(config.allowed, [rule("lock", "v1alpha1", "grpc")]);
        assert_eq!(config.denied, [rule("dlock", "v1", "HTTP")]);
        assert!(!config.metrics_enabled);
        assert_eq!(config.api_logging, Some(true));
        assert_eq!(config.hot_reload, Some(false));
        assert_eq!(config.ignored.len(), 4, "{:?}", config.ignored);
        assert_eq!(config.ignored[0], "spec.metric.rules");
        assert!(config.ignored[1].starts_with("spec.logging.apiLogging.omitHealthChecks"));
        assert!(config.ignored[2].starts_with("spec.features (Resiliency:"));
        assert_eq!(config.ignored[3], "spec.mtls");
        // `HTTP` is fine for HTTP (daprd lowercases it), and says nothing for gRPC.
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("spec.api.denied[0].protocol"));
    }

    #[test]
    fn the_plural_metrics_alias_counts() {
        let config = parse_text("spec:\n  metrics:\n    enabled: false\n").unwrap();
        assert!(!config.metrics_enabled);
    }

    #[test]
    fn mismatches_daprd_lets_pass_are_warnings() {
        let config = parse_text(
            "apiVersion: dapr.io/v1\nkind: Component\nspec:\n  api:\n    denied:\n      - name: \
             lock\n        version: v1alpha1\n",
        )
        .unwrap();
        let warnings = config.warnings.join("\n");
        assert!(warnings.contains("field kind: 'Component'"), "{warnings}");
        assert!(
            warnings.contains("field apiVersion: 'dapr.io/v1'"),
            "{warnings}"
        );
        assert!(
            warnings.contains("spec.api.denied[0].protocol: '' is neither"),
            "{warnings}"
        );
    }

    #[test]
    fn wrong_shapes_name_file_and_field() {
        let cases = [
            (
                "spec:\n  api:\n    allowed: lock\n",
                "field spec.api.allowed:",
            ),
            (
                "spec:\n  api:\n    denied:\n      - name: [a]\n",
                "field spec.api.denied[0].name:",
            ),
            (
                "spec:\n  api:\n    allowed:\n      - lock\n",
                "field spec.api.allowed[0]:",
            ),
            (
                "spec:\n  metric:\n    enabled: \"no\"\n",
                "field spec.metric.enabled: must be true or false, found 'no'",
            ),
            (
                "spec:\n  logging:\n    apiLogging:\n      enabled: 1\n",
                "field spec.logging.apiLogging.enabled:",
            ),
            ("spec: [1]\n", "field spec:"),
            ("spec:\n  features: on\n", "field spec.features:"),
            (
                "spec:\n  features:\n    - {name: HotReload, enabled: \"no\"}\n",
                "field spec.features[0].enabled: must be true or false",
            ),
            (
                "spec:\n  api: {\n",
                "c.yaml: line 3, column 1: not valid YAML",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_text(text).unwrap_err().to_string();
            assert!(error.starts_with("c.yaml: "), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_missing_file_names_it() {
        let error = Configuration::read(Path::new("/nonexistent/config.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("/nonexistent/config.yaml: can't read"),
            "{error}"
        );
    }
}

/// Property tests: the loader never panics, whatever the file holds, and every error names
/// the file and either the field at fault or the place YAML broke.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::config::mutation::mutated;

    const FULL: &str = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bpm\nspec:\n  api:\n    allowed:\n      - name: lock\n        version: v1alpha1\n        protocol: grpc\n    denied:\n      - {name: dlock, version: v1, protocol: http}\n  metric:\n    enabled: false\n  logging:\n    apiLogging:\n      enabled: true\n      omitHealthChecks: true\n  features:\n    - name: HotReload\n      enabled: true\n  tracing: {samplingRate: \"1\"}\n";

    fn read_or_refused_naming_file_and_place(text: &str) -> Result<(), TestCaseError> {
        let file = Path::new("config.yaml");
        if let Err(error) = parse(file, text).map_err(|e| e.in_file(file)) {
            let shown = error.to_string();
            prop_assert!(shown.starts_with("config.yaml: "), "{}", shown);
            prop_assert!(
                error.field.is_some()
                    || error.message.contains("not valid YAML")
                    || error.message.starts_with("the file must be a mapping"),
                "{}",
                shown
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_is_read_or_refused_naming_the_file(text in any::<String>()) {
            read_or_refused_naming_file_and_place(&text)?;
        }

        #[test]
        fn a_mutated_file_is_read_or_refused_naming_file_and_place(text in mutated(FULL)) {
            read_or_refused_naming_file_and_place(&text)?;
        }
    }
}
