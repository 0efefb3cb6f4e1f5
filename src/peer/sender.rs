//! The sender's driver: pumps one [`Sender`] over a transport, logs its steps to `sender.log`
//! and keeps the sender's own record of the session (never the receiver's).

use std::collections::BTreeMap;

use crate::failure::Failure;
use crate::merge::Counts;
use crate::model::Target;
use crate::protocol::sender::{Outcome, Sender, SenderEvent, SenderOut, Source};
use crate::protocol::session::{
    PeerInfo, Role, SessionRecord, SessionState, TableProgress, TableStatus,
};
use crate::protocol::wire::{Message, SessionId};
use crate::protocol::{Millis, Timing};
use crate::state::Store;
use crate::transport::Transport;

use super::Driver;
use super::log::Log;

/// Messages and bytes a sender put on the transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    pub messages: u64,
    pub bytes: u64,
    pub chunks: u64,
}

/// Called as chunks go out: (chunks sent so far, chunks of the sync).
pub type Progress = Box<dyn FnMut(u64, u64)>;

pub struct SenderDriver<S: Store> {
    peer: Sender,
    me: PeerInfo,
    to: PeerInfo,
    target: Target,
    store: Option<S>,
    record: Option<SessionRecord>,
    log: Log,
    stats: SendStats,
    total_chunks: u64,
    progress: Option<Progress>,
    /// Send a flight in pieces of this many messages, each once the transport's backlog is
    /// below it (none: a flight goes whole).
    piece: Option<usize>,
    resumed: bool,
    dead: Option<Failure>,
}

impl<S: Store> SenderDriver<S> {
    /// A driver for a sync of `source` from `me` to `to`; `store` keeps the sender's own record
    /// (none for a dry run).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: Source,
        proposed: SessionId,
        timing: Timing,
        me: PeerInfo,
        to: PeerInfo,
        target: Target,
        store: Option<S>,
        log: Log,
    ) -> Self {
        let mut me = me;
        if me.toon.is_empty() {
            me.toon = source.toon.to_string();
        }
        let peer = Sender::new(timing, proposed, source);
        let total_chunks = peer.tables().map(|(a, _)| u64::from(a.total)).sum();
        SenderDriver {
            peer,
            me,
            to,
            target,
            store,
            record: None,
            log,
            stats: SendStats::default(),
            total_chunks,
            progress: None,
            piece: None,
            resumed: false,
            dead: None,
        }
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Sends each flight in pieces of `messages` (at least 1), so that a link in memory holds
    /// no more than that of a large table at once. For a link without transit time: on a
    /// slower one each piece waits a round, and a large table could outlast the retry time.
    /// Only a loop that calls [`Driver::send_more`] ([`crate::peer::run`]) sends the rest.
    pub fn with_pieces(mut self, messages: usize) -> Self {
        self.piece = Some(messages.max(1));
        self
    }

    pub fn peer(&self) -> &Sender {
        &self.peer
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.peer.outcome()
    }

    pub fn stats(&self) -> SendStats {
        self.stats
    }

    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn start(&mut self, t: &mut dyn Transport) {
        self.peer.start(t.now());
        self.pump(t);
    }

    fn record_mut(&mut self, now: Millis) -> &mut SessionRecord {
        let sid = self.peer.sid();
        let (me, to, target) = (&self.me, &self.to, self.target);
        let r = self.record.get_or_insert_with(|| SessionRecord {
            id: sid,
            role: Role::Send,
            sender: me.clone(),
            receiver: to.clone(),
            target,
            metadata: false,
            started: now,
            last_activity: now,
            state: SessionState::Active,
            tables: BTreeMap::new(),
            written: None,
            error: None,
        });
        r.last_activity = now;
        r
    }

    fn save(&mut self) {
        if let (Some(store), Some(r)) = (self.store.as_mut(), self.record.as_ref())
            && let Err(e) = store.save(r)
        {
            self.dead = Some(Failure::State(e));
        }
    }

    fn event(&mut self, now: Millis, e: SenderEvent) {
        let sid = self.peer.sid();
        match e {
            SenderEvent::Requested { proposed } => self.log.line(
                now,
                proposed,
                "request",
                None,
                &format!("asked {} whether it is idle", self.to.account),
            ),
            SenderEvent::Accepted {
                sid,
                done,
                partial,
                resumed,
            } => {
                self.resumed = resumed;
                let tables: Vec<_> = self
                    .peer
                    .tables()
                    .map(|(a, _)| (a.table, TableProgress::new(a.total, a.bytes, a.crc)))
                    .collect();
                let r = self.record_mut(now);
                r.id = sid;
                r.tables = tables.into_iter().collect();
                self.save();
                self.log.line(
                    now,
                    sid,
                    "accepted",
                    None,
                    &if resumed {
                        format!("resuming; the receiver holds {done}, part of {partial}")
                    } else {
                        "new session".to_string()
                    },
                );
            }
            SenderEvent::TableSent {
                table,
                chunks,
                bytes,
                sent,
            } => {
                if let Some(p) = self.record_mut(now).tables.get_mut(&table) {
                    p.status = TableStatus::InProgress;
                    p.held = sent;
                }
                self.log.line(
                    now,
                    sid,
                    "send",
                    Some(table),
                    &format!("{sent} of {chunks} chunks, {bytes} bytes"),
                );
            }
            SenderEvent::Resending {
                table,
                chunks,
                round,
            } => self.log.line(
                now,
                sid,
                "resend",
                Some(table),
                &format!("round {round}: {chunks} chunks again"),
            ),
            SenderEvent::Retrying { attempt } => {
                self.log
                    .line(now, sid, "retry", None, &format!("attempt {attempt}"))
            }
            SenderEvent::TableConfirmed { table, counts } => {
                if let Some(p) = self.record_mut(now).tables.get_mut(&table) {
                    p.status = TableStatus::Complete;
                    p.counts = Some(counts);
                }
                self.save();
                self.log
                    .line(now, sid, "confirmed", Some(table), &counts_text(&counts));
            }
            SenderEvent::Finished(outcome) => {
                let (state, detail, error) = match &outcome {
                    Outcome::Complete { written } => (
                        SessionState::Complete,
                        format!(
                            "complete: {} messages, {} bytes; the receiver {}",
                            self.stats.messages,
                            self.stats.bytes,
                            if *written {
                                "wrote its file"
                            } else {
                                "wrote nothing"
                            }
                        ),
                        None,
                    ),
                    Outcome::Busy { with } => (
                        SessionState::Busy,
                        format!("the receiver is busy with a sync from {with}"),
                        None,
                    ),
                    Outcome::Failed(f) => (SessionState::Failed, format!("failed: {f}"), Some(f)),
                };
                let r = self.record_mut(now);
                r.state = state;
                r.error = error.map(ToString::to_string);
                if let Outcome::Complete { written } = outcome {
                    r.written = Some(written);
                }
                self.save();
                self.log.line(now, sid, "end", None, &detail);
            }
        }
    }

    /// Everything the peer produced: one flight of messages, its events logged. With pieces,
    /// at most one piece, and none while the transport holds a piece already (the run loop
    /// asks again through [`Driver::send_more`]).
    fn pump(&mut self, t: &mut dyn Transport) {
        if self.piece.is_some_and(|piece| t.backlog() >= piece) {
            return;
        }
        let now = t.now();
        let mut flight = Vec::new();
        let piece = self.piece.unwrap_or(usize::MAX);
        while flight.len() < piece
            && let Some(o) = self.peer.poll()
        {
            match o {
                SenderOut::Send(m) => {
                    if matches!(m, Message::SyncData { .. }) {
                        self.stats.chunks += 1;
                    }
                    let bytes = m.encode();
                    self.stats.messages += 1;
                    self.stats.bytes += bytes.len() as u64;
                    flight.push(bytes);
                }
                SenderOut::Event(e) => self.event(now, e),
            }
        }
        if let Some(p) = self.progress.as_mut() {
            p(self.stats.chunks.min(self.total_chunks), self.total_chunks);
        }
        if !flight.is_empty()
            && let Err(e) = t.send(&self.me.addr, &self.to.addr, flight)
        {
            self.dead = Some(Failure::Transport(e));
        }
    }
}

fn counts_text(c: &Counts) -> String {
    format!(
        "received={} added={} updated={} unchanged={} kept_newer={} conflicts={} skipped={}",
        c.received, c.added, c.updated, c.unchanged, c.kept_newer, c.conflicts, c.skipped
    )
}

impl<S: Store> Driver for SenderDriver<S> {
    fn addr(&self) -> &str {
        &self.me.addr
    }

    fn handle(&mut self, t: &mut dyn Transport, _from: &str, msg: Message) {
        if self.dead.is_some() {
            return;
        }
        self.peer.handle(t.now(), msg);
        self.pump(t);
    }

    fn handle_timeout(&mut self, t: &mut dyn Transport) {
        if self.dead.is_some() {
            return;
        }
        self.peer.handle_timeout(t.now());
        self.pump(t);
    }

    fn deadline(&self) -> Option<Millis> {
        self.peer.poll_timeout()
    }

    fn has_more(&self) -> bool {
        self.dead.is_none() && self.piece.is_some() && self.peer.has_output()
    }

    fn send_more(&mut self, t: &mut dyn Transport) {
        self.pump(t);
    }

    /// The sync ended and everything it made went out (its end is logged and recorded).
    fn is_finished(&self) -> bool {
        self.peer.outcome().is_some() && !self.peer.has_output()
    }

    fn dead(&self) -> Option<&Failure> {
        self.dead.as_ref()
    }

    fn take_dead(&mut self) -> Option<Failure> {
        self.dead.take()
    }
}
