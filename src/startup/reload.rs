//! Components reloaded live: an edit of the files under `--resources-path` (`watch.rs` says
//! when one has settled) is applied to the running sidecar, store by store, without a restart.
//!
//! Each lock-store component is compared with the version last acted on, by what it says (not
//! by where it is written, so moving it to another file changes nothing):
//!
//! - a new one is loaded and served: `Added`;
//! - a changed one is loaded, and once it started it replaces the running version, whose
//!   sessions and waiters end saying the store was reconfigured (`LoadedStore::retire`):
//!   `Changed`;
//! - one gone from the files (or from the app's scope) is taken out, its sessions and waiters
//!   ending likewise, and calls naming it answer ERR_LOCK_STORE_NOT_FOUND: `Removed`;
//! - an edit that does not parse or does not start leaves the running version serving, and
//!   says why: an error line naming file, component and field, a load problem in `dlock
//!   status`, and `Rejected` (a file that does not parse keeps every component it held).
//!
//! Every other store is untouched: the same `LoadedStore`, with its connections, locks,
//! sessions and waiters. Each change is published once as an event (`What::Component`), which
//! the console's feed and the metrics read. Secret stores are opened again at every reload, so a
//! lock store loaded then resolves its references with them; a lock store whose component did
//! not change is not reloaded for a secret or an environment variable that did.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::load::{
    is_in_scope, is_secret_store, load_lock_store, off_serving_threads, open_secret_store,
};
use super::watch::{Broken, Snapshot, Watch};
use super::StoreTypes;
use crate::config::component::Component;
use crate::config::ConfigError;
use crate::lock::events::{self, ComponentChange, What};
use crate::lock::registry::LoadProblem;
use crate::lock::{LoadedStore, LockService};

/// Applies the edits of the component files to a running sidecar.
pub struct Reloader {
    app_id: String,
    /// The builder of start-up, whose embedded keyspace every in-memory store shares.
    store_types: StoreTypes,
    watch: Watch,
    /// Per component name, the version last acted on: loaded, or refused.
    seen: BTreeMap<String, Component>,
    /// Per lock store that serves, the version that serves.
    running: BTreeMap<String, Component>,
    /// The refused edits of lock stores, kept until the component loads or goes.
    refused: BTreeMap<String, LoadProblem>,
    /// The problems of the files as the last reload found them (unreadable, not parsed, a
    /// duplicate name, a secret store that did not open), so that each is reported once.
    file_problems: Vec<LoadProblem>,
}

impl Reloader {
    /// Watches `paths`, which start-up loaded `loaded` (the components in scope) from into
    /// `locks`'s registry with `store_types`.
    pub fn new(
        paths: Vec<PathBuf>,
        app_id: String,
        store_types: StoreTypes,
        loaded: Vec<Component>,
        locks: &LockService,
    ) -> Self {
        let registry = locks.registry();
        let running = loaded
            .iter()
            .filter(|c| registry.get(&c.name).is_some())
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        Reloader {
            app_id,
            store_types,
            watch: Watch::new(paths),
            seen: loaded.into_iter().map(|c| (c.name.clone(), c)).collect(),
            running,
            refused: BTreeMap::new(),
            file_problems: Vec::new(),
        }
    }

    /// Applies every settled edit to `locks`, for as long as the sidecar runs.
    pub async fn run(mut self, locks: &LockService) {
        loop {
            let snapshot = self.watch.changed().await;
            self.apply(&snapshot, locks).await;
        }
    }

    async fn apply(&mut self, snapshot: &Snapshot, locks: &LockService) {
        let (next, mut file_problems) = self.wanted(snapshot);
        let mut edited = Vec::new();
        for component in next.values().filter(|c| !is_secret_store(c)) {
            let name = &component.name;
            if self
                .seen
                .get(name)
                .is_some_and(|seen| same(seen, component))
            {
                continue;
            }
            self.seen.insert(name.clone(), component.clone());
            if self
                .running
                .get(name)
                .is_some_and(|runs| same(runs, component))
            {
                // An edit put back as it was: what runs is what the file says again.
                self.refused.remove(name);
                tracing::info!(component = %name, file = %component.file.display(),
                    "component back to the version that serves");
                continue;
            }
            edited.push(component.clone());
        }
        let secrets = next
            .values()
            .filter(|c| is_secret_store(c))
            .cloned()
            .collect();
        let load = load_edits(secrets, edited, self.store_types.clone());
        let (secret_problems, loads) = off_serving_threads(load).await;
        file_problems.extend(secret_problems);

        let mut registry = (*locks.registry()).clone();
        let mut changes = Vec::new();
        let mut retired: Vec<(Arc<LoadedStore>, String)> = Vec::new();
        for (component, load) in loads {
            let name = &component.name;
            match load {
                Ok(store) => {
                    tracing::info!(component = %name, file = %component.file.display(),
                        "component {}: {}",
                        if self.running.contains_key(name) { "reloaded" } else { "added" },
                        store.location());
                    self.refused.remove(name);
                    self.running.insert(name.clone(), component.clone());
                    match registry.replace(store) {
                        Some(old) => {
                            retired.push((old, format!("lock store {name} was reconfigured")));
                            changes.push((name.clone(), ComponentChange::Changed));
                        }
                        None => changes.push((name.clone(), ComponentChange::Added)),
                    }
                }
                Err(error) => {
                    tracing::error!(
                        "{error}; not loaded, {}",
                        if self.running.contains_key(name) {
                            "the running version still serves"
                        } else {
                            "the store is not served"
                        }
                    );
                    let problem = problem(name.clone(), &error);
                    let reason = problem.reason.clone();
                    self.refused.insert(name.clone(), problem);
                    changes.push((name.clone(), ComponentChange::Rejected { reason }));
                }
            }
        }
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|name| !next.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            self.seen.remove(&name);
            self.refused.remove(&name);
            self.running.remove(&name);
            if let Some(old) = registry.remove(&name) {
                tracing::info!(component = %name, "component removed: lock store {name} is no longer served");
                retired.push((old, format!("lock store {name} was removed")));
                changes.push((name, ComponentChange::Removed));
            }
        }
        for problem in &file_problems {
            if !self.file_problems.contains(problem) {
                tracing::error!(
                    "{}: {}; not loaded, what the file held before still serves",
                    problem.file.display(),
                    problem.reason
                );
                let name = if problem.component.is_empty() {
                    problem.file.display().to_string()
                } else {
                    problem.component.clone()
                };
                let reason = problem.reason.clone();
                changes.push((name, ComponentChange::Rejected { reason }));
            }
        }

        let problems = file_problems.iter().chain(self.refused.values());
        registry.set_problems(problems.cloned().collect());
        self.file_problems = file_problems;
        // New calls find the new version before the old one's sessions end, so a client that
        // asks again at once gets the new one.
        locks.swap_registry(registry);
        for (store, reason) in retired {
            store.retire(reason);
        }
        for (name, change) in changes {
            events::publish(&name, "", "", What::Component { change });
        }
    }

    /// The components the files ask for now, by name, and the problems of the files. A file
    /// or path that does not read or parse keeps the versions last seen from it; of two
    /// components of one name, the first in path and file order is kept.
    fn wanted(&self, snapshot: &Snapshot) -> (BTreeMap<String, Component>, Vec<LoadProblem>) {
        let (components, broken) = snapshot.components();
        let mut next = BTreeMap::new();
        let mut problems = Vec::new();
        for Broken { path, error } in broken {
            let kept: Vec<&Component> = self
                .seen
                .values()
                .filter(|c| c.file == path || c.file.parent() == Some(path.as_path()))
                .collect();
            let names: Vec<&str> = kept.iter().map(|c| c.name.as_str()).collect();
            let mut problem = problem(names.join(", "), &error);
            problem.file = path;
            problems.push(problem);
            next.extend(kept.into_iter().map(|c| (c.name.clone(), c.clone())));
        }
        for component in components {
            if !is_in_scope(&component, &self.app_id) {
                continue;
            }
            if let Some(first) = next.get(&component.name) {
                let error = component.error(
                    Some("metadata.name"),
                    format!(
                        "duplicate component name, also defined in {}",
                        first.file.display()
                    ),
                );
                problems.push(problem(component.name.clone(), &error));
                continue;
            }
            next.insert(component.name.clone(), component);
        }
        (next, problems)
    }
}

/// What a reload reads and connects, which `apply` runs off the serving threads: the secret
/// stores, opened again, with the problems of those that do not open; then each edited lock
/// store, loaded with them, in the order given.
async fn load_edits(
    secrets: Vec<Component>,
    edited: Vec<Component>,
    store_types: StoreTypes,
) -> (
    Vec<LoadProblem>,
    Vec<(Component, Result<LoadedStore, ConfigError>)>,
) {
    let mut secret_stores = HashMap::new();
    let mut problems = Vec::new();
    for component in &secrets {
        match open_secret_store(component) {
            Ok(store) => {
                secret_stores.insert(component.name.clone(), store);
            }
            Err(error) => problems.push(problem(component.name.clone(), &error)),
        }
    }
    let mut loads = Vec::new();
    for component in edited {
        let load = load_lock_store(&component, &secret_stores, &store_types).await;
        loads.push((component, load));
    }
    (problems, loads)
}

/// Whether two versions of a component say the same, wherever each is written.
fn same(a: &Component, b: &Component) -> bool {
    let a = Component {
        file: b.file.clone(),
        ..a.clone()
    };
    a == *b
}

/// A load problem from a located error: the file apart, the rest as the reason.
fn problem(component: String, error: &ConfigError) -> LoadProblem {
    let file = error.file.clone().unwrap_or_default();
    let reason = ConfigError {
        file: None,
        ..error.clone()
    };
    LoadProblem {
        component,
        file,
        reason: reason.to_string(),
    }
}

/// The tests need named pipes, which are Unix's.
#[cfg(all(test, unix))]
mod tests {
    use super::super::load::tests::{with_a_slow_file, with_slow_secrets};
    use super::*;
    use crate::lock::Registry;

    #[test]
    fn a_reload_reads_its_files_off_the_serving_threads() {
        let (dir, resources, fifo) = with_slow_secrets("slow-reload");
        // What the watch hands out; it reads the component files off the serving threads
        // itself (watch.rs).
        let snapshot = Snapshot::read(std::slice::from_ref(&resources));
        let locks = LockService::new("app", Registry::default());
        let mut reloader = Reloader::new(
            vec![resources.clone()],
            "app".into(),
            StoreTypes::new(),
            Vec::new(),
            &locks,
        );
        with_a_slow_file(fifo, reloader.apply(&snapshot, &locks));
        let registry = locks.registry();
        assert!(registry.get("store").is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
