//! The receiver's driver: pumps one [`Receiver`] over a transport and does that receiver's I/O:
//! its account's file (read once per sync, written once at the end), its state (records,
//! journal, staged tables) and `receiver.log`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;
use crate::fsio::lock::{FileLock, lock_path, lock_wait};
use crate::fsio::write::{Replace, Snapshot, read_with_snapshot, real_path, replace, replace_with};
use crate::merge::{Concluded, MergedFile, OutputError, TargetFile};
use crate::model::tables::TableName;
use crate::protocol::Millis;
use crate::protocol::receiver::{Endpoint, Opened, Receiver, Refusal, RxEvent, RxOut, RxRequest};
use crate::protocol::session::SessionState;
use crate::protocol::wire::{Message, SessionId};
use crate::state::{Loaded, Store};
use crate::transport::Transport;

use super::Driver;
use super::log::Log;

/// What became of a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The file written, if any.
    pub written: Option<PathBuf>,
    pub backup: Option<PathBuf>,
}

/// The account file a receiver merges into.
pub trait AccountIo {
    /// The file, as named (for messages).
    fn path(&self) -> &Path;
    /// Reads the file for a sync (taking what writing it later needs, such as its lock).
    fn open(&mut self) -> Result<Vec<u8>, Failure>;
    /// Writes what the merge made of the file (nothing, when it changes nothing) and lets the
    /// file go. A merged file is checked as written ([`crate::merge::Checker::check`]) before it takes the
    /// old one's place.
    fn commit(&mut self, concluded: Concluded) -> Result<Committed, Failure>;
    /// Lets the file go without writing.
    fn close(&mut self);
}

/// Where a receiver's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the account's file (atomically, with a backup).
    InPlace,
    /// Do everything, write nothing.
    DryRun,
    /// Write the merged file here; the account's file is not touched.
    Output(PathBuf),
}

/// An account's `GuildHelper.lua` on disk.
pub struct FileAccount {
    path: PathBuf,
    mode: WriteMode,
    force: bool,
    lock_patience: Duration,
    lock: Option<FileLock>,
    snapshot: Option<Snapshot>,
}

impl FileAccount {
    pub fn new(path: &Path, mode: WriteMode, force: bool) -> FileAccount {
        FileAccount {
            path: path.to_path_buf(),
            mode,
            force,
            lock_patience: Duration::from_secs(60),
            lock: None,
            snapshot: None,
        }
    }

    /// How long to wait for another process writing the same file.
    pub fn with_lock_patience(mut self, patience: Duration) -> Self {
        self.lock_patience = patience;
        self
    }
}

impl AccountIo for FileAccount {
    fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> Result<Vec<u8>, Failure> {
        let read_err = |source| Failure::Read {
            path: self.path.clone(),
            source,
        };
        let real = real_path(&self.path).map_err(read_err)?;
        if self.mode == WriteMode::InPlace && self.lock.is_none() {
            // Held from this read to the rename: no other svsync process can write the file
            // in between, however it names the account.
            let lock = lock_wait(&lock_path(&real, "lock"), "sync", self.lock_patience)
                .map_err(Failure::lock)?;
            self.lock = Some(lock);
        }
        let (bytes, snapshot) = read_with_snapshot(&real).map_err(|source| Failure::Read {
            path: self.path.clone(),
            source,
        })?;
        self.snapshot = Some(snapshot);
        Ok(bytes)
    }

    fn commit(&mut self, concluded: Concluded) -> Result<Committed, Failure> {
        let path = self.path.clone();
        let result = match (&self.mode, concluded) {
            (WriteMode::DryRun | WriteMode::InPlace, Concluded::Unchanged(_)) => {
                Ok(Committed::default())
            }
            (WriteMode::DryRun, Concluded::Merged(m)) => m
                .to_vec()
                .map(|_| Committed::default())
                .map_err(|e| Failure::finish(&path, e)),
            (WriteMode::InPlace, Concluded::Merged(m)) => {
                let how = Replace {
                    expected: self.snapshot.as_ref(),
                    backup: true,
                    force: self.force,
                };
                replace_merged(&path, &path, m, how).map(|r| Committed {
                    written: Some(r.path),
                    backup: r.backup,
                })
            }
            (WriteMode::Output(out), concluded) => {
                let how = Replace {
                    expected: None,
                    backup: self.force && out.exists(),
                    force: self.force,
                };
                let replaced = match concluded {
                    Concluded::Merged(m) => replace_merged(&path, out, m, how),
                    Concluded::Unchanged(original) => {
                        replace(out, &original, how).map_err(Failure::Write)
                    }
                };
                replaced.map(|r| Committed {
                    written: Some(out.clone()),
                    backup: r.backup,
                })
            }
        };
        self.close();
        result
    }

    fn close(&mut self) {
        self.lock = None;
        self.snapshot = None;
    }
}

/// Writes `merged` into `file` (a temporary file) as it is made, then checks what was
/// written, read back once the merge has let go of its records: the merged file and the
/// merged records are never in memory together.
fn write_checked(merged: MergedFile, file: &mut std::fs::File) -> Result<(), OutputError> {
    use std::io::{Read, Seek, Write};
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
    merged.write_to(&mut w)?;
    w.flush()?;
    drop(w);
    let checker = merged.into_checker();
    let len = usize::try_from(file.stream_position()?).unwrap_or(0);
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut written = Vec::with_capacity(len);
    file.read_to_end(&mut written)?;
    checker.check(written)?;
    Ok(())
}

/// Replaces `to` with `merged`, checked as written (`account` names the receiver's file in
/// messages).
fn replace_merged(
    account: &Path,
    to: &Path,
    merged: MergedFile,
    how: Replace<'_>,
) -> Result<crate::fsio::write::Replaced, Failure> {
    let mut refused = None;
    let mut merged = Some(merged);
    let mut write = |file: &mut std::fs::File| {
        let merged = merged
            .take()
            .ok_or_else(|| std::io::Error::other("the merged file was written already"))?;
        write_checked(merged, file)
    };
    let replaced = replace_with(to, how, &mut |file| match write(file) {
        Ok(()) => Ok(()),
        Err(OutputError::Io(e)) => Err(e),
        Err(OutputError::Finish(e)) => {
            refused = Some(e);
            Err(std::io::Error::other("the merged file was refused"))
        }
    });
    replaced.map_err(|e| match refused.take() {
        Some(f) => Failure::finish(account, f),
        None => Failure::Write(e),
    })
}

/// What a receiver did, for the report of a one-shot sync.
#[derive(Debug, Default)]
pub struct ReceiverReport {
    /// The session committed, and whether a file was written.
    pub committed: Option<(SessionId, bool)>,
    pub written: Option<PathBuf>,
    pub backup: Option<PathBuf>,
    /// Whether the merge changed (or, in a dry run, would change) the file.
    pub changes: bool,
    /// The last local failure (the file could not be read, parsed or written).
    pub failure: Option<Failure>,
    /// Record files that were damaged and moved aside.
    pub damaged: Vec<PathBuf>,
    /// Messages this receiver sent.
    pub messages_sent: u64,
    /// Per table, records of the receiver's file that repeated an id and were merged into one.
    pub duplicates: Vec<(TableName, u32)>,
}

struct Working {
    sid: SessionId,
    file: TargetFile,
}

pub struct ReceiverDriver<A: AccountIo, S: Store> {
    peer: Receiver,
    account: A,
    store: S,
    log: Log,
    working: Option<Working>,
    report: ReceiverReport,
    dead: Option<Failure>,
}

impl<A: AccountIo, S: Store> ReceiverDriver<A, S> {
    /// A receiver for `me`, with its records from `store`.
    pub fn new(me: Endpoint, account: A, mut store: S, log: Log) -> Result<Self, Failure> {
        let loaded = store.load()?;
        Ok(Self::from_loaded(me, account, store, log, loaded))
    }

    /// A receiver for `me`, with records already loaded from `store`.
    pub fn from_loaded(me: Endpoint, account: A, store: S, log: Log, loaded: Loaded) -> Self {
        ReceiverDriver {
            peer: Receiver::new(me, loaded.records),
            account,
            store,
            log,
            working: None,
            report: ReceiverReport {
                damaged: loaded.damaged,
                ..ReceiverReport::default()
            },
            dead: None,
        }
    }

    pub fn peer(&self) -> &Receiver {
        &self.peer
    }

    pub fn report(&self) -> &ReceiverReport {
        &self.report
    }

    pub fn into_report(self) -> ReceiverReport {
        self.report
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn die(&mut self, f: Failure) {
        if self.dead.is_none() {
            self.dead = Some(f);
        }
    }

    /// Everything the peer produced, in order: requests done, events logged, messages sent
    /// after the durable writes they depend on.
    fn pump(&mut self, t: &mut dyn Transport) {
        let now = t.now();
        let mut flights: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        while let Some(o) = self.peer.poll() {
            if self.dead.is_some() {
                // A process that died does nothing more.
                continue;
            }
            match o {
                RxOut::Send { to, msg } => {
                    let bytes = msg.encode();
                    match flights.iter_mut().find(|(dest, _)| *dest == to) {
                        Some((_, f)) => f.push(bytes),
                        None => flights.push((to, vec![bytes])),
                    }
                }
                RxOut::Event(e) => self.event(now, &e),
                RxOut::Request(r) => self.request(now, r),
            }
        }
        if self.dead.is_some() {
            return;
        }
        // Journal appends reach the OS before anything is said about them (a reply may tell
        // the sender what is held); chunks that need no reply stay buffered, so a large table
        // costs a write per buffer, not per chunk.
        if !flights.is_empty()
            && let Err(e) = self.store.flush()
        {
            self.die(Failure::State(e));
            return;
        }
        let me = self.peer.endpoint().info.addr.clone();
        for (to, flight) in flights {
            self.report.messages_sent += flight.len() as u64;
            if let Err(e) = t.send(&me, &to, flight) {
                self.die(Failure::Transport(e));
                return;
            }
        }
    }

    fn request(&mut self, now: Millis, r: RxRequest) {
        let result = match r {
            RxRequest::Open {
                sid,
                staged,
                journals,
            } => {
                self.open(now, sid, &staged, &journals);
                Ok(())
            }
            RxRequest::Journal {
                sid,
                table,
                crc,
                index,
                payload,
            } => self.store.journal(sid, table, crc, index, &payload),
            RxRequest::Forget { sid, table } => {
                if let Some(w) = self.working.as_mut().filter(|w| w.sid == sid) {
                    w.file.forget(table);
                }
                self.store.forget(sid, table)
            }
            RxRequest::Stage {
                sid,
                table,
                payload,
                ..
            } => self.stage(sid, table, payload),
            RxRequest::Commit { sid, metadata } => {
                self.commit(now, sid, metadata);
                Ok(())
            }
            RxRequest::Persist(record) => self.store.save(&record).and_then(|()| {
                if record.state == SessionState::Active {
                    Ok(())
                } else {
                    self.store.forget_session(record.id)
                }
            }),
            RxRequest::Close { sid } => {
                if self.working.as_ref().is_some_and(|w| w.sid == sid) {
                    self.working = None;
                    self.account.close();
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            self.die(Failure::State(e));
        }
    }

    fn open(
        &mut self,
        now: Millis,
        sid: SessionId,
        staged: &[(TableName, u32)],
        journals: &[(TableName, u32)],
    ) {
        self.working = None;
        let target = self.peer.endpoint().target;
        let opened = self.account.open().and_then(|bytes| {
            TargetFile::open(bytes, target).map_err(|e| Failure::open(self.account.path(), e))
        });
        let mut file = match opened {
            Ok(file) => file,
            Err(f) => {
                self.account.close();
                self.peer.opened(now, Err(Refusal::of(&f)));
                self.report.failure = Some(f);
                return;
            }
        };
        let mut found = Opened::default();
        for &(table, crc) in staged {
            let payload = match self.store.staged(sid, table, crc) {
                Ok(p) => p,
                Err(e) => return self.die(Failure::State(e)),
            };
            if payload.is_some_and(|p| file.merge_json(table, &p).is_ok()) {
                found.staged.insert(table);
            }
        }
        for &(table, crc) in journals {
            match self.store.journaled(sid, table, crc) {
                Ok(chunks) => found.chunks.push((table, chunks)),
                Err(e) => return self.die(Failure::State(e)),
            }
        }
        self.working = Some(Working { sid, file });
        self.peer.opened(now, Ok(found));
    }

    fn stage(
        &mut self,
        sid: SessionId,
        table: TableName,
        payload: Vec<u8>,
    ) -> Result<(), crate::state::StoreError> {
        let Some(w) = self.working.as_mut().filter(|w| w.sid == sid) else {
            self.peer.staged(
                table,
                Err("the receiver is not ready for this session".into()),
            );
            return Ok(());
        };
        // Merged (in memory) and durable before the confirmation, which promises both.
        let counts = match w.file.merge_json(table, &payload) {
            Ok(counts) => counts,
            Err(e) => {
                self.peer.staged(table, Err(Refusal::of(&e)));
                return Ok(());
            }
        };
        self.store.stage(sid, table, &payload)?;
        drop(payload);
        self.peer.staged(table, Ok(counts));
        Ok(())
    }

    fn commit(&mut self, now: Millis, sid: SessionId, metadata: bool) {
        let Some(w) = self.working.take().filter(|w| w.sid == sid) else {
            self.peer.committed(
                now,
                Err("the receiver is not ready for this session".into()),
            );
            return;
        };
        self.report.duplicates = w.file.duplicates();
        let result = w
            .file
            .conclude(metadata)
            .map_err(|e| Failure::finish(self.account.path(), e))
            .and_then(|concluded| {
                let changes = matches!(concluded, Concluded::Merged(_));
                self.account.commit(concluded).map(|c| (changes, c))
            });
        match result {
            Ok((changes, c)) => {
                let written = c.written.is_some();
                self.report.changes = changes;
                self.report.written = c.written;
                self.report.backup = c.backup;
                self.report.committed = Some((sid, written));
                self.report.failure = None;
                self.peer.committed(now, Ok(written));
            }
            Err(f) => {
                self.account.close();
                self.peer.committed(now, Err(Refusal::of(&f)));
                self.report.failure = Some(f);
            }
        }
    }

    fn event(&mut self, now: Millis, e: &RxEvent) {
        let log = &mut self.log;
        match e {
            RxEvent::Online { from, toon, .. } => {
                log.line(now, SessionId(0), "online", None, &format!("{toon} ({from})"))
            }
            RxEvent::Refused {
                from,
                account,
                reason,
            } => log.line(
                now,
                SessionId(0),
                "refused",
                None,
                &format!("{account} ({from}): {reason}"),
            ),
            RxEvent::Accepted {
                sid,
                account,
                toon,
                resumed,
                done,
                partial,
            } => log.line(
                now,
                *sid,
                if *resumed { "resume" } else { "accept" },
                None,
                &format!(
                    "from {toon} ({account}) into {}; holds {done}, part of {partial}",
                    self.peer.endpoint().target
                ),
            ),
            RxEvent::StagedDiscarded { sid, table } => log.line(
                now,
                *sid,
                "discarded",
                Some(*table),
                "the staged copy failed its check; receiving it again",
            ),
            RxEvent::TableStarted { sid, announce, .. } => log.line(
                now,
                *sid,
                "receive",
                Some(announce.table),
                &format!("{} chunks, {} bytes", announce.total, announce.bytes),
            ),
            RxEvent::AskedAgain {
                sid,
                table,
                missing,
                round,
            } => log.line(
                now,
                *sid,
                "resend",
                Some(*table),
                &format!("round {round}: {missing} chunks missing"),
            ),
            RxEvent::TableStaged { sid, table, counts } => log.line(
                now,
                *sid,
                "staged",
                Some(*table),
                &format!(
                    "received={} added={} updated={} unchanged={} kept_newer={} conflicts={} skipped={}",
                    counts.received,
                    counts.added,
                    counts.updated,
                    counts.unchanged,
                    counts.kept_newer,
                    counts.conflicts,
                    counts.skipped
                ),
            ),
            RxEvent::TableFailed { sid, table, reason } => {
                log.line(now, *sid, "failed", Some(*table), reason)
            }
            RxEvent::Committed { sid, written } => log.line(
                now,
                *sid,
                "committed",
                None,
                if *written {
                    "wrote the file"
                } else {
                    "nothing to write"
                },
            ),
            RxEvent::Stopped { sid, reason } => log.line(now, *sid, "stopped", None, reason),
            RxEvent::Expired { sid } => {
                log.line(now, *sid, "expired", None, "no activity for an hour")
            }
        }
    }
}

impl<A: AccountIo, S: Store> Driver for ReceiverDriver<A, S> {
    fn addr(&self) -> &str {
        &self.peer.endpoint().info.addr
    }

    fn handle(&mut self, t: &mut dyn Transport, from: &str, msg: Message) {
        if self.dead.is_some() {
            return;
        }
        self.peer.handle(t.now(), from, msg);
        self.pump(t);
    }

    fn handle_timeout(&mut self, t: &mut dyn Transport) {
        if self.dead.is_some() {
            return;
        }
        if self.peer.poll_timeout().is_some_and(|d| d <= t.now()) {
            self.peer.handle_timeout(t.now());
            self.pump(t);
        }
    }

    fn deadline(&self) -> Option<Millis> {
        self.peer.poll_timeout()
    }

    fn dead(&self) -> Option<&Failure> {
        self.dead.as_ref()
    }

    fn take_dead(&mut self) -> Option<Failure> {
        self.dead.take()
    }
}
