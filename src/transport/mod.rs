//! Transports: how the peers' messages travel. One trait ([`Transport`]); a simulated link in
//! memory with a virtual clock ([`sim::SimLink`], perfect or faulty from a seed), and test
//! hooks in [`testing`].
//!
//! A transport carries *flights*: everything one peer sends before it waits, together. The
//! carrier decides how long an answer may take ([`Transport::timing`]): milliseconds in memory,
//! seconds or minutes through a folder that a sync engine carries between PCs.

pub mod mailbox;
pub mod sim;
pub mod testing;

use std::sync::Arc;

use crate::protocol::{Millis, Timing};

/// Where a transport's time comes from: the system's clock, or a virtual one that a simulation
/// moves.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Virtual(std::rc::Rc<std::cell::Cell<Millis>>),
}

impl Clock {
    pub fn now(&self) -> Millis {
        match self {
            Clock::System => crate::time::now_ms(),
            Clock::Virtual(c) => c.get(),
        }
    }
}

/// A message as it arrived, with the addresses of its two ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Shared by every message of a flight (a large flight has a hundred thousand messages).
    pub from: Arc<str>,
    pub to: Arc<str>,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot use {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not an svsync mailbox; prepare it once with `svsync mailbox init DIR --key-file FILE`",
        crate::text::printable_path(.0)
    )]
    NotAMailbox(std::path::PathBuf),
}

/// How peers exchange messages.
pub trait Transport {
    /// How long to wait for an answer on this carrier, and how often to ask again.
    fn timing(&self) -> Timing;
    /// The transport's clock: milliseconds since the Unix epoch (virtual on a simulated link).
    fn now(&self) -> Millis;
    /// Sends one flight of messages from endpoint `from` to endpoint `to`.
    fn send(&mut self, from: &str, to: &str, flight: Vec<Vec<u8>>) -> Result<(), TransportError>;
    /// Messages sent and not yet received, where the transport can tell (a link in memory);
    /// a sender that paces a large flight waits for it to drain. 0 where it cannot tell.
    fn backlog(&self) -> usize {
        0
    }
    /// The messages that have arrived for local endpoints, oldest first.
    fn recv(&mut self) -> Result<Vec<Envelope>, TransportError>;
    /// Waits until `deadline`, or until something may have arrived. Returns false when nothing
    /// can ever arrive (a simulated link with nothing in flight and no deadline).
    fn wait(&mut self, deadline: Option<Millis>) -> Result<bool, TransportError>;
}
