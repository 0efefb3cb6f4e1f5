//! Sessions as data: what each peer records about a sync, and persists through its driver.
//!
//! A receiver keeps one record per session into its account (who sends, which tables it holds
//! with which checksum and counts); the sender keeps its own record of the same session (what
//! it sent and what the receiver confirmed). Neither writes the other's records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::merge::Counts;
use crate::model::Target;
use crate::model::tables::TableName;

use super::Millis;
use super::wire::SessionId;

/// Which side of a session a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Send,
    Receive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    Complete,
    Failed,
    /// The receiver was busy with another sender (sender records only).
    Busy,
    Expired,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Complete => "complete",
            SessionState::Failed => "failed",
            SessionState::Busy => "busy",
            SessionState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Pending,
    InProgress,
    Complete,
    Failed,
}

impl TableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Pending => "pending",
            TableStatus::InProgress => "in progress",
            TableStatus::Complete => "complete",
            TableStatus::Failed => "failed",
        }
    }
}

/// One end of a session, as people and the transport know it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The transport's address of this end (`local/ALPHA`, `<peer id>/ALPHA`): who answers.
    pub addr: String,
    /// The account folder's name.
    pub account: String,
    /// The character the data is announced as (senders).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub toon: String,
    /// The `GuildHelper.lua` this end reads or writes, canonical, when it is local.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub status: TableStatus,
    /// Chunks of the payload, and how many the receiver holds (or the sender sent).
    pub chunks: u32,
    pub held: u32,
    pub bytes: u64,
    /// CRC-32 of the whole payload, so a resumed transfer can tell it is the same data.
    #[serde(with = "hex_crc")]
    pub crc: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TableProgress {
    pub fn new(chunks: u32, bytes: u64, crc: u32) -> Self {
        TableProgress {
            status: TableStatus::Pending,
            chunks,
            held: 0,
            bytes,
            crc,
            counts: None,
            error: None,
        }
    }
}

mod hex_crc {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{crc:08x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u32::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// One session, as one of its two peers records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub role: Role,
    pub sender: PeerInfo,
    pub receiver: PeerInfo,
    pub target: Target,
    /// Whether the source has a `metadata` table (the receiver rebuilds its own).
    #[serde(default)]
    pub metadata: bool,
    /// Milliseconds since the Unix epoch.
    pub started: Millis,
    pub last_activity: Millis,
    pub state: SessionState,
    #[serde(default)]
    pub tables: BTreeMap<TableName, TableProgress>,
    /// Whether the receiver wrote a file when the session completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<bool>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SessionRecord {
    /// Active, heard from within the timeout, and not older than [`super::MAX_SESSION_MS`].
    pub fn is_live(&self, now: Millis) -> bool {
        self.state == SessionState::Active
            && now.saturating_sub(self.last_activity) <= super::SESSION_TIMEOUT_MS
            && now.saturating_sub(self.started) <= super::MAX_SESSION_MS
    }

    /// When it stops being live, if nothing happens meanwhile.
    pub fn ends_at(&self) -> Millis {
        (self.last_activity + super::SESSION_TIMEOUT_MS).min(self.started + super::MAX_SESSION_MS)
            + 1
    }
}
