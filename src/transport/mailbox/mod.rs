//! The folder mailbox: the protocol's messages through a folder that a sync engine (Syncthing,
//! a network share, a cloud drive) carries between PCs.
//!
//! ```text
//! <mailbox>/svsync-mailbox.txt         what this folder is (no secret in it)
//! <mailbox>/.stignore                  keeps Syncthing away from writers' temporary files
//! <mailbox>/<peer id>/<seq>.msgs       a peer's outbox: one file per flight, seq 10 digits
//! ```
//!
//! Rules (from measurements of Syncthing, Unison and rclone, see `docs/PROTOCOL.md`):
//! - Each peer creates and deletes files only in its own outbox, so two writers never share a
//!   file name and sync engines never make conflict copies of svsync's files.
//! - A flight is written under a temporary name every engine ignores
//!   (`.syncthing.svsync-<seq>.tmp`: Syncthing never ships its own temporary names), flushed,
//!   and renamed; a reader accepts only exact final names with a whole, authenticated flight.
//! - Order comes from the sequence number in the name, never from arrival. Files may arrive
//!   late, twice, out of order or never: the protocol repeats what is lost.
//! - A writer deletes its files once their reader acknowledged them (every flight carries the
//!   highest sequence number its writer read from each peer), or after a day.
//! - Everything in the folder is untrusted: a file that is not from the group (wrong HMAC),
//!   malformed, oversized or replayed is counted, reported once, and ignored.

pub mod flight;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::{Millis, Timing};

use super::{Envelope, Transport, TransportError};
use flight::{Flight, FlightError, GroupKey, Letter, is_peer_id};

/// The file that says a folder is an svsync mailbox.
pub const MARKER: &str = "svsync-mailbox.txt";

/// How long a file that is not whole yet is given before it is reported (a carrier that writes
/// in place, or a slow disk).
const INCOMPLETE_GRACE_MS: Millis = 10 * 60 * 1000;
/// A peer's own files older than this are deleted whoever read them.
const MAX_AGE_MS: Millis = 24 * 60 * 60 * 1000;
/// Broadcast flights (heartbeats) are deleted after this.
const BROADCAST_AGE_MS: Millis = 10 * 60 * 1000;

/// A PC's copy of the mailbox folder: paths are relative (`<peer id>/<name>`, or a name at the
/// top). On disk for real use ([`OsFolder`]); in memory for the simulation ([`MemFolder`]).
pub trait Folder {
    /// The names in a folder (`""`: the top), without `.` and `..`.
    fn list(&self, dir: &str) -> Vec<String>;
    /// A file's bytes and modification time (milliseconds since the Unix epoch).
    fn read(&self, path: &str) -> Option<(Vec<u8>, Millis)>;
    /// Writes a file atomically: under `temp` first, then renamed to `path` (both in `dir`).
    fn write(&mut self, dir: &str, temp: &str, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    fn remove(&mut self, path: &str) -> std::io::Result<()>;
    fn exists(&self, path: &str) -> bool;
    /// Where a path is, for messages.
    fn show(&self, path: &str) -> PathBuf;
}

/// The mailbox folder on disk.
#[derive(Debug, Clone)]
pub struct OsFolder {
    pub root: PathBuf,
}

impl Folder for OsFolder {
    fn list(&self, dir: &str) -> Vec<String> {
        std::fs::read_dir(self.root.join(dir))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn read(&self, path: &str) -> Option<(Vec<u8>, Millis)> {
        let p = self.root.join(path);
        let meta = std::fs::metadata(&p).ok()?;
        if meta.len() > flight::MAX_FILE as u64 {
            // Too large to be a flight: its bytes are never read.
            return Some((Vec::new(), u64::MAX));
        }
        let time = meta.modified().map_or(0, crate::time::ms_of);
        Some((std::fs::read(&p).ok()?, time))
    }

    fn write(&mut self, dir: &str, temp: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.root.join(dir);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(temp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(name))
    }

    fn remove(&mut self, path: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.root.join(path))
    }

    fn exists(&self, path: &str) -> bool {
        self.root.join(path).exists()
    }

    fn show(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

/// A PC's copy of the folder in memory, shared by clones. The simulation's carrier copies
/// files between such copies, late, twice, out of order, or not at all.
#[derive(Debug, Clone, Default)]
pub struct MemFolder(std::rc::Rc<std::cell::RefCell<MemFiles>>);

/// Files of a folder in memory: path, bytes and time.
type MemFiles = BTreeMap<String, (Vec<u8>, Millis)>;

impl MemFolder {
    pub fn new() -> MemFolder {
        MemFolder::default()
    }

    /// Every file: path, bytes and time (for the carrier).
    pub fn files(&self) -> Vec<(String, Vec<u8>, Millis)> {
        self.0
            .borrow()
            .iter()
            .map(|(p, (b, t))| (p.clone(), b.clone(), *t))
            .collect()
    }

    /// Puts a file as a carrier delivers it.
    pub fn put(&self, path: &str, bytes: Vec<u8>, time: Millis) {
        self.0.borrow_mut().insert(path.to_string(), (bytes, time));
    }

    pub fn delete(&self, path: &str) {
        self.0.borrow_mut().remove(path);
    }
}

impl Folder for MemFolder {
    fn list(&self, dir: &str) -> Vec<String> {
        let files = self.0.borrow();
        let mut out = BTreeSet::new();
        for path in files.keys() {
            let rest = if dir.is_empty() {
                Some(path.as_str())
            } else {
                path.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rest) = rest {
                out.insert(rest.split('/').next().unwrap_or(rest).to_string());
            }
        }
        out.into_iter().collect()
    }

    fn read(&self, path: &str) -> Option<(Vec<u8>, Millis)> {
        self.0.borrow().get(path).cloned()
    }

    fn write(&mut self, dir: &str, _temp: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        self.0
            .borrow_mut()
            .insert(path, (bytes.to_vec(), crate::time::now_ms()));
        Ok(())
    }

    fn remove(&mut self, path: &str) -> std::io::Result<()> {
        self.0.borrow_mut().remove(path);
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        self.0.borrow().contains_key(path)
    }

    fn show(&self, path: &str) -> PathBuf {
        PathBuf::from("memory").join(path)
    }
}

/// Where a peer keeps its mailbox state: its state folder, or memory (the simulation: a shared
/// cell that survives the peer's restart).
#[derive(Debug, Clone)]
pub enum StateStore {
    Dir(PathBuf),
    Memory(std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>>),
}

/// The transport address of an account on another PC.
pub fn remote_addr(peer: &str, account: &str) -> String {
    format!("peer:{peer}/{account}")
}

/// The peer id and account of a remote address.
pub fn parse_remote(addr: &str) -> Option<(&str, &str)> {
    let rest = addr.strip_prefix("peer:")?;
    let (peer, account) = rest.split_once('/')?;
    is_peer_id(peer).then_some((peer, account))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransportError + '_ {
    move |source| TransportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What this peer keeps about the mailbox in its state folder.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    id: String,
    next_seq: u64,
    /// Per peer: every sequence number up to this one has been read.
    seen: BTreeMap<String, u64>,
}

/// Something the mailbox noticed, for the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A file that is not from this group, damaged, malformed or oversized: ignored.
    Ignored { path: PathBuf, why: FlightError },
}

/// A peer of the group, as seen through the folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSeen {
    pub name: String,
    /// The latest time one of its flights was written (its clock).
    pub last_seen: Millis,
    /// Its accounts (from its presence messages), with the toon each last announced.
    pub accounts: BTreeMap<String, String>,
}

/// Settings of a mailbox.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub key: GroupKey,
    /// This peer's name for people (a PC's name).
    pub name: String,
    /// Where this peer keeps its mailbox state (its id, sequence numbers, what it read).
    pub state: StateStore,
    pub timing: Timing,
}

/// A peer's view of the mailbox folder.
pub struct Mailbox<F: Folder = OsFolder> {
    folder: F,
    cfg: MailboxConfig,
    state: Persisted,
    /// This peer's accounts: name on the wire and local transport address.
    local: Vec<(String, String)>,
    /// Messages to send, by destination peer (or `*`), until the next flush.
    outgoing: BTreeMap<String, Vec<Letter>>,
    /// Sequence numbers read above each peer's `seen` mark.
    read_above: BTreeMap<String, BTreeSet<u64>>,
    /// The highest sequence number of this peer's files each peer acknowledged.
    acked: BTreeMap<String, u64>,
    /// Files already reported or ignored for good.
    ignored: BTreeSet<String>,
    peers: BTreeMap<String, PeerSeen>,
    notices: Vec<Notice>,
    dirty: bool,
    /// Flights written and files read, for tests and benchmarks.
    pub written: u64,
    pub read: u64,
}

impl Mailbox<OsFolder> {
    /// Opens the mailbox folder `dir` as this peer (made up the first time, and kept in the
    /// configured state).
    pub fn open(dir: &Path, cfg: MailboxConfig) -> Result<Mailbox, TransportError> {
        if !dir.join(MARKER).is_file() {
            return Err(TransportError::NotAMailbox(dir.to_path_buf()));
        }
        Mailbox::with_folder(
            OsFolder {
                root: dir.to_path_buf(),
            },
            cfg,
        )
    }
}

impl<F: Folder> Mailbox<F> {
    /// Opens a mailbox on any folder.
    pub fn with_folder(folder: F, cfg: MailboxConfig) -> Result<Mailbox<F>, TransportError> {
        let saved = match &cfg.state {
            StateStore::Dir(d) => {
                std::fs::create_dir_all(d).map_err(io(d))?;
                std::fs::read(d.join("peer.json")).ok()
            }
            StateStore::Memory(cell) => cell.borrow().clone(),
        };
        let mut state: Persisted = saved
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !is_peer_id(&state.id) {
            let mut id = [0u8; 8];
            getrandom::fill(&mut id)
                .map_err(|e| io(&folder.show(""))(std::io::Error::other(e.to_string())))?;
            state.id = id.iter().map(|b| format!("{b:02x}")).collect();
            state.next_seq = 1;
        }
        // Never reuse a sequence number, even if the state was lost: start after the files
        // still in the outbox.
        let highest = list_flights(&folder, &state.id)
            .into_iter()
            .map(|(seq, _)| seq)
            .max()
            .unwrap_or(0);
        state.next_seq = state.next_seq.max(highest + 1);
        let mut mb = Mailbox {
            folder,
            cfg,
            state,
            local: Vec::new(),
            outgoing: BTreeMap::new(),
            read_above: BTreeMap::new(),
            acked: BTreeMap::new(),
            ignored: BTreeSet::new(),
            peers: BTreeMap::new(),
            notices: Vec::new(),
            dirty: true,
            written: 0,
            read: 0,
        };
        mb.save()?;
        Ok(mb)
    }

    /// This peer's id (its outbox's name).
    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Makes an account of this PC reachable: `account` on the wire, `addr` for the drivers.
    pub fn add_local(&mut self, account: &str, addr: &str) {
        if !self.local.iter().any(|(_, a)| a == addr) {
            self.local.push((account.to_string(), addr.to_string()));
        }
    }

    /// The peers seen so far (not this one).
    pub fn peers(&self) -> &BTreeMap<String, PeerSeen> {
        &self.peers
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn save(&mut self) -> Result<(), TransportError> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        match &self.cfg.state {
            StateStore::Memory(cell) => *cell.borrow_mut() = Some(bytes),
            StateStore::Dir(d) => {
                let file = d.join("peer.json");
                let mut tmp = tempfile::NamedTempFile::new_in(d).map_err(io(&file))?;
                tmp.write_all(&bytes).map_err(io(&file))?;
                tmp.as_file().sync_all().map_err(io(&file))?;
                tmp.persist(&file).map_err(|e| io(&file)(e.error))?;
            }
        }
        self.dirty = false;
        Ok(())
    }

    /// Queues a presence message for every account of this PC, to every peer.
    pub fn announce(&mut self, toons: &[(String, String)]) {
        for (account, toon) in toons {
            let msg = crate::protocol::wire::Message::Online {
                toon: crate::protocol::wire::Name::sanitize(toon),
                account: crate::protocol::wire::Name::sanitize(account),
                version: crate::protocol::VERSION,
            };
            self.outgoing.entry("*".into()).or_default().push(Letter {
                from: account.clone(),
                to: "*".into(),
                bytes: msg.encode(),
            });
        }
    }

    fn acks(&self) -> Vec<(String, u64)> {
        self.state
            .seen
            .iter()
            .map(|(p, s)| {
                let above = self.read_above.get(p).and_then(|a| a.iter().next_back());
                (p.clone(), above.copied().unwrap_or(*s).max(*s))
            })
            .collect()
    }

    /// Writes what is queued: one file per destination peer.
    pub fn flush(&mut self) -> Result<(), TransportError> {
        let outgoing = std::mem::take(&mut self.outgoing);
        for (to, letters) in outgoing {
            if letters.is_empty() {
                continue;
            }
            let seq = self.state.next_seq;
            self.state.next_seq += 1;
            self.dirty = true;
            // The sequence number is used before it is written, so a crash never reuses it.
            self.save()?;
            let flight = Flight {
                from: self.state.id.clone(),
                name: self.cfg.name.clone(),
                seq,
                to,
                time: crate::time::now_ms(),
                acks: self.acks(),
                letters,
            };
            let bytes = flight.encode(&self.cfg.key);
            let outbox = self.state.id.clone();
            let name = format!("{seq:010}.msgs");
            self.folder
                .write(
                    &outbox,
                    &format!(".syncthing.svsync-{seq:010}.tmp"),
                    &name,
                    &bytes,
                )
                .map_err(io(&self.folder.show(&format!("{outbox}/{name}"))))?;
            self.written += 1;
        }
        Ok(())
    }

    fn is_read(&self, peer: &str, seq: u64) -> bool {
        self.state.seen.get(peer).is_some_and(|s| seq <= *s)
            || self.read_above.get(peer).is_some_and(|a| a.contains(&seq))
    }

    fn mark_read(&mut self, peer: &str, seq: u64) {
        let above = self.read_above.entry(peer.to_string()).or_default();
        above.insert(seq);
        // Move the mark up over every number read without a gap.
        let mark = self.state.seen.entry(peer.to_string()).or_insert(0);
        while above.remove(&(*mark + 1)) {
            *mark += 1;
            self.dirty = true;
        }
    }

    fn ignore(&mut self, path: String, why: FlightError) {
        if self.ignored.insert(path.clone()) {
            self.notices.push(Notice::Ignored {
                path: self.folder.show(&path),
                why,
            });
        }
    }

    /// Reads every new flight addressed to this peer (or to everyone).
    fn scan(&mut self) -> Result<Vec<Envelope>, TransportError> {
        let mut out = Vec::new();
        let now = crate::time::now_ms();
        let mut outboxes: Vec<String> = self
            .folder
            .list("")
            .into_iter()
            .filter(|n| is_peer_id(n) && *n != self.state.id)
            .collect();
        outboxes.sort();
        for peer in outboxes {
            for (seq, path) in list_flights(&self.folder, &peer) {
                if self.is_read(&peer, seq) || self.ignored.contains(&path) {
                    continue;
                }
                let Some((bytes, time)) = self.folder.read(&path) else {
                    continue;
                };
                if time == u64::MAX || bytes.len() > flight::MAX_FILE {
                    self.mark_read(&peer, seq);
                    self.ignore(path, FlightError::TooLarge);
                    continue;
                }
                self.read += 1;
                match Flight::decode(&bytes, &self.cfg.key) {
                    Ok(f) if f.from == peer && f.seq == seq => {
                        self.mark_read(&peer, seq);
                        self.take(f, &mut out);
                    }
                    Ok(_) => {
                        // Authentic, but not where its writer put it: a replay or a copy.
                        self.mark_read(&peer, seq);
                        self.ignore(path, FlightError::Malformed("moved or replayed"));
                    }
                    Err(FlightError::Incomplete) => {
                        if now.saturating_sub(time) > INCOMPLETE_GRACE_MS {
                            self.mark_read(&peer, seq);
                            self.ignore(path, FlightError::Incomplete);
                        }
                    }
                    Err(e) => {
                        self.mark_read(&peer, seq);
                        self.ignore(path, e);
                    }
                }
            }
        }
        self.save()?;
        Ok(out)
    }

    /// Takes an authentic flight: presence, acknowledgements, and the letters for this PC.
    fn take(&mut self, f: Flight, out: &mut Vec<Envelope>) {
        let me = self.state.id.clone();
        let seen = self.peers.entry(f.from.clone()).or_default();
        seen.name = f.name.clone();
        seen.last_seen = seen.last_seen.max(f.time);
        if let Some((_, s)) = f.acks.iter().find(|(p, _)| *p == me) {
            let a = self.acked.entry(f.from.clone()).or_insert(0);
            *a = (*a).max(*s);
        }
        if f.to != "*" && f.to != me {
            return;
        }
        for l in f.letters {
            if l.to == "*" {
                if let Ok(crate::protocol::wire::Message::Online { toon, account, .. }) =
                    crate::protocol::wire::Message::decode(&l.bytes)
                {
                    let seen = self.peers.entry(f.from.clone()).or_default();
                    seen.accounts.insert(account.to_string(), toon.to_string());
                }
                continue;
            }
            if let Some((_, addr)) = self.local.iter().find(|(name, _)| *name == l.to) {
                out.push(Envelope {
                    from: remote_addr(&f.from, &l.from),
                    to: addr.clone(),
                    bytes: l.bytes,
                });
            }
        }
    }

    /// Deletes this peer's files that every reader has: acknowledged by their addressee, or
    /// old enough.
    pub fn clean(&mut self) -> Result<u32, TransportError> {
        let now = crate::time::now_ms();
        let mut removed = 0;
        let outbox = self.state.id.clone();
        for (seq, path) in list_flights(&self.folder, &outbox) {
            let Some((bytes, time)) = self.folder.read(&path) else {
                continue;
            };
            let age = now.saturating_sub(time);
            let done = match Flight::decode(&bytes, &self.cfg.key) {
                Ok(f) if f.to == "*" => age > BROADCAST_AGE_MS,
                Ok(f) => self.acked.get(&f.to).is_some_and(|a| *a >= seq) || age > MAX_AGE_MS,
                // Not a flight of this group in this peer's own outbox: not svsync's to keep.
                Err(_) => age > MAX_AGE_MS,
            };
            if done && self.folder.remove(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The folder (for the simulation's carrier and for tests).
    pub fn folder(&self) -> &F {
        &self.folder
    }
}

/// The flight files of an outbox, in sequence order: exact names `<10 digits>.msgs` only
/// (sync engines' temporary and conflict files, dot-files and anything else are not flights).
/// Paths are relative to the mailbox folder.
pub fn list_flights<F: Folder>(folder: &F, outbox: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = folder
        .list(outbox)
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_suffix(".msgs")?;
            (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
                .map(|s| (s, format!("{outbox}/{name}")))
        })
        .collect();
    out.sort();
    out
}

/// Prepares a folder to be a mailbox: the marker file and an ignore file for Syncthing.
pub fn init(dir: &Path, key: &GroupKey) -> Result<(), TransportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let marker = dir.join(MARKER);
    let text = format!(
        "This folder is an svsync mailbox (format {}), group {}.\n\
         Each PC of the group writes only into its own folder here. Share this folder with a\n\
         sync engine (Syncthing, a network share, a cloud drive); keep the group key file out\n\
         of it and copy it to each PC yourself.\n",
        flight::FORMAT,
        key.fingerprint()
    );
    std::fs::write(&marker, text).map_err(io(&marker))?;
    let ignore = dir.join(".stignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "(?d).syncthing.svsync-*.tmp\n(?d).part-*\n")
            .map_err(io(&ignore))?;
    }
    Ok(())
}

impl<F: Folder> Transport for Mailbox<F> {
    fn timing(&self) -> Timing {
        self.cfg.timing
    }

    fn now(&self) -> Millis {
        crate::time::now_ms()
    }

    fn send(&mut self, from: &str, to: &str, flight: Vec<Vec<u8>>) -> Result<(), TransportError> {
        let Some((account, _)) = self.local.iter().find(|(_, a)| a == from) else {
            return Ok(());
        };
        let account = account.clone();
        let Some((peer, to_account)) = parse_remote(to) else {
            return Ok(());
        };
        let letters = self.outgoing.entry(peer.to_string()).or_default();
        for bytes in flight {
            letters.push(Letter {
                from: account.clone(),
                to: to_account.to_string(),
                bytes,
            });
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<Envelope>, TransportError> {
        self.scan()
    }

    fn wait(&mut self, deadline: Option<Millis>) -> Result<bool, TransportError> {
        self.flush()?;
        let now = crate::time::now_ms();
        let pause = deadline.map_or(1_000, |d| d.saturating_sub(now).min(1_000));
        std::thread::sleep(std::time::Duration::from_millis(pause));
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
