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

    fn commit(&mut self, merged: Option<&[u8]>, _original: &[u8]) -> Result<Committed, Failure> {
        let mut f = self.0.borrow_mut();
        let opened = f.opened.take();
        let Some(bytes) = merged else {
            return Ok(Committed::default());
        };
        if opened != Some(f.version) {
            return Err(Failure::Write(WriteError::Changed(self.path().into())));
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
        let sender_store = MemStore::new();
        let receiver_store = MemStore::new();
        let sender = Self::make_sender(&source, target, &sender_store, first_id.max(1));
        let receiver = Self::make_receiver(&account, target, &receiver_store);
        let mut h = Harness {
            link: SimLink::new(start, faults),
            account,
            sender_store,
            receiver_store,
            source,
            target,
            sender,
            receiver,
            next_id: first_id.max(1),
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
