//! Typed views of GuildHelper's synced tables.
//!
//! A record is stored as the Lua table it was read as (so every field the addon wrote, known or
//! not, keeps its exact value, type, text and order); the types here name what svsync needs to
//! know about it: which table it belongs to, which of the two generations of the addon wrote it,
//! its identity, its version stamp and whether it is deleted. Containers keep which entries sat
//! in the array part and which were keyed.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lua::{Document, Key, Kind, LuaValue, Node, Number, Table, format_number};

/// One of the synced tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TableName {
    Setup,
    News,
    GuildInfo,
    Calendar,
    Roster,
}

impl TableName {
    /// In sync order: setup first, roster last.
    pub const ALL: [TableName; 5] = [
        TableName::Setup,
        TableName::News,
        TableName::GuildInfo,
        TableName::Calendar,
        TableName::Roster,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Setup => "setup",
            TableName::News => "news",
            TableName::GuildInfo => "guildInfo",
            TableName::Calendar => "calendar",
            TableName::Roster => "roster",
        }
    }

    pub fn parse(name: &str) -> Option<TableName> {
        TableName::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// news, guildInfo and calendar: lists of posts.
    pub fn is_posts(self) -> bool {
        matches!(
            self,
            TableName::News | TableName::GuildInfo | TableName::Calendar
        )
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which generation of the addon wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordShape {
    /// `{id, tableType, guildName, lastUpdated, deleted, data = {...}}`.
    Envelope,
    /// The older flat record (`pt_name, pt_level, ...` for the roster; `id, title, date, ...`).
    Flat,
}

/// Where an entry sits in its container.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// In the array part (a position of the sequence).
    Array,
    /// Under this key.
    Keyed(Key),
}

/// The shape of a container: which parts it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Container {
    pub array: bool,
    pub keyed: bool,
}

impl Container {
    pub fn of(table: &Table) -> Container {
        let seq = table.sequence_len();
        Container {
            array: seq > 0,
            keyed: table.len() > seq,
        }
    }

    pub fn describe(self) -> &'static str {
        match (self.array, self.keyed) {
            (false, false) => "empty",
            (true, false) => "an array",
            (false, true) => "a map keyed by id",
            (true, true) => "an array with keyed entries",
        }
    }
}

/// One entry of a synced table, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub part: Part,
    pub value: LuaValue,
}

/// Splits a container into its entries: the array part first (in index order), then the keyed
/// entries in file order.
pub fn entries(table: &Table) -> Vec<Entry> {
    into_entries(table.clone())
}

/// [`entries`], moving the values out of the table.
pub fn into_entries(table: Table) -> Vec<Entry> {
    split_parts(table.into_entries())
        .into_iter()
        .map(|(part, value)| Entry { part, value })
        .collect()
}

/// A container's entries with their place: the array part first (in index order), then the
/// keyed entries in order.
pub fn split_parts<V>(entries: Vec<(Key, V)>) -> Vec<(Part, V)> {
    let seq = crate::lua::sequence_len(entries.iter().map(|(k, _)| k));
    if seq == 0 {
        // No array part: every entry keeps its key, in its place (the allocation is reused).
        return entries
            .into_iter()
            .map(|(k, v)| (Part::Keyed(k), v))
            .collect();
    }
    let mut array: Vec<(usize, V)> = Vec::with_capacity(seq);
    let mut keyed = Vec::new();
    for (k, v) in entries {
        match k.as_index().filter(|&i| i <= seq) {
            Some(i) => array.push((i, v)),
            None => keyed.push((Part::Keyed(k), v)),
        }
    }
    array.sort_by_key(|(i, _)| *i);
    array
        .into_iter()
        .map(|(_, v)| (Part::Array, v))
        .chain(keyed)
        .collect()
}

/// Builds a container from entries: array-part entries become the sequence `1..n` in their
/// order (no number keys, no holes), keyed entries follow under their keys.
pub fn assemble(entries: impl IntoIterator<Item = Entry>) -> Table {
    let mut table = Table::new();
    let entries: Vec<_> = entries.into_iter().map(|e| (e.part, e.value)).collect();
    for (k, v) in assemble_parts(entries) {
        table.insert(k, v);
    }
    table.shrink_to_fit();
    table
}

/// [`assemble`] for any kind of value: the entries in table order. A keyed entry whose key is
/// an index of the array part replaces that item, as a table assignment would.
pub fn assemble_parts<V>(entries: Vec<(Part, V)>) -> Vec<(Key, V)> {
    let in_array = entries
        .iter()
        .filter(|(p, _)| matches!(p, Part::Array))
        .count();
    // The array part first, and no keyed entry that replaces one of its items: each entry
    // keeps its place (the allocation is reused; a large table is not copied).
    let in_order = entries
        .iter()
        .enumerate()
        .all(|(at, (part, _))| match part {
            Part::Array => at < in_array,
            Part::Keyed(k) => k.as_index().is_none_or(|i| i > in_array),
        });
    if in_order {
        let mut next: i64 = 0;
        return entries
            .into_iter()
            .map(|(part, v)| match part {
                Part::Array => {
                    next += 1;
                    (Key::int(next), v)
                }
                Part::Keyed(k) => (k, v),
            })
            .collect();
    }
    let mut array = Vec::with_capacity(in_array);
    let mut keyed = Vec::with_capacity(entries.len() - in_array);
    for (part, v) in entries {
        match part {
            Part::Array => array.push(v),
            Part::Keyed(k) => keyed.push((k, v)),
        }
    }
    let n = array.len();
    let mut out: Vec<(Key, V)> = Vec::with_capacity(n + keyed.len());
    out.extend(
        array
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Key::int(i as i64 + 1), v)),
    );
    for (k, v) in keyed {
        match k.as_index().filter(|&i| i <= n) {
            Some(i) => out[i - 1].1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// A view of one record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'t> {
    pub table: TableName,
    pub fields: &'t Table,
}

impl<'t> Record<'t> {
    pub fn new(table: TableName, fields: &'t Table) -> Self {
        Record { table, fields }
    }

    pub fn shape(&self) -> RecordShape {
        shape_of(self.fields)
    }

    /// The `data` table of an envelope.
    pub fn data(&self) -> Option<&'t Table> {
        self.fields.get_str("data").and_then(LuaValue::as_table)
    }

    fn field(&self, name: &str) -> Option<&'t LuaValue> {
        self.fields.get_str(name)
    }

    /// The `id` the record carries (for an array item, its identity).
    pub fn id_field(&self) -> Option<Vec<u8>> {
        id_of(self.table, self.fields)
    }

    /// The version stamp: `lastUpdated` if it is a valid 14-digit stamp, otherwise `date` (or
    /// `data.date`) normalized to 14 digits.
    pub fn stamp(&self) -> Option<u64> {
        stamp_of(self.fields)
    }

    pub fn deleted(&self) -> bool {
        self.field("deleted").and_then(LuaValue::as_bool) == Some(true)
    }

    /// `guildName` of an envelope or a flat news item, `pt_guildName` of a flat roster record.
    pub fn guild_name(&self) -> Option<&'t LuaValue> {
        self.field("guildName")
            .or_else(|| self.field("pt_guildName"))
    }

    pub fn last_updated(&self) -> Option<&'t LuaValue> {
        self.field("lastUpdated")
    }

    pub fn table_type(&self) -> Option<&'t LuaValue> {
        self.field("tableType")
    }
}

/// A field of a record as the merge reads it: scalars, or the record's `data` table.
pub enum FieldView<'a, F> {
    Str(Cow<'a, [u8]>),
    Num(f64),
    Table(F),
    Other,
}

/// The fields of a record, read from a value or straight from the file's syntax tree (so a
/// record that stays as the file has it is never built as a value). Identity, stamp and shape
/// are worked out once, here, for both.
pub trait RecordFields<'a>: Copy {
    /// The field under a string key (the last one, as Lua reads a constructor).
    fn field(self, name: &str) -> Option<FieldView<'a, Self>>;
}

impl<'t> RecordFields<'t> for &'t Table {
    fn field(self, name: &str) -> Option<FieldView<'t, Self>> {
        Some(match self.get_str(name)? {
            LuaValue::Str(s) => FieldView::Str(Cow::Borrowed(s)),
            LuaValue::Number(n) => FieldView::Num(n.value()),
            LuaValue::Table(t) => FieldView::Table(t),
            _ => FieldView::Other,
        })
    }
}

/// A record of the file: a table node of a document.
#[derive(Debug, Clone, Copy)]
pub struct NodeFields<'d, 'a> {
    pub doc: &'d Document<'a>,
    pub node: Node,
}

impl<'d, 'a> RecordFields<'a> for NodeFields<'d, 'a> {
    fn field(self, name: &str) -> Option<FieldView<'a, Self>> {
        let value = self.doc.get(self.node, name.as_bytes())?.value;
        Some(match value.kind {
            // A field set to nil is not there (as Lua reads the constructor).
            Kind::Nil => return None,
            Kind::Str { .. } => FieldView::Str(self.doc.string(value)?),
            Kind::Number { .. } => FieldView::Num(self.doc.number(value)?),
            Kind::Table { .. } => FieldView::Table(NodeFields {
                doc: self.doc,
                node: value,
            }),
            _ => FieldView::Other,
        })
    }
}

/// Envelope when the record has a `data` table.
pub fn shape_of<'a>(fields: impl RecordFields<'a>) -> RecordShape {
    match fields.field("data") {
        Some(FieldView::Table(_)) => RecordShape::Envelope,
        _ => RecordShape::Flat,
    }
}

/// A field of the record, or of its `data` table.
fn field_or_data<'a, F: RecordFields<'a>>(fields: F, name: &str) -> Option<FieldView<'a, F>> {
    fields.field(name).or_else(|| match fields.field("data") {
        Some(FieldView::Table(data)) => data.field(name),
        _ => None,
    })
}

fn view_identity<F>(v: FieldView<'_, F>) -> Option<Vec<u8>> {
    match v {
        FieldView::Str(s) => Some(s.into_owned()),
        FieldView::Num(n) => format_number(n).ok().map(String::into_bytes),
        _ => None,
    }
}

/// See [`Record::id_field`].
pub fn id_of<'a, F: RecordFields<'a>>(table: TableName, fields: F) -> Option<Vec<u8>> {
    let id = fields.field("id").and_then(view_identity);
    match table {
        TableName::Roster => id
            .or_else(|| fields.field("pt_name").and_then(view_identity))
            .or_else(|| match fields.field("data") {
                Some(FieldView::Table(d)) => d.field("name").and_then(view_identity),
                _ => None,
            }),
        _ => id,
    }
}

/// See [`Record::stamp`].
pub fn stamp_of<'a, F: RecordFields<'a>>(fields: F) -> Option<u64> {
    let last_updated = match fields.field("lastUpdated") {
        Some(FieldView::Str(s)) => stamp_of_digits(&s),
        Some(FieldView::Num(n)) => stamp_of_number(n),
        _ => None,
    };
    last_updated.or_else(|| match field_or_data(fields, "date") {
        Some(FieldView::Str(s)) => stamp_of_date(&s),
        _ => None,
    })
}

/// The identity text of a map key.
pub fn key_identity(k: &Key) -> Option<Vec<u8>> {
    match k {
        Key::Str(s) => Some(s.to_vec()),
        Key::Num(n) => format_number(n.value()).ok().map(String::into_bytes),
        Key::Bool(_) => None,
    }
}

/// A `"YYYYMMDDHHMMSS"` stamp (a string of 14 digits, or a 14-digit integer).
pub fn stamp_of_last_updated(v: &LuaValue) -> Option<u64> {
    match v {
        LuaValue::Str(s) => stamp_of_digits(s),
        LuaValue::Number(n) => stamp_of_number(n.value()),
        _ => None,
    }
}

/// A stamp written as a 14-digit integer.
pub fn stamp_of_number(n: f64) -> Option<u64> {
    stamp_of_digits(Number::new(n).as_integer()?.to_string().as_bytes())
}

/// A stamp written as 14 digits.
pub fn stamp_of_digits(digits: &[u8]) -> Option<u64> {
    if digits.len() == 14 && digits.iter().all(u8::is_ascii_digit) && plausible(digits) {
        std::str::from_utf8(digits).ok()?.parse().ok()
    } else {
        None
    }
}

/// `"YYYY-MM-DD HH:MM:SS"` (or `"YYYY-MM-DD"`) as a 14-digit stamp.
pub fn stamp_of_date(s: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(s).ok()?.trim();
    let (date, time) = match text.split_once(' ') {
        Some((d, t)) => (d, t.trim()),
        None => (text, "00:00:00"),
    };
    let date: Vec<&str> = date.split('-').collect();
    let time: Vec<&str> = time.split(':').collect();
    let widths = [4usize, 2, 2];
    if date.len() != 3 || time.len() != 3 {
        return None;
    }
    let mut digits = String::with_capacity(14);
    for (part, width) in date.iter().zip(widths).chain(time.iter().zip([2, 2, 2])) {
        if part.len() != width || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(part);
    }
    plausible(digits.as_bytes())
        .then(|| digits.parse().ok())
        .flatten()
}

/// Month 01-12, day 01-31, hour < 24, minute and second < 60.
fn plausible(d: &[u8]) -> bool {
    let n = |i: usize| u32::from(d[i] - b'0') * 10 + u32::from(d[i + 1] - b'0');
    (1..=12).contains(&n(4)) && (1..=31).contains(&n(6)) && n(8) < 24 && n(10) < 60 && n(12) < 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::Number;
    use proptest::prelude::*;

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            Just(Part::Array),
            (1i64..6).prop_map(|i| Part::Keyed(Key::int(i))),
            "[a-c]".prop_map(|s| Part::Keyed(Key::Str(s.into_bytes().into()))),
        ]
    }

    proptest! {
        /// Entries are put in table order as Lua would build the table: the array items
        /// numbered from 1, then the keyed entries, a keyed index of the array part replacing
        /// its item; the fast path (in place) and the general one agree with that.
        #[test]
        fn assembled_parts_are_what_assignments_make(parts in prop::collection::vec(part(), 0..12)) {
            let entries: Vec<(Part, usize)> = parts.into_iter().enumerate().map(|(i, p)| (p, i)).collect();
            let n = entries.iter().filter(|(p, _)| matches!(p, Part::Array)).count();
            let mut expected: Vec<(Key, usize)> = Vec::new();
            let items = entries.iter().filter(|(p, _)| matches!(p, Part::Array));
            for (i, (_, v)) in items.enumerate() {
                expected.push((Key::int(i as i64 + 1), *v));
            }
            for (p, v) in &entries {
                if let Part::Keyed(k) = p {
                    match k.as_index().filter(|&i| i <= n) {
                        Some(i) => expected[i - 1].1 = *v,
                        None => expected.push((k.clone(), *v)),
                    }
                }
            }
            prop_assert_eq!(assemble_parts(entries), expected);
        }

        /// Splitting a container's entries and putting them back gives the same entries in
        /// table order.
        #[test]
        fn split_then_assembled_parts_are_the_table(keys in prop::collection::vec(part(), 0..12)) {
            let mut table = Table::new();
            for (i, p) in keys.into_iter().enumerate() {
                let k = match p {
                    Part::Array => Key::int(i as i64 + 1),
                    Part::Keyed(k) => k,
                };
                table.insert(k, LuaValue::Number(Number::new(i as f64)));
            }
            let entries = table.clone().into_entries();
            let seq = crate::lua::sequence_len(entries.iter().map(|(k, _)| k));
            let again = assemble_parts(split_parts(entries));
            prop_assert_eq!(again.len(), table.len());
            for (i, (k, v)) in again.iter().enumerate() {
                if i < seq {
                    prop_assert_eq!(k, &Key::int(i as i64 + 1));
                }
                prop_assert_eq!(table.get(k), Some(v));
            }
        }
    }

    /// Identity, stamp and shape read from the tree are what the value gives.
    #[test]
    fn records_read_from_the_tree_agree_with_their_values() {
        let src = br#"X = {
            { id = "a", lastUpdated = "20240101000000" },
            { id = 7, lastUpdated = 20240101000000, data = "not a table" },
            { date = nil, data = { date = "2024-01-02 03:04:05", name = "Toon-Realm" } },
            { lastUpdated = "bad", date = "2024-01-02", lastUpdated = "20240303000000" },
            { lastUpdated = "20240303000000", lastUpdated = nil, date = "2024-05-06" },
            { pt_name = "Toon-Realm", id = nil, ["id"] = false },
            { data = { name = 12.5, date = nil }, date = "2024-07-08" },
            { data = {} },
            {},
        }"#;
        let doc = crate::lua::parse(src).unwrap();
        let table = doc.global("X").unwrap().value;
        let records = doc.fields(table);
        assert_eq!(records.len(), 9);
        for (i, field) in records.iter().enumerate() {
            let Ok(Some(LuaValue::Table(value))) = doc.value(field.value) else {
                panic!("record {i} is a table");
            };
            let node = NodeFields {
                doc: &doc,
                node: field.value,
            };
            assert_eq!(shape_of(node), shape_of(&value), "record {i}");
            assert_eq!(stamp_of(node), stamp_of(&value), "record {i}");
            for name in TableName::ALL {
                assert_eq!(
                    id_of(name, node),
                    id_of(name, &value),
                    "record {i}, {name:?}"
                );
            }
        }
    }

    #[test]
    fn stamps() {
        assert_eq!(
            stamp_of_last_updated(&LuaValue::str("20241231054417")),
            Some(20241231054417)
        );
        assert_eq!(
            stamp_of_last_updated(&LuaValue::Number(Number::new(20241231054417.0))),
            Some(20241231054417)
        );
        assert_eq!(stamp_of_last_updated(&LuaValue::str("2024123105441")), None);
        assert_eq!(
            stamp_of_last_updated(&LuaValue::str("20241331054417")),
            None
        );
        assert_eq!(stamp_of_last_updated(&LuaValue::str("NA")), None);
        assert_eq!(stamp_of_date(b"2024-12-01 05:09:22"), Some(20241201050922));
        assert_eq!(stamp_of_date(b"2025-01-16"), Some(20250116000000));
        assert_eq!(stamp_of_date(b"01/20/25 21:14:03"), None);
    }

    #[test]
    fn entries_split_and_assemble_without_holes() {
        let t = Table::from_entries([
            (Key::str("x"), LuaValue::str("keyed")),
            (Key::int(2), LuaValue::str("b")),
            (Key::int(1), LuaValue::str("a")),
            (Key::int(4), LuaValue::str("after a hole")),
        ]);
        let es = entries(&t);
        assert_eq!(es.len(), 4);
        assert_eq!(es[0].value, LuaValue::str("a"));
        assert_eq!(es[1].value, LuaValue::str("b"));
        assert_eq!(es[2].part, Part::Keyed(Key::str("x")));
        assert_eq!(es[3].part, Part::Keyed(Key::int(4)));
        let moved: Vec<Entry> = es
            .into_iter()
            .map(|e| Entry {
                part: Part::Array,
                value: e.value,
            })
            .collect();
        let back = assemble(moved);
        assert_eq!(back.sequence_len(), 4);
        assert_eq!(back.len(), 4);
    }

    #[test]
    fn record_views_read_both_shapes() {
        let flat = Table::from_entries([
            (Key::str("pt_name"), LuaValue::str("Gone-Eonar")),
            (Key::str("lastUpdated"), LuaValue::str("20241204090000")),
            (Key::str("deleted"), LuaValue::Bool(true)),
        ]);
        let r = Record::new(TableName::Roster, &flat);
        assert_eq!(r.shape(), RecordShape::Flat);
        assert_eq!(r.id_field().as_deref(), Some(&b"Gone-Eonar"[..]));
        assert!(r.deleted());
        let env = Table::from_entries([
            (Key::str("id"), LuaValue::str("202412311002451187")),
            (Key::str("lastUpdated"), LuaValue::str("NA")),
            (
                Key::str("data"),
                LuaValue::Table(Table::from_entries([(
                    Key::str("date"),
                    LuaValue::str("2024-12-31 10:02:45"),
                )])),
            ),
        ]);
        let r = Record::new(TableName::GuildInfo, &env);
        assert_eq!(r.shape(), RecordShape::Envelope);
        assert_eq!(r.stamp(), Some(20241231100245));
        assert!(!r.deleted());
    }
}
