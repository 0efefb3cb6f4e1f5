//! The sync protocol, with no I/O: wire messages, chunking, and the two peers as pure state
//! machines (quinn-proto's shape: messages and `now` in; messages, events and requests for
//! durable state out, collected with `poll_*`).
//!
//! - [`wire`]: the messages as bytes, each with its own checksum, at most 255 bytes.
//! - [`chunk`]: a table's JSON payload cut into slices, and put back together.
//! - [`sender`]: one sync from one source to one receiver.
//! - [`receiver`]: everything one receiving account answers: accept, busy, resume, new
//!   session, expiry, every reply.
//! - [`session`]: the receiver's session table as data.
//!
//! See `docs/PROTOCOL.md` for the protocol itself.

pub mod chunk;
pub mod receiver;
pub mod sender;
pub mod session;
pub mod wire;

/// Time on the driver's clock: milliseconds since the Unix epoch (real or simulated). Peers
/// never read a clock; they are given `now`.
pub type Millis = u64;

/// The protocol version this build speaks; SYNC_REQUEST and ONLINE carry it.
pub const VERSION: u32 = 2;

/// The addon-message prefix the protocol uses in game (at most 16 characters). It is not
/// GuildHelper's own prefix: see `docs/PROTOCOL.md`.
pub const PREFIX: &str = "SVSYNC";

/// How a carrier's round trips are waited for: a property of the transport, not of the
/// protocol (milliseconds in memory, seconds to minutes through a synced folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long to wait for an answer before asking again.
    pub retry_ms: Millis,
    /// Requests repeated without an answer before the sender gives up.
    pub max_retries: u32,
}

impl Default for Timing {
    /// In-process: an answer comes at once, so 3 s means it was lost.
    fn default() -> Self {
        Timing {
            retry_ms: 3_000,
            max_retries: 8,
        }
    }
}

/// A session with no activity for this long has timed out.
pub const SESSION_TIMEOUT_MS: Millis = 60 * 60 * 1000;

/// A session older than this has ended, however active: a peer that keeps talking must not
/// hold a receiver (and its file lock) busy for ever. A whole guild's data takes about an hour
/// in game, seconds to minutes between PCs.
pub const MAX_SESSION_MS: Millis = 24 * 60 * 60 * 1000;

/// Resend rounds for one table before it fails (both peers).
pub const MAX_ROUNDS: u32 = 12;

/// How long messages would take in game: the per-prefix allowance (10 messages at once, then 1
/// per second) and ChatThrottleLib's pacing (800 bytes per second after a 4,000-byte burst, with
/// about 40 bytes of overhead per message), whichever is slower. Seconds.
pub fn in_game_seconds(messages: u64, bytes: u64) -> f64 {
    let by_count = messages.saturating_sub(10) as f64;
    let by_bytes = (bytes + 40 * messages).saturating_sub(4_000) as f64 / 800.0;
    by_count.max(by_bytes)
}
