//! How a resource id becomes a store key: Dapr's `keyPrefix` strategies, to the letter, so that
//! dlockd and daprd sharing one store agree on every key.

/// The separator Dapr puts between the parts of a key; it may not appear in the parts.
pub(crate) const SEPARATOR: &str = "||";

/// The strategy named by a component's `keyPrefix` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyPrefix {
    /// `lock||<app-id>||<resource>` (`lock||<resource>` when the app id is empty). The default.
    AppId,
    /// `lock||<component name>||<resource>`.
    ComponentName,
    /// `lock||<resource>`: every sidecar on the store shares the key.
    None,
    /// `lock||<prefix>||<resource>`, the prefix lowercased.
    Custom(String),
}

/// A `keyPrefix` value that can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keyPrefix '{0}' can't contain '||'")]
pub(crate) struct InvalidKeyPrefix(pub String);

impl KeyPrefix {
    /// Reads a `keyPrefix` value: unset or empty means `appid`; the value is lowercased first.
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, InvalidKeyPrefix> {
        let value = value.unwrap_or("").to_lowercase();
        if value.contains(SEPARATOR) {
            return Err(InvalidKeyPrefix(value));
        }
        Ok(match value.as_str() {
            "" | "appid" => KeyPrefix::AppId,
            "name" => KeyPrefix::ComponentName,
            "none" => KeyPrefix::None,
            _ => KeyPrefix::Custom(value),
        })
    }

    /// The store key for `resource_id`, or the detail of Dapr's error when the resource id
    /// contains the separator.
    pub(crate) fn store_key(
        &self,
        app_id: &str,
        component_name: &str,
        resource_id: &str,
    ) -> Result<String, String> {
        if resource_id.contains(SEPARATOR) {
            return Err(format!(
                "input key/keyPrefix '{resource_id}' can't contain '{SEPARATOR}'"
            ));
        }
        Ok(self.base(app_id, component_name) + resource_id)
    }

    /// What every key of this component starts with, e.g. `lock||app1||`.
    pub(crate) fn base(&self, app_id: &str, component_name: &str) -> String {
        let middle = match self {
            KeyPrefix::AppId => app_id,
            KeyPrefix::ComponentName => component_name,
            KeyPrefix::None => "",
            KeyPrefix::Custom(prefix) => prefix,
        };
        if middle.is_empty() {
            format!("lock{SEPARATOR}")
        } else {
            format!("lock{SEPARATOR}{middle}{SEPARATOR}")
        }
    }

    /// The resource id of a store key built by this component, or `None` for a key of
    /// another prefix.
    pub(crate) fn resource_id<'k>(
        &self,
        app_id: &str,
        component_name: &str,
        key: &'k str,
    ) -> Option<&'k str> {
        key.strip_prefix(&self.base(app_id, component_name))
            .filter(|rest| !rest.contains(SEPARATOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: Option<&str>, app_id: &str, resource: &str) -> String {
        KeyPrefix::parse(prefix)
            .unwrap()
            .store_key(app_id, "mystore", resource)
            .unwrap()
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(
            key(None, "appid1", "lock-key-1234567"),
            "lock||appid1||lock-key-1234567"
        );
    }

    #[test]
    fn strategies() {
        assert_eq!(key(Some("AppId"), "app", "r"), "lock||app||r");
        assert_eq!(key(Some(""), "app", "r"), "lock||app||r");
        assert_eq!(key(None, "", "r"), "lock||r");
        assert_eq!(key(Some("NAME"), "app", "r"), "lock||mystore||r");
        assert_eq!(key(Some("none"), "app", "r"), "lock||r");
        assert_eq!(key(Some("Shared-BPM"), "app", "r"), "lock||shared-bpm||r");
    }

    #[test]
    fn resource_ids_back_from_keys() {
        let none = KeyPrefix::None;
        assert_eq!(none.resource_id("app", "s", "lock||r/1"), Some("r/1"));
        assert_eq!(none.resource_id("app", "s", "lock||app||r"), None);
        assert_eq!(
            KeyPrefix::AppId.resource_id("app", "s", "lock||app||r"),
            Some("r")
        );
        assert_eq!(
            KeyPrefix::AppId.resource_id("app", "s", "lock||other||r"),
            None
        );
    }

    #[test]
    fn separator_is_refused() {
        assert_eq!(
            KeyPrefix::parse(Some("a||b")),
            Err(InvalidKeyPrefix("a||b".into()))
        );
        assert_eq!(
            KeyPrefix::AppId.store_key("app", "s", "x||y"),
            Err("input key/keyPrefix 'x||y' can't contain '||'".into())
        );
    }
}
