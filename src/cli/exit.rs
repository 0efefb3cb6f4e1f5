//! Exit codes: a stable contract for scripts, decided in one place.

use std::process::ExitCode;

use svsync::failure::{Failure, Kind};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, nothing wrong (warnings allowed).
    Success,
    /// 1: the data is wrong or the sync did not complete (nothing written); also svsync's own
    /// bugs, which are never a usage error.
    Failure,
    /// 2: the command could not run as asked: bad arguments, or a local file or folder that
    /// cannot be read or written.
    Usage,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
        }
    }

    /// The exit status of a failure: the one map from reasons to codes.
    pub fn of(f: &Failure) -> Exit {
        match f.kind() {
            Kind::Usage | Kind::LocalIo => Exit::Usage,
            Kind::Data | Kind::Sync | Kind::Internal => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
