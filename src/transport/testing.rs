//! Test hooks. Nothing here runs unless a test (or `--simulate`) asks for it.

use crate::protocol::{Millis, Timing};

use super::{Envelope, Transport, TransportError};

/// A transport that ends the process abruptly (exit status 137, as after `kill -9`: no
/// destructors, nothing flushed) once `after` messages have been delivered. Used by
/// `--simulate crash-after=N` to test resuming through the real binary.
pub struct CrashAfter<T> {
    inner: T,
    after: u64,
    delivered: u64,
}

impl<T: Transport> CrashAfter<T> {
    pub fn new(inner: T, after: u64) -> Self {
        CrashAfter {
            inner,
            after,
            delivered: 0,
        }
    }
}

impl<T: Transport> Transport for CrashAfter<T> {
    fn timing(&self) -> Timing {
        self.inner.timing()
    }

    fn now(&self) -> Millis {
        self.inner.now()
    }

    fn send(&mut self, from: &str, to: &str, flight: Vec<Vec<u8>>) -> Result<(), TransportError> {
        self.inner.send(from, to, flight)
    }

    fn backlog(&self) -> usize {
        self.inner.backlog()
    }

    fn recv(&mut self) -> Result<Vec<Envelope>, TransportError> {
        let mut got = self.inner.recv()?;
        let room = self.after.saturating_sub(self.delivered);
        if got.len() as u64 > room {
            got.truncate(room as usize);
        }
        self.delivered += got.len() as u64;
        if self.delivered >= self.after && got.is_empty() {
            std::process::exit(137);
        }
        Ok(got)
    }

    fn wait(&mut self, deadline: Option<Millis>) -> Result<bool, TransportError> {
        if self.delivered >= self.after {
            std::process::exit(137);
        }
        self.inner.wait(deadline)
    }
}
