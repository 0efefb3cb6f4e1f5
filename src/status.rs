//! `status`: the accounts found (the "online addon users" of the addon's sync pane), what each
//! holds, whether each pair is in step, and the last sync of each; then the answer to the
//! player's question: are they all in step?
//!
//! It reads every file but parses only those whose content it has no answers for (answers are
//! kept by content digest in the state folder, see [`crate::set`]).

use crate::protocol::session::{SessionRecord, SessionState};
use crate::set::AccountSet;
use crate::time::{ms_of, utc_text};

#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub account: String,
    pub flavor: Option<String>,
    pub file: String,
    pub size: u64,
    /// Last modified, UTC.
    pub modified: Option<String>,
    pub toons: Vec<String>,
    /// Entries per synced table of `sharedData`, in sync order.
    pub entries: Vec<(String, usize)>,
    /// Whether `sharedDataRemote` exists.
    pub remote: bool,
    /// The other accounts whose `sharedData` is already fully merged into this account's
    /// target (a merge would change nothing).
    pub in_step_with: Vec<String>,
    pub last_sync: Option<LastSync>,
    /// Why the file cannot be used, if it cannot.
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

/// One ordered pair of the same flavor.
#[derive(Debug, Clone)]
pub struct PairStatus {
    pub from: String,
    pub to: String,
    /// `None`: one of the files cannot be used.
    pub in_step: Option<bool>,
    /// Why it is not in step, in words.
    pub why: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub accounts: Vec<AccountStatus>,
    pub pairs: Vec<PairStatus>,
    /// Every pair in step (and every file usable).
    pub in_step: bool,
}

fn last_sync(records: &[SessionRecord], file: &str) -> Option<LastSync> {
    records
        .iter()
        .filter(|s| s.receiver.file == file || s.sender.file == file)
        .max_by_key(|s| s.last_activity)
        .map(|s| LastSync {
            session: s.id.to_string(),
            from: s.sender.account.clone(),
            to: s.receiver.account.clone(),
            state: s.state,
            when: utc_text(s.last_activity),
        })
}

/// The status of every account of `set`; `records` (both peers' session records) give the
/// last sync of each.
pub fn status(set: &mut AccountSet, records: &[SessionRecord]) -> Status {
    let n = set.members().len();
    for i in 0..n {
        set.refresh(i);
    }
    let target = set.target();
    let mut pairs = Vec::new();
    for to in 0..n {
        for from in 0..n {
            if from == to || !set.same_group(from, to) {
                continue;
            }
            let v = set.in_step(from, to);
            let (a, b) = (
                set.member(from).account.name.clone(),
                set.member(to).account.name.clone(),
            );
            let why = match v {
                Some(true) => None,
                Some(false) => Some(format!("{b}'s {target} lacks {a}'s latest data")),
                None => Some(
                    [from, to]
                        .iter()
                        .filter_map(|&i| set.member(i).problem.as_ref())
                        .map(ToString::to_string)
                        .next()
                        .unwrap_or_else(|| "a file cannot be used".into()),
                ),
            };
            pairs.push(PairStatus {
                from: a,
                to: b,
                in_step: v,
                why,
            });
        }
    }
    let accounts = (0..n)
        .map(|i| {
            let m = set.member(i);
            let meta = std::fs::metadata(&m.real).ok();
            let summary = m.summary();
            AccountStatus {
                account: m.account.name.clone(),
                flavor: m.account.flavor.clone(),
                file: m.account.file.to_string_lossy().into_owned(),
                size: meta.as_ref().map_or(0, std::fs::Metadata::len),
                modified: meta
                    .and_then(|m| m.modified().ok())
                    .map(|t| utc_text(ms_of(t))),
                toons: summary.map(|s| s.toons.clone()).unwrap_or_default(),
                entries: summary
                    .map(|s| s.entries.iter().map(|(t, n)| (t.to_string(), *n)).collect())
                    .unwrap_or_default(),
                remote: summary.is_some_and(|s| s.remote),
                in_step_with: pairs
                    .iter()
                    .filter(|p| p.to == m.account.name && p.in_step == Some(true))
                    .map(|p| p.from.clone())
                    .collect(),
                last_sync: last_sync(records, &m.real.display().to_string()),
                error: m.problem.as_ref().map(ToString::to_string),
            }
        })
        .collect();
    set.save_cache();
    let in_step = pairs.iter().all(|p| p.in_step == Some(true))
        && set.members().iter().all(|m| m.problem.is_none());
    Status {
        accounts,
        pairs,
        in_step,
    }
}
