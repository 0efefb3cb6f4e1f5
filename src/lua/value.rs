//! Owned Lua values: what a table means once the file has run.
//!
//! The syntax tree says how a file is written; a [`LuaValue`] says what Lua would hold after
//! loading it. Numbers keep their original text (sixteen-digit floats do not always round-trip,
//! so unchanged numbers are written back exactly as read), strings are bytes, and a table keeps
//! its entries in the order they first appear in the file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::syntax::{Document, Field, FieldKey, Kind, Node, Span};

/// A Lua number: its value, and the text it was read from (if it was read).
#[derive(Debug, Clone)]
pub struct Number {
    value: f64,
    text: Option<Box<str>>,
}

impl Number {
    /// A number svsync creates: written as the shortest text that reads back the same.
    pub fn new(value: f64) -> Number {
        Number { value, text: None }
    }

    /// A number read from a file, with its original text (sign included).
    pub fn with_text(value: f64, text: impl Into<Box<str>>) -> Number {
        Number {
            value,
            text: Some(text.into()),
        }
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The value as an integer, when it is one.
    pub fn as_integer(&self) -> Option<i64> {
        let v = self.value;
        (v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15).then_some(v as i64)
    }

    fn key_bits(&self) -> u64 {
        // -0 and 0 are one key in Lua.
        if self.value == 0.0 {
            0
        } else {
            self.value.to_bits()
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// A key of a Lua table. Nil and NaN cannot be keys; tables are refused by the reader.
#[derive(Debug, Clone)]
pub enum Key {
    Str(Box<[u8]>),
    Num(Number),
    Bool(bool),
}

impl Key {
    pub fn str(s: impl AsRef<[u8]>) -> Key {
        Key::Str(s.as_ref().into())
    }

    pub fn int(i: i64) -> Key {
        Key::Num(Number::new(i as f64))
    }

    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Key::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The positive integer this key is, if it is one (array indices).
    pub fn as_index(&self) -> Option<usize> {
        match self {
            Key::Num(n) => n.as_integer().filter(|&i| i >= 1).map(|i| i as usize),
            _ => None,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Key::Str(a), Key::Str(b)) => a == b,
            (Key::Num(a), Key::Num(b)) => a.key_bits() == b.key_bits(),
            (Key::Bool(a), Key::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Str(s) => {
                0u8.hash(state);
                s.hash(state);
            }
            Key::Num(n) => {
                1u8.hash(state);
                n.key_bits().hash(state);
            }
            Key::Bool(b) => {
                2u8.hash(state);
                b.hash(state);
            }
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(s) => write!(f, "{}", String::from_utf8_lossy(s)),
            Key::Num(n) => match n.text() {
                Some(t) => f.write_str(t),
                None => write!(f, "{}", n.value()),
            },
            Key::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A Lua value that can be stored in a table (nil is the absence of a value).
#[derive(Debug, Clone)]
pub enum LuaValue {
    Bool(bool),
    Number(Number),
    Str(Box<[u8]>),
    Table(Table),
}

impl LuaValue {
    pub fn str(s: impl AsRef<[u8]>) -> LuaValue {
        LuaValue::Str(s.as_ref().into())
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            LuaValue::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_table_mut(&mut self) -> Option<&mut Table> {
        match self {
            LuaValue::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            LuaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            LuaValue::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            LuaValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The Lua type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            LuaValue::Bool(_) => "boolean",
            LuaValue::Number(_) => "number",
            LuaValue::Str(_) => "string",
            LuaValue::Table(_) => "table",
        }
    }
}

/// Lua equality for data: numbers by value, strings by bytes, tables by content (regardless of
/// the order their entries were written in).
impl PartialEq for LuaValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LuaValue::Bool(a), LuaValue::Bool(b)) => a == b,
            (LuaValue::Number(a), LuaValue::Number(b)) => a == b,
            (LuaValue::Str(a), LuaValue::Str(b)) => a == b,
            (LuaValue::Table(a), LuaValue::Table(b)) => a == b,
            _ => false,
        }
    }
}

/// A Lua table: entries in first-appearance order, each key once.
///
/// Small tables are searched in order; a table with more than [`INDEX_FROM`] entries also keeps
/// a hash index of its keys, so building and reading large tables (a guild roster of thousands)
/// stays linear.
#[derive(Clone, Default)]
pub struct Table {
    entries: Vec<(Key, LuaValue)>,
    /// Boxed: most tables are small records without one, and they are the bulk of the memory
    /// (a table is 32 bytes instead of 72).
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<Key, usize>>>,
}

/// Entries from which a table keeps a key index.
const INDEX_FROM: usize = 32;

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("entries", &self.entries)
            .finish()
    }
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// A table of these entries; a key given twice keeps its last value in its first place.
    pub fn from_entries(entries: impl IntoIterator<Item = (Key, LuaValue)>) -> Table {
        let mut t = Table::new();
        for (k, v) in entries {
            t.insert(k, v);
        }
        t
    }

    /// A sequence `{v1, v2, ...}`.
    pub fn array(values: impl IntoIterator<Item = LuaValue>) -> Table {
        Table::with_entries(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Key::int(i as i64 + 1), v))
                .collect(),
        )
    }

    /// A table of entries whose keys are known to be distinct.
    fn with_entries(entries: Vec<(Key, LuaValue)>) -> Table {
        let mut t = Table {
            entries,
            index: None,
        };
        t.shrink_to_fit();
        t.reindex();
        t
    }

    /// Lets go of spare room (tables built entry by entry keep up to twice what they hold).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    fn reindex(&mut self) {
        self.index = (self.entries.len() > INDEX_FROM).then(|| {
            Box::new(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            )
        });
    }

    fn position(&self, key: &Key) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &LuaValue)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn entries(&self) -> &[(Key, LuaValue)] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<(Key, LuaValue)> {
        self.entries
    }

    pub fn get(&self, key: &Key) -> Option<&LuaValue> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut LuaValue> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    /// Where a string key is in [`Table::entries`].
    pub fn position_of_str(&self, key: &[u8]) -> Option<usize> {
        match &self.index {
            Some(_) => self.position(&Key::str(key)),
            None => self
                .entries
                .iter()
                .position(|(k, _)| k.as_str() == Some(key)),
        }
    }

    /// Where a key is in [`Table::entries`].
    pub fn position_of(&self, key: &Key) -> Option<usize> {
        self.position(key)
    }

    /// The value under a string key.
    pub fn get_str(&self, key: &str) -> Option<&LuaValue> {
        if self.index.is_some() {
            return self.get(&Key::str(key));
        }
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Sets a key, keeping its place if it exists.
    pub fn insert(&mut self, key: Key, value: LuaValue) {
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value,
            None => {
                let at = self.entries.len();
                match &mut self.index {
                    Some(index) => {
                        index.insert(key.clone(), at);
                        self.entries.push((key, value));
                    }
                    None => {
                        self.entries.push((key, value));
                        if self.entries.len() > INDEX_FROM {
                            self.reindex();
                        }
                    }
                }
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<LuaValue> {
        let at = self.position(key)?;
        let (_, value) = self.entries.remove(at);
        self.reindex();
        Some(value)
    }

    /// `n` such that keys `1..=n` are all present and `n + 1` is not: the array part a writer
    /// emits as a pure sequence.
    pub fn sequence_len(&self) -> usize {
        sequence_len(self.entries.iter().map(|(k, _)| k))
    }
}

/// `n` such that keys `1..=n` are all among `keys` and `n + 1` is not.
pub fn sequence_len<'k>(keys: impl ExactSizeIterator<Item = &'k Key>) -> usize {
    let len = keys.len();
    let mut present = vec![false; len + 1];
    for k in keys {
        if let Some(i) = k.as_index().filter(|&i| i <= len) {
            present[i] = true;
        }
    }
    present[1..].iter().take_while(|&&p| p).count()
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        if self.entries.len() != other.entries.len() {
            return false;
        }
        if self.entries.len() <= 16 {
            return self.entries.iter().all(|(k, v)| other.get(k) == Some(v));
        }
        let index: HashMap<&Key, &LuaValue> = other.entries.iter().map(|(k, v)| (k, v)).collect();
        self.entries.iter().all(|(k, v)| index.get(k) == Some(&v))
    }
}

/// A value was asked for that the parser was told not to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the table at bytes {}..{} was not kept by the parser", .0.start, .0.end)]
pub struct NotKept(pub Span);

impl Document<'_> {
    /// What a value is after Lua runs the file; `None` for nil.
    ///
    /// Table constructors follow Lua 5.1 exactly: keyed fields are stored as they are met, array
    /// items in batches of 50 (so an array item overrides a keyed field with the same index in
    /// its batch), and a nil value removes its key.
    pub fn value(&self, node: Node) -> Result<Option<LuaValue>, NotKept> {
        Ok(Some(match node.kind {
            Kind::Nil => return Ok(None),
            Kind::Bool(b) => LuaValue::Bool(b),
            Kind::Number { .. } => LuaValue::Number(self.number_value(node)),
            Kind::Str { .. } => LuaValue::Str(
                self.string(node)
                    .map(Cow::into_owned)
                    .unwrap_or_default()
                    .into(),
            ),
            Kind::Skipped => return Err(NotKept(node.span)),
            Kind::Deferred => return self.deferred_value(node),
            Kind::Table { .. } => LuaValue::Table(self.table_value(node)?),
        }))
    }

    /// A deferred table's value, from its text.
    fn deferred_value(&self, node: Node) -> Result<Option<LuaValue>, NotKept> {
        let table = super::ParsedFile::table(self.text(node.span)).ok_or(NotKept(node.span))?;
        let (file, root) = &table;
        file.doc().value(*root)
    }

    /// Whether `node` holds `value` once Lua runs the file (Lua data equality, as
    /// `LuaValue`'s `==`), without building the node's value where it can: a table whose fields
    /// each set a different key to a non-nil value is compared field by field; any other table
    /// (a key set twice, a nil) is built and compared.
    pub fn matches(&self, node: Node, value: &LuaValue) -> bool {
        match (node.kind, value) {
            (Kind::Bool(a), LuaValue::Bool(b)) => a == *b,
            (Kind::Number { .. }, LuaValue::Number(n)) => {
                self.number(node).is_some_and(|v| v == n.value())
            }
            (Kind::Str { .. }, LuaValue::Str(s)) => self.string(node).is_some_and(|t| *t == **s),
            (Kind::Table { .. }, LuaValue::Table(t)) => self.table_matches(node, t),
            (Kind::Deferred, LuaValue::Table(_)) => {
                self.value(node).ok().flatten().as_ref() == Some(value)
            }
            _ => false,
        }
    }

    /// [`Document::matches`] for a table.
    fn table_matches(&self, node: Node, table: &Table) -> bool {
        if !matches!(node.kind, Kind::Table { .. }) {
            return false;
        }
        let fields = self.fields(node);
        // Nils and repeated keys only make a table smaller than its fields.
        if fields.len() < table.len() {
            return false;
        }
        if fields.len() == table.len() {
            let mut seen = vec![false; table.len()];
            let mut places = Vec::with_capacity(fields.len());
            let mut positional = 0i64;
            for field in fields {
                if matches!(field.value.kind, Kind::Nil) {
                    break;
                }
                let place = match field.key {
                    FieldKey::Positional => {
                        positional += 1;
                        table.position_of(&Key::int(positional))
                    }
                    FieldKey::Name(span) => table.position_of_str(self.text(span)),
                    FieldKey::Bracket(key) => {
                        let key = self.key_node(key);
                        match key.kind {
                            Kind::Str { .. } => {
                                self.string(key).and_then(|k| table.position_of_str(&k))
                            }
                            _ => self.key(key).and_then(|k| table.position_of(&k)),
                        }
                    }
                };
                match place {
                    Some(p) if !seen[p] => {
                        seen[p] = true;
                        places.push(p);
                    }
                    _ => break,
                }
            }
            if places.len() == fields.len() {
                // Every key of the table is set exactly once: compare field by field.
                let entries = table.entries();
                return fields
                    .iter()
                    .zip(places)
                    .all(|(f, p)| self.matches(f.value, &entries[p].1));
            }
        }
        self.table_value(node).is_ok_and(|t| t == *table)
    }

    fn number_value(&self, node: Node) -> Number {
        let value = self.number(node).unwrap_or(0.0);
        match self.number_text(node) {
            Some(text) => Number::with_text(value, text.as_ref()),
            None => Number::new(value),
        }
    }

    fn key(&self, node: Node) -> Option<Key> {
        match node.kind {
            Kind::Bool(b) => Some(Key::Bool(b)),
            Kind::Number { .. } => Some(Key::Num(self.number_value(node))),
            Kind::Str { .. } => self.string(node).map(|s| Key::Str(s.into_owned().into())),
            _ => None,
        }
    }

    fn table_value(&self, node: Node) -> Result<Table, NotKept> {
        Ok(Table::with_entries(self.assign(node, |n| self.value(n))?))
    }

    /// The entries a table constructor leaves once Lua runs it, each value still a node (nil
    /// fields remove their key): what [`Document::value`] builds, one level deep.
    pub fn entries_of(&self, node: Node) -> Vec<(Key, Node)> {
        self.assign(node, |n| {
            Ok::<_, NotKept>((!matches!(n.kind, Kind::Nil)).then_some(n))
        })
        .unwrap_or_default()
    }

    /// The key a field sets; `positional` is the field's index among the array items.
    pub fn field_key(&self, field: &Field, positional: usize) -> Option<Key> {
        match field.key {
            FieldKey::Positional => Some(Key::int(positional as i64)),
            FieldKey::Name(span) => Some(Key::Str(self.text(span).into())),
            FieldKey::Bracket(key) => self.key(self.key_node(key)),
        }
    }

    /// Runs a table constructor with Lua 5.1's semantics: keyed fields are stored as they are
    /// met, array items in batches of 50, a nil value removes its key.
    fn assign<V, E>(
        &self,
        node: Node,
        mut value_of: impl FnMut(Node) -> Result<Option<V>, E>,
    ) -> Result<Vec<(Key, V)>, E> {
        let fields = self.fields(node);
        let mut builder = TableBuilder::new(fields.len());
        let mut pending: Vec<(usize, Option<V>)> = Vec::new();
        let mut next_index = 1usize;
        let mut previous_positional = false;
        for field in fields {
            if previous_positional && pending.len() == super::limits::FIELDS_PER_FLUSH as usize {
                for (i, v) in pending.drain(..) {
                    builder.set(Key::int(i as i64), v);
                }
            }
            let value = value_of(field.value)?;
            match field.key {
                FieldKey::Positional => {
                    pending.push((next_index, value));
                    next_index += 1;
                    previous_positional = true;
                    continue;
                }
                FieldKey::Name(span) => builder.set(Key::Str(self.text(span).into()), value),
                FieldKey::Bracket(key) => {
                    if let Some(key) = self.key(self.key_node(key)) {
                        builder.set(key, value);
                    }
                }
            }
            previous_positional = false;
        }
        for (i, v) in pending {
            builder.set(Key::int(i as i64), v);
        }
        Ok(builder.finish())
    }
}

/// Builds a table with Lua's assignment semantics. Small tables (records) search their keys
/// in order; a key index is built once a table has more than [`INDEX_FROM`] entries.
struct TableBuilder<V> {
    entries: Vec<Option<(Key, V)>>,
    index: Option<HashMap<Key, usize>>,
}

impl<V> TableBuilder<V> {
    fn new(capacity: usize) -> Self {
        TableBuilder {
            entries: Vec::with_capacity(capacity),
            index: None,
        }
    }

    fn position(&self, key: &Key) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self
                .entries
                .iter()
                .position(|e| e.as_ref().is_some_and(|(k, _)| k == key)),
        }
    }

    fn set(&mut self, key: Key, value: Option<V>) {
        match (self.position(&key), value) {
            (Some(at), Some(v)) => {
                if let Some(slot) = &mut self.entries[at] {
                    slot.1 = v;
                }
            }
            (Some(at), None) => {
                self.entries[at] = None;
                if let Some(index) = &mut self.index {
                    index.remove(&key);
                }
            }
            (None, Some(v)) => {
                if let Some(index) = &mut self.index {
                    index.insert(key.clone(), self.entries.len());
                }
                self.entries.push(Some((key, v)));
                if self.index.is_none() && self.entries.len() > INDEX_FROM {
                    self.index = Some(
                        self.entries
                            .iter()
                            .enumerate()
                            .filter_map(|(i, e)| e.as_ref().map(|(k, _)| (k.clone(), i)))
                            .collect(),
                    );
                }
            }
            (None, None) => {}
        }
    }

    fn finish(self) -> Vec<(Key, V)> {
        self.entries.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::parse;

    #[test]
    fn large_tables_keep_order_and_find_keys() {
        let mut t = Table::new();
        for i in 0..200 {
            t.insert(
                Key::str(format!("k{i}")),
                LuaValue::Number(Number::new(f64::from(i))),
            );
        }
        t.insert(Key::str("k7"), LuaValue::str("again"));
        assert_eq!(t.len(), 200);
        assert_eq!(t.get_str("k7"), Some(&LuaValue::str("again")));
        assert_eq!(t.entries()[7].0, Key::str("k7"));
        assert_eq!(
            t.remove(&Key::str("k3")),
            Some(LuaValue::Number(Number::new(3.0)))
        );
        assert_eq!(t.get_str("k3"), None);
        assert_eq!(
            t.get_str("k199"),
            Some(&LuaValue::Number(Number::new(199.0)))
        );
        assert_eq!(t.entries()[3].0, Key::str("k4"));
        let a = Table::array((0..100).map(|i| LuaValue::Number(Number::new(f64::from(i)))));
        assert_eq!(
            a.get(&Key::int(100)),
            Some(&LuaValue::Number(Number::new(99.0)))
        );
        assert_eq!(a.sequence_len(), 100);
    }

    fn global(src: &str) -> LuaValue {
        let doc = parse(src.as_bytes()).unwrap();
        let g = doc.global("X").unwrap();
        doc.value(g.value).unwrap().unwrap()
    }

    #[test]
    fn positional_items_win_within_their_batch() {
        let t = global("X = {[1] = 'a', 'b'}");
        assert_eq!(
            t.as_table().unwrap().get(&Key::int(1)),
            Some(&LuaValue::str("b"))
        );
        let t = global("X = {'b', [1] = 'a'}");
        assert_eq!(
            t.as_table().unwrap().get(&Key::int(1)),
            Some(&LuaValue::str("b"))
        );
    }

    #[test]
    fn keyed_field_after_a_flush_wins() {
        let items: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
        let src = format!("X = {{{}, [1] = 'late'}}", items.join(","));
        let t = global(&src);
        assert_eq!(
            t.as_table().unwrap().get(&Key::int(1)),
            Some(&LuaValue::str("late"))
        );
    }

    #[test]
    fn nil_removes_and_holes_stay_holes() {
        let t = global("X = {a = 1, a = nil, 'x', nil, 'z'}");
        let t = t.as_table().unwrap();
        assert_eq!(t.get_str("a"), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.sequence_len(), 1);
    }

    #[test]
    fn number_keys_normalize() {
        let t = global("X = {[1.0] = 'a', [0x2] = 'b', [-0] = 'z'}");
        let t = t.as_table().unwrap();
        assert_eq!(t.get(&Key::int(1)), Some(&LuaValue::str("a")));
        assert_eq!(t.get(&Key::int(2)), Some(&LuaValue::str("b")));
        assert_eq!(t.get(&Key::int(0)), Some(&LuaValue::str("z")));
        assert_eq!(t.sequence_len(), 2);
    }

    #[test]
    fn numbers_keep_their_text() {
        let t = global("X = {1.50, -0x10, 2.288818359375e-05}");
        let t = t.as_table().unwrap();
        let texts: Vec<_> = t
            .iter()
            .map(|(_, v)| v.as_number().unwrap().text().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["1.50", "-0x10", "2.288818359375e-05"]);
        assert_eq!(
            t.get(&Key::int(2)).unwrap().as_number().unwrap().value(),
            -16.0
        );
    }

    #[test]
    fn tables_compare_by_content() {
        assert_eq!(
            global("X = {a = 1, b = {2}}"),
            global("X = {b = {2.0}, a = 1}")
        );
        assert_ne!(global("X = {a = 1}"), global("X = {a = '1'}"));
    }
}
