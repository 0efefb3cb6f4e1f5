//! `svsync sessions list|reset [--state-dir DIR]`

use std::path::PathBuf;

use svsync::protocol::session::{Role, SessionState};
use svsync::state::{FileStore, Store};
use svsync::text::{printable, printable_path};
use svsync::time::utc_text;

use super::exit::Exit;
use super::json::{ResetDoc, SessionJson, SessionsDoc};

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
    Reset {
        /// Only the sessions with this PC of a group (its id, from `svsync status --mailbox
        /// DIR --group-key-file FILE`).
        #[arg(long, value_name = "ID")]
        peer: Option<String>,
    },
}

pub fn run(args: &SessionsArgs) -> Exit {
    let dir = svsync::fsio::state_dir(args.state_dir.as_deref());
    let mut store = FileStore::new(&dir);
    match &args.action {
        SessionsAction::Reset { peer } => match match peer {
            None => store.reset(),
            Some(id) => {
                let with_it = |addr: &str| svsync::transport::mailbox::is_of_peer(addr, id);
                store.reset_where(|r| with_it(&r.sender.addr) || with_it(&r.receiver.addr))
            }
        } {
            Ok(n) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::to_string(&ResetDoc { cleared: n }).unwrap_or_default()
                    );
                } else {
                    println!(
                        "Cleared {n} session record{} in {}.",
                        if n == 1 { "" } else { "s" },
                        printable_path(&dir)
                    );
                }
                Exit::Success
            }
            Err(e) => {
                let f = svsync::failure::Failure::State(e);
                eprintln!("svsync: {f}");
                Exit::of(&f)
            }
        },
        SessionsAction::List => {
            let loaded = match store.load() {
                Ok(l) => l,
                Err(e) => {
                    let f = svsync::failure::Failure::State(e);
                    eprintln!("svsync: {f}");
                    return Exit::of(&f);
                }
            };
            let now = svsync::time::now_ms();
            let mut records = loaded.records;
            // An active session silent for an hour is over, whoever records it.
            for r in &mut records {
                if r.state == SessionState::Active && !r.is_live(now) {
                    r.state = SessionState::Expired;
                }
            }
            if args.json {
                let doc = SessionsDoc {
                    sessions: records.iter().map(SessionJson::from).collect(),
                    damaged: loaded
                        .damaged
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                };
                println!("{}", serde_json::to_string(&doc).unwrap_or_default());
                return Exit::Success;
            }
            for d in &loaded.damaged {
                println!(
                    "Note: a damaged session record was moved aside: {}",
                    printable_path(d)
                );
            }
            if records.is_empty() {
                println!("No sessions in {}.", printable_path(&dir));
                return Exit::Success;
            }
            for s in &records {
                println!(
                    "{}  {:<7}  {} ({}) -> {} [{}]  {}  started {}  last activity {}",
                    s.id,
                    match s.role {
                        Role::Send => "send",
                        Role::Receive => "receive",
                    },
                    printable(&s.sender.account),
                    printable(&s.sender.toon),
                    printable(&s.receiver.account),
                    s.target,
                    s.state.as_str(),
                    utc_text(s.started),
                    utc_text(s.last_activity)
                );
                for (t, p) in &s.tables {
                    let err = p
                        .error
                        .as_deref()
                        .map(|e| format!(" ({})", printable(e)))
                        .unwrap_or_default();
                    let held = if s.role == Role::Receive {
                        store.journaled_count(s.id, *t).max(p.held)
                    } else {
                        p.held
                    }
                    .min(p.chunks);
                    println!(
                        "    {:<10} {:<11} {held}/{} chunks{err}",
                        t.as_str(),
                        p.status.as_str(),
                        p.chunks
                    );
                }
            }
            Exit::Success
        }
    }
}
