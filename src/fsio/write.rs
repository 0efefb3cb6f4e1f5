//! Safe replacement of a SavedVariables file.
//!
//! The new content goes to a temporary file in the same folder, is flushed to disk, and is
//! renamed over the target; a copy of the previous file is kept as a backup. Just before the
//! rename the target is compared with the snapshot taken when it was read: if the game (or
//! anything else) rewrote it in between, nothing is replaced.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many backups of one file are kept.
pub const MAX_BACKUPS: usize = 5;

/// What a file looked like when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub crc: u32,
}

impl Snapshot {
    pub fn of(bytes: &[u8], meta: &std::fs::Metadata) -> Snapshot {
        Snapshot {
            len: meta.len(),
            modified: meta.modified().ok(),
            crc: crc32fast::hash(bytes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} changed on disk since it was read (the game may have saved it); nothing was written, run the command again"
    )]
    Changed(PathBuf),
    #[error(
        "{0}: the written file does not read back as written (disk full or failing?); nothing was replaced"
    )]
    Verify(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a file and takes its snapshot.
pub fn read_with_snapshot(path: &Path) -> std::io::Result<(Vec<u8>, Snapshot)> {
    let bytes = std::fs::read(path)?;
    let meta = std::fs::metadata(path)?;
    let snap = Snapshot::of(&bytes, &meta);
    Ok((bytes, snap))
}

/// Whether the file on disk still matches the snapshot (size, time and content).
pub fn unchanged(path: &Path, snap: &Snapshot) -> std::io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    if meta.len() != snap.len || meta.modified().ok() != snap.modified {
        return Ok(false);
    }
    Ok(crc32fast::hash(&std::fs::read(path)?) == snap.crc)
}

/// Where the backup of `path` taken now goes: `GuildHelper.lua.svsync-<time>.bak`, beside it.
/// The game loads only `<Addon>.lua`, and svsync skips `.bak` files.
fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp =
        crate::sync::session::utc_text(crate::sync::session::unix_now()).replace([':', '-'], "");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!("{name}.svsync-{stamp}-{nanos:09}.bak"))
}

/// Backups of `path`, oldest first.
pub fn backups(path: &Path) -> Vec<PathBuf> {
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let prefix = format!(
        "{}.svsync-",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".bak"))
        })
        .collect();
    found.sort();
    found
}

/// Replaces `path` with `bytes` atomically. The caller has checked that `bytes` parse to the
/// intended table; the temporary file is read back and must hold exactly those bytes.
///
/// `expected`: the snapshot taken when the file was read; if the file no longer matches it,
/// nothing is written ([`WriteError::Changed`]). With `backup`, the previous file is kept (at
/// most [`MAX_BACKUPS`]). Returns the backup's path.
pub fn replace(
    path: &Path,
    bytes: &[u8],
    expected: Option<&Snapshot>,
    backup: bool,
) -> Result<Option<PathBuf>, WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    remove_stale_temporaries(&dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(".svsync-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;

    if let Some(snap) = expected
        && !unchanged(path, snap).map_err(io(path))?
    {
        return Err(WriteError::Changed(path.to_path_buf()));
    }
    let mut saved = None;
    if backup && path.exists() {
        let b = backup_path(path);
        std::fs::copy(path, &b).map_err(io(&b))?;
        saved = Some(b);
        let all = backups(path);
        for old in all.iter().take(all.len().saturating_sub(MAX_BACKUPS)) {
            let _ = std::fs::remove_file(old);
        }
    }
    persist(tmp, path)?;
    sync_dir(&dir);
    Ok(saved)
}

/// Temporary files of an earlier run that was killed before its rename (older than a minute, so
/// a write in progress is never touched).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(".svsync-") && name.ends_with(".tmp")) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 60);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Renames the temporary file over the target; on Windows a file the game or an antivirus
/// holds open can refuse for a moment, so it retries briefly.
fn persist(mut tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), WriteError> {
    let mut attempt = 0;
    loop {
        match tmp.persist(path) {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < 10
                    && cfg!(windows)
                    && e.error.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                attempt += 1;
                tmp = e.file;
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
            }
            Err(e) => return Err(io(path)(e.error)),
        }
    }
}

/// Makes the rename durable (Unix: fsync the folder).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_keeps_a_bounded_backup_and_refuses_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GuildHelper.lua");
        std::fs::write(&path, b"X = 1\n").unwrap();
        for i in 0..(MAX_BACKUPS + 2) {
            let (_, snap) = read_with_snapshot(&path).unwrap();
            let b = replace(
                &path,
                format!("X = {}\n", i + 2).as_bytes(),
                Some(&snap),
                true,
            )
            .unwrap();
            assert!(b.unwrap().exists());
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            format!("X = {}\n", MAX_BACKUPS + 3).as_bytes()
        );
        assert_eq!(backups(&path).len(), MAX_BACKUPS);

        let (_, snap) = read_with_snapshot(&path).unwrap();
        std::fs::write(&path, b"X = 99\n").unwrap();
        let err = replace(&path, b"X = 100\n", Some(&snap), true).unwrap_err();
        assert!(matches!(err, WriteError::Changed(_)));
        assert_eq!(std::fs::read(&path).unwrap(), b"X = 99\n");
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
