//! `svsync restore ACCOUNT [BACKUP]`

use std::path::PathBuf;

use svsync::failure::Failure;
use svsync::fsio::accounts::{AccountError, by_name, resolve, with_only_backups};
use svsync::text::{printable, printable_path};
use svsync::time::utc_text;

use super::exit::Exit;
use super::json::{BackupJson, RestoreListDoc, RestoredDoc};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The account: its GuildHelper.lua, account folder or SavedVariables folder (or its name,
    /// with --wtf).
    #[arg(value_name = "ACCOUNT")]
    pub account: PathBuf,
    /// The backup to put back: its number in the list (1 is the oldest), its file name or its
    /// path. Without it, the backups are listed.
    #[arg(value_name = "BACKUP")]
    pub backup: Option<String>,
    /// Name the account by folder name under this WoW, flavor or WTF folder.
    #[arg(long, value_name = "DIR")]
    pub wtf: Option<PathBuf>,
    /// Restore over a read-only file too.
    #[arg(long)]
    pub force: bool,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

fn run_inner(args: &RestoreArgs) -> Result<(), Failure> {
    let found = match (&args.wtf, resolve(&args.account)) {
        (_, Ok(a)) => Ok(a),
        (Some(wtf), Err(AccountError::Missing(_))) => by_name(wtf, &args.account.to_string_lossy()),
        (_, Err(e)) => Err(e),
    };
    // An account whose file is gone can still get a backup back.
    let account = match found {
        Ok(a) => a,
        Err(e) => with_only_backups(&args.account, args.wtf.as_deref()).ok_or(e)?,
    };
    let list = svsync::restore::list(&account.file);
    let Some(which) = &args.backup else {
        let backups: Vec<BackupJson> = list.iter().map(BackupJson::from).collect();
        if args.json {
            let doc = RestoreListDoc {
                account: account.name.clone(),
                file: account.file.display().to_string(),
                backups,
            };
            println!("{}", serde_json::to_string(&doc).unwrap_or_default());
            return Ok(());
        }
        if list.is_empty() {
            println!(
                "{} has no backups yet (svsync keeps one each time it writes the file).",
                printable(&account.name)
            );
            return Ok(());
        }
        println!("Backups of {}:", printable_path(&account.file));
        for (i, b) in list.iter().enumerate() {
            let holds = match &b.summary {
                Ok(s) => s
                    .entries
                    .iter()
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("cannot be read: {}", printable(e)),
            };
            println!(
                "  {:>2}  {}  {:>9} bytes  {holds}{}",
                i + 1,
                utc_text(b.made),
                b.size,
                if b.original {
                    "  (the original, always kept)"
                } else {
                    ""
                }
            );
        }
        println!(
            "Restore one with `svsync restore {} NUMBER` (the current file is kept as a backup).",
            printable(&args.account.to_string_lossy())
        );
        return Ok(());
    };
    let backup = svsync::restore::find(&account.file, which)
        .ok_or_else(|| Failure::NoSuchBackup(which.clone()))?;
    let done = svsync::restore::restore(&account.file, &backup, args.force)?;
    if args.json {
        let doc = RestoredDoc {
            restored: backup.display().to_string(),
            file: done.path.display().to_string(),
            backup_of_current: done.backup.map(|p| p.display().to_string()),
        };
        println!("{}", serde_json::to_string(&doc).unwrap_or_default());
    } else {
        println!(
            "Restored {} from {}{}.",
            printable_path(&done.path),
            printable_path(&backup),
            done.backup
                .map(|b| format!(" (the file it replaced is kept as {})", printable_path(&b)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub fn run(args: &RestoreArgs) -> Exit {
    match run_inner(args) {
        Ok(()) => Exit::Success,
        Err(f) => {
            eprintln!("svsync: {f}");
            Exit::of(&f)
        }
    }
}
