//! `svsync status [WTF_OR_ACCOUNT...] [--json]`

use std::path::PathBuf;

use svsync::fsio::accounts::discover;
use svsync::state::{FileStore, Store};
use svsync::status::statuses;
use svsync::text::printable;

use super::exit::Exit;
use super::json::{AccountJson, StatusDoc};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// WoW, flavor, WTF or account folders (default: the current folder).
    #[arg(value_name = "WTF_OR_ACCOUNT")]
    pub paths: Vec<PathBuf>,
    /// The state folder, for the last sync of each account (default: a per-user data folder;
    /// also SVSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> Exit {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let mut accounts = Vec::new();
    for p in &paths {
        match discover(p) {
            Ok(found) => accounts.extend(found),
            Err(e) => {
                eprintln!("svsync: {e}");
                return Exit::Usage;
            }
        }
    }
    let dir = svsync::fsio::state_dir(args.state_dir.as_deref());
    let records = FileStore::new(&dir)
        .load()
        .map(|l| l.records)
        .unwrap_or_default();
    let all = statuses(&accounts, &records);
    if args.json {
        let doc = StatusDoc {
            accounts: all.iter().map(AccountJson::from).collect(),
        };
        println!("{}", serde_json::to_string(&doc).unwrap_or_default());
        return Exit::Success;
    }
    if all.is_empty() {
        println!(
            "No account with GuildHelper data found under {}.",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Exit::Success;
    }
    for s in &all {
        let flavor = s
            .flavor
            .as_deref()
            .map(|f| format!(" {f}"))
            .unwrap_or_default();
        println!("{}{flavor}", printable(&s.account));
        println!(
            "  file      {} ({} bytes, modified {})",
            s.file,
            s.size,
            s.modified.as_deref().unwrap_or("?")
        );
        if let Some(e) = &s.error {
            println!("  error     {e}");
            continue;
        }
        if !s.toons.is_empty() {
            println!("  toons     {}", s.toons.join(", "));
        }
        let entries: Vec<String> = s.entries.iter().map(|(t, n)| format!("{t} {n}")).collect();
        println!("  entries   {}", entries.join(", "));
        let remote = match (s.remote, s.in_step_with.is_empty()) {
            (false, _) => "no sharedDataRemote yet".to_string(),
            (true, true) => {
                "sharedDataRemote present, not in step with the other accounts".to_string()
            }
            (true, false) => format!(
                "sharedDataRemote in step with {}",
                s.in_step_with.join(", ")
            ),
        };
        println!("  remote    {remote}");
        match &s.last_sync {
            Some(l) => println!(
                "  last sync {} -> {} at {} (session {}, {})",
                l.from,
                l.to,
                l.when,
                l.session,
                l.state.as_str()
            ),
            None => println!("  last sync none"),
        }
    }
    Exit::Success
}
