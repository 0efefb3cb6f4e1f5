//! Safe replacement of a SavedVariables file.
//!
//! The new content goes to a temporary file in the same folder as the real file (a symlink is
//! followed: the link stays, its target is replaced), takes the old file's permissions and
//! owner, and is flushed to disk. Just before the rename the file is compared with the
//! snapshot taken when it was read: if the game (or anything else) rewrote it in between,
//! nothing is replaced. Only then is the old file kept as a backup (a hard link, so the backup
//! costs no copy and cannot be half-written; a copy where links are not possible), and the
//! temporary file renamed over it. A write that does not happen leaves no backup and no
//! temporary file behind.
//!
//! Backups (`GuildHelper.lua.svsync-<time>.bak`, beside the file) are pruned by count and age:
//! the oldest backup svsync ever made of the file (the player's original) is always kept, as
//! are the [`KEEP_RECENT`] most recent ones and any made in the last [`KEEP_DAY`] (up to
//! [`MAX_BACKUPS`] in all).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Backups always kept, most recent first.
pub const KEEP_RECENT: usize = 5;
/// Backups younger than this are kept too (so a burst of writes cannot evict yesterday's).
pub const KEEP_DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// At most this many backups of one file.
pub const MAX_BACKUPS: usize = 20;

/// What a file looked like when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub hash: u64,
}

impl Snapshot {
    pub fn of(bytes: &[u8], meta: &std::fs::Metadata) -> Snapshot {
        Snapshot {
            len: meta.len(),
            modified: meta.modified().ok(),
            hash: content_hash(bytes),
        }
    }
}

/// A hash of file content: length and CRC-32, enough to tell a changed file.
pub fn content_hash(bytes: &[u8]) -> u64 {
    ((bytes.len() as u64) << 32) ^ u64::from(crc32fast::hash(bytes))
}

/// What was being done when the file system said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Backup,
    Replace,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Read => "cannot read",
            Op::Write => "cannot write in the folder of",
            Op::Backup => "cannot keep a backup of",
            Op::Replace => "cannot replace",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} {}: {source}; nothing was written", op.verb(), path.display())]
    Io {
        op: Op,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} changed on disk since it was read (the game may have saved it); nothing was written",
        .0.display()
    )]
    Changed(PathBuf),
    #[error(
        "{} is read-only; svsync leaves it alone (make it writable, or pass --force to write it anyway)",
        .0.display()
    )]
    ReadOnly(PathBuf),
    #[error(
        "{} belongs to another user, and svsync cannot give the new file the same owner; run svsync as that user",
        .0.display()
    )]
    Owner(PathBuf),
    #[error(
        "{} is a hard link shared with another file (another account?); replacing it would cut that link and the other file would stop getting merges. Link the accounts with a symbolic link instead, or pass --force to write this one anyway",
        .0.display()
    )]
    HardLinked(PathBuf),
}

impl WriteError {
    /// The underlying I/O error, if any.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            WriteError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn io(op: Op, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        op,
        path: path.to_path_buf(),
        source: plain(source),
    }
}

/// An I/O error as the system words it.
fn plain(e: std::io::Error) -> std::io::Error {
    e.raw_os_error()
        .map_or(e, std::io::Error::from_raw_os_error)
}

/// Reads a file and takes its snapshot (one open).
pub fn read_with_snapshot(path: &Path) -> std::io::Result<(Vec<u8>, Snapshot)> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    let snap = Snapshot::of(&bytes, &meta);
    Ok((bytes, snap))
}

/// Whether the file on disk still matches the snapshot (size, time and content).
pub fn unchanged(path: &Path, snap: &Snapshot) -> std::io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    if meta.len() != snap.len || meta.modified().ok() != snap.modified {
        return Ok(false);
    }
    Ok(content_hash(&std::fs::read(path)?) == snap.hash)
}

/// The file a path stands for: a symlink's target (resolved fully), or the path itself when it
/// does not exist yet (its folder resolved).
pub fn real_path(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or(e)?;
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Ok(std::fs::canonicalize(dir)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// How to replace a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replace<'a> {
    /// The snapshot taken when the file was read; if the file no longer matches it, nothing is
    /// written.
    pub expected: Option<&'a Snapshot>,
    /// Keep the previous file as a backup.
    pub backup: bool,
    /// Write a read-only file too.
    pub force: bool,
}

/// What a replacement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The file written (a symlink's target).
    pub path: PathBuf,
    pub backup: Option<PathBuf>,
}

/// Replaces `path` with `bytes` atomically (see the module documentation).
pub fn replace(path: &Path, bytes: &[u8], how: Replace<'_>) -> Result<Replaced, WriteError> {
    replace_with(path, how, &mut |file| file.write_all(bytes))
}

/// [`replace`] with the new content written by `write` into the temporary file (which it
/// may read back to check, before the file takes the old one's place; an error from `write`
/// leaves everything as it was).
pub fn replace_with(
    path: &Path,
    how: Replace<'_>,
    write: &mut dyn FnMut(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<Replaced, WriteError> {
    let target = real_path(path).map_err(io(Op::Write, path))?;
    let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
    let old = match std::fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(Op::Read, &target)(e)),
    };
    if let Some(m) = &old
        && m.permissions().readonly()
        && !how.force
    {
        return Err(WriteError::ReadOnly(target));
    }
    if let Some(m) = &old
        && !how.force
        && foreign_links(&target, m) > 0
    {
        return Err(WriteError::HardLinked(target));
    }
    remove_stale_temporaries(&dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(".svsync-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io(Op::Write, &target))?;
    // Through the file itself: `tempfile`'s own writer adds the temporary name to errors,
    // a name that is gone by the time the player reads the message.
    write(tmp.as_file_mut()).map_err(io(Op::Write, &target))?;
    if let Some(m) = &old {
        keep_owner_and_mode(tmp.as_file(), m, &target)?;
    }
    tmp.as_file().sync_all().map_err(io(Op::Write, &target))?;

    if let Some(snap) = how.expected
        && !unchanged(&target, snap).map_err(io(Op::Read, &target))?
    {
        return Err(WriteError::Changed(target));
    }
    let backup = match (&old, how.backup) {
        (Some(_), true) => Some(make_backup(&target)?),
        _ => None,
    };
    if let Err(e) = persist(tmp, &target) {
        // No write, no backup: the backup would only evict a real one.
        if let Some(b) = &backup {
            let _ = std::fs::remove_file(b);
        }
        return Err(e);
    }
    sync_dir(&dir);
    if backup.is_some() {
        prune_backups(&target, SystemTime::now());
    }
    Ok(Replaced {
        path: target,
        backup,
    })
}

/// How many other names the file has besides itself and svsync's own backups of it (which are
/// hard links to it by design).
fn foreign_links(target: &Path, meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() <= 1 {
            return 0;
        }
        let ours = backups(target)
            .iter()
            .filter_map(|b| std::fs::symlink_metadata(b).ok())
            .filter(|b| (b.dev(), b.ino()) == (meta.dev(), meta.ino()))
            .count() as u64;
        meta.nlink().saturating_sub(1 + ours)
    }
    #[cfg(not(unix))]
    {
        let _ = (target, meta);
        0
    }
}

/// Gives the new file the old one's permissions and owner. A read-only file written with
/// `--force` stays read-only.
fn keep_owner_and_mode(
    tmp: &std::fs::File,
    old: &std::fs::Metadata,
    target: &Path,
) -> Result<(), WriteError> {
    tmp.set_permissions(old.permissions())
        .map_err(io(Op::Write, target))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mine = tmp.metadata().map_err(io(Op::Write, target))?;
        if (mine.uid(), mine.gid()) != (old.uid(), old.gid())
            && std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid())).is_err()
        {
            // Keep the user: a file the game cannot read is worse than no merge.
            if mine.uid() != old.uid() {
                return Err(WriteError::Owner(target.to_path_buf()));
            }
            // Same user, another group the user is not in: keep what can be kept.
        }
    }
    Ok(())
}

/// Where a backup of `path` taken now goes: `<name>.svsync-<time>-<nanos>.bak`, beside it.
/// The game loads only `<Addon>.lua`, and svsync skips `.bak` files.
fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let now = SystemTime::now();
    let stamp = crate::time::file_stamp(crate::time::ms_of(now));
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!("{name}.svsync-{stamp}-{nanos:09}.bak"))
}

/// Keeps the current file under a backup name: a hard link, or a copy where the file system
/// has no links. A copy that fails is removed.
fn make_backup(target: &Path) -> Result<PathBuf, WriteError> {
    let b = backup_path(target);
    if std::fs::hard_link(target, &b).is_ok() {
        return Ok(b);
    }
    match std::fs::copy(target, &b) {
        Ok(_) => Ok(b),
        Err(e) => {
            let _ = std::fs::remove_file(&b);
            Err(io(Op::Backup, target)(e))
        }
    }
}

/// Backups of `path`, oldest first.
pub fn backups(path: &Path) -> Vec<PathBuf> {
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
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
    // Names hold the time, so name order is time order.
    found.sort();
    found
}

/// When a backup was made: the time in its name. Its modification time is not that: a backup
/// is a hard link to the file as it was, so it keeps the time that content was saved.
pub fn backup_made(backup: &Path) -> Option<SystemTime> {
    let name = backup.file_name()?.to_str()?;
    let (_, rest) = name.rsplit_once(".svsync-")?;
    let stamp = rest.get(..16)?;
    let ms = crate::time::parse_file_stamp(stamp)?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// The backups to delete: all but the oldest, the [`KEEP_RECENT`] newest and those younger
/// than [`KEEP_DAY`], and never more than [`MAX_BACKUPS`] kept.
pub fn backups_to_prune(all: &[(PathBuf, SystemTime)], now: SystemTime) -> Vec<PathBuf> {
    let n = all.len();
    let mut keep = vec![false; n];
    if n > 0 {
        keep[0] = true;
    }
    for k in keep.iter_mut().skip(n.saturating_sub(KEEP_RECENT)) {
        *k = true;
    }
    // Young ones, newest first, while there is room.
    let mut kept = keep.iter().filter(|&&k| k).count();
    for i in (0..n).rev() {
        if kept >= MAX_BACKUPS {
            break;
        }
        let young = now
            .duration_since(all[i].1)
            .map_or(true, |age| age < KEEP_DAY);
        if young && !keep[i] {
            keep[i] = true;
            kept += 1;
        }
    }
    all.iter()
        .zip(keep)
        .filter(|(_, k)| !k)
        .map(|((p, _), _)| p.clone())
        .collect()
}

fn prune_backups(path: &Path, now: SystemTime) {
    let all: Vec<(PathBuf, SystemTime)> = backups(path)
        .into_iter()
        .map(|p| {
            let t = backup_made(&p)
                .or_else(|| {
                    std::fs::symlink_metadata(&p)
                        .and_then(|m| m.modified())
                        .ok()
                })
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (p, t)
        })
        .collect();
    for old in backups_to_prune(&all, now) {
        let _ = std::fs::remove_file(old);
    }
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
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => return Err(io(Op::Replace, path)(e.error)),
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

    fn no_temporaries(dir: &Path) {
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn replaces_keeps_backups_and_refuses_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GuildHelper.lua");
        std::fs::write(&path, b"X = 1\n").unwrap();
        for i in 0..3 {
            let (_, snap) = read_with_snapshot(&path).unwrap();
            let r = replace(
                &path,
                format!("X = {}\n", i + 2).as_bytes(),
                Replace {
                    expected: Some(&snap),
                    backup: true,
                    force: false,
                },
            )
            .unwrap();
            assert!(r.backup.unwrap().exists());
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"X = 4\n");
        let all = backups(&path);
        assert_eq!(all.len(), 3);
        assert_eq!(std::fs::read(&all[0]).unwrap(), b"X = 1\n");

        let (_, snap) = read_with_snapshot(&path).unwrap();
        std::fs::write(&path, b"X = 99\n").unwrap();
        let err = replace(
            &path,
            b"X = 100\n",
            Replace {
                expected: Some(&snap),
                backup: true,
                force: false,
            },
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::Changed(_)));
        assert_eq!(std::fs::read(&path).unwrap(), b"X = 99\n");
        // The refused write took no backup.
        assert_eq!(backups(&path).len(), 3);
        no_temporaries(dir.path());
    }

    #[test]
    fn pruning_keeps_the_original_the_recent_and_the_young() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = KEEP_DAY.as_secs();
        let mk = |n: usize, age_secs: u64| {
            (
                PathBuf::from(format!("b{n:03}")),
                now - Duration::from_secs(age_secs),
            )
        };
        // 30 old backups: the original and the 5 newest stay.
        let old: Vec<_> = (0..30).map(|i| mk(i, 10 * day - i as u64)).collect();
        let gone = backups_to_prune(&old, now);
        assert_eq!(gone.len(), 24);
        assert!(!gone.contains(&old[0].0));
        assert!(!gone.contains(&old[29].0));
        // 30 young ones: at most MAX_BACKUPS stay, the original among them.
        let young: Vec<_> = (0..30).map(|i| mk(i, 100 - i as u64)).collect();
        let gone = backups_to_prune(&young, now);
        assert_eq!(gone.len(), 30 - MAX_BACKUPS);
        assert!(!gone.contains(&young[0].0));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_modes_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("shared/GuildHelper.lua");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, b"X = 1\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("GuildHelper.lua");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let r = replace(
            &link,
            b"X = 2\n",
            Replace {
                backup: true,
                ..Replace::default()
            },
        )
        .unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"X = 2\n");
        assert_eq!(r.path, real.canonicalize().unwrap());
        assert!(
            r.backup
                .unwrap()
                .starts_with(real.parent().unwrap().canonicalize().unwrap())
        );
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_read_only_file_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GuildHelper.lua");
        std::fs::write(&path, b"X = 1\n").unwrap();
        let mut p = std::fs::metadata(&path).unwrap().permissions();
        p.set_readonly(true);
        std::fs::set_permissions(&path, p).unwrap();
        let err = replace(&path, b"X = 2\n", Replace::default()).unwrap_err();
        assert!(matches!(err, WriteError::ReadOnly(_)));
        replace(
            &path,
            b"X = 2\n",
            Replace {
                force: true,
                ..Replace::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"X = 2\n");
        assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
        no_temporaries(dir.path());
    }
}

#[cfg(test)]
mod backup_time_tests {
    use super::*;

    /// A file hard-linked with another account's is refused (the rename would cut the link);
    /// svsync's own backups, which are hard links too, do not count.
    #[cfg(unix)]
    #[test]
    fn a_hard_linked_file_is_refused_unless_forced_and_backups_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("GuildHelper.lua");
        std::fs::write(&file, b"x = 1\n").unwrap();
        let write = |force| {
            replace(
                &file,
                b"x = 2\n",
                Replace {
                    expected: None,
                    backup: true,
                    force,
                },
            )
        };
        // Backups are links to the file as it was: writing again and again is fine.
        write(false).unwrap();
        write(false).unwrap();
        let other = dir.path().join("other.lua");
        std::fs::hard_link(&file, &other).unwrap();
        assert!(matches!(write(false), Err(WriteError::HardLinked(_))));
        assert_eq!(std::fs::read(&other).unwrap(), b"x = 2\n");
        write(true).unwrap();
    }

    /// A backup is a hard link, so its modification time is when its content was saved, maybe
    /// days ago; the time in its name is when it was made, and that is what pruning goes by.
    #[test]
    fn backups_of_old_content_made_today_are_young() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("GuildHelper.lua");
        std::fs::write(&file, b"x = 1\n").unwrap();
        let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
        let now = SystemTime::now();
        let mut made = Vec::new();
        for i in 0..(KEEP_RECENT + 4) {
            let when = now - Duration::from_secs(60 * (20 - i as u64));
            let stamp = crate::time::file_stamp(crate::time::ms_of(when));
            let b = dir
                .path()
                .join(format!("GuildHelper.lua.svsync-{stamp}-{i:09}.bak"));
            std::fs::write(&b, b"x = 1\n").unwrap();
            let f = std::fs::File::options().write(true).open(&b).unwrap();
            f.set_modified(ten_days_ago).unwrap();
            made.push(b);
        }
        let got = backup_made(&made[0]).unwrap();
        assert!(now.duration_since(got).unwrap() < Duration::from_secs(21 * 60));
        prune_backups(&file, now);
        assert_eq!(
            backups(&file),
            made,
            "every backup made within the day is kept"
        );
    }
}
