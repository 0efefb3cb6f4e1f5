//! The sender's state machine: no I/O, driven by messages and the time.
//!
//! Input: [`Sender::start`], [`Sender::handle`] (a message from the receiver) and
//! [`Sender::tick`] (the time); output: messages to send and events to log. Times are
//! milliseconds on any monotonic clock the driver chooses (simulated in tests).

use std::ops::Range;

use crate::merge::Counts;
use crate::model::tables::TableName;

use super::chunk::{Payload, slices};
use super::wire::{Message, Ranges, SessionId, chunk_crc};

/// Timing and bounds of the sender.
#[derive(Debug, Clone, Copy)]
pub struct SenderConfig {
    /// How long to wait for an answer before asking again.
    pub retry_ms: u64,
    /// Requests repeated without an answer before the sender gives up.
    pub max_retries: u32,
    /// Resend rounds for one table before it fails.
    pub max_rounds: u32,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            retry_ms: 3_000,
            max_retries: 8,
            max_rounds: 12,
        }
    }
}

/// What the sender wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderOut {
    Send(Message),
    Event(SenderEvent),
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderEvent {
    Requested,
    /// `resumed`: the receiver continues an interrupted session instead of the proposed one.
    Accepted {
        sid: SessionId,
        done: Vec<TableName>,
        resumed: bool,
    },
    Busy {
        with: String,
    },
    TableStarted {
        table: TableName,
        chunks: u32,
        bytes: u64,
        needed: u32,
    },
    Resending {
        table: TableName,
        chunks: u32,
        round: u32,
    },
    Retrying {
        step: &'static str,
        attempt: u32,
    },
    TableConfirmed {
        table: TableName,
        counts: Counts,
    },
    TableFailed {
        table: TableName,
        reason: String,
    },
    Completed {
        written: bool,
    },
    Failed {
        reason: String,
    },
}

/// How a sync ended for the sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete { written: bool },
    Busy { with: String },
    Failed { reason: String },
}

/// What became of one table.
#[derive(Debug, Clone, PartialEq)]
pub enum TableResult {
    /// The receiver already held it from an interrupted run of this session.
    AlreadyDone,
    Confirmed(Counts),
    Failed(String),
}

struct Outgoing {
    payload: Payload,
    slices: Vec<Range<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Hello,
    Initiating(usize),
    Confirming(usize),
    Completing,
    Done,
}

pub struct Sender {
    config: SenderConfig,
    sid: SessionId,
    toon: String,
    account: String,
    metadata: bool,
    tables: Vec<Outgoing>,
    results: Vec<Option<TableResult>>,
    state: State,
    deadline: Option<u64>,
    attempts: u32,
    rounds: u32,
    outcome: Option<Outcome>,
}

impl Sender {
    /// A sender for these payloads (in sync order), proposing session `sid`.
    pub fn new(
        config: SenderConfig,
        sid: SessionId,
        toon: &str,
        account: &str,
        metadata: bool,
        payloads: Vec<Payload>,
    ) -> Self {
        let tables: Vec<Outgoing> = payloads
            .into_iter()
            .map(|payload| Outgoing {
                slices: slices(&payload.bytes, toon, payload.table),
                payload,
            })
            .collect();
        Sender {
            config,
            sid,
            toon: toon.to_string(),
            account: account.to_string(),
            metadata,
            results: vec![None; tables.len()],
            tables,
            state: State::Idle,
            deadline: None,
            attempts: 0,
            rounds: 0,
            outcome: None,
        }
    }

    pub fn sid(&self) -> SessionId {
        self.sid
    }

    /// When [`Sender::tick`] next has something to do.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Per table: its name, chunk count and what became of it (None: not reached).
    pub fn results(&self) -> impl Iterator<Item = (TableName, u32, Option<&TableResult>)> {
        self.tables
            .iter()
            .zip(&self.results)
            .map(|(t, r)| (t.payload.table, t.slices.len() as u32, r.as_ref()))
    }

    /// Announces itself and asks whether the receiver is idle.
    pub fn start(&mut self, now: u64) -> Vec<SenderOut> {
        self.state = State::Hello;
        let mut out = vec![
            SenderOut::Send(Message::Online {
                sid: self.sid,
                toon: self.toon.clone(),
            }),
            SenderOut::Event(SenderEvent::Requested),
        ];
        out.push(SenderOut::Send(self.request()));
        self.arm(now);
        out
    }

    fn request(&self) -> Message {
        Message::SyncRequest {
            sid: self.sid,
            toon: self.toon.clone(),
            account: self.account.clone(),
            metadata: self.metadata,
        }
    }

    fn arm(&mut self, now: u64) {
        self.attempts = 0;
        self.deadline = Some(now + self.config.retry_ms);
    }

    /// What SYNC_INITIATE announces and SYNC_CONFIRM_REQUEST repeats: table, total, bytes, crc.
    fn announcement(&self, i: usize) -> (TableName, u32, u64, u32) {
        let t = &self.tables[i];
        (
            t.payload.table,
            t.slices.len() as u32,
            t.payload.bytes.len() as u64,
            t.payload.crc,
        )
    }

    fn initiate(&self, i: usize) -> Message {
        let (table, total, bytes, crc) = self.announcement(i);
        Message::SyncInitiate {
            sid: self.sid,
            table,
            total,
            bytes,
            crc,
        }
    }

    fn confirm_request(&self, i: usize) -> Message {
        let (table, total, bytes, crc) = self.announcement(i);
        Message::SyncConfirmRequest {
            sid: self.sid,
            table,
            total,
            bytes,
            crc,
        }
    }

    fn chunk(&self, i: usize, index: u32) -> Option<Message> {
        let t = &self.tables[i];
        let range = t.slices.get(index.checked_sub(1)? as usize)?.clone();
        let total = t.slices.len() as u32;
        let payload = t.payload.bytes[range].to_vec();
        Some(Message::SyncData {
            sid: self.sid,
            toon: self.toon.clone(),
            table: t.payload.table,
            index,
            total,
            crc: chunk_crc(t.payload.table, index, total, &payload),
            payload,
        })
    }

    /// Moves to the first table at or after `from` that is not done, or to completion.
    fn next_table(&mut self, from: usize, now: u64, out: &mut Vec<SenderOut>) {
        match (from..self.tables.len()).find(|&i| self.results[i].is_none()) {
            Some(i) => {
                self.state = State::Initiating(i);
                self.rounds = 0;
                out.push(SenderOut::Send(self.initiate(i)));
            }
            None => {
                self.state = State::Completing;
                out.push(SenderOut::Send(Message::SyncComplete {
                    sid: self.sid,
                    written: false,
                }));
            }
        }
        self.arm(now);
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Vec<SenderOut>) {
        out.push(SenderOut::Event(match &outcome {
            Outcome::Complete { written } => SenderEvent::Completed { written: *written },
            Outcome::Busy { with } => SenderEvent::Busy { with: with.clone() },
            Outcome::Failed { reason } => SenderEvent::Failed {
                reason: reason.clone(),
            },
        }));
        self.outcome = Some(outcome);
        self.state = State::Done;
        self.deadline = None;
    }

    fn fail_table(&mut self, i: usize, reason: String, out: &mut Vec<SenderOut>) {
        let table = self.tables[i].payload.table;
        out.push(SenderOut::Event(SenderEvent::TableFailed {
            table,
            reason: reason.clone(),
        }));
        self.results[i] = Some(TableResult::Failed(reason.clone()));
        // One failed table fails the sync: the receiver commits nothing, and the next run
        // resumes with the tables it already holds.
        self.finish(
            Outcome::Failed {
                reason: format!("{table}: {reason}"),
            },
            out,
        );
    }

    fn send_chunks(&self, i: usize, which: &Ranges, out: &mut Vec<SenderOut>) -> u32 {
        let mut n = 0;
        for index in which.indices() {
            if let Some(m) = self.chunk(i, index) {
                out.push(SenderOut::Send(m));
                n += 1;
            }
        }
        n
    }

    /// A message from the receiver.
    pub fn handle(&mut self, now: u64, msg: Message) -> Vec<SenderOut> {
        let mut out = Vec::new();
        if self.state == State::Done || self.state == State::Idle {
            return out;
        }
        // Before acceptance the receiver may name another session (a resumed one).
        let accepted = !matches!(self.state, State::Hello);
        if accepted && msg.sid() != self.sid {
            return out;
        }
        match (self.state, msg) {
            (State::Hello, Message::SyncAccept { sid, done }) => {
                let resumed = sid != self.sid;
                self.sid = sid;
                for (i, t) in self.tables.iter().enumerate() {
                    if done.contains(&t.payload.table) {
                        self.results[i] = Some(TableResult::AlreadyDone);
                    }
                }
                out.push(SenderOut::Event(SenderEvent::Accepted {
                    sid,
                    done,
                    resumed,
                }));
                self.next_table(0, now, &mut out);
            }
            (State::Hello, Message::SyncBusy { sid, with }) if sid == self.sid => {
                self.finish(Outcome::Busy { with }, &mut out);
            }
            (State::Initiating(i), Message::SyncReady { table, need, .. })
                if table == self.tables[i].payload.table =>
            {
                let total = self.tables[i].slices.len() as u32;
                let needed = self.send_chunks(i, &need, &mut out);
                out.push(SenderOut::Event(SenderEvent::TableStarted {
                    table,
                    chunks: total,
                    bytes: self.tables[i].payload.bytes.len() as u64,
                    needed,
                }));
                out.push(SenderOut::Send(self.confirm_request(i)));
                self.state = State::Confirming(i);
                self.arm(now);
            }
            (State::Confirming(i), Message::SyncResend { table, missing, .. })
                if table == self.tables[i].payload.table =>
            {
                self.rounds += 1;
                if self.rounds > self.config.max_rounds {
                    let reason = format!(
                        "chunks still missing after {} rounds",
                        self.config.max_rounds
                    );
                    out.push(SenderOut::Send(Message::SyncError {
                        sid: self.sid,
                        table: Some(table),
                        reason: reason.clone(),
                    }));
                    self.fail_table(i, reason, &mut out);
                    return out;
                }
                let n = self.send_chunks(i, &missing, &mut out);
                out.push(SenderOut::Event(SenderEvent::Resending {
                    table,
                    chunks: n,
                    round: self.rounds,
                }));
                out.push(SenderOut::Send(self.confirm_request(i)));
                self.arm(now);
            }
            (State::Confirming(i), Message::SyncConfirm { table, counts, .. })
                if table == self.tables[i].payload.table =>
            {
                self.results[i] = Some(TableResult::Confirmed(counts));
                out.push(SenderOut::Event(SenderEvent::TableConfirmed {
                    table,
                    counts,
                }));
                self.next_table(i + 1, now, &mut out);
            }
            (
                State::Initiating(i) | State::Confirming(i),
                Message::SyncError {
                    table: Some(table),
                    reason,
                    ..
                },
            ) if table == self.tables[i].payload.table => {
                self.fail_table(i, format!("the receiver refused it: {reason}"), &mut out);
            }
            (
                _,
                Message::SyncError {
                    table: None,
                    reason,
                    ..
                },
            ) => {
                self.finish(
                    Outcome::Failed {
                        reason: format!("the receiver stopped the sync: {reason}"),
                    },
                    &mut out,
                );
            }
            (State::Completing, Message::SyncComplete { written, .. }) => {
                self.finish(Outcome::Complete { written }, &mut out);
            }
            // Anything else is a duplicate or out of date: ignored.
            _ => {}
        }
        out
    }

    /// The time: repeats an unanswered request, or gives up.
    pub fn tick(&mut self, now: u64) -> Vec<SenderOut> {
        let mut out = Vec::new();
        let Some(deadline) = self.deadline else {
            return out;
        };
        if now < deadline {
            return out;
        }
        self.attempts += 1;
        if self.attempts > self.config.max_retries {
            out.push(SenderOut::Send(Message::SyncError {
                sid: self.sid,
                table: None,
                reason: "no answer".into(),
            }));
            self.finish(
                Outcome::Failed {
                    reason: format!(
                        "the receiver did not answer after {} attempts",
                        self.config.max_retries + 1
                    ),
                },
                &mut out,
            );
            return out;
        }
        let (step, msg) = match self.state {
            State::Hello => ("request", self.request()),
            State::Initiating(i) => ("initiate", self.initiate(i)),
            State::Confirming(i) => ("confirm request", self.confirm_request(i)),
            State::Completing => (
                "complete",
                Message::SyncComplete {
                    sid: self.sid,
                    written: false,
                },
            ),
            State::Idle | State::Done => return out,
        };
        out.push(SenderOut::Event(SenderEvent::Retrying {
            step,
            attempt: self.attempts,
        }));
        out.push(SenderOut::Send(msg));
        self.deadline = Some(now + self.config.retry_ms);
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::lua::{Key, LuaValue, Table};
    use crate::sync::chunk::serialize;
    use crate::sync::wire::MAX_MESSAGE;

    fn table() -> impl Strategy<Value = Table> {
        prop::collection::vec(
            (
                "[a-zA-Z0-9\u{e9}\u{4e2d}|]{0,20}",
                prop::collection::vec(any::<u8>(), 0..300),
            ),
            0..20,
        )
        .prop_map(|kv| {
            Table::from_entries(kv.into_iter().map(|(k, v)| (Key::str(k), LuaValue::Str(v))))
        })
    }

    proptest! {
        /// Whatever the data and the toon's name, no message is over 255 bytes or holds a NUL,
        /// and the chunks put the payload back together.
        #[test]
        fn every_message_fits_the_channel(t in table(), toon in "[A-Za-z\u{e9}]{1,24}-[A-Za-z ]{1,23}") {
            let payload = serialize(TableName::News, &t).unwrap();
            let mut s = Sender::new(SenderConfig::default(), SessionId(1), &toon, "ACCOUNT#1", true, vec![payload.clone()]);
            let mut out = s.start(0);
            out.extend(s.handle(0, Message::SyncAccept { sid: SessionId(1), done: vec![] }));
            let total = match out.iter().find_map(|o| match o {
                SenderOut::Send(Message::SyncInitiate { total, .. }) => Some(*total),
                _ => None,
            }) {
                Some(t) => t,
                None => return Err(TestCaseError::fail("no initiate")),
            };
            out.extend(s.handle(0, Message::SyncReady { sid: SessionId(1), table: TableName::News, need: Ranges(vec![(1, total)]) }));
            let mut joined = Vec::new();
            for o in &out {
                if let SenderOut::Send(m) = o {
                    let bytes = m.encode();
                    prop_assert!(bytes.len() <= MAX_MESSAGE, "{} bytes: {}", bytes.len(), m.kind());
                    prop_assert!(!bytes.contains(&0));
                    prop_assert_eq!(&Message::decode(&bytes).unwrap(), m);
                    if let Message::SyncData { payload, .. } = m {
                        joined.extend_from_slice(payload);
                    }
                }
            }
            prop_assert_eq!(joined, payload.bytes);
        }
    }
}
