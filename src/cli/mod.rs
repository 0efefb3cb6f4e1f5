//! Command line: flags in, library calls, output and exit codes out. No logic of its own.

mod common;
mod exit;
mod game;
mod json;
mod mailbox;
mod merge;
mod restore;
mod sessions;
mod status;
mod validate;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::Exit;

const EXAMPLES: &str = "\
Examples:
  svsync status \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\\WTF\"
  svsync merge testdata/WTF/Account/ALPHA testdata/WTF/Account/BRAVO --dry-run
  svsync merge ALPHA BRAVO --wtf \"/Applications/World of Warcraft/_retail_/WTF\"
  svsync watch ALPHA BRAVO --wtf \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\\WTF\"
  svsync validate testdata/WTF --json";

#[derive(Debug, Parser)]
#[command(
    name = "svsync",
    version,
    about = "Sync GuildHelper's shared guild data between WoW accounts' SavedVariables files",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check SavedVariables files: Lua syntax the game can load, and GuildHelper's structure.
    #[command(after_help = "\
Exit status: 0 no errors (warnings allowed), 1 at least one error, 2 usage or I/O error.

Examples:
  svsync validate WTF/Account/MYACCOUNT/SavedVariables/GuildHelper.lua
  svsync validate \"/Applications/World of Warcraft/_retail_/WTF\"
  svsync validate testdata/WTF --json")]
    Validate(validate::ValidateArgs),
    /// Send FROM's shared guild data to TO once, through the chunked, checksummed pipeline.
    #[command(after_help = "\
TO's file is replaced atomically, a backup of the previous file is kept beside it
(GuildHelper.lua.svsync-<time>.bak, at most 5), and nothing is written if TO changed on disk
during the merge or if either file does not parse.

Exit status: 0 success, 1 the sync failed (bad data, integrity failure, receiver busy; nothing
written), 2 usage or I/O error.

Examples:
  svsync merge testdata/WTF/Account/ALPHA testdata/WTF/Account/BRAVO --dry-run
  svsync merge ALPHA BRAVO --wtf \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\\WTF\"
  svsync merge ALPHA BRAVO --wtf WTF --target sharedData --json
  svsync merge A/GuildHelper.lua B/GuildHelper.lua --output merged.lua")]
    Merge(merge::MergeArgs),
    /// List the backups svsync kept of an account's file, or put one back.
    #[command(after_help = "\
Every time svsync writes an account's GuildHelper.lua it keeps the previous file beside it
(GuildHelper.lua.svsync-<time>.bak): the oldest one (the file before svsync first wrote it) is
always kept, and so are the 5 most recent and those of the last 24 hours (at most 20).
Restoring keeps the file it replaces as a backup too.

Examples:
  svsync restore MYALT --wtf \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\"
  svsync restore MYALT 1 --wtf \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\"
  svsync restore WTF/Account/MYALT --json")]
    Restore(restore::RestoreArgs),
    /// List or reset the tracked sync sessions.
    #[command(after_help = "\
Examples:
  svsync sessions list
  svsync sessions list --json --state-dir ./state
  svsync sessions reset")]
    Sessions(sessions::SessionsArgs),
    /// Show the accounts found, what each holds, whether they are in step, and the last sync.
    #[command(after_help = "\
Examples:
  svsync status
  svsync status \"C:\\Program Files (x86)\\World of Warcraft\"
  svsync status testdata/WTF --json")]
    Status(status::StatusArgs),
    /// Keep accounts in step: sync whenever the game saves one of them.
    #[command(after_help = "\
Leave it running while you play. When the game saves an account (at logout or /reload), every
account that is no longer in step is synced, in both directions, including the one that just
saved. svsync's own writes never trigger a sync back. SIGINT, SIGTERM and Ctrl-C finish a write
in progress and exit 0; a sync that fails is tried again, with a line when that starts and ends.
--json prints one JSON object per line per event (account, sync, sync_failed, failing,
recovered, waiting, usable, in_step, group_sent, group_received, group_ignored, group_error,
stopped, error).

With --mailbox DIR --group-key-file FILE (see `svsync mailbox init`), the accounts are also kept
in step with the accounts of the other PCs that share DIR.

Examples:
  svsync watch --all --wtf \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\"
  svsync watch MYMAIN MYALT 123456789#2 --wtf \"/Applications/World of Warcraft/_retail_\"
  svsync watch WTF/Account/A WTF/Account/B --debounce-ms 2000
  svsync watch --all --wtf /mnt/games/wow --poll --json
  svsync watch --all --wtf WTF --mailbox ~/Sync/guild --group-key-file ~/guild.key")]
    Watch(watch::WatchArgs),
    /// Bring a set of accounts in step once, then exit.
    #[command(after_help = "\
Every account's target table ends up holding every other account's data (each flavor on its
own). Exit status: 0 all in step, 1 a sync failed, 2 usage or I/O error.

Examples:
  svsync sync --all --wtf \"C:\\Program Files (x86)\\World of Warcraft\"
  svsync sync MYMAIN MYALT 123456789#2 --wtf WTF
  svsync sync --all --wtf WTF --target sharedData --dry-run
  svsync sync MYMAIN --wtf WTF --mailbox ~/Sync/guild --group-key-file ~/guild.key --wait 60")]
    Sync(watch::SyncSetArgs),
    /// Prepare a folder shared between PCs (Syncthing, a network share, a cloud drive) for a
    /// group's syncs.
    #[command(after_help = "\
The key file must stay out of the shared folder: copy it to each PC yourself (a USB stick, a
message to yourself). Anyone with the key can change the group's data; files written without
it are ignored.

Examples:
  svsync mailbox init ~/Sync/guild-mailbox --key-file ~/guild.key
  svsync mailbox init \"D:\\Sync\\guild\" --key-file \"C:\\Users\\me\\guild.key\"")]
    Mailbox(mailbox::MailboxArgs),
}

pub fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    let exit = match &cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Merge(args) => merge::run_merge(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Status(args) => status::run(args),
        Command::Watch(args) => watch::run_watch(args),
        Command::Sync(args) => watch::run_sync(args),
        Command::Mailbox(args) => mailbox::run(args),
    };
    exit.into()
}

/// A bug must not show a Rust backtrace to a player: one plain sentence, and the exit status of
/// a sync that failed (never the one of a usage error).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let detail = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let f = svsync::failure::Failure::Internal(svsync::text::printable(&detail).into_owned());
        eprintln!("svsync: {f}");
        std::process::exit(i32::from(Exit::of(&f).code()));
    }));
}
