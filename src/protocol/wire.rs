//! The wire format: one addon message per [`Message`], as text `TYPE|session|field|...|crc`.
//!
//! Every message ends with `|` and the CRC-32 of everything before it (8 lowercase hex digits),
//! so a message damaged anywhere is dropped like a lost one. A message is at most
//! [`MAX_MESSAGE`] bytes and never contains a NUL byte. The payload of a data chunk is the field
//! before the checksum and may itself contain `|`. See `docs/PROTOCOL.md`.

use std::fmt::{self, Write as _};

use crate::merge::Counts;
use crate::model::tables::TableName;

/// The game's limit on one addon message.
pub const MAX_MESSAGE: usize = 255;
/// The largest payload slice of a data chunk ("limit chunks to ~200").
pub const MAX_SLICE: usize = 200;
/// The longest toon or account name a message carries.
pub const MAX_NAME: usize = 48;
/// `|` and 8 hex digits at the end of every message.
pub const CHECKSUM_LEN: usize = 9;
/// The most chunks one table may have; with [`MAX_SLICE`] this bounds a table's size.
pub const MAX_CHUNKS: u32 = 1 << 21;
/// The largest table a peer may announce (bytes of JSON).
pub const MAX_PAYLOAD: u64 = 256 << 20;

/// A session id: 8 lowercase hex digits. `00000000` is not a session (ONLINE uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl SessionId {
    pub fn parse(text: &str) -> Option<SessionId> {
        hex32(text).ok().map(SessionId)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SessionId::parse(&text).ok_or_else(|| serde::de::Error::custom("bad session id"))
    }
}

/// A toon or account name as it travels: 1 to [`MAX_NAME`] bytes of UTF-8, no `|`, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// The name, if it is valid on the wire as it is.
    pub fn new(text: &str) -> Option<Name> {
        let ok = !text.is_empty()
            && text.len() <= MAX_NAME
            && !text.chars().any(|c| c == '|' || c.is_control());
        ok.then(|| Name(text.to_string()))
    }

    /// A name made fit for the wire: `|` and control characters become `_`, and it is cut (on
    /// a character boundary) to [`MAX_NAME`] bytes. An empty name becomes `account`.
    pub fn sanitize(text: &str) -> Name {
        let mut out = String::new();
        for c in text.chars() {
            let c = if c == '|' || c.is_control() { '_' } else { c };
            if out.len() + c.len_utf8() > MAX_NAME {
                break;
            }
            out.push(c);
        }
        if out.is_empty() {
            out.push_str("account");
        }
        Name(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A set of synced tables, written as their names in sync order, comma separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TableSet(u8);

impl TableSet {
    pub const EMPTY: TableSet = TableSet(0);

    fn bit(t: TableName) -> u8 {
        1 << TableName::ALL.iter().position(|&x| x == t).unwrap_or(0)
    }

    pub fn insert(&mut self, t: TableName) {
        self.0 |= Self::bit(t);
    }

    pub fn remove(&mut self, t: TableName) {
        self.0 &= !Self::bit(t);
    }

    pub fn contains(self, t: TableName) -> bool {
        self.0 & Self::bit(t) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every table of `other` is in this set.
    pub fn covers(self, other: TableSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn iter(self) -> impl Iterator<Item = TableName> {
        TableName::ALL
            .into_iter()
            .filter(move |&t| self.contains(t))
    }

    fn encode(self, out: &mut String) {
        let mut first = true;
        for t in self.iter() {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(t.as_str());
        }
    }

    fn decode(text: &str) -> Result<TableSet, WireError> {
        let mut set = TableSet::EMPTY;
        if text.is_empty() {
            return Ok(set);
        }
        for name in text.split(',') {
            let t = table(name)?;
            if set.contains(t) {
                return Err(WireError::Field("tables"));
            }
            set.insert(t);
        }
        Ok(set)
    }
}

impl FromIterator<TableName> for TableSet {
    fn from_iter<I: IntoIterator<Item = TableName>>(iter: I) -> Self {
        let mut set = TableSet::EMPTY;
        for t in iter {
            set.insert(t);
        }
        set
    }
}

impl fmt::Display for TableSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.encode(&mut s);
        f.write_str(if s.is_empty() { "none" } else { &s })
    }
}

/// The payload checksum of each table a source sends, in sync order (`-` for a table the
/// source does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksums(pub [Option<u32>; 5]);

impl Checksums {
    pub fn get(&self, t: TableName) -> Option<u32> {
        self.0[TableName::ALL.iter().position(|&x| x == t).unwrap_or(0)]
    }

    pub fn set(&mut self, t: TableName, crc: u32) {
        self.0[TableName::ALL.iter().position(|&x| x == t).unwrap_or(0)] = Some(crc);
    }

    /// The tables the source has.
    pub fn tables(&self) -> TableSet {
        TableName::ALL
            .into_iter()
            .filter(|&t| self.get(t).is_some())
            .collect()
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
                Some((_, end)) if end.checked_add(1) == Some(i) => *end = i,
                _ => out.push((i, i)),
            }
        }
        Ranges(out)
    }

    /// All of `1..=total`.
    pub fn all(total: u32) -> Ranges {
        if total == 0 {
            Ranges::default()
        } else {
            Ranges(vec![(1, total)])
        }
    }

    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..=b)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many indices the ranges name.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
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
        let mut out: Vec<(u32, u32)> = Vec::new();
        for part in text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let a = number(part)?;
                    (a, a)
                }
            };
            // Ascending and not overlapping, so a message names each index at most once.
            if a == 0 || b < a || out.last().is_some_and(|&(_, end)| a <= end) {
                return Err(WireError::Field("ranges"));
            }
            out.push((a, b));
        }
        Ok(Ranges(out))
    }
}

/// What SYNC_INITIATE announces and SYNC_CONFIRM_REQUEST repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    pub table: TableName,
    /// Chunks.
    pub total: u32,
    /// Bytes of payload.
    pub bytes: u64,
    /// CRC-32 of the whole payload.
    pub crc: u32,
}

impl Announce {
    /// Whether a transfer of this size can exist: at least one byte per chunk, at most
    /// [`MAX_SLICE`], and within the protocol's bounds.
    pub fn is_possible(&self) -> bool {
        self.total >= 1
            && self.total <= MAX_CHUNKS
            && self.bytes <= MAX_PAYLOAD
            && u64::from(self.total) <= self.bytes.max(1)
            && self.bytes <= u64::from(self.total) * MAX_SLICE as u64
    }
}

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// "I am here": a toon of an account, and the protocol version it speaks.
    Online {
        toon: Name,
        account: Name,
        version: u32,
    },
    /// Sender -> receiver: is the receiver idle? `sid` is a new id the sender proposes;
    /// `crcs` are the payload checksums of the tables it will send; `metadata` tells that the
    /// source has a `metadata` table.
    SyncRequest {
        sid: SessionId,
        version: u32,
        toon: Name,
        account: Name,
        metadata: bool,
        crcs: Checksums,
    },
    /// Receiver -> sender: ready. `sid` is the session to use (the proposed one, or an
    /// interrupted one of this sender to resume); `done` are tables it already holds with the
    /// announced checksums; `partial` are tables of which it holds some chunks.
    SyncAccept {
        sid: SessionId,
        done: TableSet,
        partial: TableSet,
    },
    /// Receiver -> sender: busy with another sender's session.
    SyncBusy { sid: SessionId, with: Name },
    /// Sender -> receiver: a table follows.
    SyncInitiate { sid: SessionId, announce: Announce },
    /// Receiver -> sender (only for a table it listed as partial): send these chunks.
    SyncReady {
        sid: SessionId,
        table: TableName,
        need: Ranges,
    },
    /// Sender -> receiver: chunk `index` (1-based) of `total`.
    SyncData {
        sid: SessionId,
        toon: Name,
        table: TableName,
        index: u32,
        total: u32,
        payload: Vec<u8>,
    },
    /// Sender -> receiver: all chunks sent; confirm the table.
    SyncConfirmRequest { sid: SessionId, announce: Announce },
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
    /// Sender -> receiver: write the result as soon as you hold all of these tables.
    SyncCommit { sid: SessionId, tables: TableSet },
    /// Receiver -> sender: committed; `written` tells whether a file was written.
    SyncComplete { sid: SessionId, written: bool },
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("message contains a NUL byte")]
    Nul,
    #[error("message checksum missing or wrong")]
    Checksum,
    #[error("unknown message type")]
    UnknownType,
    #[error("missing or bad field `{0}`")]
    Field(&'static str),
    #[error("message is not UTF-8 text")]
    NotText,
}

/// A decimal number as the protocol writes it: digits only, no leading zero, at most `u32`.
fn number(text: &str) -> Result<u32, WireError> {
    number64(text).and_then(|n| u32::try_from(n).map_err(|_| WireError::Field("number")))
}

fn number64(text: &str) -> Result<u64, WireError> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(WireError::Field("number"));
    }
    text.parse().map_err(|_| WireError::Field("number"))
}

/// 8 lowercase hex digits.
fn hex32(text: &str) -> Result<u32, WireError> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(WireError::Field("hex"));
    }
    u32::from_str_radix(text, 16).map_err(|_| WireError::Field("hex"))
}

fn name(text: &str) -> Result<Name, WireError> {
    Name::new(text).ok_or(WireError::Field("name"))
}

fn table(text: &str) -> Result<TableName, WireError> {
    TableName::parse(text).ok_or(WireError::Field("table"))
}

fn flag(text: &str, yes: &str, no: &str, field: &'static str) -> Result<bool, WireError> {
    match text {
        t if t == yes => Ok(true),
        t if t == no => Ok(false),
        _ => Err(WireError::Field(field)),
    }
}

/// The counts in their wire order: received, added, updated, unchanged, kept newer, conflicts,
/// skipped.
fn counts_text(c: &Counts) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        c.received, c.added, c.updated, c.unchanged, c.kept_newer, c.conflicts, c.skipped
    )
}

fn counts(text: &str) -> Result<Counts, WireError> {
    let v: Vec<u64> = text.split(',').map(number64).collect::<Result<_, _>>()?;
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

/// A reason as one safe field: no `|`, no control characters, cut to `budget` bytes.
pub fn clean_reason(reason: &str, budget: usize) -> String {
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

/// The bytes a data chunk's header takes before its payload:
/// `SYNC_DATA|sid|toon|table|index|total|`.
pub fn data_header_len(toon: &Name, table: TableName, index: u32, total: u32) -> usize {
    "SYNC_DATA|".len()
        + 9
        + toon.as_str().len()
        + 1
        + table.as_str().len()
        + 1
        + digits(index)
        + 1
        + digits(total)
        + 1
}

fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The largest slice a chunk of this table can carry with this toon name and up to `total`
/// chunks, so that the whole message stays within [`MAX_MESSAGE`].
pub fn slice_room(toon: &Name, table: TableName, total: u32) -> usize {
    let header = data_header_len(toon, table, total, total);
    MAX_SLICE.min(MAX_MESSAGE - CHECKSUM_LEN - header)
}

impl Message {
    /// The session the message belongs to (`00000000` for ONLINE).
    pub fn sid(&self) -> SessionId {
        match self {
            Message::Online { .. } => SessionId(0),
            Message::SyncRequest { sid, .. }
            | Message::SyncAccept { sid, .. }
            | Message::SyncBusy { sid, .. }
            | Message::SyncInitiate { sid, .. }
            | Message::SyncReady { sid, .. }
            | Message::SyncData { sid, .. }
            | Message::SyncConfirmRequest { sid, .. }
            | Message::SyncResend { sid, .. }
            | Message::SyncConfirm { sid, .. }
            | Message::SyncError { sid, .. }
            | Message::SyncCommit { sid, .. }
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
            Message::SyncCommit { .. } => "SYNC_COMMIT",
            Message::SyncComplete { .. } => "SYNC_COMPLETE",
        }
    }

    /// The message as sent, checksum included. Never longer than [`MAX_MESSAGE`] bytes:
    /// variable-length fields (ranges, reasons) are cut to fit, and a data payload must have
    /// been sliced to fit ([`slice_room`]).
    pub fn encode(&self) -> Vec<u8> {
        let budget = MAX_MESSAGE - CHECKSUM_LEN;
        let mut s = format!("{}|{}", self.kind(), self.sid());
        let mut body: Vec<u8> = match self {
            Message::Online {
                toon,
                account,
                version,
            } => {
                let _ = write!(s, "|{toon}|{account}|{version}");
                s.into_bytes()
            }
            Message::SyncRequest {
                version,
                toon,
                account,
                metadata,
                crcs,
                ..
            } => {
                let _ = write!(
                    s,
                    "|{version}|{toon}|{account}|{}|",
                    if *metadata { "m" } else { "-" }
                );
                for (i, crc) in crcs.0.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    match crc {
                        Some(c) => {
                            let _ = write!(s, "{c:08x}");
                        }
                        None => s.push('-'),
                    }
                }
                s.into_bytes()
            }
            Message::SyncAccept { done, partial, .. } => {
                s.push('|');
                done.encode(&mut s);
                s.push('|');
                partial.encode(&mut s);
                s.into_bytes()
            }
            Message::SyncBusy { with, .. } => {
                let _ = write!(s, "|{with}");
                s.into_bytes()
            }
            Message::SyncInitiate { announce: a, .. }
            | Message::SyncConfirmRequest { announce: a, .. } => {
                let _ = write!(s, "|{}|{}|{}|{:08x}", a.table, a.total, a.bytes, a.crc);
                s.into_bytes()
            }
            Message::SyncReady { table, need: r, .. }
            | Message::SyncResend {
                table, missing: r, ..
            } => {
                let _ = write!(s, "|{table}|");
                let room = budget.saturating_sub(s.len());
                r.encode(&mut s, room);
                s.into_bytes()
            }
            Message::SyncData {
                toon,
                table,
                index,
                total,
                payload,
                ..
            } => {
                let _ = write!(s, "|{toon}|{table}|{index}|{total}|");
                let mut out = s.into_bytes();
                out.extend_from_slice(payload);
                out
            }
            Message::SyncConfirm { table, counts, .. } => {
                let _ = write!(s, "|{table}|{}", counts_text(counts));
                s.into_bytes()
            }
            Message::SyncError { table, reason, .. } => {
                let t = table.map_or("-", |t| t.as_str());
                let _ = write!(s, "|{t}|");
                let room = budget.saturating_sub(s.len());
                s.push_str(&clean_reason(reason, room));
                s.into_bytes()
            }
            Message::SyncCommit { tables, .. } => {
                s.push('|');
                tables.encode(&mut s);
                s.into_bytes()
            }
            Message::SyncComplete { written, .. } => {
                let _ = write!(s, "|{}", if *written { "1" } else { "0" });
                s.into_bytes()
            }
        };
        let crc = crc32fast::hash(&body);
        let _ = write!(HexSink(&mut body), "|{crc:08x}");
        body
    }

    /// Reads a message. Anything malformed or damaged is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(WireError::TooLong);
        }
        if bytes.contains(&0) {
            return Err(WireError::Nul);
        }
        let body = checked_body(bytes)?;
        // The header is text; a data payload is bytes.
        let mut fields = body.splitn(7, |&b| b == b'|');
        let kind = fields.next().ok_or(WireError::UnknownType)?;
        let kind = std::str::from_utf8(kind).map_err(|_| WireError::NotText)?;
        let sid_text = fields.next().ok_or(WireError::Field("session"))?;
        let sid = std::str::from_utf8(sid_text)
            .ok()
            .and_then(SessionId::parse)
            .ok_or(WireError::Field("session"))?;
        if kind == "SYNC_DATA" {
            let rest: Vec<&[u8]> = fields.collect();
            let [toon, t, index, total, payload] = rest[..] else {
                return Err(WireError::Field("data"));
            };
            let text = |b| std::str::from_utf8(b).map_err(|_| WireError::NotText);
            let (index, total) = (number(text(index)?)?, number(text(total)?)?);
            if index == 0 || index > total || total > MAX_CHUNKS || payload.len() > MAX_SLICE {
                return Err(WireError::Field("index"));
            }
            return Ok(Message::SyncData {
                sid: nonzero(sid)?,
                toon: name(text(toon)?)?,
                table: table(text(t)?)?,
                index,
                total,
                payload: payload.to_vec(),
            });
        }
        let body = std::str::from_utf8(body).map_err(|_| WireError::NotText)?;
        let mut parts = body.splitn(3, '|');
        let (_, _) = (parts.next(), parts.next());
        let tail = parts.next();
        // Every other message is text; only a reason (the last field) may hold `|`.
        let f: Vec<&str> = match (kind, tail) {
            (_, None) => Vec::new(),
            ("SYNC_ERROR", Some(t)) => t.splitn(2, '|').collect(),
            (_, Some(t)) => t.split('|').collect(),
        };
        let want = |n: usize| {
            if f.len() == n {
                Ok(())
            } else {
                Err(WireError::Field("count"))
            }
        };
        let msg = match kind {
            "ONLINE" => {
                want(3)?;
                if sid.0 != 0 {
                    return Err(WireError::Field("session"));
                }
                Message::Online {
                    toon: name(f[0])?,
                    account: name(f[1])?,
                    version: number(f[2])?,
                }
            }
            "SYNC_REQUEST" => {
                want(5)?;
                let mut crcs = Checksums::default();
                let parts: Vec<&str> = f[4].split(',').collect();
                if parts.len() != 5 {
                    return Err(WireError::Field("crcs"));
                }
                for (t, p) in TableName::ALL.into_iter().zip(parts) {
                    if p != "-" {
                        crcs.set(t, hex32(p)?);
                    }
                }
                Message::SyncRequest {
                    sid,
                    version: number(f[0])?,
                    toon: name(f[1])?,
                    account: name(f[2])?,
                    metadata: flag(f[3], "m", "-", "flags")?,
                    crcs,
                }
            }
            "SYNC_ACCEPT" => {
                want(2)?;
                Message::SyncAccept {
                    sid,
                    done: TableSet::decode(f[0])?,
                    partial: TableSet::decode(f[1])?,
                }
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
                let announce = Announce {
                    table: table(f[0])?,
                    total: number(f[1])?,
                    bytes: number64(f[2])?,
                    crc: hex32(f[3])?,
                };
                if kind == "SYNC_INITIATE" {
                    Message::SyncInitiate { sid, announce }
                } else {
                    Message::SyncConfirmRequest { sid, announce }
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
                want(2)?;
                Message::SyncError {
                    sid,
                    table: match f[0] {
                        "-" => None,
                        t => Some(table(t)?),
                    },
                    reason: f[1].to_string(),
                }
            }
            "SYNC_COMMIT" => {
                want(1)?;
                Message::SyncCommit {
                    sid,
                    tables: TableSet::decode(f[0])?,
                }
            }
            "SYNC_COMPLETE" => {
                want(1)?;
                Message::SyncComplete {
                    sid,
                    written: flag(f[0], "1", "0", "written")?,
                }
            }
            _ => return Err(WireError::UnknownType),
        };
        if !matches!(msg, Message::Online { .. }) {
            nonzero(sid)?;
        }
        Ok(msg)
    }
}

fn nonzero(sid: SessionId) -> Result<SessionId, WireError> {
    if sid.0 == 0 {
        Err(WireError::Field("session"))
    } else {
        Ok(sid)
    }
}

/// The message without its checksum, if the checksum is there and right.
fn checked_body(bytes: &[u8]) -> Result<&[u8], WireError> {
    let Some(split) = bytes.len().checked_sub(CHECKSUM_LEN) else {
        return Err(WireError::Checksum);
    };
    let (body, tail) = bytes.split_at(split);
    if tail[0] != b'|' {
        return Err(WireError::Checksum);
    }
    let want = std::str::from_utf8(&tail[1..])
        .ok()
        .and_then(|t| hex32(t).ok())
        .ok_or(WireError::Checksum)?;
    if crc32fast::hash(body) != want {
        return Err(WireError::Checksum);
    }
    Ok(body)
}

/// Lets `write!` append text to a byte buffer.
struct HexSink<'a>(&'a mut Vec<u8>);

impl fmt::Write for HexSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
