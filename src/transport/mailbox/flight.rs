//! The mailbox's file format: one file per flight of messages, authenticated by the group key.
//!
//! ```text
//! svsync-mailbox 1
//! from <peer id>
//! name <peer name, %-escaped>
//! seq <sequence number, 10 digits>
//! to <peer id> <peer id> ...   (the peers it has letters for; `*`: everyone)
//! time <milliseconds since the Unix epoch>
//! ack <peer id>=<seq> <peer id>=<seq> ...
//! messages <count>
//! <length> <from account> <to peer id> <to account>   (names %-escaped; `*`: everyone)
//! <length bytes of the message>
//! ...
//! end <byte length before this line> <CRC-32, 8 hex> <HMAC-SHA256, 64 hex>
//! ```
//!
//! Every line ends with `\n`; a message's bytes are followed by `\n`. The CRC-32 and the
//! HMAC-SHA256 (keyed with the group key) cover every byte before the `end` line. A reader
//! treats every file as hostile: sizes are bounded before anything is allocated, and a file is
//! either accepted whole or not at all.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::protocol::wire::MAX_MESSAGE;

/// The format version.
pub const FORMAT: u32 = 1;
/// The largest flight file a peer writes or reads.
pub const MAX_FILE: usize = 32 << 20;
/// The most messages one flight holds.
pub const MAX_MESSAGES: usize = 200_000;
/// A peer id: 16 lowercase hex digits.
pub const PEER_ID_LEN: usize = 16;

/// The group key: 32 random bytes shared by every PC of a group, out of band.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey([u8; 32]);

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a group key file holds 64 hex digits (made by `svsync mailbox init`)")]
    Format,
    #[error("cannot make a random key: {0}")]
    Random(String),
}

impl GroupKey {
    pub fn new(bytes: [u8; 32]) -> GroupKey {
        GroupKey(bytes)
    }

    /// A new random key.
    pub fn generate() -> Result<GroupKey, KeyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(GroupKey(k))
    }

    /// The key file's text: 64 hex digits and a line break.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(65);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
        s
    }

    pub fn parse(text: &str) -> Result<GroupKey, KeyError> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Format);
        }
        let mut k = [0u8; 32];
        for (i, chunk) in t.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| KeyError::Format)?;
            k[i] = u8::from_str_radix(s, 16).map_err(|_| KeyError::Format)?;
        }
        Ok(GroupKey(k))
    }

    /// A short public fingerprint of the key (names the group; reveals nothing of the key).
    pub fn fingerprint(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"svsync group fingerprint");
        let out = mac.finalize().into_bytes();
        out[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC pads a short key with zeros to the block size; padding it here gives the same
        // MAC through the constructor that cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into())
    }
}

/// One message of a flight: who sent it and to whom (account names; the addressee's peer id;
/// `*` for both: every account of every peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub from: String,
    pub peer: String,
    pub to: String,
    pub bytes: Vec<u8>,
}

/// The most peers one flight is addressed to.
pub const MAX_ADDRESSEES: usize = 1024;

/// A flight: everything one peer sent before it waited, to the peers it names (or everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flight {
    pub from: String,
    pub name: String,
    pub seq: u64,
    /// The peers it has letters for (sorted, no repeats), or `["*"]` for everyone.
    pub to: Vec<String>,
    pub time: u64,
    /// The highest sequence number this peer has read from each other peer.
    pub acks: Vec<(String, u64)>,
    pub letters: Vec<Letter>,
}

/// Why a file is not a flight this peer can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    /// Not (yet) a whole flight: cut short, still being written, or damaged on the way.
    #[error("incomplete or damaged")]
    Incomplete,
    /// Whole, but not from this group: its HMAC does not match the group key.
    #[error("not from this group (its authentication does not match the group key)")]
    Unauthenticated,
    #[error("too large")]
    TooLarge,
    #[error("malformed ({0})")]
    Malformed(&'static str),
    #[error("format version {0}, this svsync reads version {FORMAT}")]
    Version(u32),
}

/// `%`-escapes bytes outside the printable ASCII range, space and `%`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub fn unescape(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn is_peer_id(text: &str) -> bool {
    text.len() == PEER_ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Flight {
    /// The file's bytes, authenticated with `key`.
    pub fn encode(&self, key: &GroupKey) -> Vec<u8> {
        let mut s = String::new();
        let _ = writeln!(s, "svsync-mailbox {FORMAT}");
        let _ = writeln!(s, "from {}", self.from);
        let _ = writeln!(s, "name {}", escape(&self.name));
        let _ = writeln!(s, "seq {:010}", self.seq);
        let _ = writeln!(s, "to {}", self.to.join(" "));
        let _ = writeln!(s, "time {}", self.time);
        s.push_str("ack");
        for (peer, seq) in &self.acks {
            let _ = write!(s, " {peer}={seq}");
        }
        s.push('\n');
        let _ = writeln!(s, "messages {}", self.letters.len());
        let mut out = s.into_bytes();
        for l in &self.letters {
            out.extend_from_slice(
                format!(
                    "{} {} {} {}\n",
                    l.bytes.len(),
                    escape(&l.from),
                    l.peer,
                    escape(&l.to)
                )
                .as_bytes(),
            );
            out.extend_from_slice(&l.bytes);
            out.push(b'\n');
        }
        let crc = crc32fast::hash(&out);
        let mut mac = key.mac();
        mac.update(&out);
        let tag: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let end = format!("end {} {crc:08x} {tag}\n", out.len());
        out.extend_from_slice(end.as_bytes());
        out
    }

    /// Reads a flight, checking its integrity first (a file cut short or damaged is
    /// [`FlightError::Incomplete`]) and its authenticity then.
    pub fn decode(bytes: &[u8], key: &GroupKey) -> Result<Flight, FlightError> {
        if bytes.len() > MAX_FILE {
            return Err(FlightError::TooLarge);
        }
        // The `end` line: the last line of the file.
        let body_end = bytes
            .strip_suffix(b"\n")
            .and_then(|b| memchr::memrchr(b'\n', b))
            .map(|i| i + 1)
            .ok_or(FlightError::Incomplete)?;
        let (body, end) = bytes.split_at(body_end);
        let end = std::str::from_utf8(end).map_err(|_| FlightError::Incomplete)?;
        let parts: Vec<&str> = end.trim_end_matches('\n').split(' ').collect();
        let [tag_end, len, crc, tag] = parts[..] else {
            return Err(FlightError::Incomplete);
        };
        if tag_end != "end"
            || len.parse::<usize>().ok() != Some(body.len())
            || u32::from_str_radix(crc, 16).ok() != Some(crc32fast::hash(body))
            || tag.len() != 64
            // One spelling only (lower-case hex, no signs): the trailer is exactly as written.
            || end != format!("end {} {:08x} {}\n", body.len(), crc32fast::hash(body), tag)
            || tag.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(FlightError::Incomplete);
        }
        let mut want = [0u8; 32];
        for (i, chunk) in tag.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| FlightError::Incomplete)?;
            want[i] = u8::from_str_radix(hex, 16).map_err(|_| FlightError::Incomplete)?;
        }
        let mut mac = key.mac();
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(&want)
            .map_err(|_| FlightError::Unauthenticated)?;
        parse_body(body)
    }
}

/// Reads the lines of an authenticated body. Still careful: the group's peers are trusted to
/// hold the key, not to be bug-free.
fn parse_body(body: &[u8]) -> Result<Flight, FlightError> {
    let mut at = 0usize;
    let mut line = |field: &'static str| -> Result<&str, FlightError> {
        let rest = &body[at..];
        let n = memchr::memchr(b'\n', rest).ok_or(FlightError::Malformed(field))?;
        at += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| FlightError::Malformed(field))
    };
    let head = line("header")?;
    let version = head
        .strip_prefix("svsync-mailbox ")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or(FlightError::Malformed("header"))?;
    if version != FORMAT {
        return Err(FlightError::Version(version));
    }
    let from = line("from")?
        .strip_prefix("from ")
        .filter(|p| is_peer_id(p))
        .ok_or(FlightError::Malformed("from"))?
        .to_string();
    let name = line("name")?
        .strip_prefix("name ")
        .and_then(unescape)
        .filter(|n| n.len() <= 64)
        .ok_or(FlightError::Malformed("name"))?;
    let seq = line("seq")?
        .strip_prefix("seq ")
        .filter(|s| s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(FlightError::Malformed("seq"))?;
    let to_line = line("to")?
        .strip_prefix("to ")
        .ok_or(FlightError::Malformed("to"))?;
    let to: Vec<String> = if to_line == "*" {
        vec!["*".to_string()]
    } else {
        let mut to = Vec::new();
        for p in to_line.split(' ') {
            if !is_peer_id(p) || to.len() >= MAX_ADDRESSEES {
                return Err(FlightError::Malformed("to"));
            }
            to.push(p.to_string());
        }
        to
    };
    let time = line("time")?
        .strip_prefix("time ")
        .and_then(|t| t.parse().ok())
        .ok_or(FlightError::Malformed("time"))?;
    let ack_line = line("ack")?;
    let ack_text = ack_line
        .strip_prefix("ack")
        .ok_or(FlightError::Malformed("ack"))?;
    let mut acks = Vec::new();
    for part in ack_text.split(' ').filter(|p| !p.is_empty()) {
        let (peer, seq) = part.split_once('=').ok_or(FlightError::Malformed("ack"))?;
        if !is_peer_id(peer) || acks.len() >= 1024 {
            return Err(FlightError::Malformed("ack"));
        }
        acks.push((
            peer.to_string(),
            seq.parse().map_err(|_| FlightError::Malformed("ack"))?,
        ));
    }
    let count: usize = line("messages")?
        .strip_prefix("messages ")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n <= MAX_MESSAGES)
        .ok_or(FlightError::Malformed("messages"))?;
    let mut letters = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let rest = &body[at..];
        let n = memchr::memchr(b'\n', rest).ok_or(FlightError::Malformed("letter"))?;
        let head = std::str::from_utf8(&rest[..n]).map_err(|_| FlightError::Malformed("letter"))?;
        at += n + 1;
        let mut f = head.split(' ');
        let (Some(len), Some(from), Some(peer), Some(account), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(FlightError::Malformed("letter"));
        };
        // A letter goes to everyone, or to one of the peers the flight names.
        let everyone = peer == "*" && account == "*" && to_line == "*";
        let listed = is_peer_id(peer) && to.iter().any(|p| p == peer);
        if !everyone && !listed {
            return Err(FlightError::Malformed("letter"));
        }
        let len: usize = len
            .parse()
            .ok()
            .filter(|l| *l <= MAX_MESSAGE)
            .ok_or(FlightError::Malformed("letter"))?;
        let (Some(from), Some(account)) = (unescape(from), unescape(account)) else {
            return Err(FlightError::Malformed("letter"));
        };
        let bytes = body
            .get(at..at + len)
            .ok_or(FlightError::Malformed("letter"))?
            .to_vec();
        at += len;
        if body.get(at) != Some(&b'\n') {
            return Err(FlightError::Malformed("letter"));
        }
        at += 1;
        letters.push(Letter {
            from,
            peer: peer.to_string(),
            to: account,
            bytes,
        });
    }
    if at != body.len() {
        return Err(FlightError::Malformed("trailing bytes"));
    }
    Ok(Flight {
        from,
        name,
        seq,
        to,
        time,
        acks,
        letters,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> GroupKey {
        GroupKey::new([7u8; 32])
    }

    fn flight() -> Flight {
        Flight {
            from: "0123456789abcdef".into(),
            name: "Jo's PC".into(),
            seq: 42,
            to: vec!["fedcba9876543210".into()],
            time: 1_764_059_696_123,
            acks: vec![("fedcba9876543210".into(), 7)],
            letters: vec![
                Letter {
                    from: "MY MAIN".into(),
                    peer: "fedcba9876543210".into(),
                    to: "ALT 2".into(),
                    bytes: b"SYNC_ACCEPT|00000001|x|1234abcd".to_vec(),
                },
                Letter {
                    from: "123456789#1".into(),
                    peer: "fedcba9876543210".into(),
                    to: "ALT".into(),
                    bytes: b"SYNC_DATA|x|a\nb|\xff".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn a_flight_round_trips_and_is_text_with_a_trailer() {
        let f = flight();
        let bytes = f.encode(&key());
        assert!(bytes.starts_with(b"svsync-mailbox 1\nfrom 0123456789abcdef\nname Jo's%20PC\n"));
        assert!(bytes.ends_with(b"\n"));
        assert_eq!(Flight::decode(&bytes, &key()).unwrap(), f);
    }

    #[test]
    fn another_groups_file_is_told_apart_from_a_damaged_one() {
        let bytes = flight().encode(&key());
        let other = GroupKey::new([8u8; 32]);
        assert_eq!(
            Flight::decode(&bytes, &other),
            Err(FlightError::Unauthenticated)
        );
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(
                Flight::decode(&bytes[..cut], &key()),
                Err(FlightError::Incomplete),
                "cut at {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert_eq!(Flight::decode(&bad, &key()), Err(FlightError::Incomplete));
    }

    #[test]
    fn key_files_round_trip_and_fingerprints_differ() {
        let k = GroupKey::generate().unwrap();
        assert_eq!(GroupKey::parse(&k.to_text()).unwrap(), k);
        assert!(GroupKey::parse("abc").is_err());
        assert_ne!(k.fingerprint(), key().fingerprint());
        assert_eq!(key().fingerprint().len(), 12);
    }

    proptest! {
        /// Any bytes, and any damage to a real flight, never panic and never authenticate.
        #[test]
        fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000), at in any::<usize>(), b in any::<u8>()) {
            let _ = Flight::decode(&bytes, &key());
            let mut real = flight().encode(&key());
            let i = at % real.len();
            prop_assume!(real[i] != b);
            real[i] = b;
            prop_assert!(Flight::decode(&real, &key()).is_err());
        }

        #[test]
        fn names_escape_and_unescape(name in "\\PC{0,30}") {
            prop_assert_eq!(unescape(&escape(&name)), Some(name.clone()));
            prop_assert!(!escape(&name).contains(' '));
        }
    }
}
