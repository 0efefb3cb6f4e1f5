//! Options shared by `merge` and `watch`, and the per-user folders.

use std::path::{Path, PathBuf};

use svsync::fsio::accounts::{Account, AccountError, by_name, resolve};
use svsync::model::Target;
use svsync::sync::transport::Faults;

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
    /// Sessions and logs live here (default: a per-user data folder; also SVSYNC_STATE_DIR).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Write sender.log and receiver.log here (default: the state folder's `logs`).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Name accounts by folder name under this WoW, flavor or WTF folder.
    #[arg(long, value_name = "DIR")]
    pub wtf: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run over a simulated faulty channel (testing): drop=P,duplicate=P,reorder=P,delay=P,
    /// corrupt=P,truncate=P,seed=N, or crash-after=N to stop abruptly after N messages.
    #[arg(long, value_name = "SPEC")]
    pub simulate: Option<String>,
    /// Write every message as it crossed the channel to FILE, one JSON string per line.
    #[arg(long, value_name = "FILE")]
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
    pub fn account(&self, given: &Path) -> Result<Account, AccountError> {
        match (&self.wtf, resolve(given)) {
            (_, Ok(a)) => Ok(a),
            (Some(wtf), Err(AccountError::Missing(_))) => by_name(wtf, &given.to_string_lossy()),
            (_, Err(e)) => Err(e),
        }
    }
}

impl SyncArgs {
    /// Both accounts (they exist and are not the same file) and the simulated faults, or the
    /// sentence to show.
    pub fn prepare(&self, from: &Path, to: &Path) -> Result<(Account, Account, Faults), String> {
        let a = self.account(from).map_err(|e| e.to_string())?;
        let b = self.account(to).map_err(|e| e.to_string())?;
        let same = match (a.file.canonicalize(), b.file.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a.file == b.file,
        };
        if same {
            return Err(format!(
                "FROM and TO are the same file ({})",
                a.file.display()
            ));
        }
        let faults = match self.simulate.as_deref().map(Faults::parse).transpose() {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => return Err(format!("--simulate: {e}")),
        };
        Ok((a, b, faults))
    }
}
