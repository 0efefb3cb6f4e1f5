//! A watch's group of PCs: this PC's accounts are published to, and fed from, the other PCs of
//! a group through a mailbox folder that a sync engine carries (see [`crate::transport::mailbox`]
//! for the folder and [`crate::peer::group`] for the protocol side).
//!
//! This is the I/O shell around a [`Node`]: the group key from its file, the node's state in the
//! state folder (`mailbox/<key fingerprint>/`), the accounts' files and session stores, and what
//! remote accounts confirmed (`sent.json`, so that a restart does not send everything again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;
use crate::peer::group::{Node, NodeEvent};
use crate::peer::log::Log;
use crate::peer::pair::local_peer;
use crate::peer::receiver::{FileAccount, ReceiverDriver, WriteMode};
use crate::protocol::receiver::Endpoint;
use crate::protocol::sender::Outcome;
use crate::protocol::{Millis, Timing};
use crate::set::{AccountSet, Digest};
use crate::state::FileStore;
use crate::transport::Clock;
use crate::transport::mailbox::flight::GroupKey;
use crate::transport::mailbox::{
    Mailbox, MailboxConfig, Notice, OsFolder, StateStore, parse_remote,
};

use super::Settings;

/// Which group, and as whom.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The shared folder.
    pub mailbox: PathBuf,
    /// The group key file (made by `svsync mailbox init`).
    pub key_file: PathBuf,
    /// This PC's name for the others (default: the computer's name).
    pub name: Option<String>,
}

/// Something that happened between this PC and the others.
#[derive(Debug)]
pub enum GroupEvent {
    /// A local account's data reached (or did not reach) an account of another PC.
    Sent {
        from: usize,
        /// `PC/ACCOUNT`.
        to: String,
        outcome: Outcome,
    },
    /// Another PC's data reached a local account (`written`: its file changed).
    Received { local: usize, written: bool },
    /// A file in the mailbox was ignored (not from the group, damaged, replayed, ...).
    Ignored { path: PathBuf, why: String },
    /// Something local went wrong (the mailbox folder, the state folder).
    Failed(Failure),
}

/// How long the node waits for a file lock a local sync holds (then it answers with an error
/// for that session, and the other PC tries again later).
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// The group key in `path`.
pub fn read_key(path: &Path) -> Result<GroupKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::GroupKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    GroupKey::parse(&text).map_err(|e| Failure::GroupKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// This computer's name, as people know it.
pub fn computer_name() -> String {
    let from_env = ["COMPUTERNAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok());
    from_env
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "svsync".to_string())
}

/// A PC's name as flights carry it: readers refuse names over 64 bytes.
fn short_name(name: &str) -> String {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Where a group's state lives in the state folder.
pub fn group_state_dir(state_dir: &Path, key: &GroupKey) -> PathBuf {
    state_dir.join("mailbox").join(key.fingerprint())
}

/// This PC in its group.
pub struct Group {
    node: Node<FileAccount, FileStore, OsFolder>,
    dir: PathBuf,
    state_dir: PathBuf,
    log_dir: PathBuf,
    /// Per account of the set: the content last handed to the node.
    given: Vec<Option<Digest>>,
    saved: BTreeMap<(String, String), u64>,
    force: bool,
    target: crate::model::Target,
}

impl Group {
    /// Joins the group in `config` with the settings of a watch or sync (no account yet).
    pub fn open(config: &GroupConfig, settings: &Settings) -> Result<Group, Failure> {
        if settings.dry_run {
            return Err(Failure::MailboxDryRun);
        }
        let key = read_key(&config.key_file)?;
        let dir = group_state_dir(&settings.state_dir, &key);
        let name = short_name(&config.name.clone().unwrap_or_else(computer_name));
        let cfg = MailboxConfig {
            key,
            name,
            state: StateStore::Dir(dir.clone()),
            // A carrier takes seconds to minutes: ask again after 30 s, give up after ~10 min
            // (the node then tries again with growing pauses).
            timing: Timing {
                retry_ms: 30_000,
                max_retries: 20,
            },
            clock: Clock::System,
        };
        let mailbox = Mailbox::open(&config.mailbox, cfg)?;
        let saved = load_sent(&dir.join("sent.json"));
        let stores = settings.state_dir.clone();
        let logs = settings.log_dir.clone();
        let node = Node::new(
            mailbox,
            settings.target,
            saved.clone(),
            Box::new(move || FileStore::new(&stores)),
            // Senders to other PCs log like local ones; a log that cannot open is no reason to
            // stop syncing.
            Box::new(move || Log::open(Some(&logs), "sender.log").unwrap_or_default()),
            crate::time::now_ms(),
        );
        Ok(Group {
            node,
            dir,
            state_dir: settings.state_dir.clone(),
            log_dir: settings.log_dir.clone(),
            given: Vec::new(),
            saved,
            force: settings.force,
            target: settings.target,
        })
    }

    /// This PC's id in the group.
    pub fn id(&self) -> &str {
        self.node.mailbox.id()
    }

    pub fn name(&self) -> &str {
        self.node.mailbox.name()
    }

    /// Adds account `i` of the set (accounts are added in the set's order).
    pub fn add(&mut self, set: &AccountSet, i: usize) -> Result<(), Failure> {
        let m = set.member(i);
        let info = local_peer(&m.account);
        let account = FileAccount::new(&m.account.file, WriteMode::InPlace, self.force)
            .with_lock_patience(LOCK_PATIENCE);
        let receiver = ReceiverDriver::new(
            Endpoint {
                info: info.clone(),
                target: self.target,
            },
            account,
            FileStore::new(&self.state_dir),
            Log::open(Some(&self.log_dir), "receiver.log")?,
        )?;
        self.node.add_local(&m.account.name, info, receiver);
        self.given.push(None);
        Ok(())
    }

    /// Hands the node what each account holds now (only what changed since last time).
    pub fn feed(&mut self, set: &mut AccountSet) {
        for i in 0..self.given.len() {
            let digest = set.member(i).digest();
            if digest.is_none() || digest == self.given[i] {
                continue;
            }
            if let Ok(source) = set.source(i) {
                self.node.set_source(i, source);
                self.given[i] = digest;
            }
        }
    }

    /// Whether another PC is syncing into account `i` now (a local sync into it waits).
    pub fn is_receiving(&self, i: usize) -> bool {
        self.node.is_receiving(i)
    }

    /// Syncs to other PCs in progress.
    pub fn sending(&self) -> usize {
        self.node.sending()
    }

    /// When [`Group::step`] has something to do (milliseconds since the Unix epoch).
    pub fn deadline(&self) -> Option<Millis> {
        self.node.deadline()
    }

    /// Reads the mailbox, answers, sends what is due; returns what happened.
    pub fn step(&mut self) -> Vec<GroupEvent> {
        self.node.step();
        let mut out = Vec::new();
        if self.node.sent() != &self.saved {
            self.saved = self.node.sent().clone();
            if let Err(e) = save_sent(&self.dir.join("sent.json"), &self.saved) {
                out.push(GroupEvent::Failed(e));
            }
        }
        for e in self.node.take_events() {
            out.push(match e {
                NodeEvent::Sent { from, to, outcome } => GroupEvent::Sent {
                    from,
                    to: self.show(&to),
                    outcome,
                },
                NodeEvent::Received { local, written } => GroupEvent::Received { local, written },
                NodeEvent::Mailbox(Notice::Ignored { path, why }) => GroupEvent::Ignored {
                    path,
                    why: why.to_string(),
                },
                NodeEvent::Failed(f) => GroupEvent::Failed(f),
            });
        }
        out
    }

    /// `PC/ACCOUNT` for a remote address.
    fn show(&self, addr: &str) -> String {
        match parse_remote(addr) {
            Some((peer, account)) => {
                let name = self
                    .node
                    .mailbox
                    .peers()
                    .get(peer)
                    .map_or(peer, |p| p.name.as_str());
                format!("{name}/{account}")
            }
            None => addr.to_string(),
        }
    }

    /// How many accounts of other PCs this PC knows.
    pub fn remote_accounts(&self) -> usize {
        self.node.remote_accounts().len()
    }

    /// Every known remote account confirmed every local account's current data, and nothing
    /// is being received.
    pub fn is_settled(&self) -> bool {
        self.node.sending() == 0
            && (0..self.given.len()).all(|i| !self.node.is_receiving(i))
            && self.node.is_published()
    }
}

fn load_sent(path: &Path) -> BTreeMap<(String, String), u64> {
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    let rows: Vec<(String, String, u64)> = serde_json::from_slice(&bytes).unwrap_or_default();
    rows.into_iter().map(|(a, b, d)| ((a, b), d)).collect()
}

fn save_sent(path: &Path, sent: &BTreeMap<(String, String), u64>) -> Result<(), Failure> {
    let rows: Vec<(&String, &String, u64)> = sent.iter().map(|((a, b), d)| (a, b, *d)).collect();
    let bytes = serde_json::to_vec(&rows).map_err(|e| Failure::Internal(e.to_string()))?;
    let io = |source| {
        Failure::State(crate::state::StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(".sent.json.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_pc_name_is_cut_to_what_readers_accept() {
        let long = "Ä".repeat(40);
        let short = super::short_name(&long);
        assert!(short.len() <= 64 && long.starts_with(&short) && !short.is_empty());
        assert_eq!(super::short_name("Desktop"), "Desktop");
    }
}
