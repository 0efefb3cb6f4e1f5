//! Flags shared by the commands that sync, and turning them into library settings.

use std::path::{Path, PathBuf};

use svsync::failure::Failure;
use svsync::fsio::accounts::{Account, AccountError, by_name, resolve};
use svsync::model::Target;
use svsync::transport::sim::Simulation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    #[value(name = "sharedDataRemote")]
    SharedDataRemote,
    #[value(name = "sharedData")]
    SharedData,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::SharedDataRemote => Target::SharedDataRemote,
            TargetArg::SharedData => Target::SharedData,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The table the receiver merges into.
    #[arg(long, value_enum, default_value = "sharedDataRemote")]
    pub target: TargetArg,
    /// Run everything, write nothing; report what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a file even if it is read-only (and, with --output, over an existing file).
    #[arg(long)]
    pub force: bool,
    /// Sessions and logs live here (default: a per-user data folder; also SVSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Write sender.log and receiver.log here (default: the state folder's `logs`).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Name accounts by folder name under this WoW, flavor or WTF folder.
    #[arg(long, value_name = "DIR")]
    pub wtf: Option<PathBuf>,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Testing: run over a simulated faulty link: drop=P,duplicate=P,reorder=P,delay=P,
    /// corrupt=P,truncate=P,seed=N, or crash-after=N to stop abruptly after N messages.
    #[arg(long, value_name = "SPEC", hide_short_help = true)]
    pub simulate: Option<String>,
    /// Testing: write every message as it crossed the link to FILE, one JSON object per line.
    #[arg(long, value_name = "FILE", hide_short_help = true)]
    pub wire_log: Option<PathBuf>,
}

impl SyncArgs {
    pub fn state_dir(&self) -> PathBuf {
        svsync::fsio::state_dir(self.state_dir.as_deref())
    }

    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| self.state_dir().join("logs"))
    }

    /// An account given as a path, or as a name with `--wtf`.
    pub fn account(&self, given: &Path) -> Result<Account, Failure> {
        match (&self.wtf, resolve(given)) {
            (_, Ok(a)) => Ok(a),
            (Some(wtf), Err(AccountError::Missing(_))) => {
                Ok(by_name(wtf, &given.to_string_lossy())?)
            }
            (_, Err(e)) => Err(e.into()),
        }
    }

    pub fn simulation(&self) -> Result<Simulation, Failure> {
        Ok(self
            .simulate
            .as_deref()
            .map(Simulation::parse)
            .transpose()?
            .unwrap_or_default())
    }
}

/// The group of PCs a command works with.
#[derive(Debug, Clone, clap::Args)]
pub struct MailboxArgs {
    /// Also keep in step with the other PCs of a group, through this shared folder (carried
    /// between PCs by Syncthing, a network share or a cloud drive; see `svsync mailbox init`).
    #[arg(long, value_name = "DIR")]
    pub mailbox: Option<PathBuf>,
    /// The group's key file (made by `svsync mailbox init`; copy it to each PC yourself).
    #[arg(long, value_name = "FILE", requires = "mailbox")]
    pub group_key_file: Option<PathBuf>,
    /// This PC's name for the other PCs (default: the computer's name).
    #[arg(long, value_name = "NAME", requires = "mailbox")]
    pub name: Option<String>,
}

impl MailboxArgs {
    /// The group, when a mailbox is given.
    pub fn group(&self) -> Result<Option<svsync::watch::group::GroupConfig>, Failure> {
        let Some(mailbox) = &self.mailbox else {
            return Ok(None);
        };
        let key_file = self
            .group_key_file
            .clone()
            .ok_or(Failure::MailboxNeedsKey)?;
        Ok(Some(svsync::watch::group::GroupConfig {
            mailbox: mailbox.clone(),
            key_file,
            name: self.name.clone(),
        }))
    }
}

/// After a file that cannot be used: where svsync's backups of it are, if it kept any.
pub fn restore_hint(f: &Failure) {
    let (Failure::Parse { path, .. } | Failure::Data { path, .. }) = f else {
        return;
    };
    let n = svsync::fsio::write::backups(path).len();
    if n > 0 {
        eprintln!(
            "svsync: svsync kept {n} backup{} of this file; `svsync restore \"{}\"` lists them and puts one back",
            if n == 1 { "" } else { "s" },
            svsync::text::printable_path(path)
        );
    }
}
