//! A component's resolved metadata: name/value pairs, looked up without regard to case as Dapr
//! does. Values may be secrets, so `Debug` shows names only. Reading typed values from it is
//! the settings kit's part (`settings.rs`).

use std::fmt;

#[derive(Clone, Default)]
pub struct Metadata {
    items: Vec<(String, String)>,
}

impl Metadata {
    pub(crate) fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.items.push((name.into(), value.into()));
    }

    /// The value of `name` (case-insensitive); the last one wins if a name is repeated.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` when it is set and not empty.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
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
}
