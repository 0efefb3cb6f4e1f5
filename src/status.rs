//! `status`: what svsync knows about each account (the "online addon users" of the addon's sync
//! pane): its file, toons, entries per table, the target table and the last sync.

use std::collections::BTreeMap;

use crate::fsio::accounts::Account;
use crate::lua::{Keep, LuaValue, ParseOptions, Table, parse_with};
use crate::merge::merge_shared;
use crate::model::tables::{TableName, entries};
use crate::model::{SAVED_VARIABLES, SHARED_DATA, SHARED_DATA_REMOTE, shared_table};
use crate::protocol::session::{SessionRecord, SessionState};
use crate::time::utc_text;

#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub account: String,
    pub flavor: Option<String>,
    pub file: String,
    pub size: u64,
    /// Last modified, UTC.
    pub modified: Option<String>,
    pub toons: Vec<String>,
    /// Entries per synced table of `sharedData`.
    pub entries: BTreeMap<String, usize>,
    /// Whether `sharedDataRemote` exists.
    pub remote: bool,
    /// The other accounts whose `sharedData` is already fully merged into this account's
    /// `sharedDataRemote` (a merge would change nothing).
    pub in_step_with: Vec<String>,
    pub last_sync: Option<LastSync>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LastSync {
    pub session: String,
    pub from: String,
    pub to: String,
    pub state: SessionState,
    pub when: String,
}

const STATUS_PATHS: &[&[&str]] = &[
    &[SAVED_VARIABLES, SHARED_DATA],
    &[SAVED_VARIABLES, SHARED_DATA_REMOTE],
    &[SAVED_VARIABLES, "characterInfo"],
];

struct Loaded {
    shared: Option<Table>,
    remote: Option<Table>,
    toons: Vec<String>,
}

fn load(bytes: &[u8]) -> Result<Loaded, String> {
    let options = ParseOptions {
        keep: Keep::Paths(STATUS_PATHS),
        ..Default::default()
    };
    let doc = parse_with(bytes, &options).map_err(|e| {
        let p = e.position(bytes);
        format!("{}:{}: {e}", p.line, p.column)
    })?;
    let shared = shared_table(&doc, SHARED_DATA).map_err(|e| e.to_string())?;
    let remote = shared_table(&doc, SHARED_DATA_REMOTE).map_err(|e| e.to_string())?;
    let toons = shared_table(&doc, "characterInfo")
        .ok()
        .flatten()
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    Ok(Loaded {
        shared,
        remote,
        toons,
    })
}

fn last_sync(records: &[SessionRecord], file: &str) -> Option<LastSync> {
    records
        .iter()
        .filter(|s| s.receiver.file == file || s.sender.file == file)
        .max_by_key(|s| s.last_activity)
        .map(|s: &SessionRecord| LastSync {
            session: s.id.to_string(),
            from: s.sender.account.clone(),
            to: s.receiver.account.clone(),
            state: s.state,
            when: utc_text(s.last_activity),
        })
}

/// The status of each account; `records` (both peers' session records) give the last sync of
/// each.
pub fn statuses(accounts: &[Account], records: &[SessionRecord]) -> Vec<AccountStatus> {
    let loaded: Vec<Result<Loaded, String>> = accounts
        .iter()
        .map(|a| {
            std::fs::read(&a.file)
                .map_err(|e| e.to_string())
                .and_then(|b| load(&b))
        })
        .collect();
    accounts
        .iter()
        .zip(&loaded)
        .map(|(a, l)| {
            let meta = std::fs::metadata(&a.file).ok();
            let file = a.file.to_string_lossy().into_owned();
            let real = crate::fsio::write::real_path(&a.file)
                .map_or_else(|_| file.clone(), |p| p.display().to_string());
            let mut status = AccountStatus {
                account: a.name.clone(),
                flavor: a.flavor.clone(),
                size: meta.as_ref().map_or(0, std::fs::Metadata::len),
                modified: meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| utc_text(d.as_secs())),
                last_sync: last_sync(records, &real),
                file,
                toons: Vec::new(),
                entries: BTreeMap::new(),
                remote: false,
                in_step_with: Vec::new(),
                error: None,
            };
            match l {
                Err(e) => status.error = Some(e.clone()),
                Ok(l) => {
                    status.toons = l.toons.clone();
                    for t in TableName::ALL {
                        let n = l
                            .shared
                            .as_ref()
                            .and_then(|s| s.get_str(t.as_str()))
                            .and_then(LuaValue::as_table)
                            .map_or(0, |t| entries(t).len());
                        status.entries.insert(t.to_string(), n);
                    }
                    status.remote = l.remote.is_some();
                    for (other, ol) in accounts.iter().zip(&loaded) {
                        let Ok(Loaded {
                            shared: Some(theirs),
                            ..
                        }) = ol
                        else {
                            continue;
                        };
                        if other.file == a.file || l.remote.is_none() {
                            continue;
                        }
                        let merge = merge_shared(theirs, l.remote.as_ref());
                        if merge.tables.iter().all(|(_, m)| !m.changed) {
                            status.in_step_with.push(other.name.clone());
                        }
                    }
                }
            }
            status
        })
        .collect()
}
