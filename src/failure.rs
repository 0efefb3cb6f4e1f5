//! Why a command did not do what was asked: one closed set of reasons that crosses every module
//! boundary above the file layer, each a plain sentence with advice that works, and each of one
//! [`Kind`] (which the command line maps to an exit status in one place).

use std::path::{Path, PathBuf};

use crate::fsio::accounts::AccountError;
use crate::fsio::lock::LockError;
use crate::fsio::write::WriteError;
use crate::lua::SpliceError;
use crate::merge::{FinishError, OpenError};
use crate::model::tables::TableName;
use crate::protocol::sender::SendFailure;
use crate::state::StoreError;
use crate::text::printable_path;
use crate::transport::TransportError;
use crate::transport::sim::SimulateError;

/// What kind of failure, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command was given something it cannot use (arguments, paths, names).
    Usage,
    /// A file or folder of this computer could not be read or written.
    LocalIo,
    /// The data is wrong (a file that does not parse, a table that cannot be sent).
    Data,
    /// The sync did not complete (busy, no answer, refused, the file changed meanwhile).
    Sync,
    /// A bug in svsync.
    Internal,
}

/// A problem with the GuildHelper data of a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataProblem {
    #[error("there is no `sharedData` table to send")]
    NoSharedData,
    #[error("{0}")]
    Model(#[from] crate::model::ModelError),
    #[error("{table} cannot be sent: {reason}")]
    Unsendable { table: TableName, reason: String },
    /// The merged result could not be written as Lua the game loads (for example an older-layout
    /// record that gains a level of nesting when converted, already at Lua 5.1's limit).
    #[error("the merged result cannot be written: {0}")]
    Unwritable(crate::lua::WriteError),
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("FROM and TO are the same file ({})", printable_path(.0))]
    SameFile(PathBuf),
    #[error(
        "--output {}: that is {which}'s own file; give a new file name",
        printable_path(path)
    )]
    OutputIsAccount { path: PathBuf, which: &'static str },
    #[error(
        "--output {}: the file exists; give a new file name, or pass --force to replace it (a backup is kept)",
        printable_path(.0)
    )]
    OutputExists(PathBuf),
    #[error("no backup `{}`; `svsync restore ACCOUNT` lists them", crate::text::printable(.0))]
    NoSuchBackup(String),
    #[error("give at least two accounts to keep in step (or --all --wtf DIR)")]
    TooFewAccounts,
    #[error("--all needs the folder to look in: --all --wtf DIR")]
    AllNeedsWtf,
    #[error(
        "{} is a {fa} account and {} a {fb} one: svsync does not mix flavors (pass --mix-flavors if you mean it)",
        crate::text::printable(a),
        crate::text::printable(b)
    )]
    FlavorsMixed {
        a: String,
        fa: String,
        b: String,
        fb: String,
    },
    #[error("--simulate: {0}")]
    Simulate(#[from] SimulateError),
    #[error("cannot read {}: {source}{}", printable_path(path), io_advice(source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{inner}{advice}", inner = .0, advice = write_advice(.0))]
    Write(#[from] WriteError),
    #[error("{inner}{advice}", inner = .0, advice = store_advice(.0))]
    State(#[from] StoreError),
    #[error(
        "another program is writing {}: {holder}; nothing was written. Try again when it is done",
        printable_path(path)
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "cannot create the lock file {}: {source}{}",
        printable_path(path),
        io_advice(source)
    )]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write the log {}: {source}{}",
        printable_path(path),
        io_advice(source)
    )]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot use the group key {}: {reason}", printable_path(path))]
    GroupKey { path: PathBuf, reason: String },
    #[error(
        "the group key must not be inside the mailbox folder (it would travel with it): choose a key file outside {}",
        printable_path(.0)
    )]
    KeyInsideMailbox(PathBuf),
    #[error(
        "{} exists; a new group key would lock out every PC that has the old one. Use another file name, or delete it first",
        printable_path(.0)
    )]
    KeyExists(PathBuf),
    #[error(
        "--mailbox needs the group's key: --group-key-file FILE (made by `svsync mailbox init`)"
    )]
    MailboxNeedsKey,
    #[error(
        "--dry-run cannot be used with --mailbox: the other PCs would act on what this one sends"
    )]
    MailboxDryRun,
    #[error("{0} works with `svsync merge` only")]
    MergeOnly(&'static str),
    #[error(
        "{} is already watched by {holder}; stop that one first (one watcher per account)",
        crate::text::printable(account)
    )]
    Watched { account: String, holder: String },
    #[error("cannot watch {}: {source} (try --poll)", printable_path(path))]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error(
        "{}:{line}:{column}: {message}; nothing was written",
        printable_path(path)
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {problem}; nothing was written", printable_path(path))]
    Data { path: PathBuf, problem: DataProblem },
    #[error(
        "the receiver is busy with a sync from {}; nothing was written. Try again later (an interrupted sync times out after an hour; `svsync sessions reset` clears it now)",
        crate::text::printable(with)
    )]
    Busy { with: String },
    #[error(
        "the sync did not complete: {0}; nothing was written. Run the command again: it resumes where it stopped"
    )]
    Send(SendFailure),
    #[error(
        "internal error: {0}; nothing was written. Please report this with the command you ran"
    )]
    Internal(String),
}

fn io_advice(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (check that your user may write there, and that no other program holds the file)"
        }
        std::io::ErrorKind::StorageFull => " (the disk is full: free some space and run it again)",
        std::io::ErrorKind::FileTooLarge => {
            " (the file system or a limit on file sizes refuses a file this large)"
        }
        std::io::ErrorKind::NotFound => " (check the path)",
        _ => "",
    }
}

fn store_advice(e: &StoreError) -> &'static str {
    match e {
        StoreError::Io { source, .. } => io_advice(source),
        StoreError::Crashed => "",
    }
}

fn write_advice(e: &WriteError) -> &'static str {
    match e {
        WriteError::Io { source, .. } => io_advice(source),
        WriteError::Changed(_) => {
            ". Run the command again when the game has finished saving (log the account out first)"
        }
        _ => "",
    }
}

impl Failure {
    pub fn kind(&self) -> Kind {
        match self {
            Failure::Account(_)
            | Failure::SameFile(_)
            | Failure::OutputIsAccount { .. }
            | Failure::OutputExists(_)
            | Failure::TooFewAccounts
            | Failure::NoSuchBackup(_)
            | Failure::AllNeedsWtf
            | Failure::FlavorsMixed { .. }
            | Failure::Simulate(_)
            | Failure::GroupKey { .. }
            | Failure::KeyInsideMailbox(_)
            | Failure::KeyExists(_)
            | Failure::MailboxNeedsKey
            | Failure::MailboxDryRun
            | Failure::MergeOnly(_) => Kind::Usage,
            Failure::Read { .. }
            | Failure::State(_)
            | Failure::LockFile { .. }
            | Failure::Log { .. }
            | Failure::Transport(_)
            | Failure::Watch { .. } => Kind::LocalIo,
            Failure::Watched { .. } => Kind::Usage,
            Failure::Write(WriteError::Changed(_)) => Kind::Sync,
            Failure::Write(_) => Kind::LocalIo,
            Failure::Parse { .. } | Failure::Data { .. } => Kind::Data,
            Failure::Locked { .. } | Failure::Busy { .. } | Failure::Send(_) => Kind::Sync,
            Failure::Internal(_) => Kind::Internal,
        }
    }

    /// A file that does not parse, or has no usable GuildHelper data.
    pub fn open(path: &Path, e: OpenError) -> Failure {
        match e {
            OpenError::Parse(p) => Failure::Parse {
                path: path.to_path_buf(),
                line: p.position.line,
                column: p.position.column,
                message: p.error.message,
            },
            OpenError::Model(m) => Failure::Data {
                path: path.to_path_buf(),
                problem: DataProblem::Model(m),
            },
        }
    }

    /// A merged file that cannot be produced: data the game could not load (nothing is
    /// written), or svsync's own bug.
    pub fn finish(path: &Path, e: FinishError) -> Failure {
        match e {
            FinishError::Splice(SpliceError::Write(w)) => Failure::Data {
                path: path.to_path_buf(),
                problem: DataProblem::Unwritable(w),
            },
            e => Failure::Internal(e.to_string()),
        }
    }

    pub fn lock(e: LockError) -> Failure {
        match e {
            LockError::Held { path, holder } => Failure::Locked { path, holder },
            LockError::Io { path, source } => Failure::LockFile { path, source },
        }
    }
}
