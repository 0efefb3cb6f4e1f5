//! Task functions of the pipeline that work on bytes: serialize a table, cut it into chunks,
//! put the chunks back together and check them.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::lua::{LuaValue, Table};
use crate::model::json::{JsonError, from_json_bytes, to_json_bytes};
use crate::model::tables::TableName;

use super::wire::{MAX_MESSAGE, MAX_SLICE, data_header_len};

/// A table ready to send: its JSON and the CRC-32 of the whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub table: TableName,
    pub bytes: Vec<u8>,
    pub crc: u32,
}

/// Serializes a table to its JSON payload.
pub fn serialize(table: TableName, value: &Table) -> Result<Payload, JsonError> {
    let bytes = to_json_bytes(&LuaValue::Table(value.clone()))?;
    let crc = crc32fast::hash(&bytes);
    Ok(Payload { table, bytes, crc })
}

/// Turns a verified payload back into a table.
pub fn deserialize(bytes: &[u8]) -> Result<Table, String> {
    match from_json_bytes(bytes) {
        Ok(LuaValue::Table(t)) => Ok(t),
        Ok(other) => Err(format!(
            "the payload is a {}, not a table",
            other.type_name()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Cuts a payload into slices that fit a data message with this toon's name: at most
/// [`MAX_SLICE`] bytes, less when the header leaves less room, and never inside a UTF-8
/// character (so every message is text).
pub fn slices(payload: &[u8], toon: &str, table: TableName) -> Vec<Range<usize>> {
    // Index and total have at most as many digits as the count of 100-byte slices.
    let bound = payload.len().div_ceil(100).max(1) as u32;
    let header = data_header_len(toon, table, bound, bound);
    let room = MAX_SLICE.min(MAX_MESSAGE.saturating_sub(header)).max(4);
    let mut out = Vec::with_capacity(payload.len() / room + 1);
    let mut start = 0;
    while start < payload.len() {
        let mut end = (start + room).min(payload.len());
        // Back off to a character boundary (continuation bytes are 0b10xxxxxx).
        while end < payload.len() && end > start + 1 && payload[end] & 0xC0 == 0x80 {
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

/// Chunks received so far for one table, by 1-based index.
#[derive(Debug, Clone, Default)]
pub struct Reassembly {
    pub total: u32,
    pub bytes: u64,
    pub crc: u32,
    chunks: BTreeMap<u32, Vec<u8>>,
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
    pub fn new(total: u32, bytes: u64, crc: u32) -> Self {
        Reassembly {
            total,
            bytes,
            crc,
            chunks: BTreeMap::new(),
        }
    }

    /// Stores a verified chunk; false if it was already there (a duplicate).
    pub fn insert(&mut self, index: u32, payload: Vec<u8>) -> bool {
        if self.chunks.contains_key(&index) {
            return false;
        }
        self.chunks.insert(index, payload);
        true
    }

    pub fn held(&self) -> u32 {
        self.chunks.len() as u32
    }

    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (1..=self.total).filter(|i| !self.chunks.contains_key(i))
    }

    pub fn is_complete(&self) -> bool {
        self.held() == self.total
    }

    /// Joins the chunks in index order and checks length and checksum.
    pub fn assemble(&self) -> Result<Vec<u8>, ReassemblyError> {
        let mut out = Vec::with_capacity(self.bytes.min(1 << 30) as usize);
        for chunk in self.chunks.values() {
            out.extend_from_slice(chunk);
        }
        if out.len() as u64 != self.bytes {
            return Err(ReassemblyError::Length {
                got: out.len() as u64,
                want: self.bytes,
            });
        }
        let got = crc32fast::hash(&out);
        if got != self.crc {
            return Err(ReassemblyError::Checksum {
                got,
                want: self.crc,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_payload_and_respect_characters() {
        let text = "Café night moved. ".repeat(100);
        let s = slices(text.as_bytes(), "Heretanky-Velen", TableName::News);
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
    fn a_long_toon_name_gets_smaller_slices() {
        let payload = vec![b'x'; 5000];
        let toon = "N".repeat(64);
        for r in slices(&payload, &toon, TableName::GuildInfo) {
            let header = data_header_len(&toon, TableName::GuildInfo, 50, 50);
            assert!(header + r.len() <= MAX_MESSAGE);
        }
    }

    #[test]
    fn reassembly_checks_length_and_checksum() {
        let data = b"{\"a\":1}".to_vec();
        let mut r = Reassembly::new(2, data.len() as u64, crc32fast::hash(&data));
        assert!(r.insert(2, data[3..].to_vec()));
        assert!(!r.insert(2, data[3..].to_vec()));
        assert_eq!(r.missing().collect::<Vec<_>>(), [1]);
        assert!(r.insert(1, data[..3].to_vec()));
        assert_eq!(r.assemble().unwrap(), data);
        let mut bad = Reassembly::new(2, data.len() as u64, crc32fast::hash(&data));
        bad.insert(1, b"{\"b".to_vec());
        bad.insert(2, data[3..].to_vec());
        assert!(matches!(
            bad.assemble(),
            Err(ReassemblyError::Checksum { .. })
        ));
    }
}
