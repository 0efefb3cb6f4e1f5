//! `svsync status [WTF_OR_ACCOUNT...] [--json]`

use std::path::PathBuf;

use svsync::fsio::accounts::discover;
use svsync::set::AccountSet;
use svsync::state::{FileStore, Store};
use svsync::status::status;
use svsync::text::{printable, printable_path};

use super::common::TargetArg;
use super::exit::Exit;
use super::json::StatusDoc;

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
    let st = status(&mut set, &records);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&StatusDoc::of(&st)).unwrap_or_default()
        );
        return Exit::Success;
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
