//! A component's resolved metadata: name/value pairs, looked up without regard to case as Dapr
//! does, and read as the few value types stores share (Go durations, flags). Values may be
//! secrets, so `Debug` shows names only and errors never quote a value they did not parse.

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

    /// The value of `name` unless it is unset or empty (an empty value means "the default", as
    /// in daprd's components).
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
            Some(text) => duration::parse(text).map_err(|message| FieldError {
                field: name,
                message,
            }),
        }
    }

    /// `true` or `false`; false when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, FieldError> {
        match self.non_empty(name) {
            None => Ok(false),
            Some(text) => text.parse().map_err(|_| FieldError {
                field: name,
                message: format!("expected true or false, found '{text}'"),
            }),
        }
    }
}

/// A metadata value that could not be read, naming its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
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
    fn typed_values() {
        let mut m = Metadata::default();
        m.insert("timeout", "250ms");
        m.insert("empty", "");
        m.insert("on", "true");
        m.insert("bad", "soon");
        let default = Duration::from_secs(1);
        assert_eq!(
            m.duration_or("timeout", default),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(m.duration_or("empty", default), Ok(default));
        assert_eq!(m.duration_or("bad", default).unwrap_err().field, "bad");
        assert_eq!(m.flag("on"), Ok(true));
        assert_eq!(m.flag("unset"), Ok(false));
        assert_eq!(m.flag("bad").unwrap_err().field, "bad");
    }
}
