//! A component's resolved metadata: name/value pairs, looked up without regard to case as Dapr
//! does, and the few value formats every store reads from it (flags, durations), whose errors
//! name the field. Values may be secrets, so `Debug` shows names only.

use std::fmt;
use std::time::Duration;

use super::duration;

#[derive(Clone, Default)]
pub struct Metadata {
    items: Vec<(String, String)>,
}

impl Metadata {
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.items.push((name.into(), value.into()));
    }

    /// The value of `name` (case-insensitive); the last one wins if a name is repeated.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` when it is set and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A Go duration (`5s`, `250ms`), or `default` when unset.
    pub fn duration_or(
        &self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, FieldError> {
        match self.non_empty(name) {
            None => Ok(default),
            Some(text) => duration::parse(text).map_err(|e| FieldError::new(name, e)),
        }
    }

    /// PEM text (a certificate or key), given inline as Dapr components do or as the path of a
    /// file holding it; `None` when unset. The value itself never appears in an error: it may
    /// be a key pasted in the wrong form.
    pub fn pem(&self, name: &'static str) -> Result<Option<String>, FieldError> {
        let Some(value) = self.non_empty(name) else {
            return Ok(None);
        };
        if value.trim_start().starts_with("-----BEGIN") {
            return Ok(Some(value.to_string()));
        }
        let text = std::fs::read_to_string(value).map_err(|e| {
            FieldError::new(
                name,
                format!("neither PEM text (-----BEGIN …) nor a readable PEM file: {e}"),
            )
        })?;
        if !text.contains("-----BEGIN") {
            return Err(FieldError::new(
                name,
                "the file holds no PEM block (-----BEGIN …)",
            ));
        }
        Ok(Some(text))
    }

    /// `true` or `false`; false when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, FieldError> {
        match self.non_empty(name) {
            None => Ok(false),
            Some(text) => text.parse().map_err(|_| {
                FieldError::new(name, format!("expected true or false, found '{text}'"))
            }),
        }
    }
}

/// A metadata value that could not be read, and the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(items: I) -> Self {
        let mut metadata = Metadata::default();
        for (name, value) in items {
            metadata.insert(name, value);
        }
        metadata
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|(name, _)| name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_redacted() {
        let mut m = Metadata::default();
        m.insert("redisPassword", "s3cret");
        assert_eq!(m.get("REDISPASSWORD"), Some("s3cret"));
        assert_eq!(m.get("other"), None);
        assert!(!format!("{m:?}").contains("s3cret"));
    }

    #[test]
    fn flags_and_durations_name_their_field() {
        let mut m = Metadata::default();
        m.insert("enableTLS", "yes");
        m.insert("dialTimeout", "2s");
        m.insert("readTimeout", "");
        assert_eq!(m.flag("enableTLS").unwrap_err().field, "enableTLS");
        assert_eq!(m.flag("failover"), Ok(false));
        let second = Duration::from_secs(1);
        assert_eq!(m.duration_or("dialTimeout", second), Ok(2 * second));
        assert_eq!(m.duration_or("readTimeout", second), Ok(second));
        m.insert("readTimeout", "soon");
        assert_eq!(
            m.duration_or("readTimeout", second).unwrap_err().field,
            "readTimeout"
        );
    }
}
