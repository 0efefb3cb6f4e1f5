//! Every JSON document svsync prints, in one place: these shapes are a contract for scripts
//! (`--json`), so they are defined here, apart from the library's types, and only extended.

use serde::Serialize;
use serde_json::{Map, Value};

use svsync::merge::Counts;
use svsync::peer::pair::{PairOutcome, PairReport};
use svsync::protocol::session::SessionRecord;
use svsync::time::utc_text;
use svsync::validate::FileReport;

/// Counts of one table, in their documented order.
#[derive(Debug, Serialize)]
pub struct CountsJson {
    pub received: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub kept_newer: u64,
    pub conflicts: u64,
    pub skipped: u64,
}

impl From<Counts> for CountsJson {
    fn from(c: Counts) -> Self {
        CountsJson {
            received: c.received,
            added: c.added,
            updated: c.updated,
            unchanged: c.unchanged,
            kept_newer: c.kept_newer,
            conflicts: c.conflicts,
            skipped: c.skipped,
        }
    }
}

/// `svsync validate --json`.
#[derive(Debug, Serialize)]
pub struct ValidateDoc {
    pub files: Vec<FileJson>,
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Serialize)]
pub struct FileJson {
    pub path: String,
    pub errors: Vec<FindingJson>,
    pub warnings: Vec<FindingJson>,
}

#[derive(Debug, Serialize)]
pub struct FindingJson {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<&FileReport> for FileJson {
    fn from(r: &FileReport) -> Self {
        let findings = |v: &[svsync::validate::Finding]| {
            v.iter()
                .map(|f| FindingJson {
                    line: f.line,
                    column: f.column,
                    message: f.message.clone(),
                })
                .collect()
        };
        FileJson {
            path: r.path.to_string_lossy().into_owned(),
            errors: findings(&r.errors),
            warnings: findings(&r.warnings),
        }
    }
}

/// `svsync merge --json` (and each sync line of `watch --json`).
#[derive(Debug, Serialize)]
pub struct MergeDoc {
    pub session: Option<String>,
    /// Per table, in sync order.
    pub tables: Map<String, Value>,
    pub written: Option<String>,
    /// `complete`, `busy` or `failed`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub dry_run: bool,
    pub changes: bool,
    pub backup: Option<String>,
    pub resumed: bool,
    pub messages: u64,
    pub in_game_seconds: f64,
    /// Per table, records of TO that repeated an id (one copy of each id is kept); only when
    /// there were any.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub duplicates: Map<String, Value>,
}

impl MergeDoc {
    pub fn of(r: &PairReport, dry_run: bool) -> MergeDoc {
        let mut tables = Map::new();
        for t in &r.tables {
            let counts = CountsJson::from(t.counts.unwrap_or_default());
            tables.insert(
                t.table.to_string(),
                serde_json::to_value(counts).unwrap_or(Value::Null),
            );
        }
        let (outcome, reason) = match &r.outcome {
            PairOutcome::Complete => ("complete", None),
            PairOutcome::Busy { .. } => ("busy", r.failure().map(|f| f.to_string())),
            PairOutcome::Failed(_) => ("failed", r.failure().map(|f| f.to_string())),
        };
        MergeDoc {
            session: Some(r.session.to_string()),
            tables,
            written: r.written.as_ref().map(|p| p.display().to_string()),
            outcome,
            reason,
            dry_run,
            changes: r.changes,
            backup: r.backup.as_ref().map(|p| p.display().to_string()),
            resumed: r.resumed,
            messages: r.messages_sent + r.messages_received,
            in_game_seconds: r.in_game_seconds.round(),
            duplicates: r
                .duplicates
                .iter()
                .map(|(t, n)| (t.to_string(), Value::from(*n)))
                .collect(),
        }
    }
}

/// What `merge --json` prints when it could not run.
#[derive(Debug, Serialize)]
pub struct MergeErrorDoc {
    pub session: Option<String>,
    pub tables: Map<String, Value>,
    pub written: Option<String>,
    pub outcome: &'static str,
    pub error: String,
}

impl MergeErrorDoc {
    pub fn new(error: String) -> Self {
        MergeErrorDoc {
            session: None,
            tables: Map::new(),
            written: None,
            outcome: "failed",
            error,
        }
    }
}

/// `svsync sessions list --json`.
#[derive(Debug, Serialize)]
pub struct SessionsDoc {
    pub sessions: Vec<SessionJson>,
    /// Record files that could not be read and were moved aside.
    pub damaged: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub id: String,
    pub role: &'static str,
    pub state: &'static str,
    pub sender: PeerJson,
    pub receiver: PeerJson,
    pub target: String,
    pub started: String,
    pub last_activity: String,
    pub tables: Map<String, Value>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PeerJson {
    pub account: String,
    pub toon: String,
    pub file: String,
}

#[derive(Debug, Serialize)]
struct TableJson {
    status: &'static str,
    chunks: u32,
    held: u32,
    bytes: u64,
    counts: Option<CountsJson>,
    error: Option<String>,
}

impl From<&SessionRecord> for SessionJson {
    fn from(r: &SessionRecord) -> Self {
        let peer = |p: &svsync::protocol::session::PeerInfo| PeerJson {
            account: p.account.clone(),
            toon: p.toon.clone(),
            file: p.file.clone(),
        };
        let mut tables = Map::new();
        for (t, p) in &r.tables {
            let v = TableJson {
                status: match p.status {
                    svsync::protocol::session::TableStatus::Pending => "pending",
                    svsync::protocol::session::TableStatus::InProgress => "in_progress",
                    svsync::protocol::session::TableStatus::Complete => "complete",
                    svsync::protocol::session::TableStatus::Failed => "failed",
                },
                chunks: p.chunks,
                held: p.held,
                bytes: p.bytes,
                counts: p.counts.map(CountsJson::from),
                error: p.error.clone(),
            };
            tables.insert(
                t.to_string(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            );
        }
        SessionJson {
            id: r.id.to_string(),
            role: match r.role {
                svsync::protocol::session::Role::Send => "send",
                svsync::protocol::session::Role::Receive => "receive",
            },
            state: r.state.as_str(),
            sender: peer(&r.sender),
            receiver: peer(&r.receiver),
            target: r.target.to_string(),
            started: utc_text(r.started),
            last_activity: utc_text(r.last_activity),
            tables,
            error: r.error.clone(),
        }
    }
}

/// `svsync sessions reset --json`.
#[derive(Debug, Serialize)]
pub struct ResetDoc {
    pub cleared: usize,
}

/// `svsync status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub accounts: Vec<AccountJson>,
    /// Every pair in step.
    pub in_step: bool,
    pub pairs: Vec<PairJson>,
    /// With `--mailbox`: the PCs of the group, as the shared folder shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<GroupPeerJson>>,
}

/// A PC of the group (`status --mailbox`).
#[derive(Debug, Serialize)]
pub struct GroupPeerJson {
    pub name: String,
    pub id: String,
    pub accounts: Vec<String>,
    /// Heard from within the last few minutes.
    pub online: bool,
    /// When its newest file was written (UTC).
    pub last_seen: String,
    /// When a sync between it and this PC last completed (UTC), from this PC's records.
    pub last_sync: Option<String>,
    /// It is this PC (by the state folder used).
    pub this_pc: bool,
}

#[derive(Debug, Serialize)]
pub struct PairJson {
    pub from: String,
    pub to: String,
    /// `null` when one of the files cannot be used.
    pub in_step: Option<bool>,
    pub why: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AccountJson {
    pub account: String,
    pub flavor: Option<String>,
    pub file: String,
    pub size: u64,
    pub modified: Option<String>,
    pub toons: Vec<String>,
    pub entries: Map<String, Value>,
    pub remote: bool,
    pub in_step_with: Vec<String>,
    pub last_sync: Option<LastSyncJson>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LastSyncJson {
    pub session: String,
    pub from: String,
    pub to: String,
    pub state: &'static str,
    pub when: String,
}

impl StatusDoc {
    pub fn of(st: &svsync::status::Status, peers: Option<Vec<GroupPeerJson>>) -> StatusDoc {
        StatusDoc {
            peers,
            accounts: st
                .accounts
                .iter()
                .map(|s| AccountJson {
                    account: s.account.clone(),
                    flavor: s.flavor.clone(),
                    file: s.file.clone(),
                    size: s.size,
                    modified: s.modified.clone(),
                    toons: s.toons.clone(),
                    entries: s
                        .entries
                        .iter()
                        .map(|(t, n)| (t.clone(), Value::from(*n)))
                        .collect(),
                    remote: s.remote,
                    in_step_with: s.in_step_with.clone(),
                    last_sync: s.last_sync.as_ref().map(|l| LastSyncJson {
                        session: l.session.clone(),
                        from: l.from.clone(),
                        to: l.to.clone(),
                        state: l.state.as_str(),
                        when: l.when.clone(),
                    }),
                    error: s.error.clone(),
                })
                .collect(),
            in_step: st.in_step,
            pairs: st
                .pairs
                .iter()
                .map(|p| PairJson {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    in_step: p.in_step,
                    why: p.why.clone(),
                })
                .collect(),
        }
    }
}

/// `svsync restore ACCOUNT --json`: the backups.
#[derive(Debug, Serialize)]
pub struct RestoreListDoc {
    pub account: String,
    pub file: String,
    pub backups: Vec<BackupJson>,
}

#[derive(Debug, Serialize)]
pub struct BackupJson {
    pub path: String,
    pub time: String,
    pub size: u64,
    pub original: bool,
    pub entries: Option<Map<String, Value>>,
    pub error: Option<String>,
}

impl From<&svsync::restore::Backup> for BackupJson {
    fn from(b: &svsync::restore::Backup) -> Self {
        BackupJson {
            path: b.path.display().to_string(),
            time: utc_text(b.made),
            size: b.size,
            original: b.original,
            entries: b.summary.as_ref().ok().map(|s| {
                s.entries
                    .iter()
                    .map(|(t, n)| (t.to_string(), Value::from(*n)))
                    .collect()
            }),
            error: b.summary.as_ref().err().cloned(),
        }
    }
}

/// `svsync restore ACCOUNT BACKUP --json`.
#[derive(Debug, Serialize)]
pub struct RestoredDoc {
    pub restored: String,
    pub file: String,
    pub backup_of_current: Option<String>,
}

/// One line of `watch --json` and `sync --json`: an event, named by `"event"`.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventJson {
    Account {
        time: String,
        account: String,
        flavor: Option<String>,
        file: String,
    },
    Sync {
        time: String,
        from: String,
        to: String,
        #[serde(flatten)]
        doc: Box<MergeDoc>,
    },
    SyncFailed {
        time: String,
        from: String,
        to: String,
        reason: String,
    },
    Failing {
        time: String,
        from: String,
        to: String,
        reason: String,
        retry_in_s: u64,
    },
    Recovered {
        time: String,
        from: String,
        to: String,
    },
    Waiting {
        time: String,
        account: String,
        reason: String,
        backups: Vec<String>,
    },
    Usable {
        time: String,
        account: String,
    },
    InStep {
        time: String,
        accounts: usize,
    },
    /// A local account's data sent to an account of another PC (`to`: `PC/ACCOUNT`).
    GroupSent {
        time: String,
        from: String,
        to: String,
        outcome: String,
        written: Option<bool>,
    },
    GroupReceived {
        time: String,
        account: String,
        written: bool,
    },
    GroupIgnored {
        time: String,
        file: String,
        reason: String,
    },
    GroupError {
        time: String,
        reason: String,
    },
    Stopped {
        time: String,
    },
    Error {
        time: String,
        reason: String,
    },
    /// The last line of `sync --json`.
    Done {
        accounts: usize,
        syncs: u32,
        failed: u32,
        in_step: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<GroupDoneJson>,
    },
}

impl EventJson {
    pub fn print(&self) {
        println!("{}", serde_json::to_string(self).unwrap_or_default());
    }
}

/// How `sync --mailbox` went with the other PCs.
#[derive(Debug, Serialize)]
pub struct GroupDoneJson {
    pub settled: bool,
    pub remote_accounts: usize,
    pub sent: u32,
    pub received: u32,
    pub failed: u32,
}

/// `svsync mailbox init --json`.
#[derive(Debug, Serialize)]
pub struct MailboxInitDoc {
    pub mailbox: String,
    pub key_file: String,
    /// The group key's fingerprint (also the name of the group's state folder).
    pub group: String,
}
