//! `restore`: the way back from a sync a player regrets. The backups svsync keeps of an
//! account's file are listed with what each holds, and one is put back atomically, the current
//! file itself kept as a backup first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;
use crate::fsio::lock::{lock_path, lock_wait};
use crate::fsio::write::{Replace, Replaced, backups, read_with_snapshot, real_path, replace};
use crate::set::{Contents, Summary};

/// One backup of an account's file.
#[derive(Debug, Clone)]
pub struct Backup {
    pub path: PathBuf,
    /// When it was made (milliseconds since the Unix epoch).
    pub made: u64,
    pub size: u64,
    /// The oldest backup svsync made of the file: the player's original, never pruned.
    pub original: bool,
    /// What it holds; `Err`: it cannot be read as a GuildHelper file.
    pub summary: Result<Summary, String>,
}

/// The backups of `file` (links resolved), oldest first.
pub fn list(file: &Path) -> Vec<Backup> {
    let real = real_path(file).unwrap_or_else(|_| file.to_path_buf());
    backups(&real)
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let meta = std::fs::symlink_metadata(&path).ok();
            let summary = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    Contents::read(&path, b)
                        .map(|c| c.summary)
                        .map_err(|f| f.to_string())
                });
            Backup {
                made: crate::fsio::write::backup_made(&path)
                    .or_else(|| meta.as_ref().and_then(|m| m.modified().ok()))
                    .map_or(0, crate::time::ms_of),
                size: meta.map_or(0, |m| m.len()),
                original: i == 0,
                summary,
                path,
            }
        })
        .collect()
}

/// Which backup to restore: a number from the list (1 is the oldest), a file name, or a path.
pub fn find(file: &Path, which: &str) -> Option<PathBuf> {
    let all = list(file);
    if let Ok(n) = which.parse::<usize>() {
        return n
            .checked_sub(1)
            .and_then(|i| all.get(i))
            .map(|b| b.path.clone());
    }
    all.into_iter()
        .map(|b| b.path)
        .find(|p| p.file_name().is_some_and(|n| n == which) || p == Path::new(which))
}

/// Puts `backup` back as `file`, atomically; the current file is kept as a backup first. The
/// backup must be a GuildHelper file svsync can read (it is never written otherwise).
pub fn restore(file: &Path, backup: &Path, force: bool) -> Result<Replaced, Failure> {
    let bytes = std::fs::read(backup).map_err(|source| Failure::Read {
        path: backup.to_path_buf(),
        source,
    })?;
    Contents::read(backup, bytes.clone())?;
    let real = real_path(file).map_err(|source| Failure::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let _lock = lock_wait(
        &lock_path(&real, "lock"),
        "restore",
        Duration::from_secs(60),
    )
    .map_err(Failure::lock)?;
    // A file that is gone is put back from its backup; one that is there is kept as a backup.
    let snapshot = match read_with_snapshot(&real) {
        Ok((_, snapshot)) => Some(snapshot),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Failure::Read {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    Ok(replace(
        file,
        &bytes,
        Replace {
            expected: snapshot.as_ref(),
            backup: snapshot.is_some(),
            force,
        },
    )?)
}
