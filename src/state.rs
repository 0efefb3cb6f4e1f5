//! The peers' durable state: session records, the receiver's chunk journal and its staged
//! tables, behind one trait ([`Store`]) with a folder ([`FileStore`]) and an in-memory
//! ([`MemStore`], for the simulation harness) implementation.
//!
//! Layout of the state folder:
//!
//! ```text
//! sessions/recv-<id>.json      a receiver's record of one session (written only by it)
//! sessions/send-<id>.json      a sender's record of one session (written only by it)
//! journal/<id>/<table>.chunks  chunks received for a table in progress (append-only records:
//!                              `<crc> <index> <length>` line, the bytes, a line break)
//! journal/<id>/<table>.json    a verified table, staged until the session commits
//! logs/                        sender.log, receiver.log (unless --log-dir)
//! ```
//!
//! One file per record means processes never rewrite each other's state: a receiver's records
//! are written only while it holds its account's lock, a sender's only by that sender.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::model::tables::TableName;
use crate::protocol::chunk::Chunks;
use crate::protocol::session::{Role, SessionRecord, SessionState};
use crate::protocol::wire::SessionId;

/// Finished sessions kept, per role, for `sessions list`.
pub const KEEP_FINISHED: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the state folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The simulation harness stopped the process here.
    #[error("simulated crash")]
    Crashed,
}

/// A session's journal folder in the state folder `dir`.
fn journal_dir(dir: &Path, sid: SessionId) -> PathBuf {
    dir.join("journal").join(sid.to_string())
}

/// The journal of one table's chunks.
fn journal_file(dir: &Path, sid: SessionId, table: TableName) -> PathBuf {
    journal_dir(dir, sid).join(format!("{table}.chunks"))
}

/// The whole records of a journal (`<crc> <index> <length>` line, the chunk's bytes, a line
/// break), in order: `(crc as written, index, bytes)`. Reading stops at the first record that
/// is not whole: a crash in the middle of a write leaves a torn last record (cut away before
/// the journal is appended to again), and the chunks after a damaged header cannot be found
/// (they are asked for again). `whole` is then the length of the records read.
struct JournalRecords<'a> {
    rest: &'a [u8],
    whole: usize,
}

impl<'a> JournalRecords<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        JournalRecords {
            rest: bytes,
            whole: 0,
        }
    }
}

impl<'a> Iterator for JournalRecords<'a> {
    type Item = (&'a str, u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let eol = memchr::memchr(b'\n', rest)?;
        let header = std::str::from_utf8(&rest[..eol]).ok()?;
        let mut parts = header.split(' ');
        let (Some(crc), Some(i), Some(len), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let (Ok(index), Ok(len)) = (i.parse::<u32>(), len.parse::<usize>()) else {
            return None;
        };
        let body = &rest[eol + 1..];
        if body.len() <= len || body[len] != b'\n' {
            return None;
        }
        self.rest = &body[len + 1..];
        self.whole += eol + len + 2;
        Some((crc, index, &body[..len]))
    }
}

/// Cuts a journal left by an interrupted run back to its whole records, so that what is
/// appended now can be read back.
fn cut_torn_tail(f: &std::fs::File, path: &Path) -> Result<(), StoreError> {
    let len = f.metadata().map_err(io(path))?.len();
    if len == 0 {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut records = JournalRecords::new(&bytes);
    records.by_ref().for_each(drop);
    if (records.whole as u64) < len {
        f.set_len(records.whole as u64).map_err(io(path))?;
    }
    Ok(())
}

/// The journaled chunks whose payload checksum is `crc`.
fn journal_records(bytes: &[u8], crc: u32) -> Chunks {
    let want = format!("{crc:08x}");
    JournalRecords::new(bytes)
        .filter(|(c, _, _)| *c == want)
        .map(|(_, index, body)| (index, body.to_vec()))
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`Store::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<SessionRecord>,
    /// Record files that could not be read: moved aside (kept for inspection).
    pub damaged: Vec<PathBuf>,
}

/// Durable state of a peer.
pub trait Store {
    /// Every session record (damaged files are moved aside and named).
    fn load(&mut self) -> Result<Loaded, StoreError>;
    /// Writes a record, replacing the earlier one of the same session and role.
    fn save(&mut self, record: &SessionRecord) -> Result<(), StoreError>;
    /// Appends a chunk to a table's journal (made durable by [`Store::flush`]).
    fn journal(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
        index: u32,
        payload: &[u8],
    ) -> Result<(), StoreError>;
    /// The journaled chunks of a table whose payload has checksum `crc`.
    fn journaled(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Chunks, StoreError>;
    /// Makes a verified payload durable until the session commits.
    fn stage(&mut self, sid: SessionId, table: TableName, payload: &[u8])
    -> Result<(), StoreError>;
    /// A staged payload, if it is there and still has checksum `crc` (a damaged one is
    /// removed).
    fn staged(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Forgets a table's journal and staged copy.
    fn forget(&mut self, sid: SessionId, table: TableName) -> Result<(), StoreError>;
    /// Forgets everything kept for a session's tables (not its record).
    fn forget_session(&mut self, sid: SessionId) -> Result<(), StoreError>;
    /// Makes journal appends durable.
    fn flush(&mut self) -> Result<(), StoreError>;
}

fn record_name(role: Role, sid: SessionId) -> String {
    match role {
        Role::Send => format!("send-{sid}.json"),
        Role::Receive => format!("recv-{sid}.json"),
    }
}

/// How much of a table's journal is kept in memory before it is written (journal appends reach
/// the OS when the receiver replies, or when this fills).
const JOURNAL_BUFFER: usize = 256 * 1024;

/// The state folder.
pub struct FileStore {
    dir: PathBuf,
    appenders: HashMap<(SessionId, TableName), BufWriter<std::fs::File>>,
    /// A journal line being made.
    line: Vec<u8>,
}

impl FileStore {
    /// The store in `dir` (created when first written).
    pub fn new(dir: &Path) -> FileStore {
        FileStore {
            dir: dir.to_path_buf(),
            appenders: HashMap::new(),
            line: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sessions_dir(&self) -> PathBuf {
        self.dir.join("sessions")
    }

    fn journal_dir(&self, sid: SessionId) -> PathBuf {
        journal_dir(&self.dir, sid)
    }

    /// Clears every session and the journal. Works whatever state the files are in.
    pub fn reset(&mut self) -> Result<usize, StoreError> {
        self.appenders.clear();
        let sessions = self.sessions_dir();
        let n = std::fs::read_dir(&sessions)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0);
        for d in [sessions, self.dir.join("journal")] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&d)(e)),
            }
        }
        Ok(n)
    }

    /// Clears the sessions `which` picks, with their journals; returns how many.
    pub fn reset_where(
        &mut self,
        which: impl Fn(&SessionRecord) -> bool,
    ) -> Result<usize, StoreError> {
        self.appenders.clear();
        let mut n = 0;
        for r in self.load()?.records.into_iter().filter(|r| which(r)) {
            let path = self.sessions_dir().join(record_name(r.role, r.id));
            match std::fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            if r.role == Role::Receive {
                let _ = std::fs::remove_dir_all(self.journal_dir(r.id));
            }
        }
        Ok(n)
    }

    /// How many chunks are journaled for a table (progress of a transfer, for `sessions list`).
    pub fn journaled_count(&self, sid: SessionId, table: TableName) -> u32 {
        std::fs::read(journal_file(&self.dir, sid, table))
            .map_or(0, |b| JournalRecords::new(&b).count() as u32)
    }

    /// Writes a file whole (temporary name, then rename). `durable`: flushed to the disk before
    /// the rename, for what a confirmation promises (staged tables). Session records are not:
    /// a record lost or torn by a power cut is moved aside at load, and the session then resends
    /// or recommits what it cannot prove, which is safe, so paying a disk flush per state change
    /// (four per table) buys nothing.
    fn write_atomic(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(name);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        tmp.write_all(bytes).map_err(io(&path))?;
        if durable {
            tmp.as_file().sync_all().map_err(io(&path))?;
        }
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
        Ok(())
    }

    fn prune(&self, records: &mut Vec<SessionRecord>) {
        for role in [Role::Send, Role::Receive] {
            let mut finished: Vec<(u64, SessionId)> = records
                .iter()
                .filter(|r| r.role == role && r.state != SessionState::Active)
                .map(|r| (r.last_activity, r.id))
                .collect();
            if finished.len() <= KEEP_FINISHED {
                continue;
            }
            finished.sort();
            let old: Vec<SessionId> = finished[..finished.len() - KEEP_FINISHED]
                .iter()
                .map(|(_, sid)| *sid)
                .collect();
            for sid in &old {
                let _ = std::fs::remove_file(self.sessions_dir().join(record_name(role, *sid)));
                if role == Role::Receive {
                    let _ = std::fs::remove_dir_all(self.journal_dir(*sid));
                }
            }
            records.retain(|r| r.role != role || !old.contains(&r.id));
        }
    }
}

impl Store for FileStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let dir = self.sessions_dir();
        let mut loaded = Loaded::default();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(loaded),
            Err(e) => return Err(io(&dir)(e)),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || !(name.starts_with("send-") || name.starts_with("recv-"))
            {
                continue;
            }
            let path = e.path();
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SessionRecord>(&b).ok())
                .filter(|r| record_name(r.role, r.id) == name);
            match parsed {
                Some(r) => loaded.records.push(r),
                None => {
                    let aside = path.with_file_name(format!(
                        "{name}.damaged-{}",
                        crate::time::file_stamp(crate::time::now_ms())
                    ));
                    if std::fs::rename(&path, &aside).is_ok() {
                        loaded.damaged.push(aside);
                    }
                }
            }
        }
        // By start; the two records of one session in this process may start in the same
        // millisecond, and the receiver's is listed first then.
        loaded
            .records
            .sort_by_key(|r| (r.started, r.id, std::cmp::Reverse(r.role)));
        self.prune(&mut loaded.records);
        Ok(loaded)
    }

    fn save(&mut self, record: &SessionRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Io {
            path: self.sessions_dir(),
            source: std::io::Error::other(e),
        })?;
        self.write_atomic(
            &self.sessions_dir(),
            &record_name(record.role, record.id),
            &bytes,
            false,
        )
    }

    fn journal(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
        index: u32,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let out = match self.appenders.entry((sid, table)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let path = journal_file(&self.dir, sid, table);
                let dir = path.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(io(dir))?;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io(&path))?;
                cut_torn_tail(&f, &path)?;
                v.insert(BufWriter::with_capacity(JOURNAL_BUFFER, f))
            }
        };
        // One record per chunk: a header line, then the chunk's bytes as they came.
        let line = &mut self.line;
        line.clear();
        let _ = writeln!(line, "{crc:08x} {index} {}", payload.len());
        line.extend_from_slice(payload);
        line.push(b'\n');
        // The path is made only for an error: this runs once per chunk.
        out.write_all(line)
            .map_err(|e| io(&journal_file(&self.dir, sid, table))(e))
    }

    fn journaled(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Chunks, StoreError> {
        if let Some(w) = self.appenders.get_mut(&(sid, table)) {
            let _ = w.flush();
        }
        let path = journal_file(&self.dir, sid, table);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(journal_records(&bytes, crc))
    }

    fn stage(
        &mut self,
        sid: SessionId,
        table: TableName,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.write_atomic(
            &self.journal_dir(sid),
            &format!("{table}.json"),
            payload,
            true,
        )
    }

    fn staged(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.journal_dir(sid).join(format!("{table}.json"));
        match std::fs::read(&path) {
            Ok(b) if crc32fast::hash(&b) == crc => Ok(Some(b)),
            Ok(_) => {
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn forget(&mut self, sid: SessionId, table: TableName) -> Result<(), StoreError> {
        self.appenders.remove(&(sid, table));
        let dir = self.journal_dir(sid);
        for name in [format!("{table}.chunks"), format!("{table}.json")] {
            match std::fs::remove_file(dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir.join(name))(e)),
            }
        }
        Ok(())
    }

    fn forget_session(&mut self, sid: SessionId) -> Result<(), StoreError> {
        self.appenders.retain(|(s, _), _| *s != sid);
        let dir = self.journal_dir(sid);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&dir)(e)),
        }
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        for ((sid, table), w) in &mut self.appenders {
            w.flush()
                .map_err(|e| io(&journal_file(&self.dir, *sid, *table))(e))?;
        }
        Ok(())
    }
}

/// A journaled chunk in memory: payload checksum, index, bytes.
type MemChunk = (u32, u32, Vec<u8>);

#[derive(Debug, Default)]
struct MemData {
    records: BTreeMap<(Role, SessionId), SessionRecord>,
    journal: BTreeMap<(SessionId, TableName), Vec<MemChunk>>,
    staged: BTreeMap<(SessionId, TableName), Vec<u8>>,
    writes: u64,
    crash_at: Option<u64>,
}

/// State in memory, shared by clones (a peer that "restarts" gets a clone of the same state).
/// Counts durable writes; [`MemStore::crash_at`] makes the n-th write fail as if the process
/// had died just before it.
#[derive(Debug, Clone, Default)]
pub struct MemStore(Rc<RefCell<MemData>>);

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Makes write number `n` (counting from 1, over the store's life) fail with
    /// [`StoreError::Crashed`], and every write after it until [`MemStore::recover`].
    pub fn crash_at(&self, n: Option<u64>) {
        self.0.borrow_mut().crash_at = n;
    }

    /// Writes done so far.
    pub fn writes(&self) -> u64 {
        self.0.borrow().writes
    }

    /// Lets writes succeed again (the process was restarted).
    pub fn recover(&self) {
        self.0.borrow_mut().crash_at = None;
    }

    pub fn records(&self) -> Vec<SessionRecord> {
        self.0.borrow().records.values().cloned().collect()
    }

    fn write(&self) -> Result<std::cell::RefMut<'_, MemData>, StoreError> {
        let mut d = self.0.borrow_mut();
        d.writes += 1;
        if d.crash_at.is_some_and(|n| d.writes >= n) {
            return Err(StoreError::Crashed);
        }
        Ok(d)
    }
}

impl Store for MemStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            records: self.records(),
            damaged: Vec::new(),
        })
    }

    fn save(&mut self, record: &SessionRecord) -> Result<(), StoreError> {
        self.write()?
            .records
            .insert((record.role, record.id), record.clone());
        Ok(())
    }

    fn journal(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
        index: u32,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.write()?
            .journal
            .entry((sid, table))
            .or_default()
            .push((crc, index, payload.to_vec()));
        Ok(())
    }

    fn journaled(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Chunks, StoreError> {
        Ok(self
            .0
            .borrow()
            .journal
            .get(&(sid, table))
            .map(|v| {
                v.iter()
                    .filter(|(c, _, _)| *c == crc)
                    .map(|(_, i, p)| (*i, p.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn stage(
        &mut self,
        sid: SessionId,
        table: TableName,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.write()?.staged.insert((sid, table), payload.to_vec());
        Ok(())
    }

    fn staged(
        &mut self,
        sid: SessionId,
        table: TableName,
        crc: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .borrow()
            .staged
            .get(&(sid, table))
            .filter(|b| crc32fast::hash(b) == crc)
            .cloned())
    }

    fn forget(&mut self, sid: SessionId, table: TableName) -> Result<(), StoreError> {
        let mut d = self.write()?;
        d.journal.remove(&(sid, table));
        d.staged.remove(&(sid, table));
        Ok(())
    }

    fn forget_session(&mut self, sid: SessionId) -> Result<(), StoreError> {
        let mut d = self.write()?;
        d.journal.retain(|(s, _), _| *s != sid);
        d.staged.retain(|(s, _), _| *s != sid);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;
    use crate::protocol::session::PeerInfo;

    fn record(id: u32, role: Role, state: SessionState, last: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId(id),
            role,
            sender: PeerInfo::default(),
            receiver: PeerInfo::default(),
            target: Target::SharedDataRemote,
            metadata: false,
            started: last,
            last_activity: last,
            state,
            tables: BTreeMap::new(),
            written: None,
            error: None,
        }
    }

    #[test]
    fn journal_survives_a_torn_line_and_a_reset_clears_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path());
        let sid = SessionId(7);
        store
            .journal(sid, TableName::News, 0xabc, 1, b"{\"a\"")
            .unwrap();
        store
            .journal(sid, TableName::News, 0xabc, 2, b":1}")
            .unwrap();
        store
            .journal(sid, TableName::News, 0xdef, 1, b"old")
            .unwrap();
        store.flush().unwrap();
        let path = dir.path().join("journal/00000007/news.chunks");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"00000abc 3 2\n{").unwrap();
        let got = store.journaled(sid, TableName::News, 0xabc).unwrap();
        assert_eq!(got, vec![(1, b"{\"a\"".to_vec()), (2, b":1}".to_vec())]);
        // A later run cuts the torn record away before it appends, so what it adds is found.
        let mut later = FileStore::new(dir.path());
        later
            .journal(sid, TableName::News, 0xabc, 3, b"\n,")
            .unwrap();
        later.flush().unwrap();
        let got = later.journaled(sid, TableName::News, 0xabc).unwrap();
        assert_eq!(got.last(), Some(&(3, b"\n,".to_vec())));
        assert_eq!(got.len(), 3);
        assert_eq!(later.journaled_count(sid, TableName::News), 4);
        store
            .save(&record(7, Role::Receive, SessionState::Active, 0))
            .unwrap();
        assert_eq!(store.load().unwrap().records.len(), 1);
        assert_eq!(store.reset().unwrap(), 1);
        assert!(!path.exists());
        assert!(store.load().unwrap().records.is_empty());
    }

    #[test]
    fn journal_records_hold_any_bytes_and_stop_at_damage() {
        let mut bytes = Vec::new();
        let chunks: [(u32, &[u8]); 3] = [(1, b"a\nb"), (2, b""), (3, b"\xff\x00 7 9\n")];
        for (i, c) in chunks {
            bytes.extend_from_slice(format!("0000000a {i} {}\n", c.len()).as_bytes());
            bytes.extend_from_slice(c);
            bytes.push(b'\n');
        }
        let want: Chunks = chunks.iter().map(|(i, c)| (*i, c.to_vec())).collect();
        assert_eq!(journal_records(&bytes, 10), want);
        assert!(journal_records(&bytes, 11).is_empty());
        // Every cut keeps exactly the whole records before it.
        for cut in 0..bytes.len() {
            let got = journal_records(&bytes[..cut], 10);
            assert!(want.starts_with(&got), "cut at {cut}");
        }
        // A length that overruns the next record's line break stops the reading.
        let mut bad = bytes.clone();
        bad[11] = b'9';
        assert!(journal_records(&bad, 10).is_empty());
    }

    #[test]
    fn a_damaged_record_is_moved_aside_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path());
        store
            .save(&record(1, Role::Send, SessionState::Complete, 5))
            .unwrap();
        let bad = dir.path().join("sessions/recv-00000002.json");
        std::fs::write(&bad, b"{ not json").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.damaged.len(), 1);
        assert!(!bad.exists());
        assert!(loaded.damaged[0].exists());
        // Reset works whatever is there.
        std::fs::write(&bad, b"\0\0").unwrap();
        store.reset().unwrap();
    }

    #[test]
    fn a_staged_table_that_fails_its_check_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path());
        let sid = SessionId(3);
        let payload = b"{\"x\":1}";
        let crc = crc32fast::hash(payload);
        store.stage(sid, TableName::Roster, payload).unwrap();
        assert_eq!(
            store.staged(sid, TableName::Roster, crc).unwrap().unwrap(),
            payload
        );
        std::fs::write(
            dir.path().join("journal/00000003/roster.json"),
            b"{\"x\":2}",
        )
        .unwrap();
        assert_eq!(store.staged(sid, TableName::Roster, crc).unwrap(), None);
    }

    #[test]
    fn old_finished_sessions_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path());
        for i in 1..=(KEEP_FINISHED as u32 + 5) {
            store
                .save(&record(
                    i,
                    Role::Receive,
                    SessionState::Complete,
                    u64::from(i),
                ))
                .unwrap();
        }
        store
            .save(&record(999, Role::Receive, SessionState::Active, 0))
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.records.len(), KEEP_FINISHED + 1);
        assert!(loaded.records.iter().any(|r| r.id == SessionId(999)));
        assert!(!loaded.records.iter().any(|r| r.id == SessionId(1)));
    }

    #[test]
    fn the_memory_store_crashes_where_asked() {
        let mut s = MemStore::new();
        s.crash_at(Some(2));
        s.save(&record(1, Role::Send, SessionState::Active, 0))
            .unwrap();
        assert!(matches!(
            s.stage(SessionId(1), TableName::News, b"x"),
            Err(StoreError::Crashed)
        ));
        s.recover();
        let mut restarted = s.clone();
        assert_eq!(restarted.load().unwrap().records.len(), 1);
        assert_eq!(
            restarted
                .staged(SessionId(1), TableName::News, crc32fast::hash(b"x"))
                .unwrap(),
            None
        );
    }
}
