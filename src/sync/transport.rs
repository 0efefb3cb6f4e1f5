//! Channels between sender and receiver: a perfect in-process one, and a simulated one that
//! drops, duplicates, reorders, delays, corrupts and truncates messages from a seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    ToReceiver,
    ToSender,
}

/// Fault rates (0..1) and the seed; `crash_after` ends the process after that many messages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub delay: f64,
    pub corrupt: f64,
    pub truncate: f64,
    pub seed: u64,
    pub crash_after: Option<u64>,
}

impl Faults {
    /// Parses `drop=0.1,duplicate=0.05,reorder=0.1,corrupt=0.05,truncate=0.02,seed=7` or
    /// `crash-after=N` (any combination).
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=VALUE"))?;
            let rate = || -> Result<f64, String> {
                let v: f64 = value
                    .parse()
                    .map_err(|_| format!("`{value}` is not a number (in `{part}`)"))?;
                if (0.0..=1.0).contains(&v) {
                    Ok(v)
                } else {
                    Err(format!("`{part}`: a rate is between 0 and 1"))
                }
            };
            let count = || -> Result<u64, String> {
                value
                    .parse()
                    .map_err(|_| format!("`{value}` is not a whole number (in `{part}`)"))
            };
            match key {
                "drop" => f.drop = rate()?,
                "duplicate" => f.duplicate = rate()?,
                "reorder" => f.reorder = rate()?,
                "delay" => f.delay = rate()?,
                "corrupt" => f.corrupt = rate()?,
                "truncate" => f.truncate = rate()?,
                "seed" => f.seed = count()?,
                "crash-after" => f.crash_after = Some(count()?),
                _ => {
                    return Err(format!(
                        "unknown fault `{key}` (use drop, duplicate, reorder, delay, corrupt, \
                         truncate, seed, crash-after)"
                    ));
                }
            }
        }
        Ok(f)
    }

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

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// A message in flight: arrival time, send order, way, bytes.
type InFlight = Reverse<(u64, u64, Direction, Vec<u8>)>;

/// Messages in flight, delivered in time order (ties in send order).
pub struct Channel {
    faults: Faults,
    rng: Rng,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    /// Messages put on the channel so far.
    pub sent: u64,
}

/// Normal transit time on the simulated channel.
const LATENCY_MS: u64 = 50;

impl Channel {
    pub fn new(faults: Faults) -> Self {
        Channel {
            rng: Rng::new(faults.seed),
            faults,
            queue: BinaryHeap::new(),
            seq: 0,
            sent: 0,
        }
    }

    fn push(&mut self, at: u64, dir: Direction, bytes: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, dir, bytes)));
    }

    /// Puts a message on the channel at time `now`; faults apply here.
    pub fn send(&mut self, now: u64, dir: Direction, mut bytes: Vec<u8>) {
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
        let mut at = now + LATENCY_MS;
        if self.rng.chance(f.reorder) {
            at += 1 + self.rng.below(400);
        }
        if self.rng.chance(f.delay) {
            at += 1_000 + self.rng.below(4_000);
        }
        if self.rng.chance(f.duplicate) {
            let later = at + self.rng.below(300);
            self.push(later, dir, bytes.clone());
        }
        self.push(at, dir, bytes);
    }

    /// When the next message arrives.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    /// The next message to arrive (its time, way and bytes).
    pub fn pop(&mut self) -> Option<(u64, Direction, Vec<u8>)> {
        self.queue
            .pop()
            .map(|Reverse((at, _, dir, bytes))| (at, dir, bytes))
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
    fn fault_specs_parse() {
        let f =
            Faults::parse("drop=0.1,duplicate=0.05,reorder=0.1,corrupt=0.05,truncate=0.02,seed=7")
                .unwrap();
        assert_eq!(f.drop, 0.1);
        assert_eq!(f.seed, 7);
        assert!(f.is_faulty());
        let c = Faults::parse("crash-after=12").unwrap();
        assert_eq!(c.crash_after, Some(12));
        assert!(!c.is_faulty());
        assert!(Faults::parse("drop=2").is_err());
        assert!(Faults::parse("explode=0.1").is_err());
        assert!(Faults::parse("drop").is_err());
    }

    #[test]
    fn a_perfect_channel_delivers_in_order() {
        let mut c = Channel::new(Faults::default());
        for i in 0..10u8 {
            c.send(u64::from(i), Direction::ToReceiver, vec![b'a' + i]);
        }
        let got: Vec<u8> = std::iter::from_fn(|| c.pop())
            .map(|(_, _, b)| b[0])
            .collect();
        assert_eq!(got, (0..10).map(|i| b'a' + i).collect::<Vec<_>>());
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let mut c = Channel::new(Faults {
                drop: 0.3,
                duplicate: 0.3,
                reorder: 0.3,
                corrupt: 0.3,
                truncate: 0.1,
                seed,
                ..Faults::default()
            });
            for i in 0..50u8 {
                c.send(0, Direction::ToSender, vec![b'a' + (i % 26); 20]);
            }
            std::iter::from_fn(|| c.pop()).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
