//! The orchestrators: the sender flow and the receiver flow call the task functions (read,
//! serialize, chunk, verify, reassemble, deserialize, merge, stage, commit), do all tracking in
//! the session store and all logging, and drive the two state machines over a channel.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsio::write::{self as safe, Snapshot};
use crate::lua::{Key, LuaValue, ParseError, Position, Table, parse_with};
use crate::merge::{Counts, apply, merge_shared, merge_table, splice_merge};
use crate::model::tables::TableName;
use crate::model::{SHARED_DATA, Target, parse_options, shared_table};

use super::chunk::{Payload, deserialize, serialize};
use super::receiver::{Receiver, ReceiverConfig, RxEvent, RxOut};
use super::sender::{Outcome, Sender, SenderConfig, SenderEvent, SenderOut, TableResult};
use super::session::{
    Peer, SessionRecord, SessionState, SessionStore, StoreError, TableProgress, TableStatus,
    unix_now, utc_text,
};
use super::transport::{Channel, Direction, Faults, Rng};
use super::wire::{Message, SessionId};

/// Where the merged receiver file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the receiver's file (atomically, with a backup).
    InPlace,
    /// Run everything, write nothing.
    DryRun,
    /// Write the merged file here; the receiver's file is not touched.
    Output(PathBuf),
}

/// One side of a sync: an account's `GuildHelper.lua`.
#[derive(Debug, Clone)]
pub struct Side {
    pub file: PathBuf,
    /// The account folder's name.
    pub account: String,
}

/// Everything one run of the pipeline needs.
pub struct SyncJob<'a> {
    pub from: Side,
    pub to: Side,
    pub target: Target,
    pub mode: WriteMode,
    pub faults: Faults,
    /// The session store; in memory for a dry run.
    pub store: &'a mut SessionStore,
    /// Folder of `sender.log` and `receiver.log`; none: no logs.
    pub log_dir: Option<PathBuf>,
    /// Every message as it crossed the channel, one JSON string per line.
    pub wire_log: Option<PathBuf>,
    /// Wall-clock Unix seconds for the session's times (tests move it).
    pub now: u64,
    /// Called as chunks go out: (chunks sent so far, chunks to send).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}; nothing was written")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}; nothing was written")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The run stopped after `crash-after=N` messages, as if the process had been killed.
    #[error("stopped after {0} messages (crash-after)")]
    Crashed(u64),
}

/// What became of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReport {
    pub table: TableName,
    pub status: &'static str,
    pub counts: Counts,
    pub chunks: u32,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    pub session: String,
    pub resumed: bool,
    /// `complete`, `busy` or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tables: Vec<TableReport>,
    /// The file written, if any.
    pub written: Option<PathBuf>,
    pub backup: Option<PathBuf>,
    /// Whether the merge changes the receiver (for a dry run: would change).
    pub changes: bool,
    /// Messages put on the channel each way.
    pub messages_sent: u64,
    pub messages_received: u64,
    pub bytes_sent: u64,
    /// How long the sender's messages would take in game (seconds).
    pub in_game_seconds: f64,
    /// Simulated transfer time on the channel (seconds).
    pub channel_seconds: f64,
}

impl SyncReport {
    fn busy(with: &str) -> SyncReport {
        SyncReport {
            session: String::new(),
            resumed: false,
            outcome: "busy",
            reason: Some(format!("the receiver is busy with a sync from {with}")),
            tables: Vec::new(),
            written: None,
            backup: None,
            changes: false,
            messages_sent: 0,
            messages_received: 0,
            bytes_sent: 0,
            in_game_seconds: 0.0,
            channel_seconds: 0.0,
        }
    }

    pub fn ok(&self) -> bool {
        self.outcome == "complete"
    }
}

fn parse_error(path: &Path, src: &[u8], e: &ParseError) -> SyncError {
    let Position { line, column } = e.position(src);
    SyncError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message: e.to_string(),
    }
}

/// Reads and parses a GuildHelper file; returns its bytes, snapshot and the table `name`.
fn read_table(path: &Path, name: &str) -> Result<(Vec<u8>, Snapshot, Option<Table>), SyncError> {
    let (bytes, snap) = safe::read_with_snapshot(path).map_err(|source| SyncError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc = parse_with(&bytes, &parse_options()).map_err(|e| parse_error(path, &bytes, &e))?;
    let table = shared_table(&doc, name).map_err(|e| SyncError::Data {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((bytes, snap, table))
}

/// The toon a sender announces itself as: `sharedData.UserStatus.userNameRealm`, else the
/// account name.
fn toon_of(shared: &Table, account: &str) -> String {
    shared
        .get_str("UserStatus")
        .and_then(LuaValue::as_table)
        .and_then(|t| t.get_str("userNameRealm"))
        .and_then(LuaValue::as_str)
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.is_empty() && s.len() <= 48 && !s.contains('|'))
        .map_or_else(|| wire_name(account), str::to_string)
}

/// A name that fits a wire field: no `|`, at most 48 bytes.
fn wire_name(name: &str) -> String {
    let mut out = String::new();
    for c in name
        .chars()
        .map(|c| if c == '|' || c.is_control() { '_' } else { c })
    {
        if out.len() + c.len_utf8() > 48 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "account".into()
    } else {
        out
    }
}

/// One line per step: time, session, step, table, details.
struct Log {
    out: Option<BufWriter<File>>,
}

impl Log {
    fn open(dir: Option<&Path>, name: &str) -> Result<Log, SyncError> {
        let Some(dir) = dir else {
            return Ok(Log { out: None });
        };
        let path = dir.join(name);
        let err = |source| SyncError::Log {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Log {
            out: Some(BufWriter::new(f)),
        })
    }

    fn line(&mut self, sid: SessionId, step: &str, table: Option<TableName>, detail: &str) {
        if let Some(out) = &mut self.out {
            let t = table.map_or("-", TableName::as_str);
            let _ = writeln!(out, "{} {sid} {step} {t} {detail}", utc_text(unix_now()));
        }
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}

fn counts_text(c: &Counts) -> String {
    format!(
        "received={} added={} updated={} unchanged={} kept_newer={} conflicts={} skipped={}",
        c.received, c.added, c.updated, c.unchanged, c.kept_newer, c.conflicts, c.skipped
    )
}

/// The receiver flow: answers requests, runs the session's state machine, stages and commits.
struct ReceiverFlow {
    file: PathBuf,
    account: String,
    target: Target,
    mode: WriteMode,
    snapshot: Snapshot,
    current: Option<Table>,
    machine: Option<Receiver>,
    /// Tables staged in this run (earlier runs' come from the store).
    staged: BTreeMap<TableName, Table>,
    metadata: bool,
    log: Log,
    written: Option<PathBuf>,
    backup: Option<PathBuf>,
    changes: bool,
    journaled: u32,
    /// Whether this run continued an interrupted session.
    resumed: bool,
}

impl ReceiverFlow {
    fn key(&self) -> String {
        self.file.to_string_lossy().into_owned()
    }

    fn touch(&self, store: &mut SessionStore, sid: SessionId, now: u64) {
        if let Some(r) = store.get_mut(sid) {
            r.last_activity = now;
        }
    }

    fn handle(
        &mut self,
        store: &mut SessionStore,
        now: u64,
        msg: Message,
    ) -> Result<Vec<Message>, SyncError> {
        let mut replies = Vec::new();
        match &msg {
            Message::Online { sid, toon } => {
                self.log
                    .line(*sid, "online", None, &format!("{toon} is online"));
                return Ok(replies);
            }
            Message::SyncRequest {
                sid,
                toon,
                account,
                metadata,
            } => {
                if let Some(m) = &self.machine {
                    // A repeated request: answer it again.
                    if m.sid() == *sid
                        || store
                            .get(m.sid())
                            .is_some_and(|r| r.sender.account == *account)
                    {
                        replies.push(Message::SyncAccept {
                            sid: m.sid(),
                            done: m.done().keys().copied().collect(),
                        });
                    } else {
                        replies.push(Message::SyncBusy {
                            sid: *sid,
                            with: wire_name(
                                &store
                                    .get(m.sid())
                                    .map_or_else(String::new, |r| r.sender.account.clone()),
                            ),
                        });
                    }
                    return Ok(replies);
                }
                if store.expire(now) {
                    store.save()?;
                }
                let me = self.key();
                if let Some(other) = store.busy_with_sender(account, toon, &me, now) {
                    let with = wire_name(&other.sender.account);
                    self.log.line(
                        *sid,
                        "busy",
                        None,
                        &format!("refused {toon}: in a session with {with}"),
                    );
                    replies.push(Message::SyncBusy { sid: *sid, with });
                    return Ok(replies);
                }
                let (use_sid, resumed) =
                    match store.resumable_from(account, toon, &me, self.target, now) {
                        Some(existing) => (existing, true),
                        None => {
                            // A proposed id already used here gets the next free one.
                            let mut fresh = *sid;
                            while store.get(fresh).is_some() {
                                fresh = SessionId(fresh.0.wrapping_add(0x9E37_79B9));
                            }
                            store.sessions.push(SessionRecord {
                                id: fresh.to_string(),
                                sender: Peer {
                                    account: account.clone(),
                                    toon: toon.clone(),
                                    file: String::new(),
                                },
                                receiver: Peer {
                                    account: self.account.clone(),
                                    toon: String::new(),
                                    file: me.clone(),
                                },
                                target: self.target,
                                metadata: *metadata,
                                started: now,
                                last_activity: now,
                                state: SessionState::Active,
                                tables: BTreeMap::new(),
                            });
                            (fresh, false)
                        }
                    };
                let record = store.get(use_sid).cloned();
                let mut done = BTreeMap::new();
                let mut machine;
                if let Some(record) = &record {
                    for (t, p) in &record.tables {
                        if p.status == TableStatus::Complete && store.has_staged(use_sid, *t)
                            || self.staged.contains_key(t)
                        {
                            done.insert(*t, p.counts.unwrap_or_default());
                        }
                    }
                    machine = Receiver::new(ReceiverConfig::default(), use_sid, done.clone());
                    for (t, p) in &record.tables {
                        if p.status == TableStatus::InProgress
                            && !done.contains_key(t)
                            && let Ok(crc) = u32::from_str_radix(&p.payload_crc, 16)
                        {
                            let chunks = store.journaled_chunks(use_sid, *t, crc);
                            if !chunks.is_empty() {
                                machine.resume_chunks(*t, p.chunks, p.bytes, crc, chunks);
                            }
                        }
                    }
                } else {
                    machine = Receiver::new(ReceiverConfig::default(), use_sid, done.clone());
                }
                self.metadata = record
                    .as_ref()
                    .map_or(*metadata, |r| r.metadata || *metadata);
                self.resumed = resumed;
                self.touch(store, use_sid, now);
                store.save()?;
                let held: Vec<&str> = done.keys().map(|t| t.as_str()).collect();
                self.log.line(
                    use_sid,
                    if resumed { "resume" } else { "accept" },
                    None,
                    &format!(
                        "from {toon} ({account}) into {}; already held: {}",
                        self.target,
                        if held.is_empty() {
                            "none".into()
                        } else {
                            held.join(",")
                        }
                    ),
                );
                replies.push(Message::SyncAccept {
                    sid: use_sid,
                    done: done.keys().copied().collect(),
                });
                self.machine = Some(machine);
                return Ok(replies);
            }
            _ => {}
        }
        let Some(machine) = self.machine.as_mut() else {
            return Ok(replies);
        };
        if msg.sid() != machine.sid() {
            return Ok(replies);
        }
        let sid = machine.sid();
        let mut pending = machine.handle(msg);
        while !pending.is_empty() {
            let mut next = Vec::new();
            for out in pending {
                match out {
                    RxOut::Send(m) => replies.push(m),
                    RxOut::Event(e) => self.event(store, sid, now, e)?,
                    RxOut::Journal {
                        table,
                        crc,
                        index,
                        payload,
                    } => {
                        store.journal_chunk(sid, table, crc, index, &payload)?;
                        self.journaled += 1;
                        if let Some(p) = store.get_mut(sid).and_then(|r| r.tables.get_mut(&table)) {
                            p.received += 1;
                        }
                        if self.journaled.is_multiple_of(64) {
                            self.touch(store, sid, now);
                            store.save()?;
                        }
                    }
                    RxOut::ForgetChunks { table, .. } => store.forget_chunks(sid, table),
                    RxOut::Stage { table, payload } => {
                        let result = self.stage(store, sid, table, &payload);
                        if let Some(m) = self.machine.as_mut() {
                            next.extend(m.staged(table, result));
                        }
                    }
                    RxOut::Commit => {
                        let result = self.commit(store, sid);
                        if let Some(m) = self.machine.as_mut() {
                            next.extend(m.committed(result));
                        }
                    }
                }
            }
            pending = next;
        }
        Ok(replies)
    }

    fn event(
        &mut self,
        store: &mut SessionStore,
        sid: SessionId,
        now: u64,
        e: RxEvent,
    ) -> Result<(), SyncError> {
        match e {
            RxEvent::TableStarted {
                table,
                chunks,
                bytes,
                crc,
                held,
            } => {
                self.log.line(
                    sid,
                    "initiate",
                    Some(table),
                    &format!("{chunks} chunks, {bytes} bytes; {held} already held"),
                );
                if let Some(r) = store.get_mut(sid) {
                    let p = r.tables.entry(table).or_default();
                    p.status = TableStatus::InProgress;
                    p.chunks = chunks;
                    p.bytes = bytes;
                    p.payload_crc = format!("{crc:08x}");
                    p.received = held;
                }
                self.touch(store, sid, now);
                store.save()?;
            }
            RxEvent::AskedAgain {
                table,
                missing,
                round,
            } => {
                self.log.line(
                    sid,
                    "resend",
                    Some(table),
                    &format!("round {round}: asked again for {missing} chunks"),
                );
            }
            RxEvent::TableVerified {
                table,
                corrupt,
                duplicates,
            } => {
                self.log.line(
                    sid,
                    "verify",
                    Some(table),
                    &format!("payload checksum ok; dropped {corrupt} corrupt and {duplicates} duplicate chunks"),
                );
            }
            RxEvent::TableStaged { table, counts } => {
                self.log
                    .line(sid, "merge", Some(table), &counts_text(&counts));
            }
            RxEvent::TableFailed { table, reason } => {
                self.log.line(
                    sid,
                    "error",
                    Some(table),
                    &format!("{reason}; nothing of it is merged"),
                );
                if let Some(p) = store.get_mut(sid).and_then(|r| r.tables.get_mut(&table)) {
                    p.status = TableStatus::Failed;
                    p.error = Some(reason);
                }
                store.save()?;
            }
            RxEvent::Committed { written } => {
                let what = match (&self.written, written) {
                    (Some(p), true) => format!("wrote {}", p.display()),
                    (_, _) if self.mode == WriteMode::DryRun => "dry run: nothing written".into(),
                    _ => "no changes: nothing written".into(),
                };
                self.log.line(sid, "commit", None, &what);
            }
            RxEvent::SenderStopped { reason } => {
                self.log.line(sid, "stopped", None, &reason);
            }
        }
        Ok(())
    }

    /// Deserialize, merge (to count), and make the table durable.
    fn stage(
        &mut self,
        store: &mut SessionStore,
        sid: SessionId,
        table: TableName,
        payload: &[u8],
    ) -> Result<Counts, String> {
        let incoming =
            deserialize(payload).map_err(|e| format!("the data does not deserialize: {e}"))?;
        let current = self
            .current
            .as_ref()
            .and_then(|t| t.get_str(table.as_str()))
            .and_then(LuaValue::as_table);
        let merged = merge_table(table, &incoming, current);
        store
            .stage(sid, table, payload)
            .map_err(|e| e.to_string())?;
        if let Some(p) = store.get_mut(sid).and_then(|r| r.tables.get_mut(&table)) {
            p.status = TableStatus::Complete;
            p.counts = Some(merged.counts);
            p.received = p.chunks;
        }
        store.save().map_err(|e| e.to_string())?;
        self.staged.insert(table, incoming);
        Ok(merged.counts)
    }

    /// Merges every staged table into the receiver's file, in one atomic write.
    fn commit(&mut self, store: &mut SessionStore, sid: SessionId) -> Result<bool, String> {
        let done: Vec<TableName> = self
            .machine
            .as_ref()
            .map(|m| m.done().keys().copied().collect())
            .unwrap_or_default();
        let mut source = Table::new();
        for t in TableName::ALL {
            if !done.contains(&t) {
                continue;
            }
            let table = match self.staged.get(&t) {
                Some(table) => table.clone(),
                None => {
                    let bytes = store
                        .staged(sid, t)
                        .ok_or_else(|| format!("the staged {t} table is missing"))?;
                    deserialize(&bytes)?
                }
            };
            source.insert(Key::str(t.as_str()), LuaValue::Table(table));
        }
        if self.metadata {
            source.insert(Key::str("metadata"), LuaValue::Table(Table::new()));
        }
        let (bytes, snap) = safe::read_with_snapshot(&self.file)
            .map_err(|e| format!("{}: {e}", self.file.display()))?;
        if self.mode == WriteMode::InPlace && snap != self.snapshot {
            return Err(format!(
                "{} changed on disk during the sync; nothing was written",
                self.file.display()
            ));
        }
        let doc = parse_with(&bytes, &parse_options()).map_err(|e| {
            let p = e.position(&bytes);
            format!("{}:{}:{}: {e}", self.file.display(), p.line, p.column)
        })?;
        let current = shared_table(&doc, self.target.key()).map_err(|e| e.to_string())?;
        let merge = merge_shared(&source, current.as_ref());
        let expected = apply(current.as_ref(), &merge);
        let changes =
            current.as_ref() != Some(&expected) || merge.tables.iter().any(|(_, m)| m.changed);
        self.changes = changes;
        let out =
            splice_merge(&doc, self.target, current.as_ref(), &merge).map_err(|e| e.to_string())?;
        // The written bytes must read back as the intended table.
        let check = parse_with(&out, &parse_options())
            .map_err(|e| format!("internal error: the merged file does not parse: {e}"))?;
        if shared_table(&check, self.target.key())
            .ok()
            .flatten()
            .as_ref()
            != Some(&expected)
        {
            return Err(
                "internal error: the merged file does not read back as the merged table".into(),
            );
        }
        // Once the file is written the session is done, even if recording that fails (a rerun
        // would then merge the same tables again, which changes nothing).
        let finish = |store: &mut SessionStore| {
            if let Some(r) = store.get_mut(sid) {
                r.state = SessionState::Complete;
            }
            if store.save().is_ok() {
                store.forget_journal(sid);
            }
        };
        match &self.mode {
            WriteMode::DryRun => {
                finish(store);
                Ok(false)
            }
            WriteMode::Output(path) => {
                safe::replace(path, &out, None, false).map_err(|e| e.to_string())?;
                self.written = Some(path.clone());
                finish(store);
                Ok(true)
            }
            WriteMode::InPlace => {
                if !changes {
                    finish(store);
                    return Ok(false);
                }
                let backup = safe::replace(&self.file, &out, Some(&self.snapshot), true)
                    .map_err(|e| e.to_string())?;
                self.written = Some(self.file.clone());
                self.backup = backup;
                finish(store);
                Ok(true)
            }
        }
    }
}

/// Time in game for the sender's messages: the per-prefix allowance (10 messages, then 1 per
/// second) and ChatThrottleLib's pacing (800 bytes/s after a 4,000-byte burst, 40 bytes of
/// overhead per message), whichever is slower.
pub fn in_game_seconds(messages: u64, bytes: u64) -> f64 {
    let by_count = messages.saturating_sub(10) as f64;
    let by_bytes = (bytes + 40 * messages).saturating_sub(4_000) as f64 / 800.0;
    by_count.max(by_bytes)
}

/// Runs the whole pipeline once: FROM's `sharedData` into TO's target table.
pub fn run(job: SyncJob<'_>) -> Result<SyncReport, SyncError> {
    let SyncJob {
        from,
        to,
        target,
        mode,
        faults,
        store,
        log_dir,
        wire_log,
        now,
        mut progress,
    } = job;

    // One sync into a receiver at a time: another sender finds it busy.
    let _lock = match store.lock_receiver(&to.file, &from.account)? {
        Ok(lock) => lock,
        Err(holder) => return Ok(SyncReport::busy(&holder)),
    };

    // Task: read both files (a file that does not parse is never written).
    let (_, _, shared) = read_table(&from.file, SHARED_DATA)?;
    let shared = shared.ok_or_else(|| SyncError::Data {
        path: from.file.clone(),
        message: format!("there is no `{SHARED_DATA}` table to send"),
    })?;
    let (_, snapshot, current) = read_table(&to.file, target.key())?;

    // Task: serialize each table present, in sync order.
    let mut payloads: Vec<Payload> = Vec::new();
    for t in TableName::ALL {
        if let Some(table) = shared.get_str(t.as_str()).and_then(LuaValue::as_table) {
            payloads.push(serialize(t, table).map_err(|e| SyncError::Data {
                path: from.file.clone(),
                message: format!("{t} cannot be serialized: {e}"),
            })?);
        }
    }
    let toon = toon_of(&shared, &from.account);
    let account = wire_name(&from.account);
    // A simulated run is reproducible from its seed (the session id is part of what crosses
    // the channel); a real one proposes an id unlikely to be in use anywhere.
    let salt = if faults.is_faulty() || faults.crash_after.is_some() {
        0
    } else {
        u64::from(std::process::id())
            ^ u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()),
            )
    };
    let mut rng = Rng::new(now ^ salt ^ faults.seed.rotate_left(17));
    let proposed = SessionId(rng.next_u64() as u32);
    let mut sender = Sender::new(
        SenderConfig::default(),
        proposed,
        &toon,
        &account,
        shared.get_str("metadata").is_some(),
        payloads,
    );
    let total_chunks: u64 = sender.results().map(|(_, n, _)| u64::from(n)).sum();

    let mut sender_log = Log::open(log_dir.as_deref(), "sender.log")?;
    let mut receiver = ReceiverFlow {
        file: to.file.clone(),
        account: to.account.clone(),
        target,
        mode: mode.clone(),
        snapshot,
        current,
        machine: None,
        staged: BTreeMap::new(),
        metadata: false,
        log: Log::open(log_dir.as_deref(), "receiver.log")?,
        written: None,
        backup: None,
        changes: false,
        journaled: 0,
        resumed: false,
    };
    let mut wire = match &wire_log {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|source| {
            SyncError::Log {
                path: path.clone(),
                source,
            }
        })?)),
        None => None,
    };

    let mut channel = Channel::new(faults);
    let mut clock: u64 = 0;
    let mut messages_sent = 0u64;
    let mut messages_received = 0u64;
    let mut bytes_sent = 0u64;
    let mut data_sent = 0u64;
    let mut delivered = 0u64;
    let from_file = from.file.to_string_lossy().into_owned();

    let mut outs = sender.start(clock);
    let mut steps: u64 = 0;
    loop {
        // Route the sender's output.
        for o in outs.drain(..) {
            match o {
                SenderOut::Send(m) => {
                    if matches!(m, Message::SyncData { .. }) {
                        data_sent += 1;
                        if let Some(p) = progress.as_mut() {
                            p(data_sent.min(total_chunks), total_chunks);
                        }
                    }
                    let bytes = m.encode();
                    messages_sent += 1;
                    bytes_sent += bytes.len() as u64;
                    channel.send(clock, Direction::ToReceiver, bytes);
                }
                SenderOut::Event(e) => {
                    let sid = sender.sid();
                    sender_event(&mut sender_log, store, sid, &from_file, &e);
                }
            }
        }
        if let Some(n) = faults.crash_after
            && delivered >= n
        {
            if let Some(w) = &mut wire {
                let _ = w.flush();
            }
            return Err(SyncError::Crashed(n));
        }
        if sender.outcome().is_some() {
            break;
        }
        steps += 1;
        if steps > 50_000_000 {
            break;
        }
        let next_msg = channel.next_at();
        let next_tick = sender.deadline();
        let deliver = match (next_msg, next_tick) {
            (Some(m), Some(t)) => m <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if !deliver {
            clock = clock.max(next_tick.unwrap_or(clock));
            outs = sender.tick(clock);
            continue;
        }
        let Some((at, dir, bytes)) = channel.pop() else {
            break;
        };
        clock = clock.max(at);
        delivered += 1;
        if let Some(w) = &mut wire {
            let text = String::from_utf8_lossy(&bytes);
            let _ = serde_json::to_writer(&mut *w, &text);
            let _ = w.write_all(b"\n");
        }
        let Ok(msg) = Message::decode(&bytes) else {
            continue;
        };
        match dir {
            Direction::ToReceiver => {
                let replies = receiver.handle(store, now, msg)?;
                for r in replies {
                    let b = r.encode();
                    messages_received += 1;
                    channel.send(clock, Direction::ToSender, b);
                }
            }
            Direction::ToSender => outs = sender.handle(clock, msg),
        }
    }
    if let Some(w) = &mut wire {
        let _ = w.flush();
    }

    // The receiver may have committed while its last answer was lost: the sender then gives
    // up, but the merge is done, and the run says so.
    let committed = receiver
        .machine
        .as_ref()
        .and_then(Receiver::committed_state)
        .is_some();
    if committed && !matches!(sender.outcome(), Some(Outcome::Complete { .. })) {
        sender_log.line(
            sender.sid(),
            "note",
            None,
            "the receiver committed; its last answer was lost",
        );
    }
    let (outcome, reason) = match sender.outcome() {
        _ if committed => ("complete", None),
        Some(Outcome::Complete { .. }) => ("complete", None),
        Some(Outcome::Busy { with }) => (
            "busy",
            Some(format!("the receiver is busy with a sync from {with}")),
        ),
        Some(Outcome::Failed { reason }) => ("failed", Some(reason.clone())),
        None => ("failed", Some("the transfer stalled".to_string())),
    };
    let sid = sender.sid();
    let record = store.get(sid).cloned();
    let tables = sender
        .results()
        .map(|(table, chunks, result)| {
            let stored = record.as_ref().and_then(|r| r.tables.get(&table));
            let (status, counts, error) = match result {
                Some(TableResult::Confirmed(c)) => ("complete", *c, None),
                Some(TableResult::AlreadyDone) => (
                    "complete",
                    stored.and_then(|p| p.counts).unwrap_or_default(),
                    None,
                ),
                Some(TableResult::Failed(e)) => ("failed", Counts::default(), Some(e.clone())),
                None => ("not sent", Counts::default(), None),
            };
            TableReport {
                table,
                status,
                counts,
                chunks,
                bytes: stored.map_or(0, |p| p.bytes),
                error,
            }
        })
        .collect();
    let summary = match &reason {
        None => format!(
            "complete: {messages_sent} messages sent, {bytes_sent} bytes; in game about {:.0} s",
            in_game_seconds(messages_sent, bytes_sent)
        ),
        Some(r) => format!("{outcome}: {r}"),
    };
    sender_log.line(sid, "end", None, &summary);
    sender_log.flush();
    receiver.log.flush();
    Ok(SyncReport {
        session: sid.to_string(),
        resumed: receiver.resumed,
        outcome,
        reason,
        tables,
        written: receiver.written.clone(),
        backup: receiver.backup.clone(),
        changes: receiver.changes,
        messages_sent,
        messages_received,
        bytes_sent,
        in_game_seconds: in_game_seconds(messages_sent, bytes_sent),
        channel_seconds: clock as f64 / 1000.0,
    })
}

fn sender_event(
    log: &mut Log,
    store: &mut SessionStore,
    sid: SessionId,
    from_file: &str,
    e: &SenderEvent,
) {
    let mut update = |t: TableName, f: &dyn Fn(&mut TableProgress)| {
        if let Some(p) = store.get_mut(sid).and_then(|r| r.tables.get_mut(&t)) {
            f(p);
        }
    };
    match e {
        SenderEvent::Requested => log.line(
            sid,
            "request",
            None,
            "asked the receiver whether it is idle",
        ),
        SenderEvent::Accepted {
            sid: accepted,
            done,
            ..
        } => {
            if let Some(r) = store.get_mut(*accepted) {
                r.sender.file = from_file.to_string();
            }
            let held: Vec<&str> = done.iter().map(|t| t.as_str()).collect();
            log.line(
                *accepted,
                "accepted",
                None,
                &if held.is_empty() {
                    "new session".to_string()
                } else {
                    format!("resuming; the receiver already holds {}", held.join(","))
                },
            );
        }
        SenderEvent::Busy { with } => log.line(
            sid,
            "busy",
            None,
            &format!("the receiver is busy with {with}"),
        ),
        SenderEvent::TableStarted {
            table,
            chunks,
            bytes,
            needed,
        } => {
            log.line(
                sid,
                "send",
                Some(*table),
                &format!("{needed} of {chunks} chunks, {bytes} bytes"),
            );
        }
        SenderEvent::Resending {
            table,
            chunks,
            round,
        } => log.line(
            sid,
            "resend",
            Some(*table),
            &format!("round {round}: {chunks} chunks again"),
        ),
        SenderEvent::Retrying { step, attempt } => {
            log.line(sid, "retry", None, &format!("{step}, attempt {attempt}"))
        }
        SenderEvent::TableConfirmed { table, counts } => {
            log.line(sid, "confirmed", Some(*table), &counts_text(counts));
            update(*table, &|p| p.status = TableStatus::Complete);
        }
        SenderEvent::TableFailed { table, reason } => {
            log.line(sid, "failed", Some(*table), reason);
            let r = reason.clone();
            update(*table, &move |p| {
                p.status = TableStatus::Failed;
                p.error = Some(r.clone());
            });
        }
        SenderEvent::Completed { written } => log.line(
            sid,
            "complete",
            None,
            if *written {
                "the receiver wrote its file"
            } else {
                "the receiver wrote nothing"
            },
        ),
        SenderEvent::Failed { reason } => log.line(sid, "failed", None, reason),
    }
}
