//! Watching the resources paths for edits: what `--resources-path` names is read every half
//! second, and a change counts once two reads in a row agree.
//!
//! Polling rather than file notifications (inotify, ReadDirectoryChangesW, through a crate such
//! as `notify`): a read of a few small files twice a second costs nothing, works the same on
//! Linux, Windows and macOS, and also on network shares and Kubernetes ConfigMap volumes, where
//! notifications are missing or arrive for a symlink swap rather than for the file. It also
//! gives the rule that keeps half-done edits out for free: an editor that saves by writing a
//! temporary file and renaming it over the old one, or by truncating and writing, leaves the
//! file missing or half-written for a moment, and a read taken then differs from the next one.
//! Only content that two reads half a second apart agree on is applied, so a save is seen as
//! one change, never as a removal and an add; an edit takes effect within about a second.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::component::{self, Component};
use crate::config::ConfigError;

/// How often the resources paths are read.
const POLL: Duration = Duration::from_millis(500);

/// What the resources paths held at one read: per path, what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot(Vec<(PathBuf, Files)>);

/// One path's component files and their texts, or why it could not be read.
type Files = Result<Vec<(PathBuf, String)>, ConfigError>;

/// A path or file of a snapshot that did not parse, and why.
pub(super) struct Broken {
    /// The resources path that could not be listed, or the file that could not be parsed.
    pub(super) path: PathBuf,
    pub(super) error: ConfigError,
}

impl Snapshot {
    /// Reads every path: a folder's YAML files, or a named file.
    pub(super) fn read(paths: &[PathBuf]) -> Snapshot {
        Snapshot(
            paths
                .iter()
                .map(|path| (path.clone(), read_path(path)))
                .collect(),
        )
    }

    /// The components of the snapshot, in path order and files sorted by name, and the paths
    /// and files that did not read or parse.
    pub(super) fn components(&self) -> (Vec<Component>, Vec<Broken>) {
        let (mut components, mut broken) = (Vec::new(), Vec::new());
        for (path, files) in &self.0 {
            let files = match files {
                Ok(files) => files,
                Err(error) => {
                    broken.push(Broken {
                        path: path.clone(),
                        error: error.clone(),
                    });
                    continue;
                }
            };
            for (file, text) in files {
                // Start-up noted what it skipped in these files; a reload notes nothing again.
                match component::parse_noting(file, text, component::Notes::Quiet) {
                    Ok(parsed) => components.extend(parsed),
                    Err(error) => broken.push(Broken {
                        path: file.clone(),
                        error,
                    }),
                }
            }
        }
        (components, broken)
    }
}

fn read_path(path: &Path) -> Files {
    component::component_files(path)?
        .into_iter()
        .map(|file| match std::fs::read_to_string(&file) {
            Ok(text) => Ok((file, text)),
            Err(e) => Err(ConfigError::new(format!("can't read: {e}")).in_file(&file)),
        })
        .collect()
}

/// The resources paths, read at every poll.
pub(super) struct Watch {
    paths: Vec<PathBuf>,
    last: Option<Snapshot>,
    /// Whether a change was seen that has not been handed out yet.
    pending: bool,
}

impl Watch {
    /// Watches `paths`. The first settled read is handed out as a change, so an edit made
    /// between start-up's load and the first read is not missed (comparing it with what runs
    /// finds nothing to do when there was none).
    pub(super) fn new(paths: Vec<PathBuf>) -> Self {
        Watch {
            paths,
            last: None,
            pending: true,
        }
    }

    /// The next settled change: a read that differs from the one before is an edit under
    /// way; once the next read agrees with it, it is handed out.
    pub(super) async fn changed(&mut self) -> Snapshot {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let paths = self.paths.clone();
            // A network share may be slow to answer: off the serving threads.
            let now = tokio::task::spawn_blocking(move || Snapshot::read(&paths))
                .await
                .expect("reading the resources paths does not panic");
            if self.last.as_ref() != Some(&now) {
                self.pending = true;
                self.last = Some(now);
            } else if self.pending {
                self.pending = false;
                return now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: \
                         s\nspec:\n  type: lock.in-memory\n";

    fn folder(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dlock-watch-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_handed_out_once_two_reads_agree() {
        let dir = folder("settle");
        std::fs::write(dir.join("s.yaml"), STORE).unwrap();
        let mut watch = Watch::new(vec![dir.clone()]);
        let first = watch.changed().await;
        assert_eq!(first.components().0.len(), 1);

        // Half-written: the watch sees it change, then change again, and hands out only the
        // whole file, once the reads agree on it.
        std::fs::write(dir.join("s.yaml"), &STORE[..40]).unwrap();
        let whole = async {
            // Before the next read, which then differs again.
            tokio::time::sleep(POLL / 2).await;
            std::fs::write(dir.join("s.yaml"), STORE.replace("name: s", "name: t")).unwrap();
        };
        let (settled, ()) = tokio::join!(watch.changed(), whole);
        let (components, broken) = settled.components();
        assert!(broken.is_empty());
        assert_eq!(components[0].name, "t");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_does_not_parse_and_a_missing_folder_are_broken() {
        let dir = folder("broken");
        std::fs::write(dir.join("a.yaml"), STORE).unwrap();
        std::fs::write(dir.join("b.yaml"), "a: [unclosed").unwrap();
        let missing = dir.join("missing");
        let (components, broken) = Snapshot::read(&[dir.clone(), missing.clone()]).components();
        assert_eq!(components.len(), 1);
        let paths: Vec<&Path> = broken.iter().map(|b| b.path.as_path()).collect();
        assert_eq!(paths, [dir.join("b.yaml").as_path(), missing.as_path()]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
