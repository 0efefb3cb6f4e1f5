//! The file-system adapter: the only code that knows `notify`. It watches folders (the game
//! replaces a file by renaming a temporary one over it, so folders are watched, not files) and
//! hands out the paths that may have changed. Reads (svsync's own included) are not changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use notify::{Config, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", crate::text::printable_path(path))]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

pub struct FsWatcher {
    watcher: Box<dyn Watcher + Send>,
    rx: Receiver<PathBuf>,
    watched: BTreeSet<PathBuf>,
}

impl FsWatcher {
    /// File events, or polling at `poll` (network drives, Wine, WSL).
    pub fn new(poll: Option<Duration>) -> Result<FsWatcher, WatchError> {
        let (tx, rx) = channel();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(
                event.kind,
                notify::EventKind::Access(_) | notify::EventKind::Other
            ) {
                return;
            }
            for p in event.paths {
                let _ = tx.send(p);
            }
        };
        let err = |source| WatchError {
            path: PathBuf::from("."),
            source,
        };
        let watcher: Box<dyn Watcher + Send> = match poll {
            Some(interval) => Box::new(
                PollWatcher::new(
                    handler,
                    Config::default()
                        .with_poll_interval(interval)
                        .with_compare_contents(true),
                )
                .map_err(err)?,
            ),
            None => Box::new(RecommendedWatcher::new(handler, Config::default()).map_err(err)?),
        };
        Ok(FsWatcher {
            watcher,
            rx,
            watched: BTreeSet::new(),
        })
    }

    /// Watches a folder (once).
    pub fn watch_dir(&mut self, dir: &Path) -> Result<(), WatchError> {
        if self.watched.contains(dir) {
            return Ok(());
        }
        self.watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: dir.to_path_buf(),
                source,
            })?;
        self.watched.insert(dir.to_path_buf());
        Ok(())
    }

    /// The next changed path, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<PathBuf> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// A changed path that has already arrived, without waiting.
    pub fn try_next(&self) -> Option<PathBuf> {
        self.rx.try_recv().ok()
    }
}
