//! Turns component files into loaded stores: scopes, duplicate names, secret and environment
//! references, keyPrefix, `ignoreErrors` and `initTimeout`, as daprd applies them
//! (docs/contract.md §5).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use super::store_types::{StoreTypes, IN_MEMORY};
use crate::config::component::{self, Component, ValueSource};
use crate::config::secrets::SecretStore;
use crate::config::{ConfigError, Metadata};
use crate::lock::{KeyPrefix, LoadedStore, Registry};

/// The name of the store served when no component files are given.
const DEFAULT_STORE_NAME: &str = "lockstore";

/// What was loaded, and from where.
pub struct Loaded {
    pub registry: Registry,
    /// The components in scope, loaded or not (`ignoreErrors`): what a reload compares the
    /// files with.
    pub components: Vec<Component>,
    /// Loaded secret stores, as (name, type), for the metadata API.
    pub secret_stores: Vec<(String, String)>,
    /// Where the components came from, for the ready line.
    pub source: String,
}

/// Loads the components of `folders` with `store_types` (which a reload uses again); with no
/// folders, the embedded in-memory store named `lockstore`. Unlike an earlier version,
/// `./components` is not read by default: this repository's `components/` holds a sample per
/// store, and a sample for a server that is not running must not stop a plain `dlockd` from
/// starting (daprd has no such default either).
pub async fn load_components(
    folders: &[PathBuf],
    app_id: &str,
    store_types: &StoreTypes,
) -> Result<Loaded, ConfigError> {
    if folders.is_empty() {
        return Ok(embedded_default(store_types).await);
    }
    let (folders, app_id, store_types) =
        (folders.to_vec(), app_id.to_string(), store_types.clone());
    off_serving_threads(async move { load_folders(&folders, &app_id, &store_types).await }).await
}

/// Runs `load` on a thread of the blocking pool, not on the threads that serve requests:
/// loading reads files with blocking calls (component files, a secrets file, certificates and
/// keys that metadata names, some of them inside a store's connect), and a read from a slow
/// disk or network share would stall every request meanwhile (all of them, with one worker
/// thread). The connections a load opens still belong to the runtime: the blocking thread
/// runs the load with the runtime's handle.
pub(super) async fn off_serving_threads<T: Send + 'static>(
    load: impl Future<Output = T> + Send + 'static,
) -> T {
    let runtime = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || runtime.block_on(load)).await {
        Ok(loaded) => loaded,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

async fn embedded_default(store_types: &StoreTypes) -> Loaded {
    let mut registry = Registry::default();
    let store = store_types
        .build(IN_MEMORY, &Metadata::default())
        .await
        .and_then(Result::ok)
        .expect("the embedded store always builds");
    registry
        .insert(LoadedStore::new(
            DEFAULT_STORE_NAME.into(),
            IN_MEMORY.into(),
            "v1".into(),
            KeyPrefix::AppId,
            store,
        ))
        .expect("an empty registry takes any name");
    Loaded {
        registry,
        components: Vec::new(),
        secret_stores: Vec::new(),
        source: "embedded default (no --resources-path given)".into(),
    }
}

async fn load_folders(
    folders: &[PathBuf],
    app_id: &str,
    store_types: &StoreTypes,
) -> Result<Loaded, ConfigError> {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut in_scope = Vec::new();
    for component in component::read_folders(folders)? {
        if !is_in_scope(&component, app_id) {
            tracing::info!(component = %component.name, file = %component.file.display(),
                "not in scope for app id '{app_id}', skipped");
            continue;
        }
        if let Some(first) = seen.get(&component.name) {
            return Err(component.error(
                Some("metadata.name"),
                format!(
                    "duplicate component name, also defined in {}",
                    first.display()
                ),
            ));
        }
        seen.insert(component.name.clone(), component.file.clone());
        in_scope.push(component);
    }

    // Secret stores first: lock stores may refer to them.
    let mut secret_stores = HashMap::new();
    let mut secret_store_list = Vec::new();
    for component in in_scope.iter().filter(|c| is_secret_store(c)) {
        match open_secret_store(component) {
            Ok(store) => {
                secret_stores.insert(component.name.clone(), store);
                secret_store_list.push((component.name.clone(), component.type_name.clone()));
            }
            Err(error) => skip_or_fail(component, error)?,
        }
    }

    let mut registry = Registry::default();
    for component in &in_scope {
        if is_secret_store(component) {
            continue;
        }
        match load_lock_store(component, &secret_stores, store_types).await {
            Ok(store) => {
                registry
                    .insert(store)
                    .map_err(|e| component.error(None, e))?;
            }
            Err(error) => skip_or_fail(component, error)?,
        }
    }

    Ok(Loaded {
        registry,
        components: in_scope,
        secret_stores: secret_store_list,
        source: folders
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `ignoreErrors: true` turns a component's failure into a logged error.
fn skip_or_fail(component: &Component, error: ConfigError) -> Result<(), ConfigError> {
    if component.ignore_errors {
        tracing::error!("{error} (ignoreErrors is set: starting without this component)");
        Ok(())
    } else {
        Err(error)
    }
}

/// Whether the component's `scopes` let app `app_id` load it.
pub(super) fn is_in_scope(component: &Component, app_id: &str) -> bool {
    component.scopes.is_empty() || component.scopes.iter().any(|s| s == app_id)
}

/// Whether the component is a secret store (which lock stores' metadata may refer to).
pub(super) fn is_secret_store(component: &Component) -> bool {
    component.type_name.starts_with("secretstores.")
}

/// Opens a secret-store component.
pub(super) fn open_secret_store(component: &Component) -> Result<SecretStore, ConfigError> {
    resolve_metadata(component, &HashMap::new()).and_then(|metadata| {
        match SecretStore::open(&component.type_name, &metadata) {
            None => Err(unknown_type(component)),
            Some(opened) => opened.map_err(|e| metadata_error(component, e)),
        }
    })
}

/// Builds a lock-store component's store, within its `initTimeout`.
pub(super) async fn load_lock_store(
    component: &Component,
    secret_stores: &HashMap<String, SecretStore>,
    store_types: &StoreTypes,
) -> Result<LoadedStore, ConfigError> {
    let metadata = resolve_metadata(component, secret_stores)?;
    let key_prefix = KeyPrefix::parse(metadata.get("keyPrefix"))
        .map_err(|e| component.error(Some("spec.metadata 'keyPrefix'"), e.to_string()))?;
    let build = store_types.build(&component.type_name, &metadata);
    let store = match tokio::time::timeout(component.init_timeout, build).await {
        Err(_) => {
            return Err(component.error(
                None,
                format!(
                    "did not initialise within its initTimeout of {:?}",
                    component.init_timeout
                ),
            ))
        }
        Ok(None) => return Err(unknown_type(component)),
        Ok(Some(Err(error))) => return Err(metadata_error(component, error)),
        Ok(Some(Ok(store))) => store,
    };
    warn_unread(component, &metadata);
    let version = if component.version.is_empty() {
        "v1".into()
    } else {
        component.version.clone()
    };
    Ok(LoadedStore::new(
        component.name.clone(),
        component.type_name.clone(),
        version,
        key_prefix,
        store,
    ))
}

/// One warning per metadata name the store never read: a typo (`keyPrefx`, which silently
/// changes which sidecars share locks) or a setting of Dapr's that dlock has no use for.
fn warn_unread(component: &Component, metadata: &Metadata) {
    for unread in metadata.unread() {
        let hint = unread
            .did_you_mean
            .map(|name| format!(" (did you mean '{name}'?)"))
            .unwrap_or_default();
        tracing::warn!(
            "{}: component '{}': metadata '{}' is not a setting {} reads, so it has no effect{hint}",
            component.file.display(),
            component.name,
            unread.name,
            component.type_name,
        );
    }
}

/// A component whose `spec.type` this build does not serve, with the types it does.
fn unknown_type(component: &Component) -> ConfigError {
    let supported: Vec<&str> = StoreTypes::names().chain(SecretStore::names()).collect();
    component.error(
        Some("spec.type"),
        format!(
            "unknown type '{}'; this build supports {}",
            component.type_name,
            supported.join(", ")
        ),
    )
}

/// A store's or secret store's error, placed in its component: the field it names is one of
/// the component's metadata items.
fn metadata_error(component: &Component, error: ConfigError) -> ConfigError {
    let field = error.field.map(|f| format!("spec.metadata '{f}'"));
    component.error(field.as_deref(), error.message)
}

/// Resolves every metadata item's value: literal, environment variable or secret.
fn resolve_metadata(
    component: &Component,
    secret_stores: &HashMap<String, SecretStore>,
) -> Result<Metadata, ConfigError> {
    let mut metadata = Metadata::default();
    for item in &component.metadata {
        let field = format!("spec.metadata '{}'", item.name);
        let value = match &item.source {
            ValueSource::Value(value) => value.clone(),
            ValueSource::EnvRef(var) => std::env::var(var).unwrap_or_else(|_| {
                // daprd reads an unset variable as empty; do the same, but say so.
                tracing::warn!(file = %component.file.display(), component = %component.name,
                    "{field}: environment variable {var} is not set; using an empty value");
                String::new()
            }),
            ValueSource::SecretKeyRef { name, key } => {
                let store_name = component.secret_store.as_deref().ok_or_else(|| {
                    component.error(
                        Some(&field),
                        "secretKeyRef needs a secret store named in auth.secretStore",
                    )
                })?;
                let store = secret_stores.get(store_name).ok_or_else(|| {
                    component.error(
                        Some("auth.secretStore"),
                        format!("secret store '{store_name}' is not loaded"),
                    )
                })?;
                store.get(name, key).map_err(|e| {
                    component.error(Some(&field), format!("secret store '{store_name}': {e}"))
                })?
            }
        };
        metadata.insert(item.name.clone(), value);
    }
    Ok(metadata)
}

/// The tests need named pipes, which are Unix's.
#[cfg(all(test, unix))]
pub(super) mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A folder of its own for one test.
    fn folder(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dlock-load-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A folder for test `label` with a resources folder in it, which holds a secret store
    /// component reading the named pipe `secrets.json` of the folder (not made yet) and a lock
    /// store: (the folder, the resources folder, the pipe's path).
    pub(in crate::startup) fn with_slow_secrets(label: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = folder(label);
        let resources = dir.join("resources");
        std::fs::create_dir_all(&resources).unwrap();
        let fifo = dir.join("secrets.json");
        std::fs::write(resources.join("c.yaml"), components(&fifo)).unwrap();
        (dir, resources, fifo)
    }

    /// A secret store component reading `secrets`, and a lock store.
    fn components(secrets: &Path) -> String {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: files\nspec:\n  \
             type: secretstores.local.file\n  version: v1\n  metadata:\n  - name: secretsFile\n    \
             value: {}\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: \
             store\nspec:\n  type: lock.in-memory\n  version: v1\n",
            secrets.display()
        )
    }

    /// Runs `load` on a runtime with one thread, as `--worker-threads 1` serves, while it
    /// reads the secrets file `fifo`: a named pipe, whose open blocks until something writes
    /// it. The writer waits for a task of that runtime to run first, which it can only do if
    /// the load left its one thread free; after five seconds it writes anyway, so a load that
    /// blocks the thread ends, and this says it did. Returns the load's answer.
    pub(in crate::startup) fn with_a_slow_file<T>(
        fifo: PathBuf,
        load: impl Future<Output = T>,
    ) -> T {
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ran, ran_seen) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            let free = ran_seen.recv_timeout(Duration::from_secs(5)).is_ok();
            std::fs::write(&fifo, "{\"password\": \"p\"}").unwrap();
            free
        });
        let answer = runtime.block_on(async {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = ran.send(());
            });
            load.await
        });
        let free = writer.join().unwrap();
        assert!(
            free,
            "the serving thread was blocked while the load read a file"
        );
        answer
    }

    #[test]
    fn a_load_reads_its_files_off_the_serving_threads() {
        let (dir, resources, fifo) = with_slow_secrets("slow-load");
        let loaded = with_a_slow_file(fifo, async {
            load_components(std::slice::from_ref(&resources), "app", &StoreTypes::new()).await
        });
        let loaded = loaded.unwrap();
        assert_eq!(loaded.secret_stores.len(), 1);
        assert!(loaded.registry.get("store").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
