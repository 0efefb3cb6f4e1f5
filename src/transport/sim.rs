//! A simulated link in memory with a virtual clock: perfect (the one-shot `merge` between two
//! accounts on one PC), or faulty from a seed (drop, duplicate, reorder, delay, corrupt,
//! truncate). Time only moves when the peers wait, so thousands of faulty syncs run in seconds
//! and a seed always gives the same schedule.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::protocol::{Millis, Timing};

use super::{Envelope, Transport, TransportError};

/// Fault rates (0..1) and the seed of the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub delay: f64,
    pub corrupt: f64,
    pub truncate: f64,
    pub seed: u64,
}

/// What `--simulate` asks for: faults, and where to stop as if killed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Simulation {
    pub faults: Faults,
    /// End the process abruptly after this many delivered messages.
    pub crash_after: Option<u64>,
}

/// Why a `--simulate` specification is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    #[error("`{0}` is not NAME=VALUE")]
    NotAPair(String),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}`: a rate is between 0 and 1")]
    Rate(String),
    #[error(
        "unknown fault `{0}` (use drop, duplicate, reorder, delay, corrupt, truncate, seed, crash-after)"
    )]
    Unknown(String),
}

impl Simulation {
    /// Parses `drop=0.1,duplicate=0.05,reorder=0.1,corrupt=0.05,truncate=0.02,seed=7` and
    /// `crash-after=N`, in any combination.
    pub fn parse(spec: &str) -> Result<Simulation, SimulateError> {
        let mut s = Simulation::default();
        let f = &mut s.faults;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| SimulateError::NotAPair(part.to_string()))?;
            let rate = || -> Result<f64, SimulateError> {
                let v: f64 = value
                    .parse()
                    .map_err(|_| SimulateError::NotANumber(part.to_string()))?;
                if (0.0..=1.0).contains(&v) {
                    Ok(v)
                } else {
                    Err(SimulateError::Rate(part.to_string()))
                }
            };
            let count = || -> Result<u64, SimulateError> {
                value
                    .parse()
                    .map_err(|_| SimulateError::NotANumber(part.to_string()))
            };
            match key {
                "drop" => f.drop = rate()?,
                "duplicate" => f.duplicate = rate()?,
                "reorder" => f.reorder = rate()?,
                "delay" => f.delay = rate()?,
                "corrupt" => f.corrupt = rate()?,
                "truncate" => f.truncate = rate()?,
                "seed" => f.seed = count()?,
                "crash-after" => s.crash_after = Some(count()?),
                _ => return Err(SimulateError::Unknown(key.to_string())),
            }
        }
        Ok(s)
    }
}

impl Faults {
    pub fn is_faulty(&self) -> bool {
        self.drop + self.duplicate + self.reorder + self.delay + self.corrupt + self.truncate > 0.0
    }
}

/// SplitMix64: a small, well-mixed generator; the same seed gives the same schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// A message in flight, delivered in time order (ties in send order).
#[derive(Debug)]
struct InFlight {
    at: Millis,
    seq: u64,
    env: Envelope,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Normal transit time on the simulated link.
pub const LATENCY_MS: Millis = 50;

/// A link between endpoints in one process, on a virtual clock.
pub struct SimLink {
    clock: Millis,
    faults: Faults,
    rng: Rng,
    timing: Timing,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Transit time of a message that no fault delays.
    latency: Millis,
    /// Messages put on the link so far, and messages delivered.
    pub sent: u64,
    pub delivered: u64,
    /// The most messages the link held at once.
    pub max_backlog: usize,
}

impl SimLink {
    /// A link whose clock starts at `start` (milliseconds since the Unix epoch).
    pub fn new(start: Millis, faults: Faults) -> Self {
        SimLink {
            clock: start,
            rng: Rng::new(faults.seed),
            faults,
            timing: Timing::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            latency: LATENCY_MS,
            sent: 0,
            delivered: 0,
            max_backlog: 0,
        }
    }

    /// The same link with another transit time ([`LATENCY_MS`] unless told): 0 for two peers
    /// in one process, whose messages are handed over as they are made.
    pub fn with_latency(mut self, latency: Millis) -> Self {
        self.latency = latency;
        self
    }

    /// The same link with another retry timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Whether messages are in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    fn push(&mut self, at: Millis, env: Envelope) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at,
            seq: self.seq,
            env,
        }));
        self.max_backlog = self.max_backlog.max(self.queue.len());
    }

    /// One message onto the link; the faults apply here.
    fn send_one(&mut self, from: &Arc<str>, to: &Arc<str>, mut bytes: Vec<u8>) {
        self.sent += 1;
        let f = self.faults;
        if self.rng.chance(f.drop) {
            return;
        }
        if self.rng.chance(f.corrupt) {
            corrupt(&mut self.rng, &mut bytes);
        }
        if self.rng.chance(f.truncate) && !bytes.is_empty() {
            let mut cut = self.rng.below(bytes.len() as u64) as usize;
            // Cut on a character boundary, as the game cuts text.
            while cut > 0 && bytes[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            bytes.truncate(cut);
        }
        let mut at = self.clock + self.latency;
        if self.rng.chance(f.reorder) {
            at += 1 + self.rng.below(400);
        }
        if self.rng.chance(f.delay) {
            at += 1_000 + self.rng.below(4_000);
        }
        let env = Envelope {
            from: from.clone(),
            to: to.clone(),
            bytes,
        };
        if self.rng.chance(f.duplicate) {
            let later = at + self.rng.below(300);
            self.push(later, env.clone());
        }
        self.push(at, env);
    }
}

impl Transport for SimLink {
    fn timing(&self) -> Timing {
        self.timing
    }

    fn now(&self) -> Millis {
        self.clock
    }

    fn send(&mut self, from: &str, to: &str, flight: Vec<Vec<u8>>) -> Result<(), TransportError> {
        let (from, to): (Arc<str>, Arc<str>) = (from.into(), to.into());
        for bytes in flight {
            self.send_one(&from, &to, bytes);
        }
        Ok(())
    }

    fn backlog(&self) -> usize {
        self.queue.len()
    }

    fn recv(&mut self) -> Result<Vec<Envelope>, TransportError> {
        let mut out = Vec::new();
        while self
            .queue
            .peek()
            .is_some_and(|Reverse(m)| m.at <= self.clock)
        {
            if let Some(Reverse(m)) = self.queue.pop() {
                out.push(m.env);
            }
        }
        self.delivered += out.len() as u64;
        Ok(out)
    }

    fn wait(&mut self, deadline: Option<Millis>) -> Result<bool, TransportError> {
        let next = self.queue.peek().map(|Reverse(m)| m.at);
        let until = match (next, deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return Ok(false),
        };
        self.clock = self.clock.max(until);
        Ok(true)
    }
}

/// Replaces one ASCII byte with another printable ASCII byte (the message stays text).
fn corrupt(rng: &mut Rng, bytes: &mut [u8]) {
    let ascii: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].is_ascii()).collect();
    if ascii.is_empty() {
        return;
    }
    let i = ascii[rng.below(ascii.len() as u64) as usize];
    let old = bytes[i];
    let mut new = old;
    while new == old {
        new = b' ' + rng.below(95) as u8;
    }
    bytes[i] = new;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_specs_parse() {
        let s = Simulation::parse(
            "drop=0.1,duplicate=0.05,reorder=0.1,corrupt=0.05,truncate=0.02,seed=7",
        )
        .unwrap();
        assert_eq!(s.faults.drop, 0.1);
        assert_eq!(s.faults.seed, 7);
        assert!(s.faults.is_faulty());
        let c = Simulation::parse("crash-after=12").unwrap();
        assert_eq!(c.crash_after, Some(12));
        assert!(!c.faults.is_faulty());
        assert_eq!(
            Simulation::parse("drop=2"),
            Err(SimulateError::Rate("drop=2".into()))
        );
        assert!(matches!(
            Simulation::parse("explode=0.1"),
            Err(SimulateError::Unknown(_))
        ));
        assert!(matches!(
            Simulation::parse("drop"),
            Err(SimulateError::NotAPair(_))
        ));
    }

    fn drain(link: &mut SimLink) -> Vec<(Millis, Vec<u8>)> {
        let mut out = Vec::new();
        while link.wait(None).unwrap() {
            let now = link.now();
            out.extend(link.recv().unwrap().into_iter().map(|e| (now, e.bytes)));
        }
        out
    }

    #[test]
    fn a_perfect_link_delivers_in_order_after_the_latency() {
        let mut link = SimLink::new(1_000, Faults::default());
        link.send("a", "b", (0..10u8).map(|i| vec![b'a' + i]).collect())
            .unwrap();
        assert!(link.recv().unwrap().is_empty());
        let got = drain(&mut link);
        assert_eq!(
            got.iter().map(|(_, b)| b[0]).collect::<Vec<_>>(),
            (0..10).map(|i| b'a' + i).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|(t, _)| *t == 1_000 + LATENCY_MS));
        assert!(!link.wait(None).unwrap());
        assert!(link.wait(Some(5_000)).unwrap());
        assert_eq!(link.now(), 5_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let mut link = SimLink::new(
                0,
                Faults {
                    drop: 0.3,
                    duplicate: 0.3,
                    reorder: 0.3,
                    corrupt: 0.3,
                    truncate: 0.1,
                    seed,
                    ..Faults::default()
                },
            );
            link.send(
                "a",
                "b",
                (0..50u8).map(|i| vec![b'a' + (i % 26); 20]).collect(),
            )
            .unwrap();
            drain(&mut link)
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
