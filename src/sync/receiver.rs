//! The receiver's state machine for one session: no I/O, driven by messages.
//!
//! It verifies and collects chunks, asks for missing ones, reassembles and checks each table,
//! and asks its orchestrator (through [`RxOut`]) to journal chunks, stage a verified table (merge
//! it and make it durable) and commit the session; the orchestrator reports back with
//! [`Receiver::staged`] and [`Receiver::committed`].

use std::collections::BTreeMap;

use crate::merge::Counts;
use crate::model::tables::TableName;

use super::chunk::Reassembly;
use super::wire::{MAX_SLICE, Message, Ranges, SessionId, chunk_crc};

/// The largest table the receiver accepts (bytes of JSON).
pub const MAX_PAYLOAD: u64 = 1 << 30;

/// Bounds of the receiver.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverConfig {
    /// Resend rounds for one table before it fails.
    pub max_rounds: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig { max_rounds: 12 }
    }
}

/// What the receiver wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum RxOut {
    Send(Message),
    Event(RxEvent),
    /// Keep this verified chunk (so an interrupted transfer can resume).
    Journal {
        table: TableName,
        crc: u32,
        index: u32,
        payload: Vec<u8>,
    },
    /// A new transfer of this table begins: forget chunks journaled for an older one.
    ForgetChunks {
        table: TableName,
        crc: u32,
    },
    /// The table arrived whole and verified: deserialize, merge, make durable, then call
    /// [`Receiver::staged`].
    Stage {
        table: TableName,
        payload: Vec<u8>,
    },
    /// All tables are in: write the result, then call [`Receiver::committed`].
    Commit,
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum RxEvent {
    TableStarted {
        table: TableName,
        chunks: u32,
        bytes: u64,
        crc: u32,
        held: u32,
    },
    AskedAgain {
        table: TableName,
        missing: u32,
        round: u32,
    },
    TableVerified {
        table: TableName,
        corrupt: u32,
        duplicates: u32,
    },
    TableStaged {
        table: TableName,
        counts: Counts,
    },
    TableFailed {
        table: TableName,
        reason: String,
    },
    Committed {
        written: bool,
    },
    SenderStopped {
        reason: String,
    },
}

struct Incoming {
    table: TableName,
    chunks: Reassembly,
    rounds: u32,
    corrupt: u32,
    duplicates: u32,
    staging: bool,
}

pub struct Receiver {
    config: ReceiverConfig,
    sid: SessionId,
    done: BTreeMap<TableName, Counts>,
    current: Option<Incoming>,
    committed: Option<bool>,
}

impl Receiver {
    /// A receiver for session `sid`, which already holds `done` (tables staged in an earlier
    /// run of the session).
    pub fn new(config: ReceiverConfig, sid: SessionId, done: BTreeMap<TableName, Counts>) -> Self {
        Receiver {
            config,
            sid,
            done,
            current: None,
            committed: None,
        }
    }

    /// Chunks journaled in an earlier run for a table in progress; they are used only if the
    /// sender initiates the same payload (same checksum) again.
    pub fn resume_chunks(
        &mut self,
        table: TableName,
        total: u32,
        bytes: u64,
        crc: u32,
        chunks: Vec<(u32, Vec<u8>)>,
    ) {
        let mut r = Reassembly::new(total, bytes, crc);
        for (index, payload) in chunks {
            if (1..=total).contains(&index) {
                r.insert(index, payload);
            }
        }
        self.current = Some(Incoming {
            table,
            chunks: r,
            rounds: 0,
            corrupt: 0,
            duplicates: 0,
            staging: false,
        });
    }

    pub fn sid(&self) -> SessionId {
        self.sid
    }

    pub fn done(&self) -> &BTreeMap<TableName, Counts> {
        &self.done
    }

    /// `Some(written)` once the receiver has committed the session.
    pub fn committed_state(&self) -> Option<bool> {
        self.committed
    }

    fn error(&self, table: Option<TableName>, reason: &str) -> RxOut {
        RxOut::Send(Message::SyncError {
            sid: self.sid,
            table,
            reason: reason.to_string(),
        })
    }

    /// The confirmation of a table already held (its first one was lost).
    fn confirm_again(&self, table: TableName) -> Option<RxOut> {
        self.done.get(&table).map(|counts| {
            RxOut::Send(Message::SyncConfirm {
                sid: self.sid,
                table,
                counts: *counts,
            })
        })
    }

    fn fail_current(&mut self, reason: String, out: &mut Vec<RxOut>) {
        if let Some(cur) = self.current.take() {
            out.push(RxOut::Event(RxEvent::TableFailed {
                table: cur.table,
                reason: reason.clone(),
            }));
            out.push(RxOut::ForgetChunks {
                table: cur.table,
                crc: cur.chunks.crc,
            });
            out.push(self.error(Some(cur.table), &reason));
        }
    }

    /// A message from the sender of this session.
    pub fn handle(&mut self, msg: Message) -> Vec<RxOut> {
        let mut out = Vec::new();
        if msg.sid() != self.sid {
            return out;
        }
        match msg {
            Message::SyncInitiate {
                table,
                total,
                bytes,
                crc,
                ..
            } => {
                if let Some(confirm) = self.confirm_again(table) {
                    out.push(confirm);
                    return out;
                }
                if bytes > MAX_PAYLOAD
                    || total == 0
                    || u64::from(total) > bytes.max(1)
                    || bytes > u64::from(total) * MAX_SLICE as u64
                {
                    out.push(self.error(Some(table), "the announced size is not possible"));
                    return out;
                }
                let same = self.current.as_ref().is_some_and(|c| {
                    c.table == table
                        && c.chunks.total == total
                        && c.chunks.bytes == bytes
                        && c.chunks.crc == crc
                });
                if !same {
                    if let Some(old) = self.current.take() {
                        out.push(RxOut::ForgetChunks {
                            table: old.table,
                            crc: old.chunks.crc,
                        });
                    }
                    self.current = Some(Incoming {
                        table,
                        chunks: Reassembly::new(total, bytes, crc),
                        rounds: 0,
                        corrupt: 0,
                        duplicates: 0,
                        staging: false,
                    });
                }
                let cur = self.current.as_ref().map(|c| &c.chunks);
                let held = cur.map_or(0, Reassembly::held);
                let need = Ranges::from_sorted(cur.into_iter().flat_map(Reassembly::missing));
                out.push(RxOut::Event(RxEvent::TableStarted {
                    table,
                    chunks: total,
                    bytes,
                    crc,
                    held,
                }));
                out.push(RxOut::Send(Message::SyncReady {
                    sid: self.sid,
                    table,
                    need,
                }));
            }
            Message::SyncData {
                table,
                index,
                total,
                crc,
                payload,
                ..
            } => {
                let Some(cur) = self.current.as_mut() else {
                    return out;
                };
                if cur.table != table || cur.chunks.total != total || cur.staging {
                    return out;
                }
                if index == 0
                    || index > total
                    || payload.len() > MAX_SLICE
                    || chunk_crc(table, index, total, &payload) != crc
                {
                    cur.corrupt += 1;
                    return out;
                }
                if cur.chunks.insert(index, payload.clone()) {
                    out.push(RxOut::Journal {
                        table,
                        crc: cur.chunks.crc,
                        index,
                        payload,
                    });
                } else {
                    cur.duplicates += 1;
                }
            }
            Message::SyncConfirmRequest {
                table,
                total,
                bytes,
                crc,
                ..
            } => {
                if let Some(confirm) = self.confirm_again(table) {
                    out.push(confirm);
                    return out;
                }
                let max_rounds = self.config.max_rounds;
                let Some(cur) = self.current.as_mut() else {
                    out.push(self.error(Some(table), "no transfer of this table is in progress"));
                    return out;
                };
                if cur.table != table
                    || cur.chunks.total != total
                    || cur.chunks.bytes != bytes
                    || cur.chunks.crc != crc
                {
                    out.push(self.error(
                        Some(table),
                        "the confirmation request does not match the transfer",
                    ));
                    return out;
                }
                if cur.staging {
                    // Already being merged; the confirmation follows.
                    return out;
                }
                if !cur.chunks.is_complete() {
                    cur.rounds += 1;
                    let missing: Vec<u32> = cur.chunks.missing().collect();
                    if cur.rounds > max_rounds {
                        let reason = format!(
                            "{} of {} chunks still missing after {max_rounds} rounds",
                            missing.len(),
                            total
                        );
                        self.fail_current(reason, &mut out);
                        return out;
                    }
                    out.push(RxOut::Event(RxEvent::AskedAgain {
                        table,
                        missing: missing.len() as u32,
                        round: cur.rounds,
                    }));
                    out.push(RxOut::Send(Message::SyncResend {
                        sid: self.sid,
                        table,
                        missing: Ranges::from_sorted(missing),
                    }));
                    return out;
                }
                match cur.chunks.assemble() {
                    Ok(payload) => {
                        cur.staging = true;
                        out.push(RxOut::Event(RxEvent::TableVerified {
                            table,
                            corrupt: cur.corrupt,
                            duplicates: cur.duplicates,
                        }));
                        out.push(RxOut::Stage { table, payload });
                    }
                    Err(e) => self.fail_current(e.to_string(), &mut out),
                }
            }
            Message::SyncComplete { .. } => {
                if let Some(written) = self.committed {
                    out.push(RxOut::Send(Message::SyncComplete {
                        sid: self.sid,
                        written,
                    }));
                } else if self.current.as_ref().is_some_and(|c| c.staging) {
                    // Still merging the last table.
                } else {
                    out.push(RxOut::Commit);
                }
            }
            Message::SyncError { reason, .. } => {
                self.current = None;
                out.push(RxOut::Event(RxEvent::SenderStopped { reason }));
            }
            _ => {}
        }
        out
    }

    /// The orchestrator's answer to [`RxOut::Stage`].
    pub fn staged(&mut self, table: TableName, result: Result<Counts, String>) -> Vec<RxOut> {
        let mut out = Vec::new();
        let Some(cur) = self
            .current
            .as_ref()
            .filter(|c| c.table == table && c.staging)
        else {
            return out;
        };
        match result {
            Ok(counts) => {
                let crc = cur.chunks.crc;
                self.current = None;
                self.done.insert(table, counts);
                out.push(RxOut::Event(RxEvent::TableStaged { table, counts }));
                out.push(RxOut::ForgetChunks { table, crc });
                out.push(RxOut::Send(Message::SyncConfirm {
                    sid: self.sid,
                    table,
                    counts,
                }));
            }
            Err(reason) => self.fail_current(reason, &mut out),
        }
        out
    }

    /// The orchestrator's answer to [`RxOut::Commit`].
    pub fn committed(&mut self, result: Result<bool, String>) -> Vec<RxOut> {
        match result {
            Ok(written) => {
                self.committed = Some(written);
                vec![
                    RxOut::Event(RxEvent::Committed { written }),
                    RxOut::Send(Message::SyncComplete {
                        sid: self.sid,
                        written,
                    }),
                ]
            }
            Err(reason) => {
                vec![
                    RxOut::Event(RxEvent::SenderStopped {
                        reason: format!("commit failed: {reason}"),
                    }),
                    self.error(None, &reason),
                ]
            }
        }
    }
}
