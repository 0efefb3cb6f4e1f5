//! The receiver peer: everything one receiving account answers, with no I/O.
//!
//! It owns its whole side of the protocol: accept, busy, resume, a new session id, the
//! 60-minute expiry, and every reply. It keeps its session table as data ([`SessionRecord`]s,
//! loaded by its driver and persisted through [`RxRequest::Persist`]). What needs the file
//! system (reading the account's file, journaling chunks, staging a verified table, writing the
//! result) is asked of the driver as an [`RxRequest`]; the driver answers with
//! [`Receiver::opened`], [`Receiver::staged`] and [`Receiver::committed`].
//!
//! Input: [`Receiver::handle`] (a message and the address it came from) and
//! [`Receiver::handle_timeout`]; output: [`Receiver::poll`] and [`Receiver::poll_timeout`].

use std::collections::{BTreeMap, VecDeque};

use crate::merge::Counts;
use crate::model::Target;
use crate::model::tables::TableName;

use super::chunk::{Chunks, Reassembly};
use super::session::{PeerInfo, Role, SessionRecord, SessionState, TableProgress, TableStatus};
use super::wire::{Announce, Checksums, Message, Name, Ranges, SessionId, TableSet};
use super::{MAX_ROUNDS, Millis, VERSION};

/// Who this receiver is: its account (address, name, canonical file) and the table it merges
/// into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub info: PeerInfo,
    pub target: Target,
}

/// Why the driver could not do what the receiver asked, as the text the receiver puts in its
/// SYNC_ERROR. The driver keeps the typed failure for its own report and exit code; the wire
/// carries only words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn of(reason: &impl std::fmt::Display) -> Refusal {
        Refusal(reason.to_string())
    }
}

impl From<&str> for Refusal {
    fn from(s: &str) -> Refusal {
        Refusal(s.to_string())
    }
}

impl From<String> for Refusal {
    fn from(s: String) -> Refusal {
        Refusal(s)
    }
}

/// Something for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum RxOut {
    /// Send `msg` to the peer at address `to`.
    Send {
        to: String,
        msg: Message,
    },
    Event(RxEvent),
    Request(RxRequest),
}

/// Work that needs the file system, in the order it must happen.
#[derive(Debug, Clone, PartialEq)]
pub enum RxRequest {
    /// Get ready to receive session `sid`: read the account's file, load and check the staged
    /// tables (`staged`: table and payload checksum) and the chunks journaled for tables in
    /// progress (`journals`); then call [`Receiver::opened`].
    Open {
        sid: SessionId,
        staged: Vec<(TableName, u32)>,
        journals: Vec<(TableName, u32)>,
    },
    /// Keep this chunk, so an interrupted transfer can resume.
    Journal {
        sid: SessionId,
        table: TableName,
        crc: u32,
        index: u32,
        payload: Vec<u8>,
    },
    /// Forget what is kept of this table (journaled chunks and staged copy).
    Forget { sid: SessionId, table: TableName },
    /// The table arrived whole and verified: deserialize, merge, make durable, then call
    /// [`Receiver::staged`].
    Stage {
        sid: SessionId,
        table: TableName,
        crc: u32,
        payload: Vec<u8>,
    },
    /// Every table is in: write the result, then call [`Receiver::committed`].
    Commit { sid: SessionId, metadata: bool },
    /// Write this record durably.
    Persist(Box<SessionRecord>),
    /// The session is over: its working state can go.
    Close { sid: SessionId },
}

/// What the driver found for [`RxRequest::Open`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opened {
    /// The staged tables that passed their check.
    pub staged: TableSet,
    /// Journaled chunks per table in progress.
    pub chunks: Vec<(TableName, Chunks)>,
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum RxEvent {
    Online {
        from: String,
        toon: Name,
        account: Name,
        version: u32,
    },
    /// A request was refused: busy with another sender, or another protocol version.
    Refused {
        from: String,
        account: Name,
        reason: String,
    },
    Accepted {
        sid: SessionId,
        account: Name,
        toon: Name,
        resumed: bool,
        done: TableSet,
        partial: TableSet,
    },
    /// A staged table failed its check and is received again.
    StagedDiscarded {
        sid: SessionId,
        table: TableName,
    },
    TableStarted {
        sid: SessionId,
        announce: Announce,
        held: u32,
    },
    AskedAgain {
        sid: SessionId,
        table: TableName,
        missing: u32,
        round: u32,
    },
    TableStaged {
        sid: SessionId,
        table: TableName,
        counts: Counts,
    },
    TableFailed {
        sid: SessionId,
        table: TableName,
        reason: String,
    },
    Committed {
        sid: SessionId,
        written: bool,
    },
    /// The session stopped: the sender gave up, or this side could not go on.
    Stopped {
        sid: SessionId,
        reason: String,
    },
    Expired {
        sid: SessionId,
    },
}

struct Incoming {
    chunks: Reassembly,
    rounds: u32,
}

/// The session being received.
struct Active {
    sid: SessionId,
    from: String,
    crcs: Checksums,
    incoming: BTreeMap<TableName, Incoming>,
    /// Tables listed as partial in SYNC_ACCEPT: their SYNC_INITIATE is answered with SYNC_READY.
    partial: TableSet,
    /// The tables of SYNC_COMMIT, once it came.
    commit: Option<TableSet>,
    committing: bool,
    committed: Option<bool>,
}

/// A request waiting for [`Receiver::opened`].
struct Opening {
    sid: SessionId,
    from: String,
    crcs: Checksums,
    resumed: bool,
    /// A session message that found its session on disk but not in memory (this receiver
    /// restarted): the session is reopened without a new SYNC_ACCEPT, then the message is
    /// handled.
    replay: Option<Message>,
}

pub struct Receiver {
    me: Endpoint,
    sessions: Vec<SessionRecord>,
    active: Option<Active>,
    opening: Option<Opening>,
    out: VecDeque<RxOut>,
}

impl Receiver {
    /// A receiver for `me`, with the session records its driver loaded (records of other
    /// receivers are ignored).
    pub fn new(me: Endpoint, sessions: Vec<SessionRecord>) -> Self {
        let sessions = sessions
            .into_iter()
            .filter(|s| s.role == Role::Receive && s.receiver.file == me.info.file)
            .collect();
        Receiver {
            me,
            sessions,
            active: None,
            opening: None,
            out: VecDeque::new(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.me
    }

    pub fn sessions(&self) -> &[SessionRecord] {
        &self.sessions
    }

    /// Whether a session is being received now (opened and not committed).
    pub fn is_in_session(&self) -> bool {
        self.opening.is_some() || self.active.as_ref().is_some_and(|a| a.committed.is_none())
    }

    /// The next thing for the driver.
    pub fn poll(&mut self) -> Option<RxOut> {
        self.out.pop_front()
    }

    /// When [`Receiver::handle_timeout`] has something to do: the active session's expiry.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let a = self.active.as_ref().filter(|a| a.committed.is_none())?;
        self.record(a.sid).map(SessionRecord::ends_at)
    }

    fn send(&mut self, to: &str, msg: Message) {
        self.out.push_back(RxOut::Send {
            to: to.to_string(),
            msg,
        });
    }

    fn event(&mut self, e: RxEvent) {
        self.out.push_back(RxOut::Event(e));
    }

    fn request(&mut self, r: RxRequest) {
        self.out.push_back(RxOut::Request(r));
    }

    fn record(&self, sid: SessionId) -> Option<&SessionRecord> {
        self.sessions.iter().find(|s| s.id == sid)
    }

    fn record_mut(&mut self, sid: SessionId) -> Option<&mut SessionRecord> {
        self.sessions.iter_mut().find(|s| s.id == sid)
    }

    fn persist(&mut self, sid: SessionId) {
        if let Some(r) = self.record(sid).cloned() {
            self.request(RxRequest::Persist(Box::new(r)));
        }
    }

    fn table_progress(&mut self, sid: SessionId, a: &Announce) -> Option<&mut TableProgress> {
        let r = self.record_mut(sid)?;
        Some(
            r.tables
                .entry(a.table)
                .or_insert_with(|| TableProgress::new(a.total, a.bytes, a.crc)),
        )
    }

    /// The counts of a table this session already holds with this checksum.
    fn held_counts(&self, sid: SessionId, table: TableName, crc: u32) -> Option<Counts> {
        let p = self.record(sid)?.tables.get(&table)?;
        (p.status == TableStatus::Complete && p.crc == crc).then(|| p.counts.unwrap_or_default())
    }

    /// Marks sessions idle for more than the timeout as expired.
    fn expire(&mut self, now: Millis) {
        let stale: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|s| s.state == SessionState::Active && !s.is_live(now))
            .map(|s| s.id)
            .collect();
        for sid in stale {
            if let Some(r) = self.record_mut(sid) {
                r.state = SessionState::Expired;
            }
            self.persist(sid);
            self.event(RxEvent::Expired { sid });
            if self.active.as_ref().is_some_and(|a| a.sid == sid) {
                self.active = None;
                self.request(RxRequest::Close { sid });
            }
        }
    }

    /// The time: expires the active session after an hour without activity.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.expire(now);
    }

    /// A message from the peer at address `from`.
    pub fn handle(&mut self, now: Millis, from: &str, msg: Message) {
        match msg {
            Message::Online {
                toon,
                account,
                version,
            } => self.event(RxEvent::Online {
                from: from.to_string(),
                toon,
                account,
                version,
            }),
            Message::SyncRequest {
                sid,
                version,
                toon,
                account,
                metadata,
                crcs,
            } => self.on_request(now, from, sid, version, toon, account, metadata, crcs),
            // Only a sender's messages are for a receiver.
            Message::SyncAccept { .. }
            | Message::SyncBusy { .. }
            | Message::SyncReady { .. }
            | Message::SyncResend { .. }
            | Message::SyncConfirm { .. }
            | Message::SyncComplete { .. } => {}
            msg => {
                let live = self
                    .active
                    .as_ref()
                    .is_some_and(|a| a.sid == msg.sid() && a.from == from);
                if live {
                    if let Some(r) = self.record_mut(msg.sid()) {
                        r.last_activity = now;
                    }
                    self.on_session_message(from, msg);
                } else if self.opening.is_none()
                    && self
                        .record(msg.sid())
                        .is_some_and(|r| r.is_live(now) && r.sender.addr == from)
                {
                    self.reopen(from, msg);
                } else {
                    self.on_finished_session_message(from, msg);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        now: Millis,
        from: &str,
        proposed: SessionId,
        version: u32,
        toon: Name,
        account: Name,
        metadata: bool,
        crcs: Checksums,
    ) {
        if version != VERSION {
            let reason = format!(
                "unsupported protocol version {version}; this receiver speaks version {VERSION}"
            );
            self.send(
                from,
                Message::SyncError {
                    sid: proposed,
                    table: None,
                    reason: reason.clone(),
                },
            );
            self.event(RxEvent::Refused {
                from: from.to_string(),
                account,
                reason,
            });
            return;
        }
        if self.opening.is_some() {
            // Still preparing an earlier request; the sender asks again.
            return;
        }
        self.expire(now);

        // A repeated request of the session in progress: the same answer.
        if let Some(a) = &self.active
            && a.from == from
            && a.committed.is_none()
            && a.crcs == crcs
        {
            let sid = a.sid;
            let partial = a.partial;
            let done = self.done_tables(sid);
            if let Some(r) = self.record_mut(sid) {
                r.last_activity = now;
            }
            self.send(from, Message::SyncAccept { sid, done, partial });
            return;
        }

        // Busy with another sender's live session.
        if let Some(other) = self
            .sessions
            .iter()
            .find(|s| s.is_live(now) && s.sender.addr != from)
        {
            let with = Name::sanitize(&other.sender.account);
            self.send(
                from,
                Message::SyncBusy {
                    sid: proposed,
                    with: with.clone(),
                },
            );
            self.event(RxEvent::Refused {
                from: from.to_string(),
                account,
                reason: format!("busy with a sync from {with}"),
            });
            return;
        }

        // This sender's live session resumes (the same target), or a new one starts.
        if let Some(a) = self.active.take() {
            self.request(RxRequest::Close { sid: a.sid });
        }
        let target = self.me.target;
        let superseded: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|s| s.is_live(now) && s.sender.addr == from && s.target != target)
            .map(|s| s.id)
            .collect();
        for sid in superseded {
            if let Some(r) = self.record_mut(sid) {
                r.state = SessionState::Expired;
            }
            self.persist(sid);
        }
        let existing = self
            .sessions
            .iter()
            .rev()
            .find(|s| s.is_live(now) && s.sender.addr == from)
            .map(|s| s.id);
        let (sid, resumed) = match existing {
            Some(sid) => (sid, true),
            None => {
                let sid = self.fresh_id(proposed);
                self.sessions.push(SessionRecord {
                    id: sid,
                    role: Role::Receive,
                    sender: PeerInfo {
                        addr: from.to_string(),
                        account: account.to_string(),
                        toon: String::new(),
                        file: String::new(),
                    },
                    receiver: self.me.info.clone(),
                    target,
                    metadata,
                    started: now,
                    last_activity: now,
                    state: SessionState::Active,
                    tables: BTreeMap::new(),
                    written: None,
                    error: None,
                });
                (sid, false)
            }
        };
        let mut staged = Vec::new();
        let mut journals = Vec::new();
        let mut stale = Vec::new();
        if let Some(r) = self.record_mut(sid) {
            r.sender.toon = toon.to_string();
            r.sender.account = account.to_string();
            r.metadata |= metadata;
            r.last_activity = now;
            for (t, p) in r.tables.iter_mut() {
                let same = crcs.get(*t) == Some(p.crc);
                match p.status {
                    TableStatus::Complete if same => staged.push((*t, p.crc)),
                    TableStatus::InProgress if same => journals.push((*t, p.crc)),
                    TableStatus::Pending => {}
                    _ => {
                        // Held for data the sender no longer has: received again.
                        p.status = TableStatus::Pending;
                        p.held = 0;
                        p.counts = None;
                        p.error = None;
                        stale.push(*t);
                    }
                }
            }
        }
        for table in stale {
            self.request(RxRequest::Forget { sid, table });
        }
        self.opening = Some(Opening {
            sid,
            from: from.to_string(),
            crcs,
            resumed,
            replay: None,
        });
        self.request(RxRequest::Open {
            sid,
            staged,
            journals,
        });
    }

    /// Picks up a live session this receiver held before it restarted.
    fn reopen(&mut self, from: &str, msg: Message) {
        let sid = msg.sid();
        let Some(r) = self.record(sid) else {
            return;
        };
        let mut crcs = Checksums::default();
        let mut staged = Vec::new();
        let mut journals = Vec::new();
        for (t, p) in &r.tables {
            crcs.set(*t, p.crc);
            match p.status {
                TableStatus::Complete => staged.push((*t, p.crc)),
                TableStatus::InProgress => journals.push((*t, p.crc)),
                _ => {}
            }
        }
        if let Some(a) = self.active.take() {
            self.request(RxRequest::Close { sid: a.sid });
        }
        self.opening = Some(Opening {
            sid,
            from: from.to_string(),
            crcs,
            resumed: true,
            replay: Some(msg),
        });
        self.request(RxRequest::Open {
            sid,
            staged,
            journals,
        });
    }

    fn fresh_id(&self, proposed: SessionId) -> SessionId {
        let mut sid = proposed;
        while sid.0 == 0 || self.record(sid).is_some() {
            sid = SessionId(sid.0.wrapping_add(0x9E37_79B9));
        }
        sid
    }

    fn done_tables(&self, sid: SessionId) -> TableSet {
        self.record(sid)
            .map(|r| {
                r.tables
                    .iter()
                    .filter(|(_, p)| p.status == TableStatus::Complete)
                    .map(|(t, _)| *t)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The driver's answer to [`RxRequest::Open`]: the account's file could be read (or not),
    /// and what it found of earlier runs.
    pub fn opened(&mut self, now: Millis, result: Result<Opened, Refusal>) {
        let Some(o) = self.opening.take() else {
            return;
        };
        let sid = o.sid;
        let opened = match result {
            Ok(opened) => opened,
            Err(Refusal(reason)) => {
                if let Some(r) = self.record_mut(sid) {
                    if !o.resumed {
                        // Nothing was held: the session never began.
                        r.state = SessionState::Failed;
                    }
                    r.error = Some(reason.clone());
                }
                self.persist(sid);
                self.send(
                    &o.from,
                    Message::SyncError {
                        sid,
                        table: None,
                        reason: reason.clone(),
                    },
                );
                self.event(RxEvent::Stopped { sid, reason });
                return;
            }
        };
        let mut incoming = BTreeMap::new();
        let mut partial = TableSet::EMPTY;
        let mut discarded = Vec::new();
        if let Some(r) = self.record_mut(sid) {
            for (t, p) in r.tables.iter_mut() {
                match p.status {
                    TableStatus::Complete if !opened.staged.contains(*t) => {
                        p.status = TableStatus::Pending;
                        p.counts = None;
                        discarded.push(*t);
                    }
                    TableStatus::InProgress => {
                        let chunks = opened
                            .chunks
                            .iter()
                            .find(|(table, _)| table == t)
                            .map(|(_, c)| c.as_slice())
                            .unwrap_or_default();
                        let announce = Announce {
                            table: *t,
                            total: p.chunks,
                            bytes: p.bytes,
                            crc: p.crc,
                        };
                        let mut re = Reassembly::new(announce);
                        for (index, bytes) in chunks {
                            re.insert(*index, bytes.clone());
                        }
                        p.held = re.held();
                        if re.held() > 0 && announce.is_possible() {
                            partial.insert(*t);
                            incoming.insert(
                                *t,
                                Incoming {
                                    chunks: re,
                                    rounds: 0,
                                },
                            );
                        } else {
                            p.status = TableStatus::Pending;
                        }
                    }
                    _ => {}
                }
            }
            r.last_activity = now;
        }
        for table in discarded {
            self.request(RxRequest::Forget { sid, table });
            self.event(RxEvent::StagedDiscarded { sid, table });
        }
        let done = self.done_tables(sid);
        if o.replay.is_some() {
            // The sender is past SYNC_ACCEPT and may be waiting for SYNC_READY of any table
            // not held yet.
            partial = TableName::ALL
                .into_iter()
                .filter(|t| !done.contains(*t))
                .collect();
        }
        self.active = Some(Active {
            sid,
            from: o.from.clone(),
            crcs: o.crcs,
            incoming,
            partial,
            commit: None,
            committing: false,
            committed: None,
        });
        self.persist(sid);
        if let Some(msg) = o.replay {
            self.on_session_message(&o.from, msg);
            return;
        }
        self.send(&o.from, Message::SyncAccept { sid, done, partial });
        let (account, toon) = self
            .record(sid)
            .map(|r| {
                (
                    Name::sanitize(&r.sender.account),
                    Name::sanitize(&r.sender.toon),
                )
            })
            .unwrap_or_else(|| (Name::sanitize(""), Name::sanitize("")));
        self.event(RxEvent::Accepted {
            sid,
            account,
            toon,
            resumed: o.resumed,
            done,
            partial,
        });
    }

    fn on_session_message(&mut self, from: &str, msg: Message) {
        let Some(sid) = self.active.as_ref().map(|a| a.sid) else {
            return;
        };
        match msg {
            Message::SyncInitiate { announce, .. } => {
                let table = announce.table;
                if let Some(counts) = self.held_counts(sid, table, announce.crc) {
                    self.send(from, Message::SyncConfirm { sid, table, counts });
                    return;
                }
                if !announce.is_possible() {
                    self.refuse_table(from, sid, table, "the announced size is not possible");
                    return;
                }
                self.start_table(sid, announce);
                let listed_partial = self
                    .active
                    .as_ref()
                    .is_some_and(|a| a.partial.contains(table));
                if listed_partial {
                    let need = self.missing(table);
                    self.send(from, Message::SyncReady { sid, table, need });
                }
            }
            Message::SyncData {
                table,
                index,
                total,
                payload,
                ..
            } => {
                let Some(a) = self.active.as_mut() else {
                    return;
                };
                let Some(inc) = a.incoming.get_mut(&table) else {
                    return;
                };
                if inc.chunks.announce.total != total {
                    return;
                }
                let crc = inc.chunks.announce.crc;
                if inc.chunks.insert(index, payload.clone()) {
                    self.request(RxRequest::Journal {
                        sid,
                        table,
                        crc,
                        index,
                        payload,
                    });
                }
            }
            Message::SyncConfirmRequest { announce, .. } => {
                let table = announce.table;
                if let Some(counts) = self.held_counts(sid, table, announce.crc) {
                    self.send(from, Message::SyncConfirm { sid, table, counts });
                    return;
                }
                if !announce.is_possible() {
                    self.refuse_table(from, sid, table, "the announced size is not possible");
                    return;
                }
                // A lost SYNC_INITIATE: the repeated announcement starts the table.
                self.start_table(sid, announce);
                self.confirm_or_resend(from, sid, table);
            }
            Message::SyncCommit { tables, .. } => {
                let Some(a) = self.active.as_mut() else {
                    return;
                };
                if let Some(written) = a.committed {
                    self.send(from, Message::SyncComplete { sid, written });
                    return;
                }
                a.commit = Some(tables);
                self.check_commit(sid);
            }
            Message::SyncError { reason, .. } => {
                let reason = format!("the sender stopped: {reason}");
                if let Some(r) = self.record_mut(sid) {
                    r.state = SessionState::Failed;
                    r.error = Some(reason.clone());
                }
                self.persist(sid);
                self.active = None;
                self.request(RxRequest::Close { sid });
                self.event(RxEvent::Stopped { sid, reason });
            }
            _ => {}
        }
    }

    /// Answers for a session that is over (its last answers were lost), from its record.
    fn on_finished_session_message(&mut self, from: &str, msg: Message) {
        let Some(r) = self.sessions.iter().find(|s| {
            s.id == msg.sid() && s.sender.addr == from && s.state == SessionState::Complete
        }) else {
            return;
        };
        let sid = r.id;
        match msg {
            Message::SyncConfirmRequest { announce, .. }
            | Message::SyncInitiate { announce, .. } => {
                if let Some(counts) = self.held_counts(sid, announce.table, announce.crc) {
                    self.send(
                        from,
                        Message::SyncConfirm {
                            sid,
                            table: announce.table,
                            counts,
                        },
                    );
                }
            }
            Message::SyncCommit { .. } => {
                let written = r.written.unwrap_or(false);
                self.send(from, Message::SyncComplete { sid, written });
            }
            _ => {}
        }
    }

    /// Makes `announce` the table's transfer in progress (keeping what arrived if it is the same
    /// one).
    fn start_table(&mut self, sid: SessionId, announce: Announce) {
        let table = announce.table;
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.incoming
            .get(&table)
            .is_some_and(|inc| inc.chunks.announce == announce)
        {
            return;
        }
        let replaced = a.incoming.contains_key(&table);
        a.incoming.insert(
            table,
            Incoming {
                chunks: Reassembly::new(announce),
                rounds: 0,
            },
        );
        a.crcs.set(table, announce.crc);
        if replaced {
            self.request(RxRequest::Forget { sid, table });
        }
        if let Some(p) = self.table_progress(sid, &announce) {
            *p = TableProgress::new(announce.total, announce.bytes, announce.crc);
            p.status = TableStatus::InProgress;
        }
        self.persist(sid);
        self.event(RxEvent::TableStarted {
            sid,
            announce,
            held: 0,
        });
    }

    /// The missing chunks of a table in progress, as many ranges as a message carries.
    fn missing(&self, table: TableName) -> Ranges {
        self.active
            .as_ref()
            .and_then(|a| a.incoming.get(&table))
            .map(|inc| Ranges(inc.chunks.missing_ranges(64)))
            .unwrap_or_default()
    }

    fn confirm_or_resend(&mut self, from: &str, sid: SessionId, table: TableName) {
        let Some(inc) = self
            .active
            .as_mut()
            .and_then(|a| a.incoming.get_mut(&table))
        else {
            return;
        };
        if !inc.chunks.is_complete() {
            inc.rounds += 1;
            let (round, missing) = (inc.rounds, inc.chunks.missing_count());
            let total = inc.chunks.announce.total;
            if round > MAX_ROUNDS {
                let reason =
                    format!("{missing} of {total} chunks still missing after {MAX_ROUNDS} rounds");
                self.refuse_table(from, sid, table, &reason);
                return;
            }
            let need = self.missing(table);
            self.send(
                from,
                Message::SyncResend {
                    sid,
                    table,
                    missing: need,
                },
            );
            self.event(RxEvent::AskedAgain {
                sid,
                table,
                missing,
                round,
            });
            if let Some(p) = self.record_mut(sid).and_then(|r| r.tables.get_mut(&table)) {
                p.held = total - missing;
            }
            return;
        }
        match inc.chunks.assemble() {
            Ok(payload) => {
                let crc = inc.chunks.announce.crc;
                self.request(RxRequest::Stage {
                    sid,
                    table,
                    crc,
                    payload,
                });
            }
            Err(e) => self.refuse_table(from, sid, table, &e.to_string()),
        }
    }

    /// A table failed: the sender is told, and the session ends (nothing is written).
    fn refuse_table(&mut self, from: &str, sid: SessionId, table: TableName, reason: &str) {
        self.send(
            from,
            Message::SyncError {
                sid,
                table: Some(table),
                reason: reason.to_string(),
            },
        );
        if let Some(r) = self.record_mut(sid) {
            r.state = SessionState::Failed;
            r.error = Some(format!("{table}: {reason}"));
            if let Some(p) = r.tables.get_mut(&table) {
                p.status = TableStatus::Failed;
                p.error = Some(reason.to_string());
            }
        }
        self.persist(sid);
        self.request(RxRequest::Forget { sid, table });
        self.active = None;
        self.request(RxRequest::Close { sid });
        self.event(RxEvent::TableFailed {
            sid,
            table,
            reason: reason.to_string(),
        });
    }

    /// The driver's answer to [`RxRequest::Stage`]: the table is merged and durable (with the
    /// merge's counts), or it could not be used.
    pub fn staged(&mut self, table: TableName, result: Result<Counts, Refusal>) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let (sid, from) = (a.sid, a.from.clone());
        let Some(inc) = a.incoming.remove(&table) else {
            return;
        };
        match result {
            Ok(counts) => {
                if let Some(p) = self.record_mut(sid).and_then(|r| r.tables.get_mut(&table)) {
                    p.status = TableStatus::Complete;
                    p.held = inc.chunks.announce.total;
                    p.counts = Some(counts);
                }
                self.persist(sid);
                self.send(&from, Message::SyncConfirm { sid, table, counts });
                self.event(RxEvent::TableStaged { sid, table, counts });
                self.check_commit(sid);
            }
            Err(Refusal(reason)) => self.refuse_table(&from, sid, table, &reason),
        }
    }

    fn check_commit(&mut self, sid: SessionId) {
        let done = self.done_tables(sid);
        let metadata = self.record(sid).is_some_and(|r| r.metadata);
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let ready = a.commit.is_some_and(|set| done.covers(set));
        if ready && !a.committing && a.committed.is_none() {
            a.committing = true;
            self.request(RxRequest::Commit { sid, metadata });
        }
    }

    /// The driver's answer to [`RxRequest::Commit`]: whether it wrote a file, or why it could
    /// not. A failed commit leaves the session resumable: the staged tables stay.
    pub fn committed(&mut self, now: Millis, result: Result<bool, Refusal>) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let (sid, from) = (a.sid, a.from.clone());
        a.committing = false;
        match result {
            Ok(written) => {
                a.committed = Some(written);
                if let Some(r) = self.record_mut(sid) {
                    r.state = SessionState::Complete;
                    r.written = Some(written);
                    r.last_activity = now;
                }
                self.persist(sid);
                self.send(&from, Message::SyncComplete { sid, written });
                self.event(RxEvent::Committed { sid, written });
            }
            Err(Refusal(reason)) => {
                if let Some(r) = self.record_mut(sid) {
                    r.error = Some(reason.clone());
                    r.last_activity = now;
                }
                self.persist(sid);
                self.active = None;
                self.request(RxRequest::Close { sid });
                self.send(
                    &from,
                    Message::SyncError {
                        sid,
                        table: None,
                        reason: reason.clone(),
                    },
                );
                self.event(RxEvent::Stopped { sid, reason });
            }
        }
    }
}

#[cfg(test)]
mod tests;
