//! One PC of a group of PCs: a receiver for each of its accounts, and senders from its accounts
//! to the other PCs' accounts, over the folder mailbox.
//!
//! The node publishes: an account's data is sent to every account of every other peer that has
//! not confirmed that same data yet (by a digest of the payload checksums, remembered per pair).
//! Presence comes from the peers' heartbeats (ONLINE for each account, once a minute). A sync
//! that fails (busy, no answer) is tried again with growing pauses, forever.
//!
//! Messages arrive addressed to an account; a message a sender answers (SYNC_ACCEPT, READY,
//! RESEND, CONFIRM, COMPLETE, BUSY) goes to the sender of that account talking to that peer,
//! everything else to the account's receiver; SYNC_ERROR goes to the sender whose session it
//! names, else to the receiver.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::failure::Failure;
use crate::model::Target;
use crate::protocol::Millis;
use crate::protocol::sender::{Outcome, Source};
use crate::protocol::session::PeerInfo;
use crate::protocol::wire::{Message, SessionId};
use crate::state::Store;
use crate::transport::Transport;
use crate::transport::mailbox::{Folder, Mailbox, Notice, remote_addr};
use crate::transport::sim::Rng;

use super::Driver;
use super::log::Log;
use super::receiver::{AccountIo, ReceiverDriver};
use super::sender::SenderDriver;

/// How often a node says it is there.
pub const HEARTBEAT_MS: Millis = 60_000;
/// A peer not heard from for this long is shown offline.
pub const ONLINE_FOR_MS: Millis = 3 * HEARTBEAT_MS;
/// How often a node deletes what its peers have read.
const CLEAN_EVERY_MS: Millis = 30_000;
/// How long a node lets files that arrive together settle before it reads them (one step then
/// answers them all, in one flight).
pub const SETTLE_MS: Millis = 1_000;
const FIRST_BACKOFF_MS: Millis = 5_000;
const MAX_BACKOFF_MS: Millis = 10 * 60_000;

/// A digest of what a source sends: its tables and their payload checksums.
pub fn source_digest(s: &Source) -> u64 {
    let mut h = crc32fast::Hasher::new();
    for p in &s.payloads {
        h.update(p.table.as_str().as_bytes());
        h.update(&p.crc.to_le_bytes());
        h.update(&(p.packed.len() as u64).to_le_bytes());
    }
    (u64::from(h.finalize()) << 32) | u64::from(s.metadata) | ((s.payloads.len() as u64) << 1)
}

/// One account of this PC.
pub struct LocalAccount<A: AccountIo, S: Store> {
    /// Its name on the wire (the account folder's name).
    pub name: String,
    pub info: PeerInfo,
    pub receiver: ReceiverDriver<A, S>,
    source: Option<(Rc<Source>, u64)>,
    commits_seen: Option<(SessionId, bool)>,
}

struct RemoteSend<S: Store> {
    from: usize,
    to: String,
    digest: u64,
    driver: SenderDriver<S>,
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    attempts: u32,
    next: Millis,
}

/// What happened, for the caller.
#[derive(Debug)]
pub enum NodeEvent {
    /// A sync of a local account to a remote account ended.
    Sent {
        from: usize,
        to: String,
        outcome: Outcome,
    },
    /// A remote account's data reached a local account (`written`: the file changed).
    Received { local: usize, written: bool },
    /// A file of the mailbox was ignored (not from the group, damaged, ...).
    Mailbox(Notice),
    /// A driver could not keep its state.
    Failed(Failure),
}

/// One PC of a group.
pub struct Node<A: AccountIo, S: Store, F: Folder> {
    pub mailbox: Mailbox<F>,
    pub locals: Vec<LocalAccount<A, S>>,
    senders: Vec<RemoteSend<S>>,
    /// What each remote account confirmed last, from each local account.
    sent: BTreeMap<(String, String), u64>,
    failing: BTreeMap<(usize, String), Failing>,
    target: Target,
    make_store: Box<dyn Fn() -> S>,
    make_log: Box<dyn Fn() -> Log>,
    rng: Rng,
    last_heartbeat: Option<Millis>,
    last_clean: Millis,
    events: Vec<NodeEvent>,
}

impl<A: AccountIo, S: Store, F: Folder> Node<A, S, F> {
    /// A node over `mailbox`, syncing into `target`. `sent`: what remote accounts confirmed
    /// earlier (by local address and remote address); `make_store` gives the senders' stores.
    pub fn new(
        mailbox: Mailbox<F>,
        target: Target,
        sent: BTreeMap<(String, String), u64>,
        make_store: Box<dyn Fn() -> S>,
        make_log: Box<dyn Fn() -> Log>,
        seed: u64,
    ) -> Self {
        Node {
            mailbox,
            locals: Vec::new(),
            senders: Vec::new(),
            sent,
            failing: BTreeMap::new(),
            target,
            make_store,
            make_log,
            rng: Rng::new(seed),
            last_heartbeat: None,
            last_clean: 0,
            events: Vec::new(),
        }
    }

    /// Adds an account of this PC with its receiver; returns its index.
    pub fn add_local(
        &mut self,
        name: &str,
        info: PeerInfo,
        receiver: ReceiverDriver<A, S>,
    ) -> usize {
        self.mailbox.add_local(name, &info.addr);
        self.locals.push(LocalAccount {
            name: name.to_string(),
            info,
            receiver,
            source: None,
            commits_seen: None,
        });
        self.last_heartbeat = None;
        self.locals.len() - 1
    }

    /// What a local account sends now (its data changed, or was read for the first time).
    pub fn set_source(&mut self, local: usize, source: Rc<Source>) {
        let digest = source_digest(&source);
        if let Some(l) = self.locals.get_mut(local) {
            if let Some(toon) = Some(source.toon.to_string()).filter(|t| *t != l.info.toon) {
                l.info.toon = toon;
                self.last_heartbeat = None;
            }
            l.source = Some((source, digest));
        }
    }

    /// What remote accounts confirmed (to keep across restarts).
    pub fn sent(&self) -> &BTreeMap<(String, String), u64> {
        &self.sent
    }

    /// Whether a remote session into this local account is in progress (a local sync into it
    /// waits).
    pub fn is_receiving(&self, local: usize) -> bool {
        self.locals
            .get(local)
            .is_some_and(|l| l.receiver.peer().is_in_session())
    }

    pub fn take_events(&mut self) -> Vec<NodeEvent> {
        std::mem::take(&mut self.events)
    }

    /// Syncs in progress to other PCs.
    pub fn sending(&self) -> usize {
        self.senders.len()
    }

    /// Every remote account of a PC online now confirmed every local account's current data
    /// (a PC that is off gets it when it is back, from a `watch`).
    pub fn is_published(&self) -> bool {
        let now = self.mailbox.now();
        let peers = self.mailbox.peers();
        let remotes: Vec<_> = self
            .remote_accounts()
            .into_iter()
            .filter(|(_, peer, _)| {
                peers
                    .get(peer)
                    .is_some_and(|p| now.saturating_sub(p.last_seen) < ONLINE_FOR_MS)
            })
            .collect();
        self.locals.iter().all(|l| {
            let Some((_, digest)) = &l.source else {
                return true;
            };
            remotes.iter().all(|(addr, ..)| {
                self.sent.get(&(l.info.addr.clone(), addr.clone())) == Some(digest)
            })
        })
    }

    /// Every remote account known, as (address, peer id, account).
    pub fn remote_accounts(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (peer, seen) in self.mailbox.peers() {
            for account in seen.accounts.keys() {
                out.push((remote_addr(peer, account), peer.clone(), account.clone()));
            }
        }
        out
    }

    /// When [`Node::step`] next has something to do.
    pub fn deadline(&self) -> Option<Millis> {
        let senders = self.senders.iter().filter_map(|s| s.driver.deadline());
        let receivers = self.locals.iter().filter_map(|l| l.receiver.deadline());
        // A retry counts only while its sync is not running again already.
        let retries = self
            .failing
            .iter()
            .filter(|((_, to), _)| !self.is_sending_to(to))
            .map(|(_, f)| f.next);
        let heartbeat = Some(self.last_heartbeat.map_or(0, |t| t + HEARTBEAT_MS));
        senders
            .chain(receivers)
            .chain(retries)
            .chain(heartbeat)
            .min()
    }

    /// Everything due now: read the mailbox, hand messages to the drivers, run timeouts, start
    /// the syncs that are due, and write what the drivers sent.
    pub fn step(&mut self) {
        let now = self.mailbox.now();
        if self.last_heartbeat.is_none_or(|t| now >= t + HEARTBEAT_MS) {
            let toons: Vec<(String, String)> = self
                .locals
                .iter()
                .map(|l| (l.name.clone(), l.info.toon.clone()))
                .collect();
            self.mailbox.announce(&toons);
            self.last_heartbeat = Some(now);
        }
        match self.mailbox.recv() {
            Ok(envs) => {
                for env in envs {
                    let Ok(msg) = Message::decode(&env.bytes) else {
                        continue;
                    };
                    self.route(&env.from, &env.to, msg);
                }
            }
            Err(e) => self.events.push(NodeEvent::Failed(e.into())),
        }
        for n in self.mailbox.take_notices() {
            self.events.push(NodeEvent::Mailbox(n));
        }
        self.timeouts();
        self.finish_senders();
        self.note_commits();
        self.start_senders();
        if let Err(e) = self.mailbox.flush() {
            self.events.push(NodeEvent::Failed(e.into()));
        }
        if now >= self.last_clean + CLEAN_EVERY_MS {
            self.last_clean = now;
            let _ = self.mailbox.clean();
        }
    }

    fn route(&mut self, from: &str, to: &str, msg: Message) {
        let for_sender = match &msg {
            Message::SyncAccept { .. }
            | Message::SyncBusy { .. }
            | Message::SyncReady { .. }
            | Message::SyncResend { .. }
            | Message::SyncConfirm { .. }
            | Message::SyncComplete { .. } => true,
            Message::SyncError { sid, .. } => self
                .senders
                .iter()
                .any(|s| s.driver.addr() == to && s.to == from && s.driver.peer().sid() == *sid),
            _ => false,
        };
        let mb = &mut self.mailbox;
        if for_sender {
            if let Some(s) = self
                .senders
                .iter_mut()
                .find(|s| s.driver.addr() == to && s.to == from)
            {
                s.driver.handle(mb, from, msg);
            }
        } else if let Some(l) = self.locals.iter_mut().find(|l| l.info.addr == to) {
            l.receiver.handle(mb, from, msg);
        }
    }

    fn timeouts(&mut self) {
        let now = self.mailbox.now();
        let mb = &mut self.mailbox;
        for s in &mut self.senders {
            if s.driver.deadline().is_some_and(|d| d <= now) {
                s.driver.handle_timeout(mb);
            }
        }
        for l in &mut self.locals {
            if l.receiver.deadline().is_some_and(|d| d <= now) {
                l.receiver.handle_timeout(mb);
            }
        }
    }

    fn finish_senders(&mut self) {
        let now = self.mailbox.now();
        let mut i = 0;
        while i < self.senders.len() {
            let s = &mut self.senders[i];
            if let Some(f) = s.driver.take_dead() {
                self.events.push(NodeEvent::Failed(f));
            }
            let Some(outcome) = s.driver.outcome().cloned() else {
                i += 1;
                continue;
            };
            let s = self.senders.swap_remove(i);
            let key = (s.from, s.to.clone());
            match outcome {
                Outcome::Complete { .. } => {
                    self.failing.remove(&key);
                    let local = self.locals[s.from].info.addr.clone();
                    self.sent.insert((local, s.to.clone()), s.digest);
                }
                _ => {
                    let f = self.failing.entry(key).or_insert(Failing {
                        attempts: 0,
                        next: now,
                    });
                    f.attempts += 1;
                    let pause = crate::time::backoff(FIRST_BACKOFF_MS, f.attempts, MAX_BACKOFF_MS);
                    // A little spread, so peers that failed together do not retry together.
                    f.next = now + pause + self.rng.below(pause / 4 + 1);
                }
            }
            self.events.push(NodeEvent::Sent {
                from: s.from,
                to: s.to,
                outcome,
            });
        }
    }

    fn note_commits(&mut self) {
        for (i, l) in self.locals.iter_mut().enumerate() {
            if let Some(f) = l.receiver.take_dead() {
                self.events.push(NodeEvent::Failed(f));
            }
            let c = l.receiver.report().committed;
            if c.is_some() && c != l.commits_seen {
                l.commits_seen = c;
                self.events.push(NodeEvent::Received {
                    local: i,
                    written: c.is_some_and(|(_, w)| w),
                });
            }
        }
    }

    fn is_sending_to(&self, addr: &str) -> bool {
        self.senders.iter().any(|s| s.to == addr)
    }

    fn start_senders(&mut self) {
        let now = self.mailbox.now();
        let remotes = self.remote_accounts();
        for from in 0..self.locals.len() {
            let Some((source, digest)) = self.locals[from].source.clone() else {
                continue;
            };
            for (addr, _peer, account) in &remotes {
                let key = (from, addr.clone());
                let local = self.locals[from].info.addr.clone();
                let confirmed = self.sent.get(&(local, addr.clone())) == Some(&digest);
                // One sync at a time into each remote account (it would answer BUSY).
                let running = self.is_sending_to(addr);
                let waiting = self.failing.get(&key).is_some_and(|f| f.next > now);
                if confirmed {
                    // Nothing to retry (the data went back to what the remote has).
                    self.failing.remove(&key);
                }
                if confirmed || running || waiting {
                    continue;
                }
                let proposed = SessionId((self.rng.next_u64() as u32).max(1));
                let mut driver = SenderDriver::new(
                    (*source).clone(),
                    proposed,
                    // The carrier's pace as measured now.
                    self.mailbox.timing(),
                    self.locals[from].info.clone(),
                    PeerInfo {
                        addr: addr.clone(),
                        account: account.clone(),
                        toon: String::new(),
                        file: String::new(),
                    },
                    self.target,
                    Some((self.make_store)()),
                    (self.make_log)(),
                );
                driver.start(&mut self.mailbox);
                self.senders.push(RemoteSend {
                    from,
                    to: addr.clone(),
                    digest,
                    driver,
                });
            }
        }
    }
}
