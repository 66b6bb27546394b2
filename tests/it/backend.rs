//! The stores the conformance suite runs against, and how to write a component for each. A
//! new store adds a variant here (reading its server's address from the environment that
//! scripts/test.sh sets) and one `conformance_suite!` line in conformance/mod.rs.

use crate::harness::{component, Options, Sidecar};

/// The admin token every conformance sidecar has, for force release.
pub const ADMIN_TOKEN: &str = "conformance-admin";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// lock.in-memory: one keyspace per dlockd process.
    Memory,
}

impl Backend {
    pub fn type_name(self) -> &'static str {
        match self {
            Backend::Memory => "lock.in-memory",
        }
    }

    /// Whether two sidecars on this backend see the same locks.
    pub fn shared_between_sidecars(self) -> bool {
        match self {
            Backend::Memory => false,
        }
    }

    /// The metadata connecting a component to this backend's test server.
    fn connection(self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Memory => Vec::new(),
        }
    }

    /// A component file for this backend, with an optional keyPrefix.
    pub fn component(self, name: &str, key_prefix: Option<&str>) -> String {
        let mut metadata: Vec<(&str, String)> = self.connection();
        if let Some(prefix) = key_prefix {
            metadata.push(("keyPrefix", prefix.to_string()));
        }
        let pairs: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
        component(name, self.type_name(), &pairs)
    }

    /// A sidecar with app id `app_id` serving the given (store name, keyPrefix) components.
    pub fn sidecar(self, app_id: &str, stores: &[(&str, Option<&str>)]) -> Sidecar {
        let files: Vec<(String, String)> = stores
            .iter()
            .map(|(name, prefix)| (format!("{name}.yaml"), self.component(name, *prefix)))
            .collect();
        Sidecar::start(Options {
            app_id: app_id.into(),
            files: Some(files),
            env: vec![("DLOCK_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
            ..Options::default()
        })
    }
}

/// A resource id no other test uses.
pub fn unique(label: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
