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
pub mod group;
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

use group::{Group, GroupConfig, GroupEvent};
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
    /// Between this PC and the others of its group.
    Group(group::GroupEvent),
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

/// What a round works with besides the set.
struct Turn<'a> {
    settings: &'a Settings,
    now: Millis,
    /// Accounts another PC is syncing into now.
    held: &'a dyn Fn(usize) -> bool,
    stop: &'a AtomicBool,
}

/// Syncs what is due now: looks at the accounts the worker says, then syncs every pair not in
/// step (each at most once per round), reporting as it goes. Returns whether some sync ran.
fn round(
    set: &mut AccountSet,
    worker: &mut Worker,
    turn: Turn<'_>,
    dry: &mut HashMap<(usize, usize), (Digest, Digest)>,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) -> bool {
    let Turn {
        settings,
        now,
        held,
        stop,
    } = turn;
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
            // Another PC is syncing into it: its turn comes after that.
            .filter(|&(_, t)| !held(t))
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
    /// With a mailbox: how it went with the other PCs.
    pub group: Option<GroupSummary>,
}

/// How a one-shot sync went with the other PCs of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSummary {
    /// Every account of the other PCs known holds this PC's data, and nothing was arriving
    /// when it stopped.
    pub settled: bool,
    /// Accounts of other PCs known.
    pub remote_accounts: usize,
    pub sent: u32,
    pub failed: u32,
    pub received: u32,
}

/// How often the mailbox is read (besides when the node has a deadline).
const GROUP_POLL: Duration = Duration::from_millis(1000);
/// A one-shot sync with a mailbox stops when it has been settled this long (the other PCs
/// see this one's presence a carrier hop later, and may send).
const SETTLED_FOR: Duration = Duration::from_secs(5);

/// Handles a group's events: another PC's write is svsync's own (known by content), and the
/// accounts it changed are looked at again for the local pairs.
fn group_step(
    g: &mut Group,
    set: &mut AccountSet,
    worker: &mut Worker,
    now: Millis,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) {
    g.feed(set);
    for e in g.step() {
        if let GroupEvent::Received {
            local,
            written: true,
        } = &e
        {
            set.refresh(*local);
            worker.look_now(now, *local);
        }
        report(set, Event::Group(e));
    }
}

/// Brings the whole set in step once; with a group, then publishes to the other PCs and takes
/// what they send, for at most `wait`.
pub fn sync_set(
    set: &mut AccountSet,
    settings: &Settings,
    group: Option<(&GroupConfig, Duration)>,
    report: &mut dyn FnMut(&AccountSet, Event<'_>),
) -> Result<SyncSummary, Failure> {
    let mut g = group
        .map(|(cfg, _)| Group::open(cfg, settings))
        .transpose()?;
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
        group: None,
    };
    let stop = AtomicBool::new(false);
    let mut dry = HashMap::new();
    let mut gs = GroupSummary {
        settled: false,
        remote_accounts: 0,
        sent: 0,
        failed: 0,
        received: 0,
    };
    let mut counting = |set: &AccountSet, e: Event<'_>| {
        match &e {
            Event::Synced { .. } => summary.syncs += 1,
            Event::SyncFailed { .. } => {
                summary.syncs += 1;
                summary.failed += 1;
            }
            Event::Notice(Notice::Unusable { .. }) => summary.unusable += 1,
            Event::Group(GroupEvent::Sent { outcome, .. }) => match outcome {
                crate::protocol::sender::Outcome::Complete { .. } => gs.sent += 1,
                _ => gs.failed += 1,
            },
            Event::Group(GroupEvent::Received { .. }) => gs.received += 1,
            Event::Group(GroupEvent::Failed(_)) => gs.failed += 1,
            _ => {}
        }
        report(set, e);
    };
    let never = |_| false;
    round(
        set,
        &mut worker,
        Turn {
            settings,
            now: 0,
            held: &never,
            stop: &stop,
        },
        &mut dry,
        &mut counting,
    );
    let mut settled = false;
    if let (Some(g), Some((_, wait))) = (g.as_mut(), group) {
        for i in 0..set.members().len() {
            g.add(set, i)?;
        }
        let start = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        loop {
            let t = start.elapsed().as_millis() as Millis;
            group_step(g, set, &mut worker, t, &mut counting);
            let held = |i| g.is_receiving(i);
            round(
                set,
                &mut worker,
                Turn {
                    settings,
                    now: t,
                    held: &held,
                    stop: &stop,
                },
                &mut dry,
                &mut counting,
            );
            if g.is_settled() {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLED_FOR {
                    settled = true;
                    break;
                }
            } else {
                quiet_since = None;
            }
            if start.elapsed() >= wait {
                break;
            }
            let pause = g
                .deadline()
                .map_or(GROUP_POLL, |d| {
                    Duration::from_millis(d.saturating_sub(crate::time::now_ms()))
                })
                .clamp(Duration::from_millis(50), GROUP_POLL);
            std::thread::sleep(pause);
        }
    }
    if let Some(g) = &g {
        gs.settled = settled;
        gs.remote_accounts = g.remote_accounts();
        summary.group = Some(gs);
    }
    summary.in_step = if settings.dry_run {
        false
    } else {
        set.out_of_step().is_empty()
    };
    set.save_cache();
    Ok(summary)
}

/// Settings of a watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub settings: Settings,
    pub debounce: Duration,
    pub poll: Option<Duration>,
    /// With `--all`: the WoW, flavor or WTF folder to look for accounts in, again and again.
    pub discover: Option<PathBuf>,
    /// With `--mailbox`: the group of PCs to keep in step with too.
    pub group: Option<GroupConfig>,
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
    let mut group = config
        .group
        .as_ref()
        .map(|c| Group::open(c, &config.settings))
        .transpose()?;
    for i in 0..set.members().len() {
        add(set, &mut worker, &mut fs, &mut locks, i, report)?;
        if let Some(g) = group.as_mut() {
            g.add(set, i)?;
        }
    }
    let mut last_group_step: Option<Instant> = None;
    let mut last_discovery = Instant::now();
    let mut dry = HashMap::new();
    let mut busy = true;
    while !stop.load(Ordering::SeqCst) {
        let t = now();
        if let Some(g) = group.as_mut()
            && (last_group_step.is_none_or(|l| l.elapsed() >= GROUP_POLL)
                || g.deadline().is_some_and(|d| d <= crate::time::now_ms()))
        {
            last_group_step = Some(Instant::now());
            group_step(g, set, &mut worker, t, report);
        }
        let held = |i| group.as_ref().is_some_and(|g| g.is_receiving(i));
        if round(
            set,
            &mut worker,
            Turn {
                settings: &config.settings,
                now: t,
                held: &held,
                stop,
            },
            &mut dry,
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
                        if let Some(g) = group.as_mut() {
                            g.add(set, i)?;
                        }
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
