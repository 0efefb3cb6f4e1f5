//! The decisions of `watch`, with no I/O: events and the time (`now`, milliseconds on any
//! clock) come in; what to look at, what to sync, when to try again, and what to tell the
//! player go out. Unit-tested with a fake clock and fake events.
//!
//! - A burst of file events for one account is looked at once, after `debounce` of quiet (the
//!   game writes in bursts; a file being written is not read half-way).
//! - A pair whose sync failed is tried again with growing pauses (2 s, 4 s, ... up to 5 min),
//!   forever; the player hears about it when it starts failing and when it works again, not at
//!   every attempt.
//! - An account whose file cannot be used (it does not parse: the game may be writing it) is
//!   looked at again at its next save, and once a minute in case no event comes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::protocol::Millis;

/// Longest pause between two attempts of a failing pair.
pub const MAX_BACKOFF_MS: Millis = 5 * 60 * 1000;
/// First pause after a failure.
pub const FIRST_BACKOFF_MS: Millis = 2_000;
/// How often an unusable file is looked at again without an event.
pub const UNUSABLE_RETRY_MS: Millis = 60_000;

/// What the worker tells the player, when something changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A pair started failing (`reason` of the first failure); tried again in `retry_in`.
    PairFailing {
        from: usize,
        to: usize,
        reason: String,
        since: Millis,
        retry_in: Millis,
    },
    /// A pair that was failing synced again.
    PairRecovered { from: usize, to: usize },
    /// An account's file cannot be used (since when, and why).
    Unusable {
        account: usize,
        reason: String,
        since: Millis,
    },
    /// An account that could not be used can be again.
    Usable { account: usize },
}

#[derive(Debug, Clone)]
struct Failing {
    attempts: u32,
    next: Millis,
}

/// The decisions of a watch.
#[derive(Debug)]
pub struct Worker {
    debounce: Millis,
    /// Accounts to look at, and from when.
    due: BTreeMap<usize, Millis>,
    unusable: BTreeMap<usize, Millis>,
    failing: BTreeMap<(usize, usize), Failing>,
    notices: VecDeque<Notice>,
}

impl Worker {
    pub fn new(debounce: Millis) -> Worker {
        Worker {
            debounce,
            due: BTreeMap::new(),
            unusable: BTreeMap::new(),
            failing: BTreeMap::new(),
            notices: VecDeque::new(),
        }
    }

    /// A file event for an account: look at it after a quiet period.
    pub fn changed(&mut self, now: Millis, account: usize) {
        self.due.insert(account, now + self.debounce);
    }

    /// An account to look at now (at start, or one that appeared).
    pub fn look_now(&mut self, now: Millis, account: usize) {
        self.due.insert(account, now);
    }

    /// The accounts to look at now.
    pub fn take_due(&mut self, now: Millis) -> Vec<usize> {
        let ready: Vec<usize> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(a, _)| *a)
            .collect();
        for a in &ready {
            self.due.remove(a);
        }
        ready
    }

    /// What looking at an account found: usable, or not (and why).
    pub fn looked(&mut self, now: Millis, account: usize, problem: Option<String>) {
        match problem {
            None => {
                if self.unusable.remove(&account).is_some() {
                    self.notices.push_back(Notice::Usable { account });
                }
            }
            Some(reason) => {
                if let std::collections::btree_map::Entry::Vacant(e) = self.unusable.entry(account)
                {
                    e.insert(now);
                    self.notices.push_back(Notice::Unusable {
                        account,
                        reason,
                        since: now,
                    });
                }
                let again = now + UNUSABLE_RETRY_MS;
                let at = self.due.entry(account).or_insert(again);
                *at = (*at).min(again);
            }
        }
    }

    /// Of the pairs not in step, those to sync now (the others wait for their next try).
    pub fn plan(&mut self, now: Millis, out_of_step: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let wanted: BTreeSet<(usize, usize)> = out_of_step.iter().copied().collect();
        // A pair that is in step again needs no retry.
        self.failing.retain(|p, _| wanted.contains(p));
        out_of_step
            .iter()
            .copied()
            .filter(|p| self.failing.get(p).is_none_or(|f| f.next <= now))
            .collect()
    }

    /// What a sync did.
    pub fn synced(&mut self, now: Millis, from: usize, to: usize, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if self.failing.remove(&(from, to)).is_some() {
                    self.notices.push_back(Notice::PairRecovered { from, to });
                }
            }
            Err(reason) => {
                let f = self.failing.entry((from, to)).or_insert(Failing {
                    attempts: 0,
                    next: now,
                });
                f.attempts += 1;
                let pause = crate::time::backoff(FIRST_BACKOFF_MS, f.attempts, MAX_BACKOFF_MS);
                f.next = now + pause;
                if f.attempts == 1 {
                    self.notices.push_back(Notice::PairFailing {
                        from,
                        to,
                        reason,
                        since: now,
                        retry_in: pause,
                    });
                }
            }
        }
    }

    /// When something is due next (a look, or a retry).
    pub fn deadline(&self) -> Option<Millis> {
        self.due
            .values()
            .copied()
            .chain(self.failing.values().map(|f| f.next))
            .min()
    }

    /// Whether some pair waits for a retry that is due.
    pub fn retry_due(&self, now: Millis) -> bool {
        self.failing.values().any(|f| f.next <= now)
    }

    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Whether nothing is pending (no look due, no pair failing).
    pub fn is_quiet(&self) -> bool {
        self.due.is_empty() && self.failing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_events_is_one_look_after_the_quiet_period() {
        let mut w = Worker::new(100);
        for t in 0..20 {
            w.changed(t * 10, 0);
        }
        assert!(w.take_due(250).is_empty());
        assert_eq!(w.deadline(), Some(290));
        assert_eq!(w.take_due(290), [0]);
        assert!(w.take_due(1000).is_empty());
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn accounts_are_independent() {
        let mut w = Worker::new(50);
        w.changed(0, 1);
        w.look_now(0, 0);
        assert_eq!(w.take_due(0), [0]);
        assert_eq!(w.take_due(60), [1]);
    }

    #[test]
    fn a_failing_pair_backs_off_forever_and_is_told_once() {
        let mut w = Worker::new(0);
        let pairs = [(0, 1)];
        let mut now = 0;
        let mut attempts = 0;
        while now < 3_600_000 {
            if w.plan(now, &pairs) == pairs {
                attempts += 1;
                w.synced(now, 0, 1, Err("busy".into()));
            }
            now = w.deadline().unwrap();
        }
        // 2, 4, 8 ... s, then every 5 minutes: about 20 attempts in an hour, never given up.
        assert!((15..30).contains(&attempts), "{attempts}");
        let notices: Vec<Notice> = std::iter::from_fn(|| w.poll_notice()).collect();
        assert_eq!(notices.len(), 1);
        assert!(matches!(
            &notices[0],
            Notice::PairFailing {
                retry_in: 2_000,
                ..
            }
        ));
        w.synced(now, 0, 1, Ok(()));
        assert_eq!(
            w.poll_notice(),
            Some(Notice::PairRecovered { from: 0, to: 1 })
        );
        assert!(w.is_quiet());
    }

    #[test]
    fn a_pair_in_step_again_stops_retrying() {
        let mut w = Worker::new(0);
        w.synced(0, 2, 3, Err("changed on disk".into()));
        assert!(w.plan(1_000, &[(2, 3)]).is_empty());
        assert_eq!(w.plan(2_000, &[(2, 3)]), [(2, 3)]);
        assert!(w.plan(2_000, &[]).is_empty());
        assert!(w.is_quiet());
    }

    #[test]
    fn an_unusable_file_is_told_once_and_looked_at_again() {
        let mut w = Worker::new(10);
        w.looked(0, 4, Some("does not parse".into()));
        w.looked(5, 4, Some("does not parse".into()));
        assert_eq!(w.deadline(), Some(UNUSABLE_RETRY_MS));
        // Its next save comes first.
        w.changed(100, 4);
        assert_eq!(w.take_due(110), [4]);
        w.looked(110, 4, None);
        let notices: Vec<Notice> = std::iter::from_fn(|| w.poll_notice()).collect();
        assert!(matches!(
            notices[..],
            [
                Notice::Unusable {
                    account: 4,
                    since: 0,
                    ..
                },
                Notice::Usable { account: 4 }
            ]
        ));
    }
}
