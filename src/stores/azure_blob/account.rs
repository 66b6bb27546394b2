//! A storage account and the credential requests prove their right to it with: what a
//! connection string and the separate metadata fields both come down to. The key and the SAS
//! never show in `Debug`.

use std::fmt;

use base64::Engine;

/// The emulator's well-known account, key and endpoint (`UseDevelopmentStorage=true`).
pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub(crate) const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// A storage account and how requests prove they may use it.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) name: String,
    /// The blob service's URL, without a trailing slash: `https://<account>.blob.<suffix>`, or
    /// `http://127.0.0.1:10000/<account>` for the emulator.
    pub(crate) blob_endpoint: String,
    pub(crate) credential: Credential,
}

#[derive(Clone)]
pub(crate) enum Credential {
    /// The account key, decoded: requests are signed with it (Shared Key).
    Key(Vec<u8>),
    /// A shared access signature: the query string every request carries, without the `?`.
    Sas(String),
}

impl Credential {
    pub(crate) fn key(base64_key: &str) -> Result<Credential, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD
            .decode(base64_key)
            .map(Credential::Key)
    }

    pub(crate) fn sas(token: &str) -> Credential {
        Credential::Sas(token.trim_start_matches('?').to_string())
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Key(_) => "Key(..)",
            Credential::Sas(_) => "Sas(..)",
        })
    }
}
