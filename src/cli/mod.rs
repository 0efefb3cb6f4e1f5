//! Command line: flags in, library calls, output and exit codes out. No logic of its own.

mod exit;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::Exit;

const EXAMPLES: &str = "\
Examples:
  svsync validate \"C:\\Program Files (x86)\\World of Warcraft\\_retail_\\WTF\"
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
    };
    exit.into()
}

/// A bug must not show a Rust backtrace to a player: one plain sentence, exit status 2.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let detail = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "svsync: internal error ({detail}); nothing more was written. Please report this \
             with the command you ran."
        );
        std::process::exit(i32::from(Exit::Usage.code()));
    }));
}
