//! A throwaway certificate authority for TLS tests: a CA, a server certificate for
//! 127.0.0.1/localhost and a client certificate, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};

use super::dlockd::temp_dir;

#[derive(Clone)]
pub struct Certs {
    pub ca: PathBuf,
    /// Certificate and key of 127.0.0.1 / localhost.
    pub server: (PathBuf, PathBuf),
    /// Certificate and key of a client.
    pub client: (PathBuf, PathBuf),
}

impl Certs {
    pub fn new() -> Certs {
        let dir = temp_dir("certs");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct subjects: OpenSSL takes a certificate whose subject is its issuer's for a
        // self-signed one (rcgen gives every certificate the same default subject).
        ca_params.distinguished_name = subject("dlock test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        write(&dir, "ca.pem", &ca.pem());
        for (name, names) in [
            (
                "server",
                vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ),
            ("client", vec!["dlockd".to_string()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name = subject(&format!("dlock test {name}"));
            let cert = params.signed_by(&key, &ca).unwrap();
            write(&dir, &format!("{name}.pem"), &cert.pem());
            write(&dir, &format!("{name}.key"), &key.serialize_pem());
        }
        let pair = |name: &str| {
            (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            )
        };
        Certs {
            ca: dir.join("ca.pem"),
            server: pair("server"),
            client: pair("client"),
        }
    }
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).unwrap();
}
