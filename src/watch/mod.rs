//! Keeping a set of accounts in step: once (`svsync sync`), or whenever the game saves
//! (`svsync watch`).
//!
//! Three parts, as in watchexec: the file-system adapter ([`fs`], the only code that knows
//! `notify`), the pure decisions ([`worker`]: what to look at, what to sync, when to try
//! again), and the loop here, which does the I/O: looking at files through the
//! [`AccountSet`], running pair syncs, and reporting.
//!
//! After any change of any account (a save, a revert, a logout that overwrites a merge), every
//! pair whose receiver is not in step is synced, in both directions, including toward the
//! account that just saved. svsync's own writes are known by content, so they never cause a
//! sync back.

pub mod fs;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::failure::Failure;
use crate::fsio::accounts::{Account, discover};
use crate::fsio::lock::{FileLock, holder, lock_path, try_lock};
use crate::model::Target;
use crate::peer::pair::{PairJob, PairReport, run_pair_with};
use crate::peer::receiver::WriteMode;
use crate::protocol::Millis;
use crate::set::{AccountSet, Digest, Refresh};
use crate::transport::sim::Simulation;

use worker::{Notice, Worker};

/// How a set is synced.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    pub dry_run: bool,
    pub force: bool,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
}

/// What happened, for the player.
#[derive(Debug)]
pub enum Event<'a> {
    /// An account joined the set (at start, or found later with `--all`).
    Account { index: usize },
    /// A pair sync ran to the end.
    Synced {
        from: usize,
        to: usize,
        report: &'a PairReport,
    },
    /// A pair sync did not complete.
    SyncFailed {
        from: usize,
        to: usize,
        failure: &'a Failure,
    },
    /// A change of state: a pair starts failing or works again, a file cannot be used or can
    /// again.
    Notice(Notice),
    /// Every pair is in step (after some activity).
    InStep,
}

fn watch_failure(e: fs::WatchError) -> Failure {
    Failure::Watch {
        path: e.path,
        source: e.source,
    }
}

/// Runs one pair sync of the set.
fn sync_pair(
    set: &mut AccountSet,
    settings: &Settings,
    from: usize,
    to: usize,
) -> Result<PairReport, Failure> {
    let source = set.source(from)?;
    let job = PairJob {
        from: set.member(from).account.clone(),
        to: set.member(to).account.clone(),
        target: settings.target,
        mode: if settings.dry_run {
            WriteMode::DryRun
        } else {
            WriteMode::InPlace
        },
        force: settings.force,
        simulation: Simulation::default(),
        state_dir: (!settings.dry_run).then(|| settings.state_dir.clone()),
        log_dir: Some(settings.log_dir.clone()),
        wire_log: None,
        progress: None,
        // A busy receiver is tried again by the watch's own backoff.
        busy_patience: std::time::Duration::ZERO,
    };
    run_pair_with(job, (*source).clone())
}

/// Syncs what is due now: looks at the accounts the worker says, then syncs every pair not in
/// step (each at most once per round), reporting as it goes. Returns whether some sync ran.
fn round(
    set: &mut AccountSet,
    worker: &mut Worker,
    settings: &Settings,
    now: Millis,
    dry: &mut HashMap<(usize, usize), (Digest, Digest)>,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) -> bool {
    for i in worker.take_due(now) {
        let r = set.refresh(i);
        let problem = (r == Refresh::Unusable).then(|| {
            set.member(i)
                .problem
                .as_ref()
                .map_or_else(|| "cannot be used".to_string(), ToString::to_string)
        });
        worker.looked(now, i, problem);
    }
    let mut done: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut any = false;
    loop {
        let pairs = set.out_of_step();
        let todo: Vec<(usize, usize)> = worker
            .plan(now, &pairs)
            .into_iter()
            .filter(|p| !done.contains(p))
            .filter(|&(f, t)| {
                // A dry run changes nothing: a pair is tried again only when a file changes.
                let key = (set.member(f).digest(), set.member(t).digest());
                dry.get(&(f, t))
                    .is_none_or(|d| (Some(d.0), Some(d.1)) != key)
            })
            .collect();
        if todo.is_empty() {
            break;
        }
        for (from, to) in todo {
            if stop.load(Ordering::SeqCst) {
                return any;
            }
            done.insert((from, to));
            any = true;
            let result = sync_pair(set, settings, from, to);
            match &result {
                Ok(r) if r.is_complete() => {
                    report(
                        set,
                        Event::Synced {
                            from,
                            to,
                            report: r,
                        },
                    );
                    // svsync's own write: known now, so its file event is not a save.
                    set.refresh(to);
                    if settings.dry_run {
                        if let (Some(a), Some(b)) =
                            (set.member(from).digest(), set.member(to).digest())
                        {
                            dry.insert((from, to), (a, b));
                        }
                        worker.synced(now, from, to, Ok(()));
                    } else if set.in_step(from, to) == Some(false) {
                        // Never a loop: a sync that leaves the pair out of step waits.
                        worker.synced(now, from, to, Err("still not in step after a sync".into()));
                    } else {
                        worker.synced(now, from, to, Ok(()));
                    }
                }
                Ok(r) => {
                    let f = r
                        .failure()
                        .unwrap_or(Failure::Internal("no outcome".into()));
                    report(
                        set,
                        Event::SyncFailed {
                            from,
                            to,
                            failure: &f,
                        },
                    );
                    worker.synced(now, from, to, Err(f.to_string()));
                }
                Err(f) => {
                    report(
                        set,
                        Event::SyncFailed {
                            from,
                            to,
                            failure: f,
                        },
                    );
                    worker.synced(now, from, to, Err(f.to_string()));
                    // The receiver may have been saved meanwhile: look at it again.
                    set.refresh(to);
                }
            }
        }
    }
    while let Some(n) = worker.poll_notice() {
        report(set, Event::Notice(n));
    }
    any
}

/// What a one-shot sync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSummary {
    pub syncs: u32,
    pub failed: u32,
    /// Every pair in step at the end.
    pub in_step: bool,
    /// Accounts that could not be used.
    pub unusable: u32,
}

/// Brings the whole set in step once.
pub fn sync_set(
    set: &mut AccountSet,
    settings: &Settings,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) -> SyncSummary {
    let mut worker = Worker::new(0);
    for i in 0..set.members().len() {
        report(set, Event::Account { index: i });
        worker.look_now(0, i);
    }
    let mut summary = SyncSummary {
        syncs: 0,
        failed: 0,
        in_step: false,
        unusable: 0,
    };
    let stop = AtomicBool::new(false);
    let mut dry = HashMap::new();
    let mut counting = |set: &AccountSet, e: Event<'_>| {
        match &e {
            Event::Synced { .. } => summary.syncs += 1,
            Event::SyncFailed { .. } => {
                summary.syncs += 1;
                summary.failed += 1;
            }
            Event::Notice(Notice::Unusable { .. }) => summary.unusable += 1,
            _ => {}
        }
        report(set, e);
    };
    round(
        set,
        &mut worker,
        settings,
        0,
        &mut dry,
        &stop,
        &mut counting,
    );
    summary.in_step = if settings.dry_run {
        false
    } else {
        set.out_of_step().is_empty()
    };
    set.save_cache();
    summary
}

/// Settings of a watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub settings: Settings,
    pub debounce: Duration,
    pub poll: Option<Duration>,
    /// With `--all`: the WoW, flavor or WTF folder to look for accounts in, again and again.
    pub discover: Option<PathBuf>,
}

/// How often `--all` looks for new accounts.
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// Locks each account against a second watcher.
fn lock_for_watch(set: &AccountSet, i: usize, locks: &mut Vec<FileLock>) -> Result<(), Failure> {
    let m = set.member(i);
    let path = lock_path(&m.real, "watch");
    match try_lock(&path, "watch") {
        Ok(Some(lock)) => {
            locks.push(lock);
            Ok(())
        }
        Ok(None) => Err(Failure::Watched {
            account: m.account.name.clone(),
            holder: holder(&path),
        }),
        Err(e) => Err(Failure::lock(e)),
    }
}

/// Watches the set until `stop` is set: an initial sync of everything not in step, then a
/// sync whenever an account's file changes. A write in progress always finishes.
pub fn watch(
    set: &mut AccountSet,
    config: &WatchConfig,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) -> Result<(), Failure> {
    let mut locks = Vec::new();
    let mut fs = fs::FsWatcher::new(config.poll).map_err(watch_failure)?;
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as Millis;
    let mut worker = Worker::new(config.debounce.as_millis() as Millis);
    let add = |set: &mut AccountSet,
               worker: &mut Worker,
               fs: &mut fs::FsWatcher,
               locks: &mut Vec<FileLock>,
               i: usize,
               report: &mut dyn FnMut(&AccountSet, Event<'_>)|
     -> Result<(), Failure> {
        lock_for_watch(set, i, locks)?;
        let m = set.member(i);
        for file in [&m.account.file, &m.real] {
            if let Some(dir) = file.parent() {
                fs.watch_dir(dir).map_err(watch_failure)?;
            }
        }
        worker.look_now(now(), i);
        report(set, Event::Account { index: i });
        Ok(())
    };
    for i in 0..set.members().len() {
        add(set, &mut worker, &mut fs, &mut locks, i, report)?;
    }
    let mut last_discovery = Instant::now();
    let mut dry = HashMap::new();
    let mut busy = true;
    while !stop.load(Ordering::SeqCst) {
        let t = now();
        if round(
            set,
            &mut worker,
            &config.settings,
            t,
            &mut dry,
            stop,
            report,
        ) {
            busy = true;
        }
        if busy && worker.is_quiet() && !config.settings.dry_run && set.out_of_step().is_empty() {
            busy = false;
            set.save_cache();
            report(set, Event::InStep);
        }
        if let Some(root) = &config.discover
            && last_discovery.elapsed() >= DISCOVER_EVERY
        {
            last_discovery = Instant::now();
            if let Ok(found) = discover(root) {
                for account in found {
                    let known = set.members().len();
                    let i = set.add(account);
                    if i == known {
                        add(set, &mut worker, &mut fs, &mut locks, i, report)?;
                    }
                }
            }
        }
        // Wait for an event, a deadline, or Ctrl-C (checked twice a second).
        let wait = worker
            .deadline()
            .map_or(Duration::from_millis(500), |d| {
                Duration::from_millis(d.saturating_sub(now()))
            })
            .min(Duration::from_millis(500));
        if let Some(path) = fs.next(wait) {
            let mut paths = vec![path];
            while let Some(p) = fs.try_next() {
                paths.push(p);
            }
            for p in paths {
                if let Some(i) = set.find_event(&p) {
                    worker.changed(now(), i);
                }
            }
        }
    }
    set.save_cache();
    drop(locks);
    Ok(())
}

/// The accounts of a set given as `--all` under a folder: every account with GuildHelper data
/// there, each flavor on its own.
pub fn all_accounts(root: &std::path::Path) -> Result<Vec<Account>, Failure> {
    Ok(discover(root)?)
}
