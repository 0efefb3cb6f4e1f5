//! Locks between svsync processes, keyed by a file's canonical path.
//!
//! A lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on a small file beside
//! the file it protects: `GuildHelper.lua.svsync-lock` next to the real (link-resolved)
//! `GuildHelper.lua`. So two processes lock the same thing however the account was named
//! (`BRAVO`, `./BRAVO/SavedVariables/GuildHelper.lua`, a symlink) and whatever state folder
//! each uses. The game never opens these files, and discovery skips them. The lock is released
//! when the process ends, however it ends; the file itself stays (deleting it would race with
//! a process about to lock it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock; `holder` is what it wrote into the lock file.
    #[error("{holder} is using {}", path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot create the lock file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file that guards `canonical` with this purpose (`lock` for writes, `watch` for a
/// watcher).
pub fn lock_path(canonical: &Path, purpose: &str) -> PathBuf {
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    canonical.with_file_name(format!("{name}.svsync-{purpose}"))
}

/// Who holds a lock, for the other process's message.
fn holder_text(what: &str) -> String {
    format!("svsync {what} (process {})", std::process::id())
}

/// Takes the lock at `path` if it is free. `what` says what this process does with it.
pub fn try_lock(path: &Path, what: &str) -> Result<Option<FileLock>, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    belong_to_folder_owner(&file, path);
    match file.try_lock() {
        Ok(()) => {
            // Best effort: the holder's description, for the other process's message.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = file.write_all(holder_text(what).as_bytes());
            let _ = file.flush();
            Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            }))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// A lock file made by another user than the folder's owner (svsync run with `sudo` on a
/// player's files) is given to the folder's owner, so that the player's own runs can still
/// open it. Best effort: only a privileged process can, and then it should.
fn belong_to_folder_owner(file: &File, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(mine), Some(Ok(folder))) = (
            file.metadata(),
            path.parent().map(|d| {
                std::fs::metadata(if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                })
            }),
        ) else {
            return;
        };
        if (mine.uid(), mine.gid()) != (folder.uid(), folder.gid()) {
            let _ = std::os::unix::fs::fchown(file, Some(folder.uid()), Some(folder.gid()));
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
}

/// What the process holding `path` wrote about itself.
pub fn holder(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(200).read_to_string(&mut text));
    let text = crate::text::printable(text.trim()).into_owned();
    if text.is_empty() {
        "another svsync process".into()
    } else {
        text
    }
}

/// Takes the lock at `path`, waiting up to `patience` for another process to release it.
pub fn lock_wait(path: &Path, what: &str, patience: Duration) -> Result<FileLock, LockError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(lock) = try_lock(path, what)? {
            return Ok(lock);
        }
        if start.elapsed() >= patience {
            return Err(LockError::Held {
                path: path.to_path_buf(),
                holder: holder(path),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    /// Run as root (as with `sudo`) on a player's folder, the lock file is the player's.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_made_by_root_belongs_to_the_folders_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("SavedVariables");
        std::fs::create_dir(&folder).unwrap();
        if std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).is_err() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let path = folder.join("GuildHelper.lua.svsync-lock");
        let lock = super::try_lock(&path, "test").unwrap().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        drop(lock);
    }

    use super::*;

    #[test]
    fn a_second_taker_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("GuildHelper.lua");
        let path = lock_path(&file, "lock");
        assert!(path.ends_with("GuildHelper.lua.svsync-lock"));
        let held = try_lock(&path, "merge").unwrap().unwrap();
        // A second handle in this process conflicts like another process would.
        assert!(try_lock(&path, "merge").unwrap().is_none());
        let err = lock_wait(&path, "merge", Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("svsync merge (process"), "{err}");
        drop(held);
        assert!(lock_wait(&path, "merge", Duration::from_millis(50)).is_ok());
    }
}
