//! `svsync merge FROM TO [options]`

use std::io::IsTerminal;
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use svsync::fsio::accounts::Account;
use svsync::sync::run::{Side, SyncError, SyncJob, SyncReport, WriteMode, run};
use svsync::sync::session::{SessionStore, unix_now};
use svsync::sync::transport::Faults;

use super::common::SyncArgs;
use super::exit::Exit;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The sending account: its GuildHelper.lua, account folder or SavedVariables folder (or
    /// its name, with --wtf).
    #[arg(value_name = "FROM")]
    pub from: PathBuf,
    /// The receiving account, given the same way.
    #[arg(value_name = "TO")]
    pub to: PathBuf,
    /// Write the merged receiver file to FILE instead of replacing TO.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// What a failed run means for the exit status.
pub fn error_exit(e: &SyncError) -> Exit {
    match e {
        SyncError::Parse { .. } | SyncError::Data { .. } => Exit::Failure,
        SyncError::Crashed(_) => {
            // As if the process had been killed: no cleanup, no output.
            std::process::exit(137)
        }
        SyncError::Read { .. } | SyncError::Store(_) | SyncError::Log { .. } => Exit::Usage,
    }
}

/// Runs one sync of `from` into `to` with these options.
pub fn sync_once(
    sync: &SyncArgs,
    from: &Account,
    to: &Account,
    mode: WriteMode,
    faults: Faults,
    show_progress: bool,
) -> Result<SyncReport, SyncError> {
    let mut store = if mode == WriteMode::DryRun {
        SessionStore::in_memory()
    } else {
        SessionStore::open(&sync.state_dir())?
    };
    let bar = indicatif::ProgressBar::hidden();
    if show_progress && std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} chunks")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("{} -> {}", from.name, to.name));
    }
    let mut progress = |done: u64, total: u64| {
        // Small transfers finish before a bar would help.
        if total >= 500 {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let result = run(SyncJob {
        from: Side {
            file: from.file.clone(),
            account: from.name.clone(),
        },
        to: Side {
            file: to.file.clone(),
            account: to.name.clone(),
        },
        target: sync.target.into(),
        mode,
        faults,
        store: &mut store,
        log_dir: Some(sync.log_dir()),
        wire_log: sync.wire_log.clone(),
        now: unix_now(),
        progress: Some(&mut progress),
    });
    bar.finish_and_clear();
    result
}

pub fn run_merge(args: &MergeArgs) -> Exit {
    let (from, to, faults) = match args.sync.prepare(&args.from, &args.to) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("svsync: {e}");
            return Exit::Usage;
        }
    };
    let mode = match (&args.output, args.sync.dry_run) {
        (_, true) => WriteMode::DryRun,
        (Some(out), false) => WriteMode::Output(out.clone()),
        (None, false) => WriteMode::InPlace,
    };
    if mode == WriteMode::InPlace && !args.sync.json {
        super::game::warn_if_running(&to);
    }
    match sync_once(&args.sync, &from, &to, mode, faults, !args.sync.json) {
        Ok(report) => {
            if args.sync.json {
                println!("{}", report_json(&report, args.sync.dry_run));
            } else {
                print_human(&report, &from, &to, &args.sync);
            }
            if report.ok() {
                Exit::Success
            } else {
                Exit::Failure
            }
        }
        Err(e) => {
            let exit = error_exit(&e);
            if args.sync.json {
                println!(
                    "{}",
                    json!({"session": null, "tables": {}, "written": null, "error": e.to_string()})
                );
            }
            eprintln!("svsync: {e}");
            exit
        }
    }
}

/// The documented JSON shape (and a few extra fields).
pub fn report_json(report: &SyncReport, dry_run: bool) -> Value {
    let mut tables = Map::new();
    for t in &report.tables {
        if let Ok(v) = serde_json::to_value(t.counts) {
            tables.insert(t.table.to_string(), v);
        }
    }
    json!({
        "session": report.session,
        "tables": tables,
        "written": report.written.as_ref().map(|p| p.display().to_string()),
        "outcome": report.outcome,
        "reason": report.reason,
        "dry_run": dry_run,
        "changes": report.changes,
        "backup": report.backup.as_ref().map(|p| p.display().to_string()),
        "resumed": report.resumed,
        "messages": report.messages_sent + report.messages_received,
        "in_game_seconds": report.in_game_seconds.round(),
    })
}

fn duration_text(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

pub fn print_human(report: &SyncReport, from: &Account, to: &Account, sync: &SyncArgs) {
    let target: svsync::model::Target = sync.target.into();
    println!(
        "{} -> {} ({target}), session {}{}",
        from.name,
        to.name,
        report.session,
        if report.resumed { ", resumed" } else { "" }
    );
    for t in &report.tables {
        let c = &t.counts;
        let status = if t.status == "complete" {
            String::new()
        } else {
            format!("  [{}]", t.status)
        };
        println!(
            "  {:<10} received {:>5}  added {:>4}  updated {:>4}  unchanged {:>5}  kept newer {:>4}  conflicts {:>3}  skipped {:>3}{status}",
            t.table.as_str(),
            c.received,
            c.added,
            c.updated,
            c.unchanged,
            c.kept_newer,
            c.conflicts,
            c.skipped
        );
    }
    println!(
        "  {} messages, {} bytes sent; in game this transfer would take about {}.",
        report.messages_sent + report.messages_received,
        report.bytes_sent,
        duration_text(report.in_game_seconds)
    );
    match (&report.reason, &report.written) {
        (Some(reason), _) => {
            println!("Sync failed: {reason}. Nothing was written; run it again to resume.")
        }
        (None, Some(path)) => {
            print!("Wrote {}", path.display());
            match &report.backup {
                Some(b) => println!(" (backup: {}).", b.display()),
                None => println!("."),
            }
        }
        (None, None) if sync.dry_run => println!(
            "Dry run: {}; nothing was written.",
            if report.changes {
                "the merge would change the receiver"
            } else {
                "the receiver is already up to date"
            }
        ),
        (None, None) => println!("The receiver is already up to date; nothing was written."),
    }
    println!("Logs: {}", sync.log_dir().display());
}
