//! The tracking table of sessions, persisted as JSON in the state folder, and the receiver's
//! journal of chunks and staged tables.
//!
//! Layout of the state folder:
//!
//! ```text
//! sessions.json                      the tracking table
//! sessions/<id>/<table>.chunks       chunks received for the table in progress (append-only)
//! sessions/<id>/<table>.json         a verified table, staged until the session commits
//! logs/sender.log, logs/receiver.log (unless --log-dir)
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::merge::Counts;
use crate::model::Target;
use crate::model::json::{hex, unhex};
use crate::model::tables::TableName;

use super::wire::SessionId;

/// A session with no activity for this long has timed out.
pub const TIMEOUT_SECS: u64 = 60 * 60;
/// Finished sessions kept in the tracking table for `sessions list`.
const KEEP_FINISHED: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the session file {path} is damaged ({reason}); run `svsync sessions reset`")]
    Damaged { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    Complete,
    Failed,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Pending,
    InProgress,
    Complete,
    Failed,
}

/// One side of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The account folder's name, for people.
    pub account: String,
    /// The character the data is announced as.
    pub toon: String,
    /// The `GuildHelper.lua` this side reads or writes: identifies the peer.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub status: TableStatus,
    /// Chunks of the payload, and how many the receiver holds.
    pub chunks: u32,
    pub received: u32,
    pub bytes: u64,
    /// CRC-32 of the whole payload (hex), so a resumed transfer can tell it is the same data.
    pub payload_crc: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub counts: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl Default for TableProgress {
    fn default() -> Self {
        TableProgress {
            status: TableStatus::Pending,
            chunks: 0,
            received: 0,
            bytes: 0,
            payload_crc: String::new(),
            counts: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub sender: Peer,
    pub receiver: Peer,
    pub target: Target,
    /// Whether the source has a `metadata` table (the receiver rebuilds its own).
    #[serde(default)]
    pub metadata: bool,
    /// Unix seconds.
    pub started: u64,
    pub last_activity: u64,
    pub state: SessionState,
    pub tables: BTreeMap<TableName, TableProgress>,
}

impl SessionRecord {
    pub fn sid(&self) -> Option<SessionId> {
        SessionId::parse(&self.id)
    }

    pub fn is_live(&self, now: u64) -> bool {
        self.state == SessionState::Active && now.saturating_sub(self.last_activity) <= TIMEOUT_SECS
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    sessions: Vec<SessionRecord>,
}

/// The tracking table. With no folder (a dry run) it lives in memory only.
#[derive(Debug, Default)]
pub struct SessionStore {
    dir: Option<PathBuf>,
    pub sessions: Vec<SessionRecord>,
}

impl SessionStore {
    pub fn in_memory() -> Self {
        SessionStore::default()
    }

    /// Opens (or starts) the tracking table in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("sessions.json");
        let sessions = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<StoreFile>(&bytes)
                    .map_err(|e| StoreError::Damaged {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?
                    .sessions
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(SessionStore {
            dir: Some(dir.to_path_buf()),
            sessions,
        })
    }

    /// Writes the tracking table (atomically: a temporary file renamed over the old one).
    pub fn save(&self) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let path = dir.join("sessions.json");
        // Keep every live session and the most recent finished ones.
        let finished = self
            .sessions
            .iter()
            .filter(|s| s.state != SessionState::Active)
            .count();
        let mut skip = finished.saturating_sub(KEEP_FINISHED);
        let sessions: Vec<SessionRecord> = self
            .sessions
            .iter()
            .filter(|s| {
                if s.state != SessionState::Active && skip > 0 {
                    skip -= 1;
                    false
                } else {
                    true
                }
            })
            .cloned()
            .collect();
        let bytes = serde_json::to_vec_pretty(&StoreFile { sessions }).map_err(|e| {
            StoreError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        tmp.write_all(&bytes).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        Ok(())
    }

    /// Takes the receiver's lock: one sync into a file at a time, across processes. `Ok(Err(name))`
    /// when another sender holds it (its account name); the lock lasts as long as the file.
    pub fn lock_receiver(
        &self,
        receiver_file: &Path,
        sender: &str,
    ) -> Result<Result<Option<std::fs::File>, String>, StoreError> {
        let Some(dir) = &self.dir else {
            return Ok(Ok(None));
        };
        let locks = dir.join("locks");
        std::fs::create_dir_all(&locks).map_err(io(&locks))?;
        let key = crc32fast::hash(receiver_file.to_string_lossy().as_bytes());
        let path = locks.join(format!("{key:08x}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = file.write_all(sender.as_bytes());
                Ok(Ok(Some(file)))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Ok(Err(if holder.is_empty() {
                    "another sender".into()
                } else {
                    holder
                }))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    /// Marks sessions idle for more than an hour as expired.
    pub fn expire(&mut self, now: u64) -> bool {
        let mut changed = false;
        for s in &mut self.sessions {
            if s.state == SessionState::Active && !s.is_live(now) {
                s.state = SessionState::Expired;
                changed = true;
            }
        }
        changed
    }

    pub fn get(&self, sid: SessionId) -> Option<&SessionRecord> {
        self.sessions.iter().find(|s| s.sid() == Some(sid))
    }

    pub fn get_mut(&mut self, sid: SessionId) -> Option<&mut SessionRecord> {
        self.sessions.iter_mut().find(|s| s.sid() == Some(sid))
    }

    /// A live session from this sender (account and toon) into this receiver file and target,
    /// to resume.
    pub fn resumable_from(
        &self,
        account: &str,
        toon: &str,
        receiver_file: &str,
        target: Target,
        now: u64,
    ) -> Option<SessionId> {
        self.sessions
            .iter()
            .rev()
            .find(|s| {
                s.is_live(now)
                    && s.sender.account == account
                    && s.sender.toon == toon
                    && s.receiver.file == receiver_file
                    && s.target == target
            })
            .and_then(SessionRecord::sid)
    }

    /// The session that keeps a receiver busy: a live session into this receiver file from
    /// another sender.
    pub fn busy_with_sender(
        &self,
        account: &str,
        toon: &str,
        receiver_file: &str,
        now: u64,
    ) -> Option<&SessionRecord> {
        self.sessions.iter().find(|s| {
            s.is_live(now)
                && s.receiver.file == receiver_file
                && (s.sender.account != account || s.sender.toon != toon)
        })
    }

    /// Clears every session and the journal.
    pub fn reset(&mut self) -> Result<usize, StoreError> {
        let n = self.sessions.len();
        self.sessions.clear();
        if let Some(dir) = &self.dir {
            let journal = dir.join("sessions");
            match std::fs::remove_dir_all(&journal) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&journal)(e)),
            }
        }
        self.save()?;
        Ok(n)
    }

    /// Removes the journal of finished sessions.
    pub fn forget_journal(&self, sid: SessionId) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir.join("sessions").join(sid.to_string()));
        }
    }

    fn journal_dir(&self, sid: SessionId) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join("sessions").join(sid.to_string()))
    }

    /// Appends a verified chunk to the table's journal.
    pub fn journal_chunk(
        &self,
        sid: SessionId,
        table: TableName,
        crc: u32,
        index: u32,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let Some(dir) = self.journal_dir(sid) else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{table}.chunks"));
        let line = format!("{crc:08x} {index} {}\n", hex(payload));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(line.as_bytes()).map_err(io(&path))?;
        Ok(())
    }

    /// Chunks journaled for a table whose payload has this checksum (a torn last line, from a
    /// crash in the middle of a write, is ignored).
    pub fn journaled_chunks(
        &self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Vec<(u32, Vec<u8>)> {
        let Some(dir) = self.journal_dir(sid) else {
            return Vec::new();
        };
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{table}.chunks"))) else {
            return Vec::new();
        };
        let want = format!("{crc:08x}");
        text.lines()
            .filter(|l| text.ends_with('\n') || !text.ends_with(l))
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let (c, i, h) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
                if c != want {
                    return None;
                }
                Some((i.parse().ok()?, unhex(h).ok()?))
            })
            .collect()
    }

    /// How many chunks are journaled for a table (the progress of a transfer in progress).
    pub fn journaled_count(&self, sid: SessionId, table: TableName) -> u32 {
        self.journal_dir(sid)
            .and_then(|d| std::fs::read(d.join(format!("{table}.chunks"))).ok())
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u32)
    }

    pub fn forget_chunks(&self, sid: SessionId, table: TableName) {
        if let Some(dir) = self.journal_dir(sid) {
            let _ = std::fs::remove_file(dir.join(format!("{table}.chunks")));
        }
    }

    /// Makes a verified table durable until the session commits.
    pub fn stage(
        &self,
        sid: SessionId,
        table: TableName,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let Some(dir) = self.journal_dir(sid) else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{table}.json"));
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
        tmp.write_all(payload).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        Ok(())
    }

    /// Whether a table is staged (without reading it).
    pub fn has_staged(&self, sid: SessionId, table: TableName) -> bool {
        self.journal_dir(sid)
            .is_some_and(|d| d.join(format!("{table}.json")).is_file())
    }

    /// A staged table's payload.
    pub fn staged(&self, sid: SessionId, table: TableName) -> Option<Vec<u8>> {
        let dir = self.journal_dir(sid)?;
        std::fs::read(dir.join(format!("{table}.json"))).ok()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub fn utc_text(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u32, sender: &str, receiver: &str, last: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId(id).to_string(),
            sender: Peer {
                account: sender.into(),
                toon: "T".into(),
                file: sender.into(),
            },
            receiver: Peer {
                account: receiver.into(),
                toon: "R".into(),
                file: receiver.into(),
            },
            target: Target::SharedDataRemote,
            metadata: false,
            started: last,
            last_activity: last,
            state: SessionState::Active,
            tables: BTreeMap::new(),
        }
    }

    #[test]
    fn sessions_time_out_after_an_hour() {
        let mut store = SessionStore::in_memory();
        store.sessions.push(record(1, "A", "B", 1000));
        let later = 1000 + TIMEOUT_SECS;
        assert_eq!(
            store.resumable_from("A", "T", "B", Target::SharedDataRemote, later),
            Some(SessionId(1))
        );
        assert!(store.busy_with_sender("C", "T", "B", later).is_some());
        assert!(store.busy_with_sender("A", "T", "B", later).is_none());
        assert_eq!(
            store.resumable_from("A", "T", "B", Target::SharedDataRemote, later + 1),
            None
        );
        assert!(store.expire(later + 1));
        assert_eq!(store.sessions[0].state, SessionState::Expired);
        assert!(store.busy_with_sender("C", "T", "B", later + 1).is_none());
    }

    #[test]
    fn peers_are_independent() {
        let mut store = SessionStore::in_memory();
        store.sessions.push(record(1, "A", "B", 1000));
        store.sessions.push(record(2, "A", "C", 1000));
        assert_eq!(
            store.resumable_from("A", "T", "C", Target::SharedDataRemote, 1000),
            Some(SessionId(2))
        );
        assert_eq!(
            store.resumable_from("A", "T", "B", Target::SharedData, 1000),
            None
        );
    }

    #[test]
    fn journal_survives_a_torn_line_and_a_reset_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SessionStore::open(dir.path()).unwrap();
        let sid = SessionId(7);
        store
            .journal_chunk(sid, TableName::News, 0xabc, 1, b"{\"a\"")
            .unwrap();
        store
            .journal_chunk(sid, TableName::News, 0xabc, 2, b":1}")
            .unwrap();
        store
            .journal_chunk(sid, TableName::News, 0xdef, 1, b"old")
            .unwrap();
        let path = dir.path().join("sessions/00000007/news.chunks");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"00000abc 3 7b").unwrap();
        let got = store.journaled_chunks(sid, TableName::News, 0xabc);
        assert_eq!(got, vec![(1, b"{\"a\"".to_vec()), (2, b":1}".to_vec())]);
        store.sessions.push(record(7, "A", "B", 0));
        store.save().unwrap();
        assert_eq!(SessionStore::open(dir.path()).unwrap().sessions.len(), 1);
        assert_eq!(store.reset().unwrap(), 1);
        assert!(!path.exists());
        assert!(SessionStore::open(dir.path()).unwrap().sessions.is_empty());
    }

    #[test]
    fn utc_text_is_iso() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_764_059_696), "2025-11-25T08:34:56Z");
    }
}
