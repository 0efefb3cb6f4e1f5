//! `watch`: sync two accounts whenever the game saves one of them.
//!
//! Three parts: the file-system adapter (the only code that knows `notify`), a pure debouncer
//! (events and the time in, "sync this side now" out), and the loop that reads the saved file,
//! skips what it has already seen (by content hash, so svsync's own writes never trigger a sync
//! back), and runs the pipeline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use notify::{Config, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

use crate::lua::parse_with;
use crate::merge::merge_shared;
use crate::model::{SHARED_DATA, Target, parse_options, shared_table};

/// Which of the two accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Collapses bursts of events: a side is due once no event for it has come for `window`.
#[derive(Debug)]
pub struct Debouncer {
    window: Duration,
    pending: HashMap<Side, Instant>,
}

impl Debouncer {
    pub fn new(window: Duration) -> Self {
        Debouncer {
            window,
            pending: HashMap::new(),
        }
    }

    /// An event for `side` at `now`: (re)starts its quiet period.
    pub fn event(&mut self, side: Side, now: Instant) {
        self.pending.insert(side, now + self.window);
    }

    /// Asks again for `side` after `delay` (a file that did not parse yet).
    pub fn retry(&mut self, side: Side, now: Instant, delay: Duration) {
        let at = now + delay;
        let entry = self.pending.entry(side).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// When the next side is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }

    /// The sides whose quiet period is over.
    pub fn due(&mut self, now: Instant) -> Vec<Side> {
        let mut out: Vec<Side> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(s, _)| *s)
            .collect();
        out.sort_by_key(|s| *s == Side::B);
        for s in &out {
            self.pending.remove(s);
        }
        out
    }
}

/// The file-system adapter: events for the two accounts' `SavedVariables` folders, reduced to
/// "this side's GuildHelper.lua may have changed".
pub struct FsWatcher {
    _watcher: Box<dyn Watcher + Send>,
    rx: Receiver<Side>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    pub path: PathBuf,
    pub source: notify::Error,
}

impl FsWatcher {
    /// Watches the folders of both files (the game replaces a file by renaming a temporary one
    /// over it, so the folder is watched, not the file). `poll`: poll at this interval instead
    /// of native events (network drives, Wine, WSL).
    pub fn new(a: &Path, b: &Path, poll: Option<Duration>) -> Result<FsWatcher, WatchError> {
        let (tx, rx) = channel();
        // Events name files by absolute paths: compare file names and canonical folders.
        let dir_of = |file: &Path| {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            dir.canonicalize().unwrap_or(dir)
        };
        let names: Vec<(Side, PathBuf, Option<std::ffi::OsString>)> = vec![
            (Side::A, dir_of(a), a.file_name().map(ToOwned::to_owned)),
            (Side::B, dir_of(b), b.file_name().map(ToOwned::to_owned)),
        ];
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            // Reads (svsync's own included) are not saves.
            if matches!(
                event.kind,
                notify::EventKind::Access(_) | notify::EventKind::Other
            ) {
                return;
            }
            for (side, dir, name) in &names {
                let hit = event.paths.iter().any(|p| {
                    p.file_name().map(ToOwned::to_owned) == *name
                        && p.parent()
                            .is_some_and(|d| d == dir || d.canonicalize().is_ok_and(|c| c == *dir))
                });
                if hit {
                    let _ = tx.send(*side);
                }
            }
        };
        let mut watcher: Box<dyn Watcher + Send> = match poll {
            Some(interval) => Box::new(
                PollWatcher::new(
                    handler,
                    Config::default()
                        .with_poll_interval(interval)
                        .with_compare_contents(true),
                )
                .map_err(|source| WatchError {
                    path: a.to_path_buf(),
                    source,
                })?,
            ),
            None => Box::new(RecommendedWatcher::new(handler, Config::default()).map_err(
                |source| WatchError {
                    path: a.to_path_buf(),
                    source,
                },
            )?),
        };
        for file in [a, b] {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(FsWatcher {
            _watcher: watcher,
            rx,
        })
    }

    /// The next event, waiting at most until `deadline` and never more than half a second (so
    /// the caller can notice Ctrl-C).
    pub fn next(&self, deadline: Option<Instant>) -> Option<Side> {
        match deadline {
            None => self.rx.recv_timeout(Duration::from_millis(500)).ok(),
            Some(d) => {
                let wait = d.saturating_duration_since(Instant::now());
                self.rx
                    .recv_timeout(wait.min(Duration::from_millis(500)))
                    .ok()
            }
        }
    }
}

/// A content hash of a file (None: it cannot be read).
pub fn file_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(((bytes.len() as u64) << 32) | u64::from(crc32fast::hash(&bytes)))
}

/// Whether merging `from` into `to`'s target would change anything; an error when either file
/// cannot be read or parsed (it may be half-written).
pub fn needs_sync(from: &Path, to: &Path, target: Target) -> Result<bool, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let a = read(from)?;
    let b = read(to)?;
    let da = parse_with(&a, &parse_options()).map_err(|e| {
        let pos = e.position(&a);
        format!("{}:{}:{}: {e}", from.display(), pos.line, pos.column)
    })?;
    let db = parse_with(&b, &parse_options()).map_err(|e| {
        let pos = e.position(&b);
        format!("{}:{}:{}: {e}", to.display(), pos.line, pos.column)
    })?;
    let Some(shared) = shared_table(&da, SHARED_DATA).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let current = shared_table(&db, target.key()).map_err(|e| e.to_string())?;
    let merge = merge_shared(&shared, current.as_ref());
    Ok(current.is_none() || merge.tables.iter().any(|(_, m)| m.changed))
}

/// What the loop reports.
#[derive(Debug)]
pub enum WatchEvent<R> {
    /// A sync ran (`R` is the caller's result of it).
    Synced { from: Side, result: R },
    /// A saved file does not parse (yet): it is tried again.
    NotReady { side: Side, error: String },
    /// Checked, nothing to do.
    InStep { from: Side },
}

/// What one sync did, as the caller reports it.
pub struct SyncOutcome<R> {
    /// It completed (else it is tried again a little later).
    pub ok: bool,
    /// It wrote the receiver's file.
    pub wrote: bool,
    pub result: R,
}

/// Settings of the loop.
pub struct WatchConfig {
    pub a: PathBuf,
    pub b: PathBuf,
    pub target: Target,
    pub debounce: Duration,
    pub poll: Option<Duration>,
}

/// How long to wait before trying a file that did not parse again, and how often.
const RETRY_DELAY: Duration = Duration::from_secs(2);
const MAX_RETRIES: u32 = 15;

/// Runs until `stop` is set: an initial sync each way when the sides differ, then a sync each
/// time one side is saved. `sync(from)` runs one merge from that side into the other.
pub fn run<R>(
    config: &WatchConfig,
    stop: &AtomicBool,
    mut sync: impl FnMut(Side) -> SyncOutcome<R>,
    mut report: impl FnMut(WatchEvent<R>),
) -> Result<(), WatchError> {
    let watcher = FsWatcher::new(&config.a, &config.b, config.poll)?;
    let path = |s: Side| match s {
        Side::A => &config.a,
        Side::B => &config.b,
    };
    // What each file held when svsync last looked at it (or wrote it).
    let mut seen: HashMap<Side, Option<u64>> = HashMap::new();
    let mut retries: HashMap<Side, u32> = HashMap::new();
    let mut debouncer = Debouncer::new(config.debounce);

    // The initial sync, each way, when the two sides differ (or a side does not parse yet).
    let now = Instant::now();
    for side in [Side::A, Side::B] {
        debouncer.event(side, now);
    }
    let mut initial = true;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        for side in debouncer.due(now) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let hash = file_hash(path(side));
            if !initial && hash.is_some() && seen.get(&side) == Some(&hash) {
                // svsync's own write, or a save that changed nothing.
                continue;
            }
            match needs_sync(path(side), path(side.other()), config.target) {
                Err(error) => {
                    let n = retries.entry(side).or_insert(0);
                    *n += 1;
                    if *n <= MAX_RETRIES {
                        debouncer.retry(side, now, RETRY_DELAY);
                    }
                    report(WatchEvent::NotReady { side, error });
                }
                Ok(false) => {
                    retries.remove(&side);
                    seen.insert(side, hash);
                    report(WatchEvent::InStep { from: side });
                }
                Ok(true) => {
                    let outcome = sync(side);
                    if outcome.ok {
                        retries.remove(&side);
                        seen.insert(side, hash);
                    } else {
                        // Failed (the receiver changed under it, busy, ...): try again later.
                        let n = retries.entry(side).or_insert(0);
                        *n += 1;
                        if *n <= MAX_RETRIES {
                            debouncer.retry(side, now, RETRY_DELAY);
                        }
                    }
                    if outcome.wrote {
                        // Remember the receiver as written, so its event is not a save.
                        seen.insert(side.other(), file_hash(path(side.other())));
                    }
                    report(WatchEvent::Synced {
                        from: side,
                        result: outcome.result,
                    });
                }
            }
        }
        if debouncer.next_due().is_none() {
            initial = false;
        }
        if let Some(side) = watcher.next(debouncer.next_due()) {
            debouncer.event(side, Instant::now());
            // Drain what else has arrived.
            while let Some(s) = watcher.next(Some(Instant::now())) {
                debouncer.event(s, Instant::now());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_events_is_one_sync_after_the_quiet_period() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debouncer::new(ms(100));
        for i in 0..20 {
            d.event(Side::A, t0 + ms(i * 10));
        }
        assert!(d.due(t0 + ms(250)).is_empty());
        assert_eq!(d.due(t0 + ms(290)), [Side::A]);
        assert!(d.due(t0 + ms(1000)).is_empty());
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn both_sides_are_independent_and_a_comes_first() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::from_millis(50));
        d.event(Side::B, t0);
        d.event(Side::A, t0);
        assert_eq!(d.due(t0 + Duration::from_millis(60)), [Side::A, Side::B]);
        d.retry(Side::A, t0, Duration::from_secs(2));
        assert!(d.due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(d.due(t0 + Duration::from_secs(2)), [Side::A]);
    }

    #[test]
    fn a_failed_sync_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/WTF/Account");
        let a = dir.path().join("A/GuildHelper.lua");
        let b = dir.path().join("B/GuildHelper.lua");
        for (from, to) in [("ALPHA", &a), ("BRAVO", &b)] {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(from).join("SavedVariables/GuildHelper.lua"), to).unwrap();
        }
        let config = WatchConfig {
            a,
            b,
            target: Target::SharedDataRemote,
            debounce: Duration::from_millis(50),
            poll: None,
        };
        let stop = AtomicBool::new(false);
        let mut attempts_from_a = 0;
        let mut reported_from_a = 0;
        let started = Instant::now();
        run(
            &config,
            &stop,
            |side| {
                if side == Side::A {
                    attempts_from_a += 1;
                }
                // The first sync from A fails (as when the game saved B meanwhile).
                SyncOutcome {
                    ok: side == Side::B || attempts_from_a > 1,
                    wrote: false,
                    result: side,
                }
            },
            |event| {
                if let WatchEvent::Synced { from: Side::A, .. } = event {
                    reported_from_a += 1;
                }
                if reported_from_a >= 2 || started.elapsed() > Duration::from_secs(60) {
                    stop.store(true, Ordering::SeqCst);
                }
            },
        )
        .unwrap();
        assert_eq!(reported_from_a, 2);
    }
}
