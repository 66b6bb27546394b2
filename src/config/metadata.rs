//! A component's resolved metadata: name/value pairs, looked up without regard to case as Dapr
//! does. Values may be secrets, so `Debug` shows names only. Reading typed values from it is
//! the settings kit's part (`settings.rs`).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::spelling;

#[derive(Clone, Default)]
pub struct Metadata {
    items: Vec<(String, String)>,
    /// Every name a reader looked up, as the reader spells it, shared by clones: a name given but never
    /// looked up has no effect, and start-up says so (`unread`).
    asked: Arc<Mutex<BTreeSet<String>>>,
}

/// A name the component gives that its store never read, and the read name it is closest to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unread {
    pub(crate) name: String,
    pub(crate) did_you_mean: Option<String>,
}

impl Metadata {
    pub(crate) fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.items.push((name.into(), value.into()));
    }

    /// The value of `name` (case-insensitive); the last one wins if a name is repeated.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
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

    /// The names given that no reader looked up so far, each with the looked-up name it may be
    /// a typo of: after a store was built from this metadata, the settings it ignored.
    pub(crate) fn unread(&self) -> Vec<Unread> {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let mut unread: Vec<Unread> = Vec::new();
        for (name, _) in &self.items {
            let read = |other: &String| other.eq_ignore_ascii_case(name);
            if asked.iter().any(read) || unread.iter().any(|u| read(&u.name)) {
                continue;
            }
            let did_you_mean = spelling::closest(name, asked.iter().map(String::as_str));
            unread.push(Unread {
                name: name.clone(),
                did_you_mean: did_you_mean.map(str::to_string),
            });
        }
        unread
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
    fn names_nobody_read_are_reported_with_the_closest_read_name() {
        let m: Metadata = [("keyPrefx", "none"), ("redisHost", "h:1"), ("Other", "x")]
            .into_iter()
            .collect();
        let reader = m.clone();
        assert_eq!(reader.get("redisHost"), Some("h:1"));
        assert_eq!(reader.get("keyPrefix"), None);
        assert_eq!(
            m.unread(),
            [
                Unread {
                    name: "keyPrefx".into(),
                    did_you_mean: Some("keyPrefix".into())
                },
                Unread {
                    name: "Other".into(),
                    did_you_mean: None
                },
            ]
        );
    }
}
