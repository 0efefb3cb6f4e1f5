//! `svsync merge FROM TO [options]`

use std::io::IsTerminal;
use std::path::PathBuf;

use svsync::failure::Failure;
use svsync::fsio::accounts::Account;
use svsync::model::Target;
use svsync::peer::pair::{PairJob, PairReport, run_pair};
use svsync::peer::receiver::WriteMode;
use svsync::text::{printable, printable_path};

use super::common::{SyncArgs, restore_hint};
use super::exit::Exit;
use super::json::{MergeDoc, MergeErrorDoc};

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

fn progress_bar(from: &Account, to: &Account, show: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::hidden();
    if show && std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} chunks")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("{} -> {}", from.name, to.name));
    }
    bar
}

fn run(args: &MergeArgs) -> Result<(Account, Account, PairReport), Failure> {
    let from = args.sync.account(&args.from)?;
    let to = args.sync.account(&args.to)?;
    let simulation = args.sync.simulation()?;
    let mode = match (&args.output, args.sync.dry_run) {
        (_, true) => WriteMode::DryRun,
        (Some(out), false) => WriteMode::Output(out.clone()),
        (None, false) => WriteMode::InPlace,
    };
    if mode == WriteMode::InPlace && !args.sync.json {
        super::game::warn_if_running(&to);
    }
    let bar = progress_bar(&from, &to, !args.sync.json);
    let progress = {
        let bar = bar.clone();
        Box::new(move |done: u64, total: u64| {
            // Small transfers finish before a bar would help.
            if total >= 500 {
                bar.set_length(total);
                bar.set_position(done);
            }
        })
    };
    let dry_run = mode == WriteMode::DryRun;
    let report = run_pair(PairJob {
        from: from.clone(),
        to: to.clone(),
        target: args.sync.target.into(),
        mode,
        force: args.sync.force,
        simulation,
        state_dir: (!dry_run).then(|| args.sync.state_dir()),
        log_dir: Some(args.sync.log_dir()),
        wire_log: args.sync.wire_log.clone(),
        progress: Some(progress),
        busy_patience: std::time::Duration::from_secs(15),
    });
    bar.finish_and_clear();
    Ok((from, to, report?))
}

pub fn run_merge(args: &MergeArgs) -> Exit {
    match run(args) {
        Ok((from, to, report)) => {
            if args.sync.json {
                println!(
                    "{}",
                    serde_json::to_string(&MergeDoc::of(&report, args.sync.dry_run))
                        .unwrap_or_default()
                );
            } else {
                print_human(&report, &from, &to, &args.sync);
            }
            match report.failure() {
                None => Exit::Success,
                Some(f) => {
                    restore_hint(&f);
                    Exit::of(&f)
                }
            }
        }
        Err(f) => {
            if args.sync.json {
                println!(
                    "{}",
                    serde_json::to_string(&MergeErrorDoc::new(f.to_string())).unwrap_or_default()
                );
            }
            eprintln!("svsync: {f}");
            restore_hint(&f);
            Exit::of(&f)
        }
    }
}

pub fn duration_text(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn print_human(report: &PairReport, from: &Account, to: &Account, sync: &SyncArgs) {
    let target: Target = sync.target.into();
    println!(
        "{} -> {} ({target}), session {}{}",
        svsync::text::printable(&from.name),
        svsync::text::printable(&to.name),
        report.session,
        if report.resumed { ", resumed" } else { "" }
    );
    for t in &report.tables {
        let status = if t.counts.is_some() {
            ""
        } else {
            "  [not confirmed]"
        };
        let c = t.counts.unwrap_or_default();
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
    for d in &report.damaged {
        println!(
            "Note: a damaged session record was moved aside: {}",
            printable_path(d)
        );
    }
    for (table, n) in &report.duplicates {
        println!(
            "Note: {}'s {table} held {n} record{} whose id was already there; one copy of each \
             id is kept (the newest)",
            printable(&to.name),
            if *n == 1 { "" } else { "s" }
        );
    }
    if let Some(f) = report.failure() {
        println!("Sync failed: {f}");
    } else if let Some(path) = &report.written {
        print!("Wrote {}", printable_path(path));
        match &report.backup {
            Some(b) => println!(" (backup: {}).", printable_path(b)),
            None => println!("."),
        }
    } else if sync.dry_run {
        println!(
            "Dry run: {}; nothing was written.",
            if report.changes {
                "the merge would change the receiver"
            } else {
                "the receiver is already up to date"
            }
        );
    } else {
        println!("The receiver is already up to date; nothing was written.");
    }
    println!("Logs: {}", printable_path(&sync.log_dir()));
}
