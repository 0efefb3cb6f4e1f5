//! The wire format: one addon message per [`Message`], as text `TYPE|session|field|...`.
//!
//! Every message is at most [`MAX_MESSAGE`] bytes and never contains a NUL byte. The payload of
//! a data chunk is the last field, so it may itself contain `|`. See `docs/PROTOCOL.md`.

use std::fmt::Write as _;

use crate::merge::Counts;
use crate::model::tables::TableName;

/// The game's limit on one addon message.
pub const MAX_MESSAGE: usize = 255;
/// The largest payload slice of a data chunk ("limit chunks to ~200").
pub const MAX_SLICE: usize = 200;
/// The addon message prefix the game routes these messages by.
pub const PREFIX: &str = "GUILDHELPER";

/// A session id: 8 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl SessionId {
    pub fn parse(text: &str) -> Option<SessionId> {
        (text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(text, 16).ok().map(SessionId))
            .flatten()
    }
}

/// Chunk indices (1-based), as ranges `a-b` or single numbers, comma separated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ranges(pub Vec<(u32, u32)>);

impl Ranges {
    /// The ranges covering these sorted indices.
    pub fn from_sorted(indices: impl IntoIterator<Item = u32>) -> Ranges {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for i in indices {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == i => *end = i,
                _ => out.push((i, i)),
            }
        }
        Ranges(out)
    }

    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..=b)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encode(&self, out: &mut String, budget: usize) {
        // As many ranges as fit; the rest is asked for in a later round.
        let start = out.len();
        for (n, (a, b)) in self.0.iter().enumerate() {
            let mut part = String::new();
            if n > 0 {
                part.push(',');
            }
            if a == b {
                let _ = write!(part, "{a}");
            } else {
                let _ = write!(part, "{a}-{b}");
            }
            if out.len() - start + part.len() > budget {
                break;
            }
            out.push_str(&part);
        }
    }

    fn decode(text: &str) -> Result<Ranges, WireError> {
        if text.is_empty() {
            return Ok(Ranges::default());
        }
        let mut out = Vec::new();
        for part in text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let a = number(part)?;
                    (a, a)
                }
            };
            if a == 0 || b < a {
                return Err(WireError::Field("ranges"));
            }
            out.push((a, b));
        }
        Ok(Ranges(out))
    }
}

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Sender -> receiver: "I am here" (the addon's presence announcement).
    Online { sid: SessionId, toon: String },
    /// Sender -> receiver: ask whether the receiver is idle. `metadata` tells that the source
    /// has a `metadata` table (the receiver then rebuilds its own).
    SyncRequest {
        sid: SessionId,
        toon: String,
        account: String,
        metadata: bool,
    },
    /// Receiver -> sender: ready. `sid` is the session to use (an interrupted one when
    /// resuming); `done` lists the tables it already holds in that session.
    SyncAccept {
        sid: SessionId,
        done: Vec<TableName>,
    },
    /// Receiver -> sender: busy with another sender.
    SyncBusy { sid: SessionId, with: String },
    /// Sender -> receiver: a table follows.
    SyncInitiate {
        sid: SessionId,
        table: TableName,
        total: u32,
        bytes: u64,
        crc: u32,
    },
    /// Receiver -> sender: ready for the table; these chunks are needed (all of them, or the
    /// missing ones when resuming).
    SyncReady {
        sid: SessionId,
        table: TableName,
        need: Ranges,
    },
    /// Sender -> receiver: one chunk. `crc` covers `table|index|total|payload`.
    SyncData {
        sid: SessionId,
        toon: String,
        table: TableName,
        index: u32,
        total: u32,
        crc: u32,
        payload: Vec<u8>,
    },
    /// Sender -> receiver: all chunks sent; confirm the table.
    SyncConfirmRequest {
        sid: SessionId,
        table: TableName,
        total: u32,
        bytes: u64,
        crc: u32,
    },
    /// Receiver -> sender: send these chunks again.
    SyncResend {
        sid: SessionId,
        table: TableName,
        missing: Ranges,
    },
    /// Receiver -> sender: the table is verified, merged and durable.
    SyncConfirm {
        sid: SessionId,
        table: TableName,
        counts: Counts,
    },
    /// Either way: the table (or the session, without a table) failed.
    SyncError {
        sid: SessionId,
        table: Option<TableName>,
        reason: String,
    },
    /// Sender -> receiver: all tables sent, commit. Receiver -> sender: committed.
    SyncComplete { sid: SessionId, written: bool },
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("message contains a NUL byte")]
    Nul,
    #[error("unknown message type")]
    UnknownType,
    #[error("missing or bad field `{0}`")]
    Field(&'static str),
    #[error("message is not UTF-8 text")]
    NotText,
}

fn number(text: &str) -> Result<u32, WireError> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WireError::Field("number"));
    }
    text.parse().map_err(|_| WireError::Field("number"))
}

fn hex32(text: &str) -> Result<u32, WireError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WireError::Field("crc"));
    }
    u32::from_str_radix(text, 16).map_err(|_| WireError::Field("crc"))
}

fn name(text: &str) -> Result<String, WireError> {
    if text.is_empty() || text.len() > 64 || text.contains('|') {
        return Err(WireError::Field("name"));
    }
    Ok(text.to_string())
}

fn table(text: &str) -> Result<TableName, WireError> {
    TableName::parse(text).ok_or(WireError::Field("table"))
}

/// The CRC-32 of a chunk: over `table|index|total|` and the payload, so a corrupted header is
/// caught as well as a corrupted slice.
pub fn chunk_crc(table: TableName, index: u32, total: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(format!("{table}|{index}|{total}|").as_bytes());
    h.update(payload);
    h.finalize()
}

/// The bytes a data chunk's header takes before its payload.
pub fn data_header_len(toon: &str, table: TableName, index: u32, total: u32) -> usize {
    // SYNC_DATA|sid|toon|table|index|total|crc|
    "SYNC_DATA".len()
        + 1
        + 8
        + 1
        + toon.len()
        + 1
        + table.as_str().len()
        + 1
        + index.to_string().len()
        + 1
        + total.to_string().len()
        + 1
        + 8
        + 1
}

fn counts_text(c: &Counts) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        c.received, c.added, c.updated, c.unchanged, c.kept_newer, c.conflicts, c.skipped
    )
}

fn counts(text: &str) -> Result<Counts, WireError> {
    let v: Vec<u64> = text
        .split(',')
        .map(|p| number(p).map(u64::from))
        .collect::<Result<_, _>>()?;
    let [
        received,
        added,
        updated,
        unchanged,
        kept_newer,
        conflicts,
        skipped,
    ] = v[..]
    else {
        return Err(WireError::Field("counts"));
    };
    Ok(Counts {
        received,
        added,
        updated,
        unchanged,
        kept_newer,
        conflicts,
        skipped,
    })
}

/// A reason as one safe field: no `|`, no control characters, bounded.
fn clean_reason(reason: &str, budget: usize) -> String {
    let mut out = String::new();
    for c in reason.chars() {
        let c = if c == '|' || c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > budget {
            break;
        }
        out.push(c);
    }
    out
}

impl Message {
    pub fn sid(&self) -> SessionId {
        match self {
            Message::Online { sid, .. }
            | Message::SyncRequest { sid, .. }
            | Message::SyncAccept { sid, .. }
            | Message::SyncBusy { sid, .. }
            | Message::SyncInitiate { sid, .. }
            | Message::SyncReady { sid, .. }
            | Message::SyncData { sid, .. }
            | Message::SyncConfirmRequest { sid, .. }
            | Message::SyncResend { sid, .. }
            | Message::SyncConfirm { sid, .. }
            | Message::SyncError { sid, .. }
            | Message::SyncComplete { sid, .. } => *sid,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::Online { .. } => "ONLINE",
            Message::SyncRequest { .. } => "SYNC_REQUEST",
            Message::SyncAccept { .. } => "SYNC_ACCEPT",
            Message::SyncBusy { .. } => "SYNC_BUSY",
            Message::SyncInitiate { .. } => "SYNC_INITIATE",
            Message::SyncReady { .. } => "SYNC_READY",
            Message::SyncData { .. } => "SYNC_DATA",
            Message::SyncConfirmRequest { .. } => "SYNC_CONFIRM_REQUEST",
            Message::SyncResend { .. } => "SYNC_RESEND",
            Message::SyncConfirm { .. } => "SYNC_CONFIRM",
            Message::SyncError { .. } => "SYNC_ERROR",
            Message::SyncComplete { .. } => "SYNC_COMPLETE",
        }
    }

    /// The message as sent. Never longer than [`MAX_MESSAGE`] bytes: variable-length fields
    /// (ranges, reasons) are cut to fit, and a data payload must have been sliced to fit.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{}|{}", self.kind(), self.sid());
        match self {
            Message::Online { toon, .. } => {
                let _ = write!(s, "|{toon}");
            }
            Message::SyncRequest {
                toon,
                account,
                metadata,
                ..
            } => {
                let _ = write!(s, "|{toon}|{account}|{}", if *metadata { "m" } else { "-" });
            }
            Message::SyncAccept { done, .. } => {
                let names: Vec<&str> = done.iter().map(|t| t.as_str()).collect();
                let _ = write!(s, "|{}", names.join(","));
            }
            Message::SyncBusy { with, .. } => {
                let _ = write!(s, "|{with}");
            }
            Message::SyncInitiate {
                table,
                total,
                bytes,
                crc,
                ..
            }
            | Message::SyncConfirmRequest {
                table,
                total,
                bytes,
                crc,
                ..
            } => {
                let _ = write!(s, "|{table}|{total}|{bytes}|{crc:08x}");
            }
            Message::SyncReady { table, need: r, .. }
            | Message::SyncResend {
                table, missing: r, ..
            } => {
                let _ = write!(s, "|{table}|");
                let budget = MAX_MESSAGE - s.len();
                r.encode(&mut s, budget);
            }
            Message::SyncData {
                toon,
                table,
                index,
                total,
                crc,
                payload,
                ..
            } => {
                let _ = write!(s, "|{toon}|{table}|{index}|{total}|{crc:08x}|");
                let mut out = s.into_bytes();
                out.extend_from_slice(payload);
                return out;
            }
            Message::SyncConfirm { table, counts, .. } => {
                let _ = write!(s, "|{table}|{}", counts_text(counts));
            }
            Message::SyncError { table, reason, .. } => {
                let t = table.map_or("-", |t| t.as_str());
                let _ = write!(s, "|{t}|");
                let budget = MAX_MESSAGE - s.len();
                s.push_str(&clean_reason(reason, budget));
            }
            Message::SyncComplete { written, .. } => {
                let _ = write!(s, "|{}", if *written { "1" } else { "0" });
            }
        }
        s.into_bytes()
    }

    /// Reads a message. Anything malformed is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        if bytes.contains(&0) {
            return Err(WireError::Nul);
        }
        // The header is text; a data payload is bytes.
        let mut fields = bytes.splitn(8, |&b| b == b'|');
        let kind = fields.next().ok_or(WireError::UnknownType)?;
        let kind = std::str::from_utf8(kind).map_err(|_| WireError::NotText)?;
        let sid_text = fields.next().ok_or(WireError::Field("session"))?;
        let sid = std::str::from_utf8(sid_text)
            .ok()
            .and_then(SessionId::parse)
            .ok_or(WireError::Field("session"))?;
        let rest: Vec<&[u8]> = fields.collect();
        if kind == "SYNC_DATA" {
            let [toon, t, index, total, crc, payload] = rest[..] else {
                return Err(WireError::Field("data"));
            };
            let text = |b: &[u8]| {
                std::str::from_utf8(b)
                    .map_err(|_| WireError::NotText)
                    .map(str::to_string)
            };
            return Ok(Message::SyncData {
                sid,
                toon: name(&text(toon)?)?,
                table: table(&text(t)?)?,
                index: number(&text(index)?)?,
                total: number(&text(total)?)?,
                crc: hex32(&text(crc)?)?,
                payload: payload.to_vec(),
            });
        }
        // Every other message is text; its last field may hold `|` only in a reason.
        let tail = rest.join(&b'|');
        let tail = std::str::from_utf8(&tail).map_err(|_| WireError::NotText)?;
        let f: Vec<&str> = if tail.is_empty() && rest.is_empty() {
            Vec::new()
        } else {
            tail.split('|').collect()
        };
        let want = |n: usize| {
            if f.len() == n {
                Ok(())
            } else {
                Err(WireError::Field("count"))
            }
        };
        Ok(match kind {
            "ONLINE" => {
                want(1)?;
                Message::Online {
                    sid,
                    toon: name(f[0])?,
                }
            }
            "SYNC_REQUEST" => {
                want(3)?;
                Message::SyncRequest {
                    sid,
                    toon: name(f[0])?,
                    account: name(f[1])?,
                    metadata: match f[2] {
                        "m" => true,
                        "-" => false,
                        _ => return Err(WireError::Field("flags")),
                    },
                }
            }
            "SYNC_ACCEPT" => {
                want(1)?;
                let done = if f[0].is_empty() {
                    Vec::new()
                } else {
                    f[0].split(',').map(table).collect::<Result<_, _>>()?
                };
                Message::SyncAccept { sid, done }
            }
            "SYNC_BUSY" => {
                want(1)?;
                Message::SyncBusy {
                    sid,
                    with: name(f[0])?,
                }
            }
            "SYNC_INITIATE" | "SYNC_CONFIRM_REQUEST" => {
                want(4)?;
                let (t, total, bytes, crc) = (
                    table(f[0])?,
                    number(f[1])?,
                    f[2].parse::<u64>().map_err(|_| WireError::Field("bytes"))?,
                    hex32(f[3])?,
                );
                if !f[2].bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WireError::Field("bytes"));
                }
                if kind == "SYNC_INITIATE" {
                    Message::SyncInitiate {
                        sid,
                        table: t,
                        total,
                        bytes,
                        crc,
                    }
                } else {
                    Message::SyncConfirmRequest {
                        sid,
                        table: t,
                        total,
                        bytes,
                        crc,
                    }
                }
            }
            "SYNC_READY" | "SYNC_RESEND" => {
                want(2)?;
                let (t, r) = (table(f[0])?, Ranges::decode(f[1])?);
                if kind == "SYNC_READY" {
                    Message::SyncReady {
                        sid,
                        table: t,
                        need: r,
                    }
                } else {
                    Message::SyncResend {
                        sid,
                        table: t,
                        missing: r,
                    }
                }
            }
            "SYNC_CONFIRM" => {
                want(2)?;
                Message::SyncConfirm {
                    sid,
                    table: table(f[0])?,
                    counts: counts(f[1])?,
                }
            }
            "SYNC_ERROR" => {
                if f.len() < 2 {
                    return Err(WireError::Field("count"));
                }
                Message::SyncError {
                    sid,
                    table: match f[0] {
                        "-" => None,
                        t => Some(table(t)?),
                    },
                    reason: f[1..].join("|"),
                }
            }
            "SYNC_COMPLETE" => {
                want(1)?;
                Message::SyncComplete {
                    sid,
                    written: match f[0] {
                        "1" => true,
                        "0" => false,
                        _ => return Err(WireError::Field("written")),
                    },
                }
            }
            _ => return Err(WireError::UnknownType),
        })
    }
}

#[cfg(test)]
mod tests;
