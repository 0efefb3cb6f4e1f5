//! The sender peer: one sync from one source to one receiver, with no I/O.
//!
//! Input: [`Sender::start`], [`Sender::handle`] (a message from the receiver) and
//! [`Sender::handle_timeout`]; output: [`Sender::poll`] (messages to send and events to log,
//! in order) and [`Sender::poll_timeout`]. Everything one call produces is one flight: the
//! driver hands it to the transport together.
//!
//! A table the receiver has nothing of travels in one go (announcement, every chunk, the
//! confirmation request); several tables travel in one flight, followed by SYNC_COMMIT, so a
//! whole sync takes two round trips when nothing is lost.

use std::collections::VecDeque;
use std::ops::Range;

use crate::merge::Counts;
use crate::model::tables::TableName;

use super::chunk::{Payload, Unpacker, slices_by};
use super::wire::{Announce, Checksums, Message, Name, Ranges, SessionId, TableSet};
use super::{MAX_ROUNDS, Millis, Timing, VERSION};

/// What the sender sends: who it is and its tables (in sync order, at most one of each).
#[derive(Debug, Clone)]
pub struct Source {
    pub toon: Name,
    pub account: Name,
    /// Whether the source has a `metadata` table.
    pub metadata: bool,
    pub payloads: Vec<Payload>,
}

/// Something for the driver: a message to send, or an event to log.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderOut {
    Send(Message),
    Event(SenderEvent),
}

/// What happened, for the log and the sender's own session record.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderEvent {
    Requested {
        proposed: SessionId,
    },
    /// `resumed`: the receiver continues an interrupted session instead of the proposed one.
    Accepted {
        sid: SessionId,
        done: TableSet,
        partial: TableSet,
        resumed: bool,
    },
    TableSent {
        table: TableName,
        chunks: u32,
        bytes: u64,
        /// Chunks sent now (fewer than `chunks` when resuming, 0 for a table already held).
        sent: u32,
    },
    Resending {
        table: TableName,
        chunks: u32,
        round: u32,
    },
    Retrying {
        attempt: u32,
    },
    TableConfirmed {
        table: TableName,
        counts: Counts,
    },
    Finished(Outcome),
}

/// Why a sync failed, for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    #[error("the receiver did not answer after {attempts} attempts")]
    NoAnswer { attempts: u32 },
    #[error("{table}: chunks still missing after {rounds} rounds")]
    TooManyRounds { table: TableName, rounds: u32 },
    #[error("the receiver refused {}: {reason}", table.map_or("the sync".to_string(), |t| t.to_string()))]
    Refused {
        table: Option<TableName>,
        reason: String,
    },
}

/// How a sync ended for the sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete { written: bool },
    Busy { with: Name },
    Failed(SendFailure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableState {
    /// Announced to a receiver that holds part of it: waiting for SYNC_READY.
    AwaitReady,
    /// Sent (or held by the receiver already): waiting for SYNC_CONFIRM.
    Confirming,
    Confirmed,
}

struct Outgoing {
    payload: Payload,
    /// Unpacks the payload's chunks as they are polled.
    unpacker: Unpacker,
    slices: Vec<Range<usize>>,
    state: TableState,
    rounds: u32,
    counts: Option<Counts>,
}

impl Outgoing {
    fn announce(&self) -> Announce {
        Announce {
            table: self.payload.table,
            total: self.slices.len() as u32,
            bytes: self.payload.packed.len() as u64,
            crc: self.payload.crc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Hello,
    Transfer,
    Done,
}

pub struct Sender {
    timing: Timing,
    proposed: SessionId,
    sid: SessionId,
    toon: Name,
    account: Name,
    metadata: bool,
    tables: Vec<Outgoing>,
    state: State,
    /// The receiver's SYNC_COMPLETE, once it came.
    committed: Option<bool>,
    deadline: Option<Millis>,
    attempts: u32,
    outcome: Option<Outcome>,
    out: VecDeque<Queued>,
}

/// What waits to be polled. Chunks are made one at a time as they are polled, so a flight of a
/// large table never exists as messages all at once.
#[derive(Debug)]
enum Queued {
    Out(SenderOut),
    /// Chunks `from..=to` (within the table's slices) of table `table`.
    Chunks {
        table: usize,
        from: u32,
        to: u32,
    },
}

impl Sender {
    /// A sender of `source`, proposing session `proposed` (not 0).
    pub fn new(timing: Timing, proposed: SessionId, source: Source) -> Self {
        let tables = source
            .payloads
            .into_iter()
            .map(|payload| {
                let mut unpacker = Unpacker::new(payload.packed.clone());
                let byte = |at| unpacker.byte(at).unwrap_or(0);
                let slices = slices_by(payload.packed.len(), byte, &source.toon, payload.table);
                Outgoing {
                    slices,
                    unpacker,
                    payload,
                    state: TableState::Confirming,
                    rounds: 0,
                    counts: None,
                }
            })
            .collect();
        Sender {
            timing,
            proposed,
            sid: proposed,
            toon: source.toon,
            account: source.account,
            metadata: source.metadata,
            tables,
            state: State::Idle,
            committed: None,
            deadline: None,
            attempts: 0,
            outcome: None,
            out: VecDeque::new(),
        }
    }

    /// The session: the proposed id until the receiver accepts, then the one it chose.
    pub fn sid(&self) -> SessionId {
        self.sid
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// When [`Sender::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.deadline
    }

    /// The next message to send or event to log.
    pub fn poll(&mut self) -> Option<SenderOut> {
        loop {
            match self.out.pop_front()? {
                Queued::Out(o) => return Some(o),
                Queued::Chunks { table, from, to } => {
                    if from < to {
                        self.out.push_front(Queued::Chunks {
                            table,
                            from: from + 1,
                            to,
                        });
                    }
                    if let Some(m) = self.chunk(table, from) {
                        return Some(SenderOut::Send(m));
                    }
                }
            }
        }
    }

    /// Whether [`Sender::poll`] has something.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Per table: its announcement and its counts once confirmed.
    pub fn tables(&self) -> impl Iterator<Item = (Announce, Option<Counts>)> + '_ {
        self.tables.iter().map(|t| (t.announce(), t.counts))
    }

    fn checksums(&self) -> Checksums {
        let mut c = Checksums::default();
        for t in &self.tables {
            c.set(t.payload.table, t.payload.crc);
        }
        c
    }

    fn all_tables(&self) -> TableSet {
        self.tables.iter().map(|t| t.payload.table).collect()
    }

    fn send(&mut self, m: Message) {
        self.out.push_back(Queued::Out(SenderOut::Send(m)));
    }

    fn event(&mut self, e: SenderEvent) {
        self.out.push_back(Queued::Out(SenderOut::Event(e)));
    }

    fn arm(&mut self, now: Millis) {
        self.attempts = 0;
        self.deadline = Some(now + self.timing.retry_ms);
    }

    /// Announces itself and asks whether the receiver is idle.
    pub fn start(&mut self, now: Millis) {
        if self.state != State::Idle {
            return;
        }
        self.state = State::Hello;
        self.send(Message::Online {
            toon: self.toon.clone(),
            account: self.account.clone(),
            version: VERSION,
        });
        self.event(SenderEvent::Requested {
            proposed: self.proposed,
        });
        self.send(self.request());
        self.arm(now);
    }

    fn request(&self) -> Message {
        Message::SyncRequest {
            sid: self.proposed,
            version: VERSION,
            toon: self.toon.clone(),
            account: self.account.clone(),
            metadata: self.metadata,
            crcs: self.checksums(),
        }
    }

    /// Data message `index` of table `i` (`None`: no such chunk).
    fn chunk(&mut self, i: usize, index: u32) -> Option<Message> {
        let t = self.tables.get_mut(i)?;
        let range = t.slices.get(index.checked_sub(1)? as usize)?.clone();
        let payload = t.unpacker.read(range);
        // The slices are of the payload's length, and bytes packed here unpack.
        debug_assert!(payload.is_some(), "chunk {index} of table {i} unpacks");
        let payload = payload?;
        Some(Message::SyncData {
            sid: self.sid,
            toon: self.toon.clone(),
            table: t.payload.table,
            index,
            total: t.slices.len() as u32,
            payload,
        })
    }

    /// Sends the chunks `which` of table `i` and asks for its confirmation; returns how many
    /// chunks went out.
    fn send_chunks(&mut self, i: usize, which: &Ranges) -> u32 {
        let total = self.tables[i].slices.len() as u32;
        let mut n = 0u32;
        for &(a, b) in &which.0 {
            let (from, to) = (a.max(1), b.min(total));
            if from <= to {
                self.out.push_back(Queued::Chunks { table: i, from, to });
                n = n.saturating_add(to - from + 1);
            }
        }
        let announce = self.tables[i].announce();
        self.send(Message::SyncConfirmRequest {
            sid: self.sid,
            announce,
        });
        self.tables[i].state = TableState::Confirming;
        n
    }

    fn finish(&mut self, outcome: Outcome) {
        // Chunks not yet polled (a driver sending a flight in pieces) are not worth sending
        // any more.
        self.out.retain(|q| matches!(q, Queued::Out(_)));
        self.event(SenderEvent::Finished(outcome.clone()));
        self.outcome = Some(outcome);
        self.state = State::Done;
        self.deadline = None;
    }

    fn fail(&mut self, failure: SendFailure) {
        self.finish(Outcome::Failed(failure));
    }

    fn index_of(&self, table: TableName) -> Option<usize> {
        self.tables.iter().position(|t| t.payload.table == table)
    }

    /// Everything after SYNC_ACCEPT, in one flight.
    fn transfer(&mut self, done: TableSet, partial: TableSet) {
        for i in 0..self.tables.len() {
            let announce = self.tables[i].announce();
            let table = announce.table;
            if done.contains(table) {
                // Held already: only its counts are asked for.
                self.send(Message::SyncConfirmRequest {
                    sid: self.sid,
                    announce,
                });
                self.tables[i].state = TableState::Confirming;
                self.event(SenderEvent::TableSent {
                    table,
                    chunks: announce.total,
                    bytes: announce.bytes,
                    sent: 0,
                });
                continue;
            }
            self.send(Message::SyncInitiate {
                sid: self.sid,
                announce,
            });
            if partial.contains(table) {
                self.tables[i].state = TableState::AwaitReady;
            } else {
                let sent = self.send_chunks(i, &Ranges::all(announce.total));
                self.event(SenderEvent::TableSent {
                    table,
                    chunks: announce.total,
                    bytes: announce.bytes,
                    sent,
                });
            }
        }
        self.send(Message::SyncCommit {
            sid: self.sid,
            tables: self.all_tables(),
        });
    }

    /// Ends the sync once the receiver has committed and every table is confirmed; with
    /// `ask_again`, asks again for confirmations that were lost.
    fn check_complete(&mut self, ask_again: bool) {
        let Some(written) = self.committed else {
            return;
        };
        let unconfirmed: Vec<Announce> = self
            .tables
            .iter()
            .filter(|t| t.state != TableState::Confirmed)
            .map(Outgoing::announce)
            .collect();
        if unconfirmed.is_empty() {
            self.finish(Outcome::Complete { written });
            return;
        }
        if !ask_again {
            return;
        }
        for announce in unconfirmed {
            self.send(Message::SyncConfirmRequest {
                sid: self.sid,
                announce,
            });
        }
    }

    /// A message from the receiver.
    pub fn handle(&mut self, now: Millis, msg: Message) {
        match self.state {
            State::Idle | State::Done => {}
            State::Hello => match msg {
                Message::SyncAccept { sid, done, partial } => {
                    self.sid = sid;
                    self.state = State::Transfer;
                    self.event(SenderEvent::Accepted {
                        sid,
                        done,
                        partial,
                        resumed: sid != self.proposed,
                    });
                    self.transfer(done, partial);
                    self.arm(now);
                }
                Message::SyncBusy { sid, with } if sid == self.proposed => {
                    self.finish(Outcome::Busy { with });
                }
                Message::SyncError {
                    sid,
                    table: None,
                    reason,
                } if sid == self.proposed => {
                    self.fail(SendFailure::Refused {
                        table: None,
                        reason,
                    });
                }
                _ => {}
            },
            State::Transfer => {
                if msg.sid() != self.sid {
                    return;
                }
                self.handle_transfer(now, msg);
            }
        }
    }

    fn handle_transfer(&mut self, now: Millis, msg: Message) {
        match msg {
            Message::SyncReady { table, need, .. } => {
                let Some(i) = self.index_of(table) else {
                    return;
                };
                if self.tables[i].state != TableState::AwaitReady {
                    return;
                }
                let sent = self.send_chunks(i, &need);
                let a = self.tables[i].announce();
                self.event(SenderEvent::TableSent {
                    table,
                    chunks: a.total,
                    bytes: a.bytes,
                    sent,
                });
                self.arm(now);
            }
            Message::SyncResend { table, missing, .. } => {
                let Some(i) = self.index_of(table) else {
                    return;
                };
                if self.tables[i].state == TableState::Confirmed {
                    return;
                }
                self.tables[i].rounds += 1;
                let rounds = self.tables[i].rounds;
                if rounds > MAX_ROUNDS {
                    let failure = SendFailure::TooManyRounds {
                        table,
                        rounds: MAX_ROUNDS,
                    };
                    self.send(Message::SyncError {
                        sid: self.sid,
                        table: Some(table),
                        reason: failure.to_string(),
                    });
                    self.fail(failure);
                    return;
                }
                let chunks = self.send_chunks(i, &missing);
                self.event(SenderEvent::Resending {
                    table,
                    chunks,
                    round: rounds,
                });
                self.arm(now);
            }
            Message::SyncConfirm { table, counts, .. } => {
                let Some(i) = self.index_of(table) else {
                    return;
                };
                if self.tables[i].state != TableState::Confirmed {
                    self.tables[i].state = TableState::Confirmed;
                    self.tables[i].counts = Some(counts);
                    self.event(SenderEvent::TableConfirmed { table, counts });
                    self.arm(now);
                }
                self.check_complete(false);
            }
            Message::SyncComplete { written, .. } if self.committed.is_none() => {
                self.committed = Some(written);
                self.arm(now);
                self.check_complete(true);
            }
            Message::SyncError { table, reason, .. } => {
                self.fail(SendFailure::Refused { table, reason });
            }
            // Anything else is a duplicate or out of date: ignored.
            _ => {}
        }
    }

    /// The time: repeats what is unanswered, or gives up.
    pub fn handle_timeout(&mut self, now: Millis) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        self.attempts += 1;
        if self.attempts > self.timing.max_retries {
            let failure = SendFailure::NoAnswer {
                attempts: self.timing.max_retries + 1,
            };
            if self.state == State::Transfer {
                self.send(Message::SyncError {
                    sid: self.sid,
                    table: None,
                    reason: failure.to_string(),
                });
            }
            self.fail(failure);
            return;
        }
        self.event(SenderEvent::Retrying {
            attempt: self.attempts,
        });
        match self.state {
            State::Hello => self.send(self.request()),
            State::Transfer => {
                for i in 0..self.tables.len() {
                    let announce = self.tables[i].announce();
                    match self.tables[i].state {
                        TableState::AwaitReady => self.send(Message::SyncInitiate {
                            sid: self.sid,
                            announce,
                        }),
                        TableState::Confirming => self.send(Message::SyncConfirmRequest {
                            sid: self.sid,
                            announce,
                        }),
                        TableState::Confirmed => {}
                    }
                }
                if self.committed.is_none() {
                    self.send(Message::SyncCommit {
                        sid: self.sid,
                        tables: self.all_tables(),
                    });
                }
            }
            State::Idle | State::Done => {}
        }
        self.deadline = Some(now + self.timing.retry_ms);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::wire::MAX_MESSAGE;

    fn source(payloads: Vec<Payload>) -> Source {
        Source {
            toon: Name::sanitize("Heretanky-Velen"),
            account: Name::sanitize("ALPHA"),
            metadata: true,
            payloads,
        }
    }

    fn drain(s: &mut Sender) -> Vec<SenderOut> {
        std::iter::from_fn(|| s.poll()).collect()
    }

    fn sent(outs: &[SenderOut]) -> Vec<&Message> {
        outs.iter()
            .filter_map(|o| match o {
                SenderOut::Send(m) => Some(m),
                SenderOut::Event(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_fresh_receiver_gets_everything_in_one_flight() {
        let p1 = Payload::new(TableName::News, b"{\"a\":1}".to_vec());
        let p2 = Payload::new(TableName::Roster, vec![b'x'; 450]);
        let mut s = Sender::new(Timing::default(), SessionId(9), source(vec![p1, p2]));
        s.start(0);
        let hello = drain(&mut s);
        assert_eq!(
            sent(&hello).iter().map(|m| m.kind()).collect::<Vec<_>>(),
            ["ONLINE", "SYNC_REQUEST"]
        );
        s.handle(
            10,
            Message::SyncAccept {
                sid: SessionId(9),
                done: TableSet::EMPTY,
                partial: TableSet::EMPTY,
            },
        );
        let flight = drain(&mut s);
        let kinds: Vec<&str> = sent(&flight).iter().map(|m| m.kind()).collect();
        assert_eq!(
            kinds,
            [
                "SYNC_INITIATE",
                "SYNC_DATA",
                "SYNC_CONFIRM_REQUEST",
                "SYNC_INITIATE",
                "SYNC_DATA",
                "SYNC_DATA",
                "SYNC_DATA",
                "SYNC_CONFIRM_REQUEST",
                "SYNC_COMMIT"
            ]
        );
        for t in [TableName::News, TableName::Roster] {
            s.handle(
                20,
                Message::SyncConfirm {
                    sid: SessionId(9),
                    table: t,
                    counts: Counts::default(),
                },
            );
        }
        assert!(s.outcome().is_none());
        s.handle(
            30,
            Message::SyncComplete {
                sid: SessionId(9),
                written: true,
            },
        );
        assert_eq!(s.outcome(), Some(&Outcome::Complete { written: true }));
    }

    #[test]
    fn a_partial_table_waits_for_ready_and_a_held_one_only_asks_for_counts() {
        let p1 = Payload::new(TableName::Setup, b"{}".to_vec());
        let p2 = Payload::new(TableName::News, vec![b'n'; 500]);
        let mut s = Sender::new(Timing::default(), SessionId(1), source(vec![p1, p2]));
        s.start(0);
        drain(&mut s);
        s.handle(
            1,
            Message::SyncAccept {
                sid: SessionId(77),
                done: [TableName::Setup].into_iter().collect(),
                partial: [TableName::News].into_iter().collect(),
            },
        );
        let flight = drain(&mut s);
        assert!(flight.iter().any(|o| matches!(
            o,
            SenderOut::Event(SenderEvent::Accepted { resumed: true, .. })
        )));
        let kinds: Vec<&str> = sent(&flight).iter().map(|m| m.kind()).collect();
        assert_eq!(
            kinds,
            ["SYNC_CONFIRM_REQUEST", "SYNC_INITIATE", "SYNC_COMMIT"]
        );
        assert!(sent(&flight).iter().all(|m| m.sid() == SessionId(77)));
        s.handle(
            2,
            Message::SyncReady {
                sid: SessionId(77),
                table: TableName::News,
                need: Ranges(vec![(3, 3)]),
            },
        );
        let flight = drain(&mut s);
        let data: Vec<u32> = sent(&flight)
            .iter()
            .filter_map(|m| match m {
                Message::SyncData { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(data, [3]);
    }

    #[test]
    fn silence_is_retried_then_given_up() {
        let timing = Timing {
            retry_ms: 100,
            max_retries: 2,
        };
        let mut s = Sender::new(timing, SessionId(1), source(vec![]));
        s.start(0);
        drain(&mut s);
        s.handle_timeout(50);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(100);
        assert_eq!(sent(&drain(&mut s))[0].kind(), "SYNC_REQUEST");
        s.handle_timeout(200);
        s.handle_timeout(300);
        assert_eq!(
            s.outcome(),
            Some(&Outcome::Failed(SendFailure::NoAnswer { attempts: 3 }))
        );
    }

    #[test]
    fn busy_and_errors_end_the_sync() {
        let mut s = Sender::new(Timing::default(), SessionId(5), source(vec![]));
        s.start(0);
        s.handle(
            1,
            Message::SyncBusy {
                sid: SessionId(5),
                with: Name::sanitize("CHARLIE"),
            },
        );
        assert!(matches!(s.outcome(), Some(Outcome::Busy { .. })));
        let mut s = Sender::new(Timing::default(), SessionId(5), source(vec![]));
        s.start(0);
        s.handle(
            1,
            Message::SyncAccept {
                sid: SessionId(5),
                done: TableSet::EMPTY,
                partial: TableSet::EMPTY,
            },
        );
        // A message of another session is not for this sender.
        s.handle(
            2,
            Message::SyncError {
                sid: SessionId(6),
                table: None,
                reason: "x".into(),
            },
        );
        assert!(s.outcome().is_none());
        s.handle(
            2,
            Message::SyncError {
                sid: SessionId(5),
                table: Some(TableName::News),
                reason: "bad".into(),
            },
        );
        assert!(matches!(
            s.outcome(),
            Some(Outcome::Failed(SendFailure::Refused { .. }))
        ));
    }

    /// A refusal that comes while most of a flight is still to be polled (a driver sending it
    /// in pieces): the rest of the chunks are dropped, and the end is still told.
    #[test]
    fn a_refusal_mid_flight_drops_the_chunks_not_yet_polled() {
        let p = Payload::new(TableName::Roster, vec![b'r'; 5000]);
        let mut s = Sender::new(Timing::default(), SessionId(5), source(vec![p]));
        s.start(0);
        drain(&mut s);
        s.handle(
            1,
            Message::SyncAccept {
                sid: SessionId(5),
                done: TableSet::EMPTY,
                partial: TableSet::EMPTY,
            },
        );
        let first: Vec<SenderOut> = std::iter::from_fn(|| s.poll()).take(5).collect();
        assert!(sent(&first).iter().any(|m| m.kind() == "SYNC_DATA"));
        s.handle(
            2,
            Message::SyncError {
                sid: SessionId(5),
                table: Some(TableName::Roster),
                reason: "bad".into(),
            },
        );
        let rest = drain(&mut s);
        assert!(
            sent(&rest).iter().all(|m| m.kind() != "SYNC_DATA"),
            "{:?}",
            sent(&rest).iter().map(|m| m.kind()).collect::<Vec<_>>()
        );
        assert!(rest.iter().any(|o| matches!(
            o,
            SenderOut::Event(SenderEvent::Finished(Outcome::Failed(_)))
        )));
        assert!(!s.has_output());
    }

    proptest! {
        /// Every message the sender makes fits the channel, and the chunks rebuild the payload.
        #[test]
        fn messages_fit_and_chunks_rebuild_the_payload(
            text in "\\PC{0,3000}",
            toon in "[A-Za-zé]{1,48}",
        ) {
            let payload = Payload::new(TableName::News, text.into_bytes());
            let src = Source {
                toon: Name::sanitize(&toon),
                account: Name::sanitize("A"),
                metadata: false,
                payloads: vec![payload.clone()],
            };
            let mut s = Sender::new(Timing::default(), SessionId(1), src);
            s.start(0);
            s.handle(0, Message::SyncAccept { sid: SessionId(1), done: TableSet::EMPTY, partial: TableSet::EMPTY });
            let outs = drain(&mut s);
            let mut joined = Vec::new();
            for m in sent(&outs) {
                let bytes = m.encode();
                prop_assert!(bytes.len() <= MAX_MESSAGE, "{} bytes: {}", bytes.len(), m.kind());
                prop_assert!(!bytes.contains(&0));
                prop_assert_eq!(&Message::decode(&bytes).unwrap(), m);
                if let Message::SyncData { payload, .. } = m {
                    joined.extend_from_slice(payload);
                }
            }
            prop_assert_eq!(Some(joined), payload.packed.to_vec());
        }
    }
}
