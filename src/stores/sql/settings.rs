//! The settings every SQL lock store reads alike, by the names Dapr's PostgreSQL and MySQL
//! state stores use: `tableName`, `timeout` (or MySQL's `timeoutInSeconds`) and
//! `cleanupInterval`. The connection string is
//! each database's own (`postgresql/settings.rs`, `mysql/settings.rs`).

use std::time::Duration;

use crate::config::{ConfigError, Metadata};

/// The table's name when `tableName` is unset.
pub(crate) const DEFAULT_TABLE: &str = "dlock_locks";

/// The longest table name: the store derives names from it (a sequence, a notification
/// channel) that must stay within PostgreSQL's 63-byte identifiers and MySQL's 64.
const MAX_NAME: usize = 48;

#[derive(Debug, Clone)]
pub(crate) struct TableSettings {
    /// The table, as `schema.table` where the database has schemas in its table names.
    pub(crate) schema: Option<String>,
    pub(crate) table: String,
    /// The bound on every statement (and on connecting), so an outage fails requests promptly.
    pub(crate) timeout: Duration,
    /// How often expired rows are removed; zero turns the removal off.
    pub(crate) cleanup_interval: Duration,
}

impl TableSettings {
    /// Reads `tableName` (optionally `schema.table` when `qualified_names`), `timeout` and
    /// `cleanupInterval`.
    pub(crate) fn from_metadata(
        metadata: &Metadata,
        qualified_names: bool,
    ) -> Result<TableSettings, ConfigError> {
        let name = metadata.non_empty("tableName").unwrap_or(DEFAULT_TABLE);
        let (schema, table) = match name.split_once('.') {
            Some((schema, table)) if qualified_names => (Some(schema), table),
            _ => (None, name),
        };
        for part in schema.iter().chain([&table]) {
            identifier("tableName", part)?;
        }
        // Dapr's MySQL state store (and PostgreSQL's first version) name it
        // `timeoutInSeconds`, a number of seconds; either name is read, not both.
        let field = metadata.one_of("timeout", "timeoutInSeconds")?;
        let timeout = if field == "timeout" {
            metadata.duration_or("timeout", Duration::from_secs(5))?
        } else {
            Duration::from_secs(metadata.number_or("timeoutInSeconds", 5u64)?)
        };
        if timeout.is_zero() {
            return Err(ConfigError::field(field, "must be more than zero"));
        }
        Ok(TableSettings {
            schema: schema.map(str::to_string),
            table: table.to_string(),
            timeout,
            cleanup_interval: metadata.duration_or("cleanupInterval", Duration::from_secs(60))?,
        })
    }
}

/// Checks that `name` is a plain SQL identifier (letters, digits, underscores, not starting
/// with a digit): the stores quote it in statements, and a plain name needs no escaping rules
/// that differ between databases.
pub(crate) fn identifier<'a>(field: &str, name: &'a str) -> Result<&'a str, ConfigError> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(name)
    } else {
        Err(ConfigError::field(
            field,
            format!(
                "'{name}' is not a plain name: letters, digits and underscores, at most \
                 {MAX_NAME} characters, not starting with a digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(items: &[(&str, &str)]) -> Metadata {
        items.iter().copied().collect()
    }

    #[test]
    fn names_and_defaults() {
        let s = TableSettings::from_metadata(&metadata(&[]), true).unwrap();
        assert_eq!((s.schema, s.table.as_str()), (None, DEFAULT_TABLE));
        assert_eq!(s.timeout, Duration::from_secs(5));
        let dapr_mysql: Metadata = [("timeoutInSeconds", "20")].into_iter().collect();
        let s = TableSettings::from_metadata(&dapr_mysql, false).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(20));
        let both: Metadata = [("timeoutInSeconds", "20"), ("timeout", "2s")]
            .into_iter()
            .collect();
        let refused = TableSettings::from_metadata(&both, false).unwrap_err();
        assert!(
            refused.to_string().contains("timeoutInSeconds"),
            "{refused}"
        );
        assert_eq!(s.cleanup_interval, Duration::from_secs(60));
        let s = TableSettings::from_metadata(
            &metadata(&[
                ("tableName", "bpm.locks"),
                ("timeout", "2s"),
                ("cleanupInterval", "0s"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            (s.schema.as_deref(), s.table.as_str()),
            (Some("bpm"), "locks")
        );
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert!(s.cleanup_interval.is_zero());
    }

    #[test]
    fn errors_name_the_field() {
        for (items, qualified, field) in [
            (&[("tableName", "bpm.locks")][..], false, "tableName"),
            (&[("tableName", "locks; drop")][..], true, "tableName"),
            (&[("tableName", "1locks")][..], true, "tableName"),
            (&[("timeout", "0s")][..], true, "timeout"),
            (
                &[("cleanupInterval", "hourly")][..],
                true,
                "cleanupInterval",
            ),
        ] {
            let err = TableSettings::from_metadata(&metadata(items), qualified)
                .err()
                .unwrap();
            assert_eq!(err.field.as_deref(), Some(field), "{items:?}");
        }
    }
}
