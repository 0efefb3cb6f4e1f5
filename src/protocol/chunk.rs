//! A table's payload on the wire: its JSON cut into slices, and the chunks put back together
//! and checked.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use crate::model::tables::TableName;

use super::wire::{Announce, MAX_CHUNKS, Name, slice_room};

/// Chunks of one table by 1-based index, as a journal keeps them.
pub type Chunks = Vec<(u32, Vec<u8>)>;

/// A table ready to send: its JSON (packed) and the CRC-32 of the whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub table: TableName,
    /// Shared: a sender that retries (or sends to several receivers) keeps one copy.
    pub packed: Arc<Packed>,
    pub crc: u32,
}

impl Payload {
    pub fn new(table: TableName, bytes: Vec<u8>) -> Payload {
        let crc = crc32fast::hash(&bytes);
        Payload {
            table,
            packed: Arc::new(Packed::new(&bytes)),
            crc,
        }
    }
}

/// Bytes held packed, in LZ4 blocks of 64 KiB. A sender holds each payload of a session until
/// the receiver confirms it (seconds on one PC, hours through a synced folder or in game), and
/// a payload's JSON packs to about a sixth of its size. Chunks are cut from the one block they
/// fall in (two at most) as they are sent ([`Unpacker`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Packed {
    len: usize,
    blocks: Vec<Box<[u8]>>,
}

const BLOCK: usize = 64 * 1024;

impl Packed {
    pub fn new(bytes: &[u8]) -> Packed {
        Packed {
            len: bytes.len(),
            blocks: bytes
                .chunks(BLOCK)
                .map(|b| lz4_flex::block::compress(b).into_boxed_slice())
                .collect(),
        }
    }

    /// The unpacked size.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every byte, unpacked (`None`: a block does not unpack, which bytes it packed never do).
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        let mut out = vec![0; self.len];
        for (block, packed) in out.chunks_mut(BLOCK).zip(&self.blocks) {
            unpack(packed, block)?;
        }
        Some(out)
    }
}

/// Unpacks one block into `out`, which it must fill exactly.
fn unpack(packed: &[u8], out: &mut [u8]) -> Option<()> {
    let n = lz4_flex::block::decompress_into(packed, out).ok()?;
    (n == out.len()).then_some(())
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let packed: usize = self.blocks.iter().map(|b| b.len()).sum();
        write!(f, "Packed({} bytes in {packed})", self.len)
    }
}

/// Reads packed bytes, keeping the block it unpacked last (a sender reads its chunks in
/// order, so each block is unpacked about once per round).
#[derive(Debug, Clone)]
pub struct Unpacker {
    packed: Arc<Packed>,
    block: Option<usize>,
    buf: Vec<u8>,
}

impl Unpacker {
    pub fn new(packed: Arc<Packed>) -> Unpacker {
        Unpacker {
            packed,
            block: None,
            buf: Vec::new(),
        }
    }

    fn load(&mut self, block: usize) -> Option<&[u8]> {
        if self.block != Some(block) {
            self.block = None;
            let size = self.packed.len.checked_sub(block * BLOCK)?.min(BLOCK);
            self.buf.resize(size, 0);
            unpack(self.packed.blocks.get(block)?, &mut self.buf)?;
            self.block = Some(block);
        }
        Some(&self.buf)
    }

    /// The bytes in `range` (`None`: outside the payload).
    pub fn read(&mut self, range: Range<usize>) -> Option<Vec<u8>> {
        if range.start > range.end || range.end > self.packed.len {
            return None;
        }
        let mut out = Vec::with_capacity(range.len());
        let mut at = range.start;
        while at < range.end {
            let block = at / BLOCK;
            let base = block * BLOCK;
            let bytes = self.load(block)?;
            let end = (range.end - base).min(bytes.len());
            if end <= at - base {
                return None;
            }
            out.extend_from_slice(bytes.get(at - base..end)?);
            at = base + end;
        }
        Some(out)
    }

    /// The byte at `at`.
    pub fn byte(&mut self, at: usize) -> Option<u8> {
        self.load(at / BLOCK)?.get(at % BLOCK).copied()
    }
}

/// Cuts a payload into slices that fit a data message with this toon's name: at most
/// `MAX_SLICE` bytes, less when the header leaves less room, and never inside a UTF-8
/// character (so every message of a UTF-8 payload is text). An empty payload is one empty
/// chunk.
pub fn slices(payload: &[u8], toon: &Name, table: TableName) -> Vec<Range<usize>> {
    slices_by(payload.len(), |at| payload[at], toon, table)
}

/// [`slices`] of the `len` bytes that `byte` gives, one at a time and mostly in order.
pub fn slices_by(
    len: usize,
    mut byte: impl FnMut(usize) -> u8,
    toon: &Name,
    table: TableName,
) -> Vec<Range<usize>> {
    // Index and total have at most as many digits as the count of 100-byte slices.
    let bound = u32::try_from(len.div_ceil(100).max(1)).unwrap_or(MAX_CHUNKS);
    let room = slice_room(toon, table, bound).max(4);
    let mut out = Vec::with_capacity(len / room + 1);
    let mut start = 0;
    while start < len {
        let mut end = (start + room).min(len);
        // Back off to a character boundary (continuation bytes are 0b10xxxxxx).
        while end < len && end > start + 1 && byte(end) & 0xC0 == 0x80 {
            end -= 1;
        }
        out.push(start..end);
        start = end;
    }
    if out.is_empty() {
        out.push(0..0);
    }
    out
}

/// Chunks received so far for one announced table, by 1-based index. Memory grows with what
/// arrives, never with what is announced.
///
/// Chunks that arrive in order (as they almost always do) are appended to the payload at once;
/// only chunks after a gap are kept apart, until the gap is filled. So a whole payload is held
/// once, in one buffer, and joining it copies nothing.
#[derive(Debug, Clone)]
pub struct Reassembly {
    pub announce: Announce,
    /// Chunks `1..=joined_count`, joined.
    joined: Vec<u8>,
    joined_count: u32,
    /// Chunks after the first gap.
    chunks: BTreeMap<u32, Vec<u8>>,
    held_bytes: u64,
    /// The chunks were joined (and handed over): the table is whole, nothing more is taken.
    assembled: bool,
}

/// Why a reassembled payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    #[error("the reassembled payload has {got} bytes, not {want}")]
    Length { got: u64, want: u64 },
    #[error("the reassembled payload's checksum is {got:08x}, not {want:08x}")]
    Checksum { got: u32, want: u32 },
}

impl Reassembly {
    pub fn new(announce: Announce) -> Self {
        Reassembly {
            announce,
            joined: Vec::new(),
            joined_count: 0,
            chunks: BTreeMap::new(),
            held_bytes: 0,
            assembled: false,
        }
    }

    /// Stores a chunk; false if it was already there (a duplicate), out of range, or would
    /// hold more bytes than were announced.
    pub fn insert(&mut self, index: u32, payload: Vec<u8>) -> bool {
        let len = payload.len() as u64;
        if self.assembled
            || index <= self.joined_count
            || index > self.announce.total
            || self.chunks.contains_key(&index)
            || self.held_bytes + len > self.announce.bytes
        {
            return false;
        }
        self.held_bytes += len;
        if index != self.joined_count + 1 {
            self.chunks.insert(index, payload);
            return true;
        }
        self.joined.extend_from_slice(&payload);
        self.joined_count = index;
        // The gap after it may be filled now.
        while let Some(next) = self.chunks.remove(&(self.joined_count + 1)) {
            self.joined.extend_from_slice(&next);
            self.joined_count += 1;
        }
        true
    }

    pub fn held(&self) -> u32 {
        if self.assembled {
            self.announce.total
        } else {
            self.joined_count + self.chunks.len() as u32
        }
    }

    pub fn is_complete(&self) -> bool {
        self.held() == self.announce.total
    }

    pub fn missing_count(&self) -> u32 {
        self.announce.total - self.held()
    }

    /// The missing indices as ranges, at most `limit` of them (a message carries only so many),
    /// found by walking the held chunks: the cost grows with what is held, not with `total`.
    pub fn missing_ranges(&self, limit: usize) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut next = self.joined_count + 1;
        for &i in self.chunks.keys() {
            if out.len() >= limit {
                return out;
            }
            if i > next {
                out.push((next, i - 1));
            }
            next = i + 1;
        }
        if out.len() < limit && next <= self.announce.total {
            out.push((next, self.announce.total));
        }
        out
    }

    /// Joins the chunks in index order (letting go of them: the payload is the one copy) and
    /// checks length and checksum.
    pub fn assemble(&mut self) -> Result<Vec<u8>, ReassemblyError> {
        let mut out = std::mem::take(&mut self.joined);
        for chunk in std::mem::take(&mut self.chunks).into_values() {
            out.extend_from_slice(&chunk);
        }
        self.assembled = true;
        if out.len() as u64 != self.announce.bytes {
            return Err(ReassemblyError::Length {
                got: out.len() as u64,
                want: self.announce.bytes,
            });
        }
        let got = crc32fast::hash(&out);
        if got != self.announce.crc {
            return Err(ReassemblyError::Checksum {
                got,
                want: self.announce.crc,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{MAX_MESSAGE, MAX_SLICE, Message, SessionId};

    /// Packed bytes read back as they were: whole, by any range (across blocks too), byte by
    /// byte, and cut into the same slices.
    #[test]
    fn packed_bytes_read_back_as_they_were() {
        let mut text = Vec::new();
        let mut n = 0u32;
        while text.len() < 3 * BLOCK + 777 {
            // JSON-like text with multibyte characters, and some bytes that do not repeat.
            n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            text.extend_from_slice(
                format!("{{\"Café-{n}\":{{\"lastUpdated\":\"{}\"}}}},", n % 97).as_bytes(),
            );
        }
        let packed = Packed::new(&text);
        assert_eq!(packed.len(), text.len());
        assert!(packed.blocks.iter().map(|b| b.len()).sum::<usize>() < text.len() / 2);
        assert_eq!(packed.to_vec().as_deref(), Some(&text[..]));
        let mut u = Unpacker::new(Arc::new(packed.clone()));
        for (start, len) in [
            (0, 0),
            (0, 1),
            (BLOCK - 3, 10),
            (BLOCK, 5),
            (5, 2 * BLOCK + 9),
            (text.len() - 4, 4),
        ] {
            assert_eq!(
                u.read(start..start + len).as_deref(),
                Some(&text[start..start + len])
            );
        }
        assert_eq!(u.read(0..text.len() + 1), None);
        assert_eq!(u.byte(text.len()), None);
        let toon = Name::sanitize("Heretanky-Velen");
        let by_byte = slices_by(
            text.len(),
            |at| u.byte(at).unwrap_or(0),
            &toon,
            TableName::Roster,
        );
        assert_eq!(by_byte, slices(&text, &toon, TableName::Roster));
        assert_eq!(Packed::new(b"").to_vec(), Some(Vec::new()));
    }

    #[test]
    fn slices_cover_the_payload_and_respect_characters() {
        let text = "Café night moved. ".repeat(100);
        let toon = Name::sanitize("Heretanky-Velen");
        let s = slices(text.as_bytes(), &toon, TableName::News);
        assert_eq!(s.first().unwrap().start, 0);
        assert_eq!(s.last().unwrap().end, text.len());
        for w in s.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &s {
            assert!(r.len() <= MAX_SLICE);
            assert!(std::str::from_utf8(&text.as_bytes()[r.clone()]).is_ok());
        }
    }

    #[test]
    fn a_long_toon_name_still_fits_every_message() {
        let payload = vec![b'x'; 50_000];
        let toon = Name::sanitize(&"N".repeat(64));
        let s = slices(&payload, &toon, TableName::GuildInfo);
        let total = s.len() as u32;
        for (i, r) in s.into_iter().enumerate() {
            let m = Message::SyncData {
                sid: SessionId(1),
                toon: toon.clone(),
                table: TableName::GuildInfo,
                index: i as u32 + 1,
                total,
                payload: payload[r].to_vec(),
            };
            assert!(m.encode().len() <= MAX_MESSAGE);
        }
    }

    fn announce(data: &[u8], total: u32) -> Announce {
        Announce {
            table: TableName::News,
            total,
            bytes: data.len() as u64,
            crc: crc32fast::hash(data),
        }
    }

    #[test]
    fn reassembly_checks_length_and_checksum() {
        let data = b"{\"a\":1}".to_vec();
        let mut r = Reassembly::new(announce(&data, 2));
        assert!(r.insert(2, data[3..].to_vec()));
        assert!(!r.insert(2, data[3..].to_vec()));
        assert!(!r.insert(3, b"x".to_vec()));
        assert_eq!(r.missing_ranges(10), [(1, 1)]);
        assert!(r.insert(1, data[..3].to_vec()));
        assert_eq!(r.assemble().unwrap(), data);
        let mut bad = Reassembly::new(announce(&data, 2));
        bad.insert(1, b"{\"b".to_vec());
        bad.insert(2, data[3..].to_vec());
        assert!(matches!(
            bad.assemble(),
            Err(ReassemblyError::Checksum { .. })
        ));
    }

    #[test]
    fn chunks_in_order_are_joined_and_a_filled_gap_joins_the_rest() {
        let data = b"abcdefghij".to_vec();
        let mut r = Reassembly::new(announce(&data, 5));
        let chunk = |i: u32| data[(i as usize - 1) * 2..i as usize * 2].to_vec();
        assert!(r.insert(1, chunk(1)));
        assert!(r.insert(2, chunk(2)));
        assert!(
            !r.insert(1, chunk(1)),
            "a joined chunk again is a duplicate"
        );
        assert!(r.insert(4, chunk(4)));
        assert_eq!(r.missing_ranges(10), [(3, 3), (5, 5)]);
        assert_eq!(r.held(), 3);
        assert!(r.insert(3, chunk(3)));
        assert_eq!(r.missing_ranges(10), [(5, 5)]);
        assert!(!r.insert(4, chunk(4)));
        assert!(r.insert(5, chunk(5)));
        assert!(r.is_complete());
        assert_eq!(r.assemble().unwrap(), data);
    }

    proptest::proptest! {
        /// Any arrival order, with repeats, gives back the payload.
        #[test]
        fn any_order_reassembles(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            order in proptest::collection::vec(0usize..1000, 0..200),
        ) {
            let ranges: Vec<_> = data.chunks(7).collect();
            let total = ranges.len().max(1) as u32;
            let mut r = Reassembly::new(announce(&data, total));
            for i in order.iter().map(|o| o % total as usize) {
                let chunk = ranges.get(i).map_or(Vec::new(), |c| c.to_vec());
                r.insert(i as u32 + 1, chunk);
            }
            // Then every chunk, in reverse, to fill what is missing.
            for i in (0..total as usize).rev() {
                let chunk = ranges.get(i).map_or(Vec::new(), |c| c.to_vec());
                r.insert(i as u32 + 1, chunk);
            }
            proptest::prop_assert!(r.is_complete());
            proptest::prop_assert!(r.missing_ranges(10).is_empty());
            proptest::prop_assert_eq!(r.assemble().unwrap(), data);
        }
    }

    #[test]
    fn missing_ranges_walk_the_gaps() {
        let data = vec![b'x'; 10];
        let mut r = Reassembly::new(announce(&data, 10));
        for i in [2, 3, 7] {
            r.insert(i, vec![b'x']);
        }
        assert_eq!(r.missing_ranges(10), [(1, 1), (4, 6), (8, 10)]);
        assert_eq!(r.missing_ranges(2), [(1, 1), (4, 6)]);
        assert_eq!(r.missing_count(), 7);
    }

    #[test]
    fn a_huge_announcement_costs_nothing_until_chunks_arrive() {
        let a = Announce {
            table: TableName::Roster,
            total: MAX_CHUNKS,
            bytes: u64::from(MAX_CHUNKS) * 200,
            crc: 0,
        };
        let mut r = Reassembly::new(a);
        assert_eq!(r.missing_ranges(100), [(1, MAX_CHUNKS)]);
        assert!(r.assemble().is_err());
    }
}
