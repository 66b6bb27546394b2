//! An Azure Storage connection string, read the way Azure's own tools read it: `Name=Value`
//! pairs separated by `;`, names without regard to case, a value running to the next `;` (keys
//! and SAS tokens hold `=`). The forms in use: the portal's (`DefaultEndpointsProtocol`,
//! `AccountName`, `AccountKey`, `EndpointSuffix`), one with an explicit `BlobEndpoint`, one with
//! a `SharedAccessSignature` instead of a key, and `UseDevelopmentStorage=true` for the emulator.
//!
//! Errors name the part at fault and never repeat a value: the string holds the account key.

use super::account::{Account, Credential, DEV_ACCOUNT, DEV_ACCOUNT_KEY, DEV_BLOB_ENDPOINT};

/// The account a connection string names, or why it names none.
pub(crate) fn parse(text: &str) -> Result<Account, String> {
    let mut parts: Vec<(String, &str)> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!(
                "a part without '=' (part {} of the string)",
                parts.len() + 1
            ));
        };
        parts.push((name.trim().to_ascii_lowercase(), value.trim()));
    }
    let get = |name: &str| {
        parts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };

    if let Some(flag) = get("usedevelopmentstorage") {
        if !flag.eq_ignore_ascii_case("true") {
            return Err("UseDevelopmentStorage can only be true".into());
        }
        if get("developmentstorageproxyuri").is_some() {
            return Err("DevelopmentStorageProxyUri is not supported: give a BlobEndpoint".into());
        }
        return Ok(Account {
            name: DEV_ACCOUNT.into(),
            blob_endpoint: DEV_BLOB_ENDPOINT.into(),
            credential: Credential::key(DEV_ACCOUNT_KEY).expect("the emulator's key is base64"),
        });
    }

    let account = get("accountname");
    let credential = match (get("accountkey"), get("sharedaccesssignature")) {
        (Some(key), None) => {
            Credential::key(key).map_err(|_| "AccountKey is not base64".to_string())?
        }
        (None, Some(sas)) => Credential::sas(sas),
        (Some(_), Some(_)) => {
            return Err("give AccountKey or SharedAccessSignature, not both".into());
        }
        (None, None) => {
            return Err(
                "no AccountKey or SharedAccessSignature: copy the whole string from \
                        the storage account's Access keys page"
                    .into(),
            );
        }
    };
    let blob_endpoint = match get("blobendpoint") {
        Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
        None => {
            let Some(account) = account else {
                return Err("no AccountName and no BlobEndpoint".into());
            };
            let protocol = get("defaultendpointsprotocol").unwrap_or("https");
            if protocol != "https" && protocol != "http" {
                return Err("DefaultEndpointsProtocol is neither https nor http".into());
            }
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            format!("{protocol}://{account}.blob.{suffix}")
        }
    };
    let name = match account {
        Some(name) => name.to_string(),
        // A SAS with its own endpoint names no account; a key signs for one, so needs it.
        None if matches!(credential, Credential::Sas(_)) => {
            account_from_endpoint(&blob_endpoint).unwrap_or_default()
        }
        None => return Err("AccountKey without AccountName".into()),
    };
    Ok(Account {
        name,
        blob_endpoint,
        credential,
    })
}

/// `acct` from `https://acct.blob.core.windows.net`.
fn account_from_endpoint(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split('/').next()?;
    Some(host.split('.').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    fn account(text: &str) -> Account {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_portals_form() {
        let a = account(&format!(
            "DefaultEndpointsProtocol=https;AccountName=bpmlocks;AccountKey={KEY};\
             EndpointSuffix=core.windows.net"
        ));
        assert_eq!(a.name, "bpmlocks");
        assert_eq!(a.blob_endpoint, "https://bpmlocks.blob.core.windows.net");
        assert!(matches!(a.credential, Credential::Key(_)));
        // Another cloud, names in any case, no protocol (https), a trailing ';'.
        let a = account(&format!(
            "accountname=x;ACCOUNTKEY={KEY};EndpointSuffix=core.chinacloudapi.cn;"
        ));
        assert_eq!(a.blob_endpoint, "https://x.blob.core.chinacloudapi.cn");
    }

    #[test]
    fn an_explicit_blob_endpoint() {
        let a = account(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};\
             BlobEndpoint=http://127.0.0.1:10300/devstoreaccount1/;"
        ));
        assert_eq!(a.blob_endpoint, "http://127.0.0.1:10300/devstoreaccount1");
    }

    #[test]
    fn a_shared_access_signature() {
        let a = account(
            "BlobEndpoint=https://bpm.blob.core.windows.net;\
             SharedAccessSignature=sv=2022-11-02&ss=b&srt=co&sp=rwdlac&sig=abc%3D",
        );
        assert_eq!(a.name, "bpm");
        match a.credential {
            Credential::Sas(sas) => assert!(sas.starts_with("sv=2022") && sas.ends_with("%3D")),
            Credential::Key(_) => panic!("a SAS was read as a key"),
        }
    }

    #[test]
    fn development_storage() {
        let a = account("UseDevelopmentStorage=true");
        assert_eq!(a.name, "devstoreaccount1");
        assert_eq!(a.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
    }

    #[test]
    fn mistakes_are_named_and_never_echo_the_key() {
        let secret = "hunter2hunter2==";
        for text in [
            format!("AccountName=a;AccountKey=not base64 {secret}"),
            format!("AccountName=a;AccountKey={KEY};SharedAccessSignature=sig={secret}"),
            "AccountName=a".to_string(),
            format!("AccountKey={secret}"),
            format!("AccountName=a;{secret}"),
            "UseDevelopmentStorage=false".to_string(),
            format!("AccountName=a;AccountKey={KEY};DefaultEndpointsProtocol=ftp"),
        ] {
            let error = parse(&text).expect_err(&text);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
