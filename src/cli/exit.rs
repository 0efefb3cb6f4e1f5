//! Exit codes: a stable contract for scripts.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, nothing wrong (warnings allowed).
    Success,
    /// 1: the data was checked or synced and something is wrong with it (a file with errors, a
    /// sync that failed, a busy receiver); nothing was written.
    Failure,
    /// 2: the command could not run as asked (bad arguments, missing path, I/O error).
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
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}
