//! `svsync status [WTF_OR_ACCOUNT...] [--json]`

use std::path::PathBuf;

use svsync::fsio::accounts::discover;
use svsync::set::AccountSet;
use svsync::state::{FileStore, Store};
use svsync::status::status;
use svsync::text::{printable, printable_path};
use svsync::time::utc_text;

use super::common::TargetArg;
use super::exit::Exit;
use super::json::{GroupPeerJson, StatusDoc};
use svsync::protocol::session::{SessionRecord, SessionState};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// WoW, flavor, WTF or account folders (default: the current folder).
    #[arg(value_name = "WTF_OR_ACCOUNT")]
    pub paths: Vec<PathBuf>,
    /// The table whose step is checked (as for merge, sync and watch).
    #[arg(long, value_enum, default_value = "sharedDataRemote")]
    pub target: TargetArg,
    /// The state folder, for the last sync of each account (default: a per-user data folder;
    /// also SVSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also list the PCs of the group that shares this folder (read only: nothing is written).
    #[arg(long, value_name = "DIR", requires = "group_key_file")]
    pub mailbox: Option<PathBuf>,
    /// The group's key file (made by `svsync mailbox init`).
    #[arg(long, value_name = "FILE", requires = "mailbox")]
    pub group_key_file: Option<PathBuf>,
}

/// The PCs of the group, as the folder shows them, with the last sync this PC recorded with
/// each.
fn peers(
    dir: &std::path::Path,
    key_file: &std::path::Path,
    records: &[SessionRecord],
    state_dir: &std::path::Path,
) -> Result<Vec<GroupPeerJson>, svsync::failure::Failure> {
    let key = svsync::watch::group::read_key(key_file)?;
    let own =
        svsync::transport::mailbox::own_id(&svsync::watch::group::group_state_dir(state_dir, &key));
    if !dir.join(svsync::transport::mailbox::MARKER).is_file() {
        return Err(svsync::transport::TransportError::NotAMailbox(dir.to_path_buf()).into());
    }
    let folder = svsync::transport::mailbox::OsFolder {
        root: dir.to_path_buf(),
    };
    let now = svsync::time::now_ms();
    Ok(svsync::transport::mailbox::survey(&folder, &key)
        .into_iter()
        .map(|(id, seen)| {
            let with_it = |addr: &str| svsync::transport::mailbox::is_of_peer(addr, &id);
            let last_sync = records
                .iter()
                .filter(|r| r.state == SessionState::Complete)
                .filter(|r| with_it(&r.sender.addr) || with_it(&r.receiver.addr))
                .map(|r| r.last_activity)
                .max();
            GroupPeerJson {
                name: seen.name,
                accounts: seen.accounts.into_keys().collect(),
                online: now.saturating_sub(seen.last_seen) < svsync::peer::group::ONLINE_FOR_MS,
                last_seen: utc_text(seen.last_seen),
                last_sync: last_sync.map(utc_text),
                this_pc: own.as_deref() == Some(id.as_str()),
                id,
            }
        })
        .collect())
}

pub fn run(args: &StatusArgs) -> Exit {
    let paths = if args.paths.is_empty() && args.mailbox.is_some() {
        Vec::new()
    } else if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let mut accounts = Vec::new();
    for p in &paths {
        match discover(p) {
            Ok(found) => accounts.extend(found),
            Err(e) => {
                let f = svsync::failure::Failure::from(e);
                eprintln!("svsync: {f}");
                return Exit::of(&f);
            }
        }
    }
    let dir = svsync::fsio::state_dir(args.state_dir.as_deref());
    let records = FileStore::new(&dir)
        .load()
        .map(|l| l.records)
        .unwrap_or_default();
    let mut set = match AccountSet::of(
        accounts,
        true,
        args.target.into(),
        false,
        Some(&dir.join("cache.json")),
    ) {
        Ok(s) => s,
        Err(f) => {
            eprintln!("svsync: {f}");
            return Exit::of(&f);
        }
    };
    let dir_state = dir.clone();
    let group = match (&args.mailbox, &args.group_key_file) {
        (Some(dir), Some(key)) => match peers(dir, key, &records, &dir_state) {
            Ok(p) => Some((dir, p)),
            Err(f) => {
                eprintln!("svsync: {f}");
                return Exit::of(&f);
            }
        },
        _ => None,
    };
    let st = status(&mut set, &records);
    if args.json {
        let doc = StatusDoc::of(&st, group.map(|(_, p)| p));
        println!("{}", serde_json::to_string(&doc).unwrap_or_default());
        return Exit::Success;
    }
    if let Some((dir, peers)) = &group {
        print_peers(dir, peers);
        if paths.is_empty() {
            return Exit::Success;
        }
    }
    if st.accounts.is_empty() {
        println!(
            "No account with GuildHelper data found under {}.",
            paths
                .iter()
                .map(|p| printable_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Exit::Success;
    }
    let target: svsync::model::Target = args.target.into();
    for s in &st.accounts {
        let flavor = s
            .flavor
            .as_deref()
            .map(|f| format!(" {}", printable(f)))
            .unwrap_or_default();
        println!("{}{flavor}", printable(&s.account));
        println!(
            "  file      {} ({} bytes, modified {})",
            printable(&s.file),
            s.size,
            s.modified.as_deref().unwrap_or("?")
        );
        if let Some(e) = &s.error {
            println!("  error     {}", printable(e));
            let kept = svsync::fsio::write::backups(std::path::Path::new(&s.file)).len();
            if kept > 0 {
                println!(
                    "  backups   {kept} kept; `svsync restore \"{}\"` lists them and puts one back",
                    printable(&s.file)
                );
            }
            continue;
        }
        if !s.toons.is_empty() {
            let toons: Vec<String> = s.toons.iter().map(|t| printable(t).into_owned()).collect();
            println!("  toons     {}", toons.join(", "));
        }
        let entries: Vec<String> = s.entries.iter().map(|(t, n)| format!("{t} {n}")).collect();
        println!("  entries   {}", entries.join(", "));
        let others = st.pairs.iter().filter(|p| p.to == s.account).count();
        let holds = if s.in_step_with.is_empty() {
            "no other account's data".to_string()
        } else {
            let names: Vec<String> = s
                .in_step_with
                .iter()
                .map(|n| printable(n).into_owned())
                .collect();
            format!("the data of {}", names.join(", "))
        };
        println!(
            "  {target:<9} {}holds {holds} ({} of {others})",
            if target == svsync::model::Target::SharedDataRemote && !s.remote {
                "absent; "
            } else {
                ""
            },
            s.in_step_with.len()
        );
        match &s.last_sync {
            Some(l) => println!(
                "  last sync {} -> {} at {} (session {}, {})",
                printable(&l.from),
                printable(&l.to),
                l.when,
                l.session,
                l.state.as_str()
            ),
            None => println!("  last sync none"),
        }
    }
    let n = st.accounts.len();
    if st.in_step {
        println!("All {n} accounts in step.");
    } else {
        let behind: Vec<String> = st
            .pairs
            .iter()
            .filter(|p| p.in_step != Some(true))
            .map(|p| {
                format!(
                    "{} -> {} ({})",
                    printable(&p.from),
                    printable(&p.to),
                    printable(p.why.as_deref().unwrap_or("?"))
                )
            })
            .collect();
        if behind.is_empty() {
            println!("Not in step: some files cannot be used (see above).");
        } else {
            println!(
                "Not in step: {}. `svsync sync --all --wtf ...` brings them in step.",
                behind.join("; ")
            );
        }
    }
    Exit::Success
}

fn print_peers(dir: &std::path::Path, peers: &[GroupPeerJson]) {
    if peers.is_empty() {
        println!(
            "No PC has written into the mailbox {} yet.",
            printable_path(dir)
        );
        return;
    }
    println!("PCs of the group in {}:", printable_path(dir));
    for p in peers {
        let accounts: Vec<String> = p
            .accounts
            .iter()
            .map(|a| printable(a).into_owned())
            .collect();
        println!(
            "  {} [{}]{} {}  accounts {}  last seen {}  last sync {}",
            printable(&p.name),
            p.id,
            if p.this_pc { " (this PC)" } else { "" },
            if p.online { "online " } else { "offline" },
            if accounts.is_empty() {
                "-".to_string()
            } else {
                accounts.join(", ")
            },
            p.last_seen,
            p.last_sync.as_deref().unwrap_or("never")
        );
    }
}
