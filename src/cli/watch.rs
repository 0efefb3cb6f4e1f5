//! `svsync watch ACCOUNT... | --all --wtf DIR` and `svsync sync ACCOUNT... | --all --wtf DIR`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use svsync::failure::Failure;
use svsync::peer::pair::PairReport;
use svsync::protocol::sender::Outcome;
use svsync::set::AccountSet;
use svsync::text::{printable, printable_path};
use svsync::time::{now_ms, utc_text};
use svsync::watch::group::GroupEvent;
use svsync::watch::worker::Notice;
use svsync::watch::{Event, Settings, WatchConfig, sync_set, watch};

use super::common::{MailboxArgs, SyncArgs};
use super::exit::Exit;
use super::json::{EventJson, GroupDoneJson, MergeDoc};

/// Which accounts: named ones, or every one under a folder.
#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// The accounts (two or more): GuildHelper.lua files, account folders or SavedVariables
    /// folders, or names with --wtf.
    #[arg(value_name = "ACCOUNT")]
    pub accounts: Vec<PathBuf>,
    /// Every account with GuildHelper data under --wtf DIR (each flavor on its own); with
    /// `watch`, accounts that appear later too.
    #[arg(long)]
    pub all: bool,
    /// Sync named accounts of different flavors (`_retail_` with `_classic_`) anyway.
    #[arg(long)]
    pub mix_flavors: bool,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Wait this long after the last change before syncing (the game writes in bursts).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub debounce_ms: u64,
    /// Poll the folders instead of using file-system events (network drives, Wine, WSL).
    #[arg(long)]
    pub poll: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub group: MailboxArgs,
}

#[derive(Debug, clap::Args)]
pub struct SyncSetArgs {
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub group: MailboxArgs,
    /// With --mailbox: wait at most this long for the other PCs (they see this one a carrier
    /// hop later); it stops sooner when every PC's accounts hold this PC's data.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 120,
        requires = "mailbox"
    )]
    pub wait: u64,
}

fn clock() -> String {
    utc_text(now_ms())[11..19].to_string()
}

/// The set the arguments name (with a mailbox, one account is enough: the others are on other
/// PCs).
pub fn account_set(set: &SetArgs, sync: &SyncArgs, group: bool) -> Result<AccountSet, Failure> {
    // The testing hooks drive one pair's link; a set's syncs would ignore them.
    if sync.simulate.is_some() {
        return Err(Failure::MergeOnly("--simulate"));
    }
    if sync.wire_log.is_some() {
        return Err(Failure::MergeOnly("--wire-log"));
    }
    let accounts = if set.all {
        let root = sync.wtf.as_ref().ok_or(Failure::AllNeedsWtf)?;
        svsync::watch::all_accounts(root)?
    } else {
        set.accounts
            .iter()
            .map(|p| sync.account(p))
            .collect::<Result<Vec<_>, _>>()?
    };
    if group && !set.all && accounts.is_empty() {
        return Err(Failure::TooFewAccounts);
    }
    let one_is_enough = group && accounts.len() == 1;
    AccountSet::of(
        accounts,
        set.all || one_is_enough,
        sync.target.into(),
        set.mix_flavors,
        Some(&sync.state_dir().join("cache.json")),
    )
}

fn settings(sync: &SyncArgs) -> Settings {
    Settings {
        target: sync.target.into(),
        dry_run: sync.dry_run,
        force: sync.force,
        state_dir: sync.state_dir(),
        log_dir: sync.log_dir(),
    }
}

/// One line for a sync: what moved.
fn summary(report: &PairReport) -> String {
    let mut parts = Vec::new();
    for t in &report.tables {
        let c = t.counts.unwrap_or_default();
        if c.added + c.updated + c.conflicts > 0 {
            let mut p = format!("{} +{} ~{}", t.table, c.added, c.updated);
            if c.conflicts > 0 {
                p.push_str(&format!(" !{}", c.conflicts));
            }
            parts.push(p);
        }
    }
    let moved = if parts.is_empty() {
        "no changes".to_string()
    } else {
        parts.join(", ")
    };
    match &report.written {
        Some(p) => format!("{moved}; wrote {}", printable_path(p)),
        None if report.changes => format!("{moved}; would change the receiver (dry run)"),
        None => format!("{moved}; nothing written"),
    }
}

fn name(set: &AccountSet, i: usize) -> String {
    printable(&set.member(i).account.name).into_owned()
}

/// Prints events as lines (a line when something changes) or as JSON objects (one per event).
struct Printer {
    json: bool,
    dry_run: bool,
    failed_io: bool,
}

impl Printer {
    fn event(&mut self, set: &AccountSet, e: Event<'_>) {
        let at = clock();
        match e {
            Event::Account { index } => {
                let m = set.member(index);
                if self.json {
                    EventJson::Account {
                        time: at,
                        account: m.account.name.clone(),
                        flavor: m.account.flavor.clone(),
                        file: m.account.file.display().to_string(),
                    }
                    .print();
                }
            }
            Event::Synced { from, to, report } => {
                if self.json {
                    EventJson::Sync {
                        time: at,
                        from: set.member(from).account.name.clone(),
                        to: set.member(to).account.name.clone(),
                        doc: Box::new(MergeDoc::of(report, self.dry_run)),
                    }
                    .print();
                } else {
                    println!(
                        "{at} {} -> {}: {}",
                        name(set, from),
                        name(set, to),
                        summary(report)
                    );
                }
            }
            Event::SyncFailed { from, to, failure } => {
                self.failed_io |= Exit::of(failure) == Exit::Usage;
                if self.json {
                    EventJson::SyncFailed {
                        time: at,
                        from: set.member(from).account.name.clone(),
                        to: set.member(to).account.name.clone(),
                        reason: failure.to_string(),
                    }
                    .print();
                }
                // In text, a failing pair is told once (see the notice), not at every attempt.
            }
            Event::Notice(n) => self.notice(set, &at, n),
            Event::Group(g) => self.group(set, &at, g),
            Event::InStep if set.members().len() < 2 => {}
            Event::InStep => {
                let n = set.members().len();
                if self.json {
                    EventJson::InStep {
                        time: at,
                        accounts: n,
                    }
                    .print();
                } else {
                    println!("{at} all {n} accounts in step");
                }
            }
        }
    }

    fn group(&self, set: &AccountSet, at: &str, e: GroupEvent) {
        match e {
            GroupEvent::Sent { from, to, outcome } => {
                let (what, written) = match &outcome {
                    Outcome::Complete { written } => ("complete".to_string(), Some(*written)),
                    Outcome::Busy { with } => (format!("busy with {with}"), None),
                    Outcome::Failed(f) => (f.to_string(), None),
                };
                if self.json {
                    EventJson::GroupSent {
                        time: at.to_string(),
                        from: set.member(from).account.name.clone(),
                        to,
                        outcome: what,
                        written,
                    }
                    .print();
                } else if let Some(w) = written {
                    println!(
                        "{at} {} -> {}: {}",
                        name(set, from),
                        printable(&to),
                        if w { "merged there" } else { "already held it" }
                    );
                } else if !matches!(outcome, Outcome::Busy { .. }) {
                    println!(
                        "{at} {} -> {}: not confirmed ({}); trying again later",
                        name(set, from),
                        printable(&to),
                        printable(&what)
                    );
                }
            }
            GroupEvent::Received { local, written } => {
                if self.json {
                    EventJson::GroupReceived {
                        time: at.to_string(),
                        account: set.member(local).account.name.clone(),
                        written,
                    }
                    .print();
                } else if written {
                    println!("{at} {}: merged data from another PC", name(set, local));
                }
            }
            GroupEvent::Ignored { path, why } => {
                if self.json {
                    EventJson::GroupIgnored {
                        time: at.to_string(),
                        file: path.display().to_string(),
                        reason: why,
                    }
                    .print();
                } else {
                    println!(
                        "{at} ignored a file in the mailbox: {} ({})",
                        printable_path(&path),
                        printable(&why)
                    );
                }
            }
            GroupEvent::Failed(f) => {
                if self.json {
                    EventJson::GroupError {
                        time: at.to_string(),
                        reason: f.to_string(),
                    }
                    .print();
                } else {
                    println!("{at} mailbox: {}", printable(&f.to_string()));
                }
            }
        }
    }

    fn notice(&self, set: &AccountSet, at: &str, n: Notice) {
        match n {
            Notice::PairFailing {
                from,
                to,
                reason,
                retry_in,
                ..
            } => {
                if self.json {
                    EventJson::Failing {
                        time: at.to_string(),
                        from: set.member(from).account.name.clone(),
                        to: set.member(to).account.name.clone(),
                        reason,
                        retry_in_s: retry_in / 1000,
                    }
                    .print();
                } else {
                    println!(
                        "{at} {} -> {}: failed: {}; trying again from time to time",
                        name(set, from),
                        name(set, to),
                        printable(&reason)
                    );
                }
            }
            Notice::PairRecovered { from, to } => {
                if self.json {
                    EventJson::Recovered {
                        time: at.to_string(),
                        from: set.member(from).account.name.clone(),
                        to: set.member(to).account.name.clone(),
                    }
                    .print();
                } else {
                    println!("{at} {} -> {}: works again", name(set, from), name(set, to));
                }
            }
            Notice::Unusable {
                account, reason, ..
            } => {
                let m = set.member(account);
                let backups = svsync::fsio::write::backups(&m.real);
                if self.json {
                    EventJson::Waiting {
                        time: at.to_string(),
                        account: m.account.name.clone(),
                        reason: reason.clone(),
                        backups: backups.iter().map(|b| b.display().to_string()).collect(),
                    }
                    .print();
                } else {
                    let hint = match backups.last() {
                        Some(b) => format!("; latest backup: {}", printable_path(b)),
                        None => String::new(),
                    };
                    println!(
                        "{at} {}: cannot be used ({}); waiting for the next save{hint}",
                        name(set, account),
                        printable(&reason)
                    );
                }
            }
            Notice::Usable { account } => {
                if self.json {
                    EventJson::Usable {
                        time: at.to_string(),
                        account: set.member(account).account.name.clone(),
                    }
                    .print();
                } else {
                    println!("{at} {}: readable again", name(set, account));
                }
            }
        }
    }
}

pub fn run_watch(args: &WatchArgs) -> Exit {
    let prepared = args
        .group
        .group()
        .and_then(|g| Ok((account_set(&args.set, &args.sync, g.is_some())?, g)));
    let (mut set, group) = match prepared {
        Ok(s) => s,
        Err(f) => {
            eprintln!("svsync: {f}");
            return Exit::of(&f);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // SIGINT, SIGTERM and SIGHUP (Ctrl-C, console close on Windows): finish the write in
        // progress, then exit 0.
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("svsync: cannot handle Ctrl-C: {e}");
            return Exit::Usage;
        }
    }
    let debounce = Duration::from_millis(args.debounce_ms);
    let config = WatchConfig {
        settings: settings(&args.sync),
        debounce,
        poll: args.poll.then(|| debounce.max(Duration::from_millis(200))),
        discover: args.set.all.then(|| args.sync.wtf.clone()).flatten(),
        group,
    };
    let json = args.sync.json;
    if !json {
        let names: Vec<String> = set
            .members()
            .iter()
            .map(|m| printable(&m.account.name).into_owned())
            .collect();
        println!(
            "Watching {} ({}); Ctrl-C to stop. Logs: {}",
            if names.is_empty() {
                "no account yet".to_string()
            } else {
                names.join(", ")
            },
            if args.poll { "polling" } else { "file events" },
            printable_path(&args.sync.log_dir())
        );
        if super::game::game_running() {
            println!(
                "World of Warcraft is running: when an account logs out the game overwrites its \
                 file, and svsync merges again right after that save."
            );
        }
    }
    let mut printer = Printer {
        json,
        dry_run: args.sync.dry_run,
        failed_io: false,
    };
    let result = watch(&mut set, &config, &stop, &mut |s, e| printer.event(s, e));
    match result {
        Ok(()) => {
            if json {
                EventJson::Stopped { time: clock() }.print();
            } else {
                println!("{} stopped.", clock());
            }
            Exit::Success
        }
        Err(f) => {
            if json {
                EventJson::Error {
                    time: clock(),
                    reason: f.to_string(),
                }
                .print();
            }
            eprintln!("svsync: {f}");
            Exit::of(&f)
        }
    }
}

pub fn run_sync(args: &SyncSetArgs) -> Exit {
    let prepared = args
        .group
        .group()
        .and_then(|g| Ok((account_set(&args.set, &args.sync, g.is_some())?, g)));
    let (mut set, group) = match prepared {
        Ok(s) => s,
        Err(f) => {
            eprintln!("svsync: {f}");
            return Exit::of(&f);
        }
    };
    let wait = Duration::from_secs(args.wait);
    let mut printer = Printer {
        json: args.sync.json,
        dry_run: args.sync.dry_run,
        failed_io: false,
    };
    let result = sync_set(
        &mut set,
        &settings(&args.sync),
        group.as_ref().map(|g| (g, wait)),
        &mut |s, e| {
            // A one-shot sync tells every failure.
            if let Event::SyncFailed { from, to, failure } = &e
                && !printer.json
            {
                println!(
                    "{} {} -> {}: failed: {failure}",
                    clock(),
                    name(s, *from),
                    name(s, *to)
                );
            }
            printer.event(s, e)
        },
    );
    let summary = match result {
        Ok(s) => s,
        Err(f) => {
            eprintln!("svsync: {f}");
            return Exit::of(&f);
        }
    };
    let n = set.members().len();
    let group_ok = summary.group.is_none_or(|g| g.settled);
    if args.sync.json {
        EventJson::Done {
            accounts: n,
            syncs: summary.syncs,
            failed: summary.failed,
            in_step: summary.in_step,
            group: summary.group.map(|g| GroupDoneJson {
                settled: g.settled,
                remote_accounts: g.remote_accounts,
                sent: g.sent,
                received: g.received,
                failed: g.failed,
            }),
        }
        .print();
    } else {
        if summary.in_step {
            if n > 1 {
                println!("All {n} accounts in step.");
            }
        } else if args.sync.dry_run {
            println!(
                "Dry run: {} syncs would run; nothing was written.",
                summary.syncs
            );
        } else {
            println!(
                "Not in step: {} of {} syncs failed, {} accounts could not be used. Run `svsync status` for details.",
                summary.failed, summary.syncs, summary.unusable
            );
        }
        if let Some(g) = summary.group {
            if g.remote_accounts == 0 {
                println!(
                    "No other PC seen in the mailbox yet: start `svsync watch --mailbox` there, \
                     or wait for the sync engine to bring its files."
                );
            } else if g.settled {
                println!(
                    "All {} accounts of the other PCs hold this PC's data ({} sent, {} received).",
                    g.remote_accounts, g.sent, g.received
                );
            } else {
                println!(
                    "The other PCs did not all answer within --wait {} s ({} sent, {} received, \
                     {} failed); run it again, or keep `svsync watch --mailbox` running.",
                    args.wait, g.sent, g.received, g.failed
                );
            }
        }
    }
    if printer.failed_io {
        Exit::Usage
    } else if (summary.in_step && group_ok) || (args.sync.dry_run && summary.failed == 0) {
        Exit::Success
    } else {
        Exit::Failure
    }
}
