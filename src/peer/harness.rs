//! The deterministic simulation harness: a sender and a receiver with their real drivers over a
//! simulated link, stepped in simulated time, with no files and no sleeps. The account file and
//! both peers' state live in memory, so either peer can "crash" (its driver dropped, at any step
//! or at any durable write) and restart from what it had made durable, as a process would.
//!
//! The tests use it for thousands of seeded fault schedules and for crash-and-restart at every
//! step; it is public so that integration tests and benchmarks can use it too.

use std::cell::RefCell;
use std::rc::Rc;

use crate::failure::Failure;
use crate::fsio::write::WriteError;
use crate::model::Target;
use crate::protocol::receiver::Endpoint;
use crate::protocol::sender::{Outcome, Source};
use crate::protocol::session::PeerInfo;
use crate::protocol::wire::SessionId;
use crate::protocol::{Millis, Timing};
use crate::state::{MemStore, Store};
use crate::transport::Transport;
use crate::transport::sim::{Faults, SimLink};

use super::log::{Log, WireLog};
use super::receiver::{AccountIo, Committed, ReceiverDriver};
use super::sender::SenderDriver;
use super::{Delivery, Driver, deliver, run};

#[derive(Debug, Default)]
struct MemFile {
    bytes: Vec<u8>,
    /// Bumped by every write (svsync's or the game's).
    version: u64,
    /// The version the open sync read.
    opened: Option<u64>,
    /// svsync's writes.
    writes: u64,
    /// svsync's writes of the bytes the file held already (each one a defect).
    pointless: u64,
}

/// An account's file in memory, shared by clones (it outlives a receiver that restarts).
#[derive(Debug, Clone, Default)]
pub struct MemAccount(Rc<RefCell<MemFile>>);

impl MemAccount {
    pub fn new(bytes: Vec<u8>) -> MemAccount {
        MemAccount(Rc::new(RefCell::new(MemFile {
            bytes,
            ..MemFile::default()
        })))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.borrow().bytes.clone()
    }

    /// How many times svsync wrote the file.
    pub fn writes(&self) -> u64 {
        self.0.borrow().writes
    }

    /// How many times svsync wrote the bytes the file held already.
    pub fn pointless_writes(&self) -> u64 {
        self.0.borrow().pointless
    }

    /// The game saves the file (svsync must not overwrite it).
    pub fn game_save(&self, bytes: Vec<u8>) {
        let mut f = self.0.borrow_mut();
        f.bytes = bytes;
        f.version += 1;
    }
}

impl AccountIo for MemAccount {
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("memory/GuildHelper.lua")
    }

    fn open(&mut self) -> Result<Vec<u8>, Failure> {
        let mut f = self.0.borrow_mut();
        f.opened = Some(f.version);
        Ok(f.bytes.clone())
    }

    fn commit(&mut self, concluded: crate::merge::Concluded) -> Result<Committed, Failure> {
        let path = self.path().to_path_buf();
        let mut f = self.0.borrow_mut();
        let opened = f.opened.take();
        let crate::merge::Concluded::Merged(merged) = concluded else {
            return Ok(Committed::default());
        };
        let bytes = merged.to_vec().map_err(|e| Failure::finish(&path, e))?;
        if opened != Some(f.version) {
            return Err(Failure::Write(WriteError::Changed(self.path().into())));
        }
        if f.bytes == bytes {
            f.pointless += 1;
        }
        f.bytes = bytes.to_vec();
        f.version += 1;
        f.writes += 1;
        Ok(Committed {
            written: Some(self.path().into()),
            backup: None,
        })
    }

    fn close(&mut self) {
        self.0.borrow_mut().opened = None;
    }
}

const SENDER: &str = "sim:sender";
const RECEIVER: &str = "sim:receiver";

/// How a run of the harness stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The sender's sync ended (see [`Harness::outcome`]).
    Finished,
    /// A driver died (a simulated crash at a durable write).
    SenderDied,
    ReceiverDied,
    /// The step budget ran out.
    Steps,
    /// Nothing more could happen.
    Idle,
}

/// A sender and a receiver over a simulated link.
pub struct Harness {
    pub link: SimLink,
    pub account: MemAccount,
    pub sender_store: MemStore,
    pub receiver_store: MemStore,
    source: Source,
    target: Target,
    sender: SenderDriver<MemStore>,
    receiver: ReceiverDriver<MemAccount, MemStore>,
    next_id: u32,
    /// Every delivery so far.
    pub delivery: Delivery,
}

fn sender_info() -> PeerInfo {
    PeerInfo {
        addr: SENDER.into(),
        account: "SENDER".into(),
        toon: String::new(),
        file: "memory/sender.lua".into(),
    }
}

fn receiver_info() -> PeerInfo {
    PeerInfo {
        addr: RECEIVER.into(),
        account: "RECEIVER".into(),
        toon: String::new(),
        file: "memory/GuildHelper.lua".into(),
    }
}

impl Harness {
    /// A sync of `source` into `account`'s `target`, over a link with `faults`, starting at
    /// `start`; `first_id` is the session id the sender proposes first.
    pub fn new(
        source: Source,
        account: MemAccount,
        target: Target,
        faults: Faults,
        start: Millis,
        first_id: u32,
    ) -> Harness {
        let link = SimLink::new(start, faults);
        Self::over(source, account, target, link, first_id.max(1), None)
    }

    /// A sync as the one-shot `merge` runs it in one process: a link without transit time,
    /// and a sender that sends each flight in pieces of `piece` messages.
    pub fn local(
        source: Source,
        account: MemAccount,
        target: Target,
        start: Millis,
        piece: usize,
    ) -> Harness {
        let link = SimLink::new(start, Faults::default()).with_latency(0);
        Self::over(source, account, target, link, 1, Some(piece))
    }

    fn over(
        source: Source,
        account: MemAccount,
        target: Target,
        link: SimLink,
        first_id: u32,
        piece: Option<usize>,
    ) -> Harness {
        let sender_store = MemStore::new();
        let receiver_store = MemStore::new();
        let mut sender = Self::make_sender(&source, target, &sender_store, first_id);
        if let Some(piece) = piece {
            sender = sender.with_pieces(piece);
        }
        let receiver = Self::make_receiver(&account, target, &receiver_store);
        let mut h = Harness {
            link,
            account,
            sender_store,
            receiver_store,
            source,
            target,
            sender,
            receiver,
            next_id: first_id,
            delivery: Delivery::default(),
        };
        h.sender.start(&mut h.link);
        h
    }

    fn make_sender(
        source: &Source,
        target: Target,
        store: &MemStore,
        id: u32,
    ) -> SenderDriver<MemStore> {
        SenderDriver::new(
            source.clone(),
            SessionId(id),
            Timing::default(),
            sender_info(),
            receiver_info(),
            target,
            Some(store.clone()),
            Log::default(),
        )
    }

    fn make_receiver(
        account: &MemAccount,
        target: Target,
        store: &MemStore,
    ) -> ReceiverDriver<MemAccount, MemStore> {
        let endpoint = Endpoint {
            info: receiver_info(),
            target,
        };
        // A memory store always loads.
        let loaded = store.clone().load().unwrap_or_default();
        ReceiverDriver::from_loaded(
            endpoint,
            account.clone(),
            store.clone(),
            Log::default(),
            loaded,
        )
    }

    /// Runs until the sender's sync ends, a driver dies, nothing can happen, or `max_steps`
    /// loop iterations have passed.
    pub fn run(&mut self, max_steps: Option<u64>) -> Stop {
        let mut steps = 0u64;
        let mut wire = WireLog::default();
        let mut drivers: [&mut dyn Driver; 2] = [&mut self.sender, &mut self.receiver];
        let result = run(&mut drivers, &mut self.link, &mut wire, |d| {
            steps += 1;
            // A step ends after the next wait, so every step moves time on.
            d[0].is_finished() || max_steps.is_some_and(|m| steps > m)
        });
        if let Ok(d) = result {
            self.delivery.delivered += d.delivered;
            self.delivery.dropped += d.dropped;
        }
        if self.receiver.dead().is_some() {
            Stop::ReceiverDied
        } else if self.sender.dead().is_some() {
            Stop::SenderDied
        } else if self.sender.is_finished() {
            Stop::Finished
        } else if max_steps.is_some_and(|m| steps > m) {
            Stop::Steps
        } else {
            Stop::Idle
        }
    }

    /// Delivers what is still in flight (after the sender finished), without timeouts.
    pub fn drain(&mut self) {
        let mut wire = WireLog::default();
        let mut drivers: [&mut dyn Driver; 2] = [&mut self.sender, &mut self.receiver];
        let mut stats = Delivery::default();
        loop {
            if deliver(&mut drivers, &mut self.link, &mut wire, &mut stats).is_err() {
                break;
            }
            if drivers.iter().any(|d| d.dead().is_some()) {
                break;
            }
            if !self.link.wait(None).unwrap_or(false) {
                break;
            }
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.sender.outcome()
    }

    /// Whether the receiver committed the sender's current session.
    pub fn committed(&self) -> bool {
        self.receiver
            .report()
            .committed
            .is_some_and(|(sid, _)| sid == self.sender.peer().sid())
    }

    pub fn sender(&self) -> &SenderDriver<MemStore> {
        &self.sender
    }

    pub fn receiver(&self) -> &ReceiverDriver<MemAccount, MemStore> {
        &self.receiver
    }

    /// The receiver's process dies and starts again from its durable state.
    pub fn restart_receiver(&mut self) {
        self.receiver_store.recover();
        self.receiver = Self::make_receiver(&self.account, self.target, &self.receiver_store);
    }

    /// The sender's process dies; the sync is run again (a new run proposes a new session id).
    pub fn rerun_sender(&mut self) {
        self.sender_store.recover();
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.sender =
            Self::make_sender(&self.source, self.target, &self.sender_store, self.next_id);
        self.sender.start(&mut self.link);
    }

    /// Lets the link's clock run on (time passes between runs).
    pub fn advance(&mut self, ms: Millis) {
        let to = self.link.now() + ms;
        while self.link.wait(Some(to)).unwrap_or(false) && self.link.now() < to {
            let _ = self.link.recv();
        }
        let _ = self.link.recv();
    }
}

/// A group of PCs for the simulation: each with one account, its own copy of the shared folder
/// and its own state, all in memory; a carrier copies files between the copies.
pub mod group {
    use std::cell::{Cell, RefCell};
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BinaryHeap};
    use std::rc::Rc;

    use crate::model::Target;
    use crate::protocol::receiver::Endpoint;
    use crate::protocol::session::PeerInfo;
    use crate::protocol::{Millis, Timing};
    use crate::state::{MemStore, Store};
    use crate::transport::Clock;
    use crate::transport::mailbox::flight::GroupKey;
    use crate::transport::mailbox::{Folder, Mailbox, MailboxConfig, MemFolder, StateStore};
    use crate::transport::sim::Rng;

    use super::super::group::{Node, NodeEvent, SETTLE_MS};
    use super::super::log::Log;
    use super::super::receiver::ReceiverDriver;
    use super::MemAccount;

    /// How the carrier behaves.
    #[derive(Debug, Clone, Copy)]
    pub struct Carrier {
        /// Usual delay of a file from one PC to another (ms): uniform in `[min, max]`.
        pub min_delay: Millis,
        pub max_delay: Millis,
        /// Chance that a file arrives hours late.
        pub late: f64,
        /// Chance that a file arrives twice.
        pub twice: f64,
        /// Chance that a file never arrives at one PC.
        pub lost: f64,
        /// Chance, per delivery, that a stray conflict copy appears beside it.
        pub conflict: f64,
    }

    impl Default for Carrier {
        fn default() -> Self {
            Carrier {
                min_delay: 500,
                max_delay: 5_000,
                late: 0.0,
                twice: 0.0,
                lost: 0.0,
                conflict: 0.0,
            }
        }
    }

    type Node1 = Node<MemAccount, MemStore, MemFolder>;

    /// One PC.
    pub struct Pc {
        pub name: String,
        pub folder: MemFolder,
        pub account: MemAccount,
        pub store: MemStore,
        state: Rc<RefCell<Option<Vec<u8>>>>,
        sent: BTreeMap<(String, String), u64>,
        pub node: Option<Node1>,
        /// This PC's own files the carrier already shipped (path -> length and time).
        shipped: BTreeMap<String, (usize, Millis)>,
        /// Something arrived or changed: the PC's svsync looks at once (as a watcher would).
        due: Option<Millis>,
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Delivery {
        Put(String, Vec<u8>),
        Delete(String),
    }

    /// The simulated group.
    pub struct GroupSim {
        pub clock: Rc<Cell<Millis>>,
        pub pcs: Vec<Pc>,
        carrier: Carrier,
        key: GroupKey,
        target: Target,
        rng: Rng,
        queue: BinaryHeap<Reverse<(Millis, u64, usize, Delivery)>>,
        seq: u64,
        /// Files the carrier moved, and failures the nodes reported.
        pub deliveries: u64,
        pub failures: Vec<String>,
        /// Prints every node event (for debugging a test).
        pub trace: bool,
        /// Rounds of the simulation loop so far.
        pub rounds: u64,
    }

    fn account_name(i: usize) -> String {
        format!("ACCOUNT{i:02}")
    }

    impl GroupSim {
        /// A group of PCs with these accounts' files, syncing into `target`.
        pub fn new(files: Vec<Vec<u8>>, target: Target, carrier: Carrier, seed: u64) -> GroupSim {
            let clock = Rc::new(Cell::new(1_800_000_000_000));
            let mut sim = GroupSim {
                clock,
                pcs: Vec::new(),
                carrier,
                key: GroupKey::new([42u8; 32]),
                target,
                rng: Rng::new(seed),
                queue: BinaryHeap::new(),
                seq: 0,
                deliveries: 0,
                failures: Vec::new(),
                trace: false,
                rounds: 0,
            };
            for (i, bytes) in files.into_iter().enumerate() {
                let folder = MemFolder::new(Clock::Virtual(Rc::clone(&sim.clock)));
                sim.pcs.push(Pc {
                    name: format!("pc{i:02}"),
                    folder,
                    account: MemAccount::new(bytes),
                    store: MemStore::new(),
                    state: Rc::new(RefCell::new(None)),
                    sent: BTreeMap::new(),
                    node: None,
                    shipped: BTreeMap::new(),
                    due: Some(0),
                });
            }
            for i in 0..sim.pcs.len() {
                sim.start(i, seed ^ i as u64);
            }
            sim
        }

        fn info(i: usize) -> PeerInfo {
            PeerInfo {
                addr: format!("local:pc{i:02}"),
                account: account_name(i),
                toon: String::new(),
                file: format!("memory/pc{i:02}/GuildHelper.lua"),
            }
        }

        /// Starts (or restarts) a PC's svsync from what it made durable.
        pub fn start(&mut self, i: usize, seed: u64) {
            let pc = &mut self.pcs[i];
            let cfg = MailboxConfig {
                key: self.key.clone(),
                name: pc.name.clone(),
                state: StateStore::Memory(Rc::clone(&pc.state)),
                timing: Timing {
                    retry_ms: 30_000,
                    max_retries: 20,
                },
                clock: Clock::Virtual(Rc::clone(&self.clock)),
            };
            let Ok(mailbox) = Mailbox::with_folder(pc.folder.clone(), cfg) else {
                self.failures
                    .push(format!("{}: the mailbox did not open", pc.name));
                return;
            };
            let store = pc.store.clone();
            let mut node = Node::new(
                mailbox,
                self.target,
                pc.sent.clone(),
                Box::new(move || store.clone()),
                Box::new(Log::default),
                seed,
            );
            let loaded = pc.store.clone().load().unwrap_or_default();
            let receiver = ReceiverDriver::from_loaded(
                Endpoint {
                    info: Self::info(i),
                    target: self.target,
                },
                pc.account.clone(),
                pc.store.clone(),
                Log::default(),
                loaded,
            );
            node.add_local(&account_name(i), Self::info(i), receiver);
            pc.node = Some(node);
            pc.due = Some(0);
            self.refresh_source(i);
        }

        /// A PC's svsync stops (its memory is lost; its files and state stay).
        pub fn stop(&mut self, i: usize) {
            if let Some(node) = self.pcs[i].node.take() {
                self.pcs[i].sent = node.sent().clone();
            }
        }

        fn refresh_source(&mut self, i: usize) {
            let pc = &mut self.pcs[i];
            let bytes = pc.account.bytes();
            let name = account_name(i);
            match crate::peer::source::source_of(std::path::Path::new(&name), bytes, &name) {
                Ok(source) => {
                    if let Some(node) = pc.node.as_mut() {
                        node.set_source(0, Rc::new(source));
                    }
                }
                Err(e) => self.failures.push(format!("{}: {e}", pc.name)),
            }
        }

        /// The game saves a PC's account with new content.
        pub fn game_save(&mut self, i: usize, bytes: Vec<u8>) {
            self.pcs[i].account.game_save(bytes);
            self.pcs[i].due = Some(0);
            self.refresh_source(i);
        }

        /// Ships what changed in PC `i`'s own outbox to the others, with the carrier's faults.
        fn carry(&mut self, i: usize) {
            let now = self.clock.get();
            let Some(node) = &self.pcs[i].node else {
                // A stopped PC writes nothing new.
                return;
            };
            let files = self.pcs[i].folder.stamps_under(node.mailbox.id());
            let old = std::mem::take(&mut self.pcs[i].shipped);
            let mut changes = Vec::new();
            for (p, stamp) in &files {
                if old.get(p) != Some(stamp)
                    && let Some((b, _)) = self.pcs[i].folder.read(p)
                {
                    changes.push(Delivery::Put(p.clone(), b));
                }
            }
            for p in old.keys() {
                if !files.contains_key(p) {
                    changes.push(Delivery::Delete(p.clone()));
                }
            }
            self.pcs[i].shipped = files;
            for change in changes {
                for to in 0..self.pcs.len() {
                    if to == i || self.rng.chance(self.carrier.lost) {
                        continue;
                    }
                    let c = self.carrier;
                    let mut at = now + c.min_delay + self.rng.below(c.max_delay - c.min_delay + 1);
                    if self.rng.chance(c.late) {
                        at += 3_600_000 + self.rng.below(3 * 3_600_000);
                    }
                    let copies = if self.rng.chance(c.twice) { 2 } else { 1 };
                    for n in 0..copies {
                        self.seq += 1;
                        let d = match &change {
                            Delivery::Put(p, b) => Delivery::Put(p.clone(), b.clone()),
                            Delivery::Delete(p) => Delivery::Delete(p.clone()),
                        };
                        self.queue.push(Reverse((at + n * 7_000, self.seq, to, d)));
                    }
                }
            }
        }

        fn deliver_due(&mut self) {
            let now = self.clock.get();
            while self
                .queue
                .peek()
                .is_some_and(|Reverse((at, ..))| *at <= now)
            {
                let Some(Reverse((_, _, to, d))) = self.queue.pop() else {
                    break;
                };
                // Files that arrive together are read together, as a watcher would.
                let due = &mut self.pcs[to].due;
                *due = Some(due.unwrap_or(Millis::MAX).min(now + SETTLE_MS));
                let folder = &self.pcs[to].folder;
                match d {
                    Delivery::Put(p, b) => {
                        if !p.contains(".sync-conflict-") && self.rng.chance(self.carrier.conflict)
                        {
                            // An engine's conflict copy appears on every device, the writer's too.
                            let stray =
                                p.replace(".msgs", ".sync-conflict-20261201-010101-ABC.msgs");
                            folder.put(&stray, b"junk".to_vec(), now);
                            if let Some(owner) = self.pcs.iter().position(|pc| {
                                pc.node
                                    .as_ref()
                                    .is_some_and(|n| p.starts_with(&format!("{}/", n.mailbox.id())))
                            }) {
                                self.pcs[owner].folder.put(&stray, b"junk".to_vec(), now);
                            }
                        }
                        folder.put(&p, b, now);
                    }
                    Delivery::Delete(p) => folder.delete(&p),
                }
                self.deliveries += 1;
            }
        }

        /// Runs until `until` (virtual time), or until nothing is left to happen.
        pub fn run_until(&mut self, until: Millis) {
            loop {
                self.rounds += 1;
                self.deliver_due();
                let now = self.clock.get();
                for i in 0..self.pcs.len() {
                    let pc = &mut self.pcs[i];
                    let due = pc.due.is_some_and(|d| d <= now);
                    let events = match pc.node.as_mut() {
                        Some(node) if due || node.deadline().is_some_and(|d| d <= now) => {
                            pc.due = None;
                            node.step();
                            node.take_events()
                        }
                        _ => continue,
                    };
                    for e in events {
                        if self.trace {
                            eprintln!("{} pc{i:02} {e:?}", self.clock.get());
                        }
                        match e {
                            NodeEvent::Received { written: true, .. } => self.refresh_source(i),
                            NodeEvent::Failed(f) => self.failures.push(format!("pc{i:02}: {f}")),
                            _ => {}
                        }
                    }
                    self.carry(i);
                }
                let next_delivery = self.queue.peek().map(|Reverse((at, ..))| *at);
                let next_node = self
                    .pcs
                    .iter()
                    .filter_map(|p| {
                        let node = p.node.as_ref()?;
                        [node.deadline(), p.due].into_iter().flatten().min()
                    })
                    .min();
                let next = [next_delivery, next_node]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(until)
                    .max(now + 1);
                if next > until {
                    self.clock.set(until);
                    return;
                }
                self.clock.set(next);
            }
        }

        /// Whether no PC is sending and no receiver is in a session (files may still be on the
        /// way: the carrier is not asked).
        pub fn is_quiet(&self) -> bool {
            self.pcs.iter().all(|p| {
                p.node
                    .as_ref()
                    .is_some_and(|n| n.sending() == 0 && !n.is_receiving(0))
            })
        }

        /// Writes of the accounts' files so far.
        pub fn writes(&self) -> Vec<u64> {
            self.pcs.iter().map(|p| p.account.writes()).collect()
        }

        pub fn now(&self) -> Millis {
            self.clock.get()
        }
    }

    impl Pc {
        pub fn folder_files(&self) -> usize {
            self.folder.len()
        }
    }
}
