//! The metadata of a `lock.azure.blobstorage` component, with the names Dapr's Azure Blob
//! components use where they have one (`accountName`, `accountKey`, `endpoint`,
//! `containerName`, `azureClientId`…), plus `connectionString` as the portal gives it,
//! `sasToken`, and `requestTimeout`.
//!
//! One way in: a connection string, or an account name with its key or a SAS token. Microsoft
//! Entra ID is refused by name: this build signs requests with a shared key or a SAS only.
//! The key and the SAS never show in `Debug` or in an error.

use std::time::Duration;

use super::account::{Account, Credential};
use super::connection_string;
use crate::config::{ConfigError, Metadata};

/// The metadata names of Entra ID sign-in in Dapr's Azure components.
const ENTRA_ID_FIELDS: [&str; 6] = [
    "azureClientId",
    "azureTenantId",
    "azureClientSecret",
    "azureCertificate",
    "azureCertificateFile",
    "azureFederatedTokenFile",
];

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) account: Account,
    pub(crate) container: String,
    /// The metadata field that holds the credential, for errors when the service refuses it.
    pub(crate) credential_field: &'static str,
    pub(crate) request_timeout: Duration,
}

impl Settings {
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self, ConfigError> {
        let container = metadata.required(
            "containerName",
            "required: the blob container that every sidecar sharing these locks uses",
        )?;
        check_container_name(container).map_err(|e| ConfigError::field("containerName", e))?;

        let (account, credential_field) = if let Some(text) = metadata.non_empty("connectionString")
        {
            for other in ["accountName", "accountKey", "sasToken", "endpoint"] {
                if metadata.non_empty(other).is_some() {
                    return Err(ConfigError::field(
                        other,
                        "give connectionString or accountName with accountKey or sasToken, \
                         not both",
                    ));
                }
            }
            let account = connection_string::parse(text).map_err(|e| {
                ConfigError::field(
                    "connectionString",
                    format!("not a usable connection string: {e}"),
                )
            })?;
            (account, "connectionString")
        } else {
            account_from_parts(metadata)?
        };

        Ok(Settings {
            account,
            container: container.to_string(),
            credential_field,
            request_timeout: metadata.duration_or("requestTimeout", Duration::from_secs(5))?,
        })
    }
}

/// An account from `accountName` with `accountKey` or `sasToken`, and `endpoint`.
fn account_from_parts(metadata: &Metadata) -> Result<(Account, &'static str), ConfigError> {
    let entra_id = ENTRA_ID_FIELDS
        .iter()
        .find(|name| metadata.non_empty(name).is_some());
    let key = metadata.non_empty("accountKey");
    let sas = metadata.non_empty("sasToken");
    let (credential, field) = match (key, sas, entra_id) {
        (Some(_), Some(_), _) => {
            return Err(ConfigError::field(
                "sasToken",
                "give accountKey or sasToken, not both",
            ))
        }
        (Some(key), None, _) => (
            Credential::key(key).map_err(|_| {
                ConfigError::field(
                    "accountKey",
                    "not base64: copy key1 or key2 from the storage account's Access keys page",
                )
            })?,
            "accountKey",
        ),
        (None, Some(sas), _) => (Credential::sas(sas), "sasToken"),
        (None, None, Some(name)) => {
            return Err(ConfigError::field(
                *name,
                "Microsoft Entra ID is not supported in this build: give connectionString, \
                 or accountName with accountKey or sasToken",
            ))
        }
        (None, None, None) => {
            return Err(ConfigError::field(
                "connectionString",
                "required: the storage account's connection string (or accountName with \
                 accountKey or sasToken)",
            ))
        }
    };
    let name = metadata.required("accountName", "required with accountKey or sasToken")?;
    // A custom endpoint (the emulator's, or a proxy's) addresses the account by path, as
    // Dapr's Azure components do; otherwise the account has its own host in Azure's cloud.
    let blob_endpoint = match metadata.non_empty("endpoint") {
        Some(endpoint) => {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(ConfigError::field(
                    "endpoint",
                    format!("'{endpoint}' is not an http:// or https:// URL"),
                ));
            }
            let endpoint = endpoint.trim_end_matches('/');
            if endpoint.ends_with(&format!("/{name}")) {
                endpoint.to_string()
            } else {
                format!("{endpoint}/{name}")
            }
        }
        None => format!("https://{name}.blob.core.windows.net"),
    };
    Ok((
        Account {
            name: name.to_string(),
            blob_endpoint,
            credential,
        },
        field,
    ))
}

/// Azure's rule for container names: 3 to 63 lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit.
fn check_container_name(name: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a container name: 3 to 63 lowercase letters, digits and single \
             hyphens, starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::account::DEV_ACCOUNT;
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    fn settings(items: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_metadata(&items.iter().copied().collect())
    }

    #[test]
    fn a_connection_string_or_an_account_with_a_key_or_sas() {
        let s = settings(&[
            ("connectionString", "UseDevelopmentStorage=true"),
            ("containerName", "locks"),
        ])
        .unwrap();
        assert_eq!(s.account.name, DEV_ACCOUNT);
        assert_eq!(s.credential_field, "connectionString");
        assert_eq!(s.request_timeout, Duration::from_secs(5));

        let s = settings(&[
            ("accountName", "devstoreaccount1"),
            ("accountKey", KEY),
            ("endpoint", "http://127.0.0.1:10300/"),
            ("containerName", "locks"),
            ("requestTimeout", "2s"),
        ])
        .unwrap();
        assert_eq!(
            s.account.blob_endpoint,
            "http://127.0.0.1:10300/devstoreaccount1"
        );
        assert_eq!(s.credential_field, "accountKey");
        assert_eq!(s.request_timeout, Duration::from_secs(2));

        let s = settings(&[
            ("accountName", "bpm"),
            ("sasToken", "?sv=2022-11-02&sig=hunter2"),
            ("containerName", "locks"),
        ])
        .unwrap();
        assert_eq!(s.account.blob_endpoint, "https://bpm.blob.core.windows.net");
        assert_eq!(s.credential_field, "sasToken");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_field_and_hide_secrets() {
        let conn = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=hunter2 not base64";
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("connectionString", "UseDevelopmentStorage=true")],
                "containerName",
            ),
            (
                &[
                    ("connectionString", "UseDevelopmentStorage=true"),
                    ("containerName", "Locks"),
                ],
                "containerName",
            ),
            (&[("containerName", "locks")], "connectionString"),
            (
                &[("containerName", "locks"), ("connectionString", conn)],
                "connectionString",
            ),
            (
                &[
                    ("containerName", "locks"),
                    ("connectionString", "UseDevelopmentStorage=true"),
                    ("accountKey", KEY),
                ],
                "accountKey",
            ),
            (
                &[("containerName", "locks"), ("accountKey", KEY)],
                "accountName",
            ),
            (
                &[
                    ("containerName", "locks"),
                    ("accountName", "a"),
                    ("accountKey", "hunter2!"),
                ],
                "accountKey",
            ),
            (
                &[
                    ("containerName", "locks"),
                    ("accountName", "a"),
                    ("accountKey", KEY),
                    ("sasToken", "sig=hunter2"),
                ],
                "sasToken",
            ),
            (
                &[
                    ("containerName", "locks"),
                    ("accountName", "a"),
                    ("azureClientId", "id"),
                    ("azureClientSecret", "hunter2"),
                ],
                "azureClientId",
            ),
            (
                &[
                    ("containerName", "locks"),
                    ("accountName", "a"),
                    ("accountKey", KEY),
                    ("endpoint", "127.0.0.1:10000"),
                ],
                "endpoint",
            ),
        ];
        for (items, name) in cases {
            let err = settings(items).err().unwrap();
            assert_eq!(
                err.field.as_deref(),
                Some(*name),
                "{items:?}: {}",
                err.message
            );
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
    }
}
