//! Drivers: one per peer, each doing that peer's I/O and nothing of the other's, and the loop
//! that pumps drivers over a transport.
//!
//! - [`sender::SenderDriver`]: a [`crate::protocol::sender::Sender`], its log and its own
//!   session record.
//! - [`receiver::ReceiverDriver`]: a [`crate::protocol::receiver::Receiver`], its account's
//!   file, its state (records, journal, staged tables) and its log.
//! - [`pair`]: the one-shot `merge`: a sender and a receiver over a link in memory.
//! - [`harness`]: the deterministic simulation used by the tests (no files, simulated time).

pub mod group;
pub mod harness;
pub mod log;
pub mod pair;
pub mod receiver;
pub mod sender;
pub mod source;

use crate::failure::Failure;
use crate::protocol::Millis;
use crate::protocol::wire::Message;
use crate::transport::Transport;

use log::WireLog;

/// A peer with its I/O, as the loop sees it.
pub trait Driver {
    /// The transport address this driver answers to.
    fn addr(&self) -> &str;
    /// A message for this driver from `from`.
    fn handle(&mut self, t: &mut dyn Transport, from: &str, msg: Message);
    /// The time: whatever is due.
    fn handle_timeout(&mut self, t: &mut dyn Transport);
    /// When [`Driver::handle_timeout`] next has something to do.
    fn deadline(&self) -> Option<Millis>;
    /// The driver holds back messages it has made room for (a sender pacing a large flight).
    fn has_more(&self) -> bool {
        false
    }
    /// Sends what [`Driver::has_more`] holds back, as far as the transport has room.
    fn send_more(&mut self, _t: &mut dyn Transport) {}
    /// The driver has nothing more to do (a sender whose sync ended).
    fn is_finished(&self) -> bool {
        false
    }
    /// The driver stopped working (its state could not be written).
    fn dead(&self) -> Option<&Failure>;
    fn take_dead(&mut self) -> Option<Failure>;
}

/// What the loop delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    /// Damaged, cut or malformed messages (dropped like lost ones).
    pub dropped: u64,
    /// Messages for an address no driver here answers to.
    pub stray: u64,
}

/// Hands every message that has arrived to the driver it is addressed to.
pub fn deliver(
    drivers: &mut [&mut dyn Driver],
    t: &mut dyn Transport,
    wire: &mut WireLog,
    stats: &mut Delivery,
) -> Result<(), Failure> {
    for env in t.recv()? {
        wire.record(t.now(), &env);
        let Ok(msg) = Message::decode(&env.bytes) else {
            stats.dropped += 1;
            continue;
        };
        match drivers.iter_mut().find(|d| d.addr() == &*env.to) {
            Some(d) => {
                stats.delivered += 1;
                d.handle(t, &env.from, msg);
            }
            None => stats.stray += 1,
        }
    }
    Ok(())
}

/// Runs drivers over one transport until `done` says so, a driver dies, or nothing more can
/// happen.
pub fn run(
    drivers: &mut [&mut dyn Driver],
    t: &mut dyn Transport,
    wire: &mut WireLog,
    mut done: impl FnMut(&[&mut dyn Driver]) -> bool,
) -> Result<Delivery, Failure> {
    let mut stats = Delivery::default();
    loop {
        deliver(drivers, t, wire, &mut stats)?;
        for d in drivers.iter_mut() {
            if d.deadline().is_some_and(|at| at <= t.now()) {
                d.handle_timeout(t);
            }
            if d.has_more() {
                d.send_more(t);
            }
        }
        if done(drivers) || drivers.iter().any(|d| d.dead().is_some()) {
            return Ok(stats);
        }
        let deadline = drivers.iter().filter_map(|d| d.deadline()).min();
        if !t.wait(deadline)? {
            return Ok(stats);
        }
    }
}
