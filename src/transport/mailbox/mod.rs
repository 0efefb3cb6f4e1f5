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

use super::{Clock, Envelope, Transport, TransportError};
use flight::{Flight, FlightError, GroupKey, Letter, is_peer_id};

/// The file that says a folder is an svsync mailbox.
pub const MARKER: &str = "svsync-mailbox.txt";

/// This peer's state in its state folder: its id, sequence numbers and read marks.
const STATE_FILE: &str = "peer.json";
/// Round trips remembered for the retry timing.
const RTT_SAMPLES: usize = 16;
/// How long a file that is not whole yet is given before it is reported (a carrier that writes
/// in place, or a slow disk).
const INCOMPLETE_GRACE_MS: Millis = 10 * 60 * 1000;
/// A peer's own files older than this are deleted whoever read them.
const MAX_AGE_MS: Millis = 24 * 60 * 60 * 1000;
/// Broadcast flights (heartbeats) are deleted after this.
const BROADCAST_AGE_MS: Millis = 10 * 60 * 1000;
/// A flight still missing this long after later ones were read is taken as lost (the carrier
/// dropped it, or its writer deleted it as old): reading goes on past it, and acknowledgements
/// move on so that its writer can clean up.
const GAP_GRACE_MS: Millis = 10 * 60 * 1000;

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
    /// A number that changes whenever a name is added to or removed from `dir`, where the
    /// folder can tell for sure (`None`: list it every time).
    fn version(&self, _dir: &str) -> Option<u64> {
        None
    }
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
pub struct MemFolder {
    files: std::rc::Rc<std::cell::RefCell<MemFiles>>,
    /// Per folder, how often a name was added or removed.
    versions: std::rc::Rc<std::cell::RefCell<BTreeMap<String, u64>>>,
    clock: Clock,
}

/// Files of a folder in memory: path, bytes and time.
type MemFiles = BTreeMap<String, (Vec<u8>, Millis)>;

impl MemFolder {
    /// An empty copy whose files get times from `clock`.
    pub fn new(clock: Clock) -> MemFolder {
        MemFolder {
            files: Default::default(),
            versions: Default::default(),
            clock,
        }
    }

    fn touch(&self, path: &str) {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        *self
            .versions
            .borrow_mut()
            .entry(dir.to_string())
            .or_insert(0) += 1;
    }

    /// The files under `dir` (at any depth): path, with length and time to tell a changed file
    /// (for the carrier, which reads only what changed).
    pub fn stamps_under(&self, dir: &str) -> BTreeMap<String, (usize, Millis)> {
        let from = format!("{dir}/");
        self.files
            .borrow()
            .range(from.clone()..)
            .take_while(|(p, _)| p.starts_with(&from))
            .map(|(p, (b, t))| (p.clone(), (b.len(), *t)))
            .collect()
    }

    /// How many files the copy holds.
    pub fn len(&self) -> usize {
        self.files.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.borrow().is_empty()
    }

    /// Puts a file as a carrier delivers it.
    pub fn put(&self, path: &str, bytes: Vec<u8>, time: Millis) {
        self.files
            .borrow_mut()
            .insert(path.to_string(), (bytes, time));
        self.touch(path);
    }

    pub fn delete(&self, path: &str) {
        self.files.borrow_mut().remove(path);
        self.touch(path);
    }
}

impl Folder for MemFolder {
    fn list(&self, dir: &str) -> Vec<String> {
        let files = self.files.borrow();
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Names come sorted; past a folder's name, jump over its whole subtree at once (no
        // character sorts between '/' and '0').
        let mut out: Vec<String> = Vec::new();
        let mut cursor = prefix.clone();
        'jump: loop {
            for path in files.range(cursor.clone()..).map(|(p, _)| p) {
                let Some(rest) = path.strip_prefix(&prefix) else {
                    break 'jump;
                };
                if let Some((name, _)) = rest.split_once('/') {
                    out.push(name.to_string());
                    cursor = format!("{prefix}{name}0");
                    continue 'jump;
                }
                out.push(rest.to_string());
            }
            break;
        }
        out
    }

    fn read(&self, path: &str) -> Option<(Vec<u8>, Millis)> {
        self.files.borrow().get(path).cloned()
    }

    fn write(&mut self, dir: &str, _temp: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let now = self.clock.now();
        self.touch(&path);
        self.files.borrow_mut().insert(path, (bytes.to_vec(), now));
        Ok(())
    }

    fn remove(&mut self, path: &str) -> std::io::Result<()> {
        self.files.borrow_mut().remove(path);
        self.touch(path);
        Ok(())
    }

    fn version(&self, dir: &str) -> Option<u64> {
        Some(self.versions.borrow().get(dir).copied().unwrap_or(0))
    }

    fn exists(&self, path: &str) -> bool {
        self.files.borrow().contains_key(path)
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

/// Whether a transport address is an account of PC `peer`.
pub fn is_of_peer(addr: &str, peer: &str) -> bool {
    parse_remote(addr).is_some_and(|(p, _)| p == peer)
}

/// The peer id this PC has in the group whose state is kept in `dir`, if it joined already.
pub fn own_id(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice::<Persisted>(&bytes)
        .ok()
        .map(|p| p.id)
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
    pub clock: Clock,
}

/// A peer's view of the mailbox folder.
pub struct Mailbox<F: Folder = OsFolder> {
    folder: F,
    cfg: MailboxConfig,
    state: Persisted,
    /// This peer's accounts: name on the wire and local transport address.
    local: Vec<(String, String)>,
    /// Messages to everyone, and to given peers, until the next flush (one flight each).
    broadcast: Vec<Letter>,
    direct: Vec<Letter>,
    /// This peer's own flights: whom each is for and when it was written (to clean up without
    /// reading them again).
    own: BTreeMap<u64, (Vec<String>, Millis)>,
    /// Sequence numbers read above each peer's `seen` mark.
    read_above: BTreeMap<String, BTreeSet<u64>>,
    /// Per peer with a gap below what was read: the `seen` mark, and since when it is stuck.
    stuck: BTreeMap<String, (u64, Millis)>,
    /// The highest sequence number of this peer's files each peer acknowledged.
    acked: BTreeMap<String, u64>,
    /// Files already reported or ignored for good.
    ignored: BTreeSet<String>,
    /// Recent round trips through the carrier (milliseconds).
    rtts: std::collections::VecDeque<Millis>,
    /// Outboxes read to the end with nothing left to look at again: the folder's version then.
    listed: BTreeMap<String, u64>,
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
        write_ignore_file(dir)?;
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
                std::fs::read(d.join(STATE_FILE)).ok()
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
            .last()
            .copied()
            .unwrap_or(0);
        state.next_seq = state.next_seq.max(highest + 1);
        // The peers and their accounts as the folder shows them now: a restarted peer knows
        // whom to send to without waiting for their next presence message.
        let peers = survey(&folder, &cfg.key)
            .into_iter()
            .filter(|(id, _)| *id != state.id)
            .collect();
        let mut mb = Mailbox {
            folder,
            cfg,
            state,
            local: Vec::new(),
            broadcast: Vec::new(),
            direct: Vec::new(),
            own: BTreeMap::new(),
            read_above: BTreeMap::new(),
            stuck: BTreeMap::new(),
            acked: BTreeMap::new(),
            ignored: BTreeSet::new(),
            listed: BTreeMap::new(),
            rtts: std::collections::VecDeque::new(),
            peers,
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
            // As presence announces it (at most 48 bytes, no `|` or control characters), so
            // that what other PCs send to that name finds this account.
            let name = crate::protocol::wire::Name::sanitize(account).to_string();
            self.local.push((name, addr.to_string()));
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
                let file = d.join(STATE_FILE);
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
            self.broadcast.push(Letter {
                from: account.clone(),
                peer: "*".into(),
                to: "*".into(),
                bytes: msg.encode(),
            });
        }
    }

    /// What this peer acknowledges: per peer, every flight up to its `seen` mark is read (or
    /// given up as lost). Never more: a writer deletes what is acknowledged, and a flight that is
    /// only late must still reach this peer.
    fn acks(&self) -> Vec<(String, u64)> {
        self.state
            .seen
            .iter()
            .map(|(p, s)| (p.clone(), *s))
            .collect()
    }

    /// Writes what is queued: the broadcasts in one flight, the letters to given peers in
    /// another (more only when one file would be too large).
    pub fn flush(&mut self) -> Result<(), TransportError> {
        let broadcast = std::mem::take(&mut self.broadcast);
        let direct = std::mem::take(&mut self.direct);
        for batch in batches(broadcast).chain(batches(direct)) {
            self.write_flight(batch)?;
        }
        Ok(())
    }

    fn write_flight(&mut self, letters: Vec<Letter>) -> Result<(), TransportError> {
        let mut to: Vec<String> = letters.iter().map(|l| l.peer.clone()).collect();
        to.sort_unstable();
        to.dedup();
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.dirty = true;
        // The sequence number is used before it is written, so a crash never reuses it.
        self.save()?;
        let time = self.cfg.clock.now();
        let flight = Flight {
            from: self.state.id.clone(),
            name: self.cfg.name.clone(),
            seq,
            to,
            time,
            acks: self.acks(),
            letters,
        };
        let bytes = flight.encode(&self.cfg.key);
        let outbox = self.state.id.clone();
        self.folder
            .write(
                &outbox,
                &format!(".syncthing.svsync-{seq:010}.tmp"),
                &format!("{seq:010}.msgs"),
                &bytes,
            )
            .map_err(io(&self.folder.show(&flight_path(&outbox, seq))))?;
        self.own.insert(seq, (flight.to, time));
        self.written += 1;
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

    /// Moves a peer's `seen` mark past flights missing for longer than [`GAP_GRACE_MS`].
    fn skip_lost(&mut self, peer: &str, now: Millis) {
        let Some(first_above) = self.read_above.get(peer).and_then(|a| a.first().copied()) else {
            self.stuck.remove(peer);
            return;
        };
        let mark = self.state.seen.get(peer).copied().unwrap_or(0);
        match self.stuck.get(peer) {
            Some((m, since)) if *m == mark => {
                if now.saturating_sub(*since) > GAP_GRACE_MS {
                    self.state.seen.insert(peer.to_string(), first_above - 1);
                    self.mark_read(peer, first_above);
                    self.stuck.remove(peer);
                }
            }
            _ => {
                self.stuck.insert(peer.to_string(), (mark, now));
            }
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
        let now = self.cfg.clock.now();
        let mut outboxes: Vec<String> = self
            .folder
            .list("")
            .into_iter()
            .filter(|n| is_peer_id(n) && *n != self.state.id)
            .collect();
        outboxes.sort();
        for peer in outboxes {
            let version = self.folder.version(&peer);
            if version.is_some() && self.listed.get(&peer) == version.as_ref() {
                self.skip_lost(&peer, now);
                continue;
            }
            let mut again = false;
            for seq in list_flights(&self.folder, &peer) {
                if self.is_read(&peer, seq) {
                    continue;
                }
                let path = flight_path(&peer, seq);
                if self.ignored.contains(&path) {
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
                        } else {
                            again = true;
                        }
                    }
                    Err(e) => {
                        self.mark_read(&peer, seq);
                        self.ignore(path, e);
                    }
                }
            }
            match version {
                Some(v) if !again => self.listed.insert(peer.clone(), v),
                _ => self.listed.remove(&peer),
            };
            self.skip_lost(&peer, now);
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
            if *s > *a
                && let Some((_, written)) = self.own.get(s)
            {
                // A round trip through the carrier: from writing a flight to reading the
                // first answer that acknowledges it.
                if self.rtts.len() == RTT_SAMPLES {
                    self.rtts.pop_front();
                }
                self.rtts
                    .push_back(self.cfg.clock.now().saturating_sub(*written));
            }
            *a = (*a).max(*s);
        }
        if !f.to.iter().any(|p| *p == "*" || *p == me) {
            return;
        }
        for l in f.letters {
            if l.peer != "*" && l.peer != me {
                continue;
            }
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
                    from: remote_addr(&f.from, &l.from).into(),
                    to: addr.as_str().into(),
                    bytes: l.bytes,
                });
            }
        }
    }

    /// Deletes this peer's files that every reader has: acknowledged by their addressee, or
    /// old enough.
    pub fn clean(&mut self) -> Result<u32, TransportError> {
        let now = self.cfg.clock.now();
        let mut removed = 0;
        let outbox = self.state.id.clone();
        let names = self.folder.list(&outbox);
        // Sync engines copy a file that two devices changed at once to `NAME.sync-conflict-…`,
        // on every device. Such copies of this peer's flights are this peer's to remove.
        for name in names.iter().filter(|n| is_conflict_copy(n)) {
            if self.folder.remove(&format!("{outbox}/{name}")).is_ok() {
                removed += 1;
            }
        }
        let listed = flight_seqs(names);
        self.own.retain(|seq, _| listed.binary_search(seq).is_ok());
        for seq in listed {
            let path = flight_path(&outbox, seq);
            if !self.own.contains_key(&seq) {
                // Written by an earlier run: read once. A file that is not a flight of this
                // group is not svsync's to delete before it is old.
                let Some((bytes, time)) = self.folder.read(&path) else {
                    continue;
                };
                let to = Flight::decode(&bytes, &self.cfg.key).map_or(Vec::new(), |f| f.to);
                self.own.insert(seq, (to, time));
            }
            let Some((to, time)) = self.own.get(&seq) else {
                continue;
            };
            let age = now.saturating_sub(*time);
            let done = if to.iter().any(|p| p == "*") {
                age > BROADCAST_AGE_MS
            } else {
                age > MAX_AGE_MS
                    || (!to.is_empty()
                        && to
                            .iter()
                            .all(|p| self.acked.get(p).is_some_and(|a| *a >= seq)))
            };
            if done && self.folder.remove(&path).is_ok() {
                self.own.remove(&seq);
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

/// Letters in batches that each fit one flight file (with room for the header and lines).
fn batches(letters: Vec<Letter>) -> impl Iterator<Item = Vec<Letter>> {
    const ROOM: usize = flight::MAX_FILE - flight::MAX_ADDRESSEES * 20 - 64 * 1024;
    let mut out: Vec<Vec<Letter>> = Vec::new();
    let mut size = 0;
    for l in letters {
        let cost = l.bytes.len() + l.from.len() * 3 + l.to.len() * 3 + 64;
        match out.last_mut() {
            Some(batch) if size + cost <= ROOM && batch.len() < flight::MAX_MESSAGES => {
                size += cost;
                batch.push(l);
            }
            _ => {
                size = cost;
                out.push(vec![l]);
            }
        }
    }
    out.into_iter()
}

/// The flight files of an outbox, in sequence order: exact names `<10 digits>.msgs` only
/// (sync engines' temporary and conflict files, dot-files and anything else are not flights).
/// Paths are relative to the mailbox folder.
pub fn list_flights<F: Folder>(folder: &F, outbox: &str) -> Vec<u64> {
    flight_seqs(folder.list(outbox))
}

fn flight_seqs(names: Vec<String>) -> Vec<u64> {
    let mut out: Vec<u64> = names
        .into_iter()
        .filter_map(|name| {
            let digits = name.strip_suffix(".msgs")?;
            (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    out.sort_unstable();
    out
}

/// A sync engine's conflict copy of a flight (`<10 digits>.sync-conflict-….msgs`).
fn is_conflict_copy(name: &str) -> bool {
    name.len() > 10
        && name.as_bytes()[..10].iter().all(u8::is_ascii_digit)
        && name[10..].starts_with(".sync-conflict-")
}

/// Where flight `seq` of `outbox` is.
pub fn flight_path(outbox: &str, seq: u64) -> String {
    format!("{outbox}/{seq:010}.msgs")
}

/// The peers of a group as the folder shows them now, read without changing anything (no
/// peer id is made, nothing is marked read): for `svsync status --mailbox`. Each outbox's
/// newest flights are read until one authenticates; files of other groups, damaged ones and
/// the engines' side files are skipped. Peers sorted by name.
pub fn survey<F: Folder>(folder: &F, key: &GroupKey) -> Vec<(String, PeerSeen)> {
    /// How many of an outbox's newest files are tried (a hostile folder can hold many).
    const TRIES: usize = 64;
    let mut out = Vec::new();
    let mut outboxes: Vec<String> = folder
        .list("")
        .into_iter()
        .filter(|n| is_peer_id(n))
        .collect();
    outboxes.sort();
    for peer in outboxes {
        let mut seen: Option<PeerSeen> = None;
        for seq in list_flights(folder, &peer).into_iter().rev().take(TRIES) {
            let Some((bytes, _)) = folder.read(&flight_path(&peer, seq)) else {
                continue;
            };
            let Ok(f) = Flight::decode(&bytes, key) else {
                continue;
            };
            if f.from != peer || f.seq != seq {
                continue;
            }
            let s = seen.get_or_insert_with(|| PeerSeen {
                name: f.name.clone(),
                last_seen: f.time,
                accounts: BTreeMap::new(),
            });
            for l in f.letters.iter().filter(|l| l.to == "*") {
                if let Ok(crate::protocol::wire::Message::Online { toon, account, .. }) =
                    crate::protocol::wire::Message::decode(&l.bytes)
                {
                    s.accounts
                        .entry(account.to_string())
                        .or_insert_with(|| toon.to_string());
                }
            }
            if !s.accounts.is_empty() {
                break;
            }
        }
        if let Some(s) = seen {
            out.push((peer, s));
        }
    }
    out.sort_by(|a, b| (&a.1.name, &a.0).cmp(&(&b.1.name, &b.0)));
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
    write_ignore_file(dir)
}

/// Syncthing's ignore file, which Syncthing itself never carries to the other PCs: each PC's
/// copy of the folder gets its own (at `init`, and when a peer first opens the folder).
fn write_ignore_file(dir: &Path) -> Result<(), TransportError> {
    let ignore = dir.join(".stignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "(?d).syncthing.svsync-*.tmp\n(?d).part-*\n")
            .map_err(io(&ignore))?;
    }
    Ok(())
}

impl<F: Folder> Transport for Mailbox<F> {
    /// Adapts to the carrier: a few times the fastest recent round trip (a peer that answers
    /// at once shows the carrier's own delay; slower samples include the peer's pauses), from
    /// 5 s to 10 minutes; until a round trip was seen, the configured timing. Senders give up
    /// after about 10 minutes of silence either way (the node then tries again later).
    fn timing(&self) -> Timing {
        let Some(fastest) = self.rtts.iter().min() else {
            return self.cfg.timing;
        };
        let retry_ms = (3 * fastest + 2_000).clamp(5_000, 600_000);
        Timing {
            retry_ms,
            max_retries: (600_000 / retry_ms).clamp(1, 120) as u32,
        }
    }

    fn now(&self) -> Millis {
        self.cfg.clock.now()
    }

    fn send(&mut self, from: &str, to: &str, flight: Vec<Vec<u8>>) -> Result<(), TransportError> {
        let Some((account, _)) = self.local.iter().find(|(_, a)| a == from) else {
            return Ok(());
        };
        let account = account.clone();
        let Some((peer, to_account)) = parse_remote(to) else {
            return Ok(());
        };
        for bytes in flight {
            self.direct.push(Letter {
                from: account.clone(),
                peer: peer.to_string(),
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
        let now = self.cfg.clock.now();
        let pause = deadline.map_or(1_000, |d| d.saturating_sub(now).min(1_000));
        std::thread::sleep(std::time::Duration::from_millis(pause));
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
