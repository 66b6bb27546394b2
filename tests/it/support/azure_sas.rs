//! Account shared access signatures for Azurite, signed with its well-known key as the portal's
//! "Shared access signature" page signs them with an account key, so the tests can give
//! `lock.azure.blobstorage` a SAS instead of a key. Signed version 2018-11-09, whose string to
//! sign is the account name, permissions, services, resource types, start, expiry, IP range,
//! protocols and version, one per line.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::backend::{AZURITE_ACCOUNT, AZURITE_KEY};

/// A SAS for the blob service (containers and blobs) with `permissions` (e.g. `rwdlac`), valid
/// until 2099, as the query string the portal shows, without the leading `?`.
pub fn account_sas(permissions: &str) -> String {
    let (services, resource_types, expiry, protocols, version) = (
        "b",
        "sco",
        "2099-01-01T00:00:00Z",
        "https,http",
        "2018-11-09",
    );
    let to_sign = format!(
        "{AZURITE_ACCOUNT}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n\
         {protocols}\n{version}\n"
    );
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &STANDARD
            .decode(AZURITE_KEY)
            .expect("Azurite's key is base64"),
    );
    let signature = STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
    format!(
        "sv={version}&ss={services}&srt={resource_types}&sp={permissions}&se={}&spr={protocols}\
         &sig={}",
        encode(expiry),
        encode(&signature)
    )
}

/// Percent-encodes what a query value may not carry as it is.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
