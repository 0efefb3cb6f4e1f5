//! `svsync sessions list|reset [--state-dir DIR]`

use std::path::PathBuf;

use svsync::sync::session::{SessionState, SessionStore, TableStatus, unix_now, utc_text};

use super::exit::Exit;

#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub action: SessionsAction,
    /// The state folder (default: a per-user data folder; also SVSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SessionsAction {
    /// List tracked sessions with their per-table progress.
    List,
    /// Clear every session, so that the next syncs start from the beginning.
    Reset,
}

pub fn run(args: &SessionsArgs) -> Exit {
    let dir = svsync::fsio::state_dir(args.state_dir.as_deref());
    let mut store = match SessionStore::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("svsync: {e}");
            return Exit::Usage;
        }
    };
    match args.action {
        SessionsAction::Reset => match store.reset() {
            Ok(n) => {
                if args.json {
                    println!("{}", serde_json::json!({"cleared": n}));
                } else {
                    println!(
                        "Cleared {n} session{} in {}.",
                        if n == 1 { "" } else { "s" },
                        dir.display()
                    );
                }
                Exit::Success
            }
            Err(e) => {
                eprintln!("svsync: {e}");
                Exit::Usage
            }
        },
        SessionsAction::List => {
            store.expire(unix_now());
            if args.json {
                println!("{}", serde_json::json!({"sessions": store.sessions}));
                return Exit::Success;
            }
            if store.sessions.is_empty() {
                println!("No sessions in {}.", dir.display());
                return Exit::Success;
            }
            for s in &store.sessions {
                let state = match s.state {
                    SessionState::Active => "active",
                    SessionState::Complete => "complete",
                    SessionState::Failed => "failed",
                    SessionState::Expired => "expired",
                };
                println!(
                    "{}  {} ({}) -> {} [{}]  {state}  started {}  last activity {}",
                    s.id,
                    s.sender.account,
                    s.sender.toon,
                    s.receiver.account,
                    s.target,
                    utc_text(s.started),
                    utc_text(s.last_activity)
                );
                for (t, p) in &s.tables {
                    let status = match p.status {
                        TableStatus::Pending => "pending",
                        TableStatus::InProgress => "in progress",
                        TableStatus::Complete => "complete",
                        TableStatus::Failed => "failed",
                    };
                    let err = p
                        .error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    let held = match (p.status, s.sid()) {
                        (TableStatus::InProgress, Some(sid)) => {
                            store.journaled_count(sid, *t).max(p.received)
                        }
                        _ => p.received,
                    };
                    println!(
                        "    {:<10} {status:<11} {held}/{} chunks{err}",
                        t.as_str(),
                        p.chunks
                    );
                }
            }
            Exit::Success
        }
    }
}
