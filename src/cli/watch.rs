//! `svsync watch A B [options]`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use svsync::failure::Failure;
use svsync::fsio::accounts::Account;
use svsync::peer::pair::{PairJob, PairReport, run_pair};
use svsync::peer::receiver::WriteMode;
use svsync::time::{now_ms, utc_text};
use svsync::transport::sim::Simulation;
use svsync::watch::{Side, SyncOutcome, WatchConfig, WatchEvent, run};

use super::common::SyncArgs;
use super::exit::Exit;
use super::json::MergeDoc;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// One account: its GuildHelper.lua, account folder or SavedVariables folder (or its name,
    /// with --wtf).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The other account, given the same way.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Wait this long after the last change before syncing (the game writes in bursts).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub debounce_ms: u64,
    /// Poll the folders instead of using file-system events (network drives, Wine, WSL).
    #[arg(long)]
    pub poll: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
}

fn clock() -> String {
    utc_text(now_ms())[11..19].to_string()
}

fn sync_once(
    sync: &SyncArgs,
    from: &Account,
    to: &Account,
    mode: WriteMode,
    simulation: Simulation,
) -> Result<PairReport, Failure> {
    run_pair(PairJob {
        from: from.clone(),
        to: to.clone(),
        target: sync.target.into(),
        state_dir: (mode != WriteMode::DryRun).then(|| sync.state_dir()),
        mode,
        force: sync.force,
        simulation,
        log_dir: Some(sync.log_dir()),
        wire_log: sync.wire_log.clone(),
        progress: None,
    })
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
    match (report.failure(), &report.written) {
        (Some(r), _) => format!("failed: {r}"),
        (None, Some(p)) => format!("{moved}; wrote {}", p.display()),
        (None, None) => format!("{moved}; nothing written"),
    }
}

pub fn run_watch(args: &WatchArgs) -> Exit {
    let prepared = (|| -> Result<_, Failure> {
        let a = args.sync.account(&args.a)?;
        let b = args.sync.account(&args.b)?;
        svsync::peer::pair::check_job(&a, &b, &WriteMode::InPlace, false)?;
        Ok((a, b, args.sync.simulation()?))
    })();
    let (a, b, faults) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("svsync: {e}");
            return Exit::of(&e);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            eprintln!("svsync: cannot handle Ctrl-C: {e}");
            return Exit::Usage;
        }
    }
    let debounce = Duration::from_millis(args.debounce_ms);
    let config = WatchConfig {
        a: a.file.clone(),
        b: b.file.clone(),
        target: args.sync.target.into(),
        debounce,
        poll: args.poll.then(|| debounce.max(Duration::from_millis(200))),
    };
    let name = |s: Side| match s {
        Side::A => &a.name,
        Side::B => &b.name,
    };
    if !args.sync.json {
        println!(
            "Watching {} and {} ({}); Ctrl-C to stop. Logs: {}",
            a.name,
            b.name,
            if args.poll { "polling" } else { "file events" },
            args.sync.log_dir().display()
        );
        if super::game::game_running() {
            println!(
                "World of Warcraft is running: when an account logs out the game overwrites its \
                 file, and svsync merges again right after that save."
            );
        }
    }
    let mode = if args.sync.dry_run {
        WriteMode::DryRun
    } else {
        WriteMode::InPlace
    };
    let json = args.sync.json;
    let dry_run = args.sync.dry_run;
    let mut failed_io = false;
    let result = run(
        &config,
        &stop,
        |from| {
            let (f, t) = match from {
                Side::A => (&a, &b),
                Side::B => (&b, &a),
            };
            let r = sync_once(&args.sync, f, t, mode.clone(), faults);
            SyncOutcome {
                ok: r.as_ref().is_ok_and(PairReport::is_complete),
                wrote: r.as_ref().is_ok_and(|r| r.written.is_some()),
                result: r,
            }
        },
        |event| match event {
            WatchEvent::Synced { from, result } => {
                let (f, t) = (name(from), name(from.other()));
                match result {
                    Ok(report) if json => {
                        let mut v = serde_json::to_value(MergeDoc::of(&report, dry_run))
                            .unwrap_or_default();
                        v["from"] = f.as_str().into();
                        v["to"] = t.as_str().into();
                        println!("{v}");
                    }
                    Ok(report) => println!("{} {f} -> {t}: {}", clock(), summary(&report)),
                    Err(e) => {
                        failed_io |= Exit::of(&e) == Exit::Usage;
                        println!("{} {f} -> {t}: {e}", clock());
                    }
                }
            }
            WatchEvent::NotReady { side, error } => {
                if !json {
                    println!(
                        "{} {}: not readable yet, will try again: {error}",
                        clock(),
                        name(side)
                    );
                }
            }
            WatchEvent::InStep { from } => {
                if !json {
                    println!(
                        "{} {} -> {}: already in step",
                        clock(),
                        name(from),
                        name(from.other())
                    );
                }
            }
        },
    );
    match result {
        Ok(()) => {
            if !json {
                println!("{} stopped.", clock());
            }
            if failed_io {
                Exit::Usage
            } else {
                Exit::Success
            }
        }
        Err(e) => {
            eprintln!("svsync: {e}");
            Exit::Usage
        }
    }
}
