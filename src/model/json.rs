//! Lua values as JSON: the payload format of the pipeline.
//!
//! The encoding loses nothing, so a table that crosses the wire is the table that was read:
//!
//! - A table whose keys are exactly `1..n` (n > 0) is a JSON array; any other table is an object
//!   (an empty table is `{}`).
//! - Object keys: a string key is itself, unless it starts with `$` or `#`, in which case one `$`
//!   is put in front (`"$$price"`). A number key is `#` and the number's text (`"#1"`, `"#2.5"`),
//!   a boolean key `#true` / `#false`. A string key that is not valid UTF-8 is `$x` and the hex
//!   of its bytes.
//! - Strings that are valid UTF-8 are JSON strings; other strings (Lua strings are bytes) are
//!   `{"$bytes": "<hex>"}`.
//! - A number is a JSON number when its text is the shortest text of its value (`80`, `633.5`);
//!   a number written another way (`0x10`, `1e3`, `633.50`) is `{"$num": "<text>"}`, so its text
//!   comes back exactly.
//!
//! Because real keys never start with a single `$` followed by a letter, the tagged objects
//! cannot be confused with tables.

use std::hash::BuildHasher;

use crate::lua::{
    Document, FieldKey, Key, KeyKind, Kind, LuaValue, MAX_TABLE_DEPTH, Node, Number, Table,
    format_number, numeral_value,
};
use crate::model::tables::{Entry, Part};

/// Why JSON could not be turned into a Lua value (or the reverse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("JSON null has no Lua value")]
    Null,
    #[error("the number `{0}` cannot be stored in a SavedVariables file")]
    Number(String),
    #[error("bad hex in `{0}`")]
    Hex(String),
    #[error("the key `{0}` is not a valid encoded key")]
    Key(String),
    #[error("tables nest deeper than Lua 5.1 can load ({MAX_TABLE_DEPTH} levels)")]
    TooDeep,
    #[error("the payload is a {0}, not a table")]
    NotATable(&'static str),
    #[error("a table the reader did not keep cannot be encoded")]
    NotKept,
}

const BYTES: &str = "$bytes";
const NUM: &str = "$num";

/// Encodes a value as compact JSON bytes, written straight from the value (no JSON tree).
pub fn to_json_bytes(value: &LuaValue) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    encode(value, &mut out)?;
    Ok(out)
}

/// Encodes a table as compact JSON bytes.
pub fn table_to_json_bytes(table: &Table) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    encode_table(table, &mut out)?;
    Ok(out)
}

/// A JSON string, escaped as serde_json escapes it.
fn write_str(text: &str, out: &mut Vec<u8>) -> Result<(), JsonError> {
    serde_json::to_writer(&mut *out, text).map_err(|e| JsonError::Syntax(e.to_string()))
}

fn write_tagged(tag: &str, text: &str, out: &mut Vec<u8>) -> Result<(), JsonError> {
    out.push(b'{');
    write_str(tag, out)?;
    out.push(b':');
    write_str(text, out)?;
    out.push(b'}');
    Ok(())
}

fn encode(value: &LuaValue, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        LuaValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        LuaValue::Number(n) => encode_number(n, out)?,
        LuaValue::Str(s) => match std::str::from_utf8(s) {
            Ok(text) => write_str(text, out)?,
            Err(_) => write_tagged(BYTES, &hex(s), out)?,
        },
        LuaValue::Table(t) => encode_table(t, out)?,
    }
    Ok(())
}

fn number_text(n: &Number) -> Result<std::borrow::Cow<'_, str>, JsonError> {
    match n.text() {
        Some(text) => Ok(text.into()),
        None => format_number(n.value())
            .map(Into::into)
            .map_err(|_| JsonError::Number(n.value().to_string())),
    }
}

/// An integer of at most 15 digits, without a leading zero or a plus sign (`0`, `-12`, `80`):
/// exactly what `format_number` writes for its value.
fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text).as_bytes();
    (1..=15).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || (digits.len() == 1 && !text.starts_with('-')))
}

/// Whether `text` is a number in JSON's grammar.
fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

fn encode_number(n: &Number, out: &mut Vec<u8>) -> Result<(), JsonError> {
    encode_numeral(n.value(), n.text(), out)
}

/// A number of this value, read from `text` (if it was read).
fn encode_numeral(value: f64, text: Option<&str>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    // The common case: an integer written plainly is its own shortest text.
    if let Some(text) = text.filter(|t| is_plain_integer(t)) {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    // A numeral Lua reads as infinite (`1e400`) has no shortest form: its text travels.
    if let (false, Some(text)) = (value.is_finite(), text) {
        return write_tagged(NUM, text, out);
    }
    let shortest = format_number(value).map_err(|_| JsonError::Number(value.to_string()))?;
    let text = match text {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => std::borrow::Cow::Borrowed(shortest.as_str()),
    };
    if *text == shortest && is_json_number(&text) {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    write_tagged(NUM, &text, out)
}

fn encode_table(t: &Table, out: &mut Vec<u8>) -> Result<(), JsonError> {
    encode_entries(t.entries(), out, &mut |v, out| encode(v, out))
}

/// Appends one value's JSON.
type EncodeFn<'f, V> = dyn FnMut(&V, &mut Vec<u8>) -> Result<(), JsonError> + 'f;

/// A table of these entries (in table order): an array when its keys are exactly `1..n`, in
/// index order; else an object in table order.
fn encode_entries<V>(
    entries: &[(Key, V)],
    out: &mut Vec<u8>,
    value: &mut EncodeFn<'_, V>,
) -> Result<(), JsonError> {
    let n = entries.len();
    if n > 0 && crate::lua::sequence_len(entries.iter().map(|(k, _)| k)) == n {
        // Keys are exactly 1..n (in any order): an array, in index order.
        let mut items: Vec<(usize, &V)> = entries
            .iter()
            .map(|(k, v)| (k.as_index().unwrap_or(0), v))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        out.push(b'[');
        for (i, (_, v)) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            value(v, out)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match k {
            Key::Str(text) => write_str_key(text, out)?,
            _ => write_str(&encode_key(k)?, out)?,
        }
        out.push(b':');
        value(v, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Encodes the table at `node` of a parsed file as [`to_json_bytes`] encodes its value,
/// straight from the syntax tree (no value is built).
pub fn node_to_json_bytes(doc: &Document<'_>, node: Node) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    encode_node(doc, node, &mut out)?;
    Ok(out)
}

fn encode_node(doc: &Document<'_>, node: Node, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match node.kind {
        Kind::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Kind::Number { .. } => {
            let value = doc.number(node).unwrap_or(0.0);
            encode_numeral(value, doc.number_text(node).as_deref(), out)?;
        }
        Kind::Str { .. } => {
            let s = doc.string(node).unwrap_or_default();
            match std::str::from_utf8(&s) {
                Ok(text) => write_str(text, out)?,
                Err(_) => write_tagged(BYTES, &hex(&s), out)?,
            }
        }
        Kind::Table { .. } => {
            if !encode_plain_table(doc, node, out)? {
                let entries = doc.entries_of(node);
                encode_entries(&entries, out, &mut |n, out| encode_node(doc, *n, out))?;
            }
        }
        // Nil is never an entry (`entries_of` drops it).
        Kind::Nil => return Err(JsonError::Null),
        Kind::Skipped | Kind::Deferred => return Err(JsonError::NotKept),
    }
    Ok(())
}

/// The common tables, encoded from their fields without building their keys: only array items
/// (a JSON array), or only string keys each set once (a JSON object in field order), and no
/// nil. `false`: another kind of table, nothing was written.
fn encode_plain_table(
    doc: &Document<'_>,
    node: Node,
    out: &mut Vec<u8>,
) -> Result<bool, JsonError> {
    let fields = doc.fields(node);
    if fields.iter().any(|f| matches!(f.value.kind, Kind::Nil)) {
        return Ok(false);
    }
    if !fields.is_empty() && fields.iter().all(|f| f.key == FieldKey::Positional) {
        out.push(b'[');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            encode_node(doc, f.value, out)?;
        }
        out.push(b']');
        return Ok(true);
    }
    let mut keys = Vec::with_capacity(fields.len());
    for f in fields {
        match f.key {
            FieldKey::Name(_) => keys.push(doc.key_string(f).unwrap_or_default()),
            FieldKey::Bracket(k) if matches!(k.kind, KeyKind::Str { .. }) => {
                keys.push(doc.key_string(f).unwrap_or_default());
            }
            _ => return Ok(false),
        }
    }
    // Each key once: a key set twice keeps its first place and last value (built the slow way).
    let distinct = if keys.len() <= 16 {
        keys.iter()
            .enumerate()
            .all(|(i, k)| keys[..i].iter().all(|other| other != k))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        keys.iter().all(|k| seen.insert(k.as_ref()))
    };
    if !distinct {
        return Ok(false);
    }
    out.push(b'{');
    for (i, (f, key)) in fields.iter().zip(&keys).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str_key(key, out)?;
        out.push(b':');
        encode_node(doc, f.value, out)?;
    }
    out.push(b'}');
    Ok(true)
}

/// The JSON object key of a string key (see [`encode_key`]), written.
fn write_str_key(key: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    write_str(&str_key_text(key), out)
}

/// The JSON object key of a string key: itself (borrowed) unless it must be escaped.
fn str_key_text(key: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(key) {
        Ok(text) if text.starts_with('$') || text.starts_with('#') => format!("${text}").into(),
        Ok(text) => text.into(),
        Err(_) => format!("$x{}", hex(key)).into(),
    }
}

/// Decodes JSON bytes made by [`to_json_bytes`], straight into Lua values (no JSON tree).
pub fn from_json_bytes(bytes: &[u8]) -> Result<LuaValue, JsonError> {
    use serde::de::DeserializeSeed;
    // Tables nest down to Lua's limit, and a tagged value adds one level; checked first, so
    // the decoder's recursion is bounded.
    if nesting_over(bytes, MAX_TABLE_DEPTH + 1) {
        return Err(JsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = Decode { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Decodes a payload that must be a table.
pub fn table_from_json_bytes(bytes: &[u8]) -> Result<Table, JsonError> {
    match from_json_bytes(bytes)? {
        LuaValue::Table(t) => Ok(t),
        other => Err(JsonError::NotATable(other.type_name())),
    }
}

/// Decodes a table payload one entry at a time, handing each to `f` with its place (as
/// [`into_entries`](crate::model::tables::into_entries) would give them), so the whole table
/// never needs to be in memory. `Ok(false)`: this payload cannot be read that way (not a table,
/// a number or boolean key, a key given twice): decode it whole instead, and forget what `f`
/// was given.
pub fn for_each_entry(bytes: &[u8], f: &mut dyn FnMut(Entry)) -> Result<bool, JsonError> {
    use serde::de::DeserializeSeed;
    if nesting_over(bytes, MAX_TABLE_DEPTH + 1) {
        return Err(JsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let mut top = Entries { f, whole: false };
    let result = (&mut top).deserialize(&mut de);
    if top.whole {
        return Ok(false);
    }
    result.map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(true)
}

/// The top level of a table payload, entry by entry (see [`for_each_entry`]).
struct Entries<'f> {
    f: &'f mut dyn FnMut(Entry),
    /// The payload must be decoded whole.
    whole: bool,
}

impl Entries<'_> {
    fn give_up<E: serde::de::Error>(&mut self) -> Result<(), E> {
        self.whole = true;
        Err(E::custom("decoded whole"))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut Entries<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a table payload")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element_seed(Decode { depth: 1 })? {
            (self.f)(Entry {
                part: Part::Array,
                value,
            });
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The keys seen, by a keyed hash of the key they decode to (a payload can be hostile,
        // and two texts can name one key): two keys with one hash are taken for a repeat,
        // which is only slower (read whole), never wrong, and a large table's keys are not
        // copied.
        let hasher = std::hash::RandomState::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = map.next_key_seed(KeyText)? {
            // Number and boolean keys may make an array part; a tag is not a table; a repeated
            // key keeps its first place: all read whole.
            if k.starts_with('#') || [BYTES, NUM, NUMBER_TOKEN].contains(&k.as_ref()) {
                return self.give_up();
            }
            let key = decode_key(&k).map_err(fail)?;
            if !seen.insert(hasher.hash_one(&key)) {
                return self.give_up();
            }
            let value = map.next_value_seed(Decode { depth: 1 })?;
            (self.f)(Entry {
                part: Part::Keyed(key),
                value,
            });
        }
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.give_up()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.give_up()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.give_up()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.give_up()
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.give_up()
    }
}

/// How serde_json (with `arbitrary_precision`) hands a number's exact text to a visitor: a map
/// of one entry under this key.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// An object key, borrowed from the payload when it has no escapes.
struct KeyText;

impl<'de> serde::de::DeserializeSeed<'de> for KeyText {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyText {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(s.into())
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.to_owned().into())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(s.into())
    }
}

/// Decodes one JSON value at a nesting depth.
#[derive(Clone, Copy)]
struct Decode {
    depth: u32,
}

impl<'de> serde::de::DeserializeSeed<'de> for Decode {
    type Value = LuaValue;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<LuaValue, D::Error> {
        d.deserialize_any(self)
    }
}

fn fail<E: serde::de::Error>(e: JsonError) -> E {
    E::custom(e)
}

fn number_from_text<E: serde::de::Error>(text: &str) -> Result<LuaValue, E> {
    parse_number(text, false)
        .map(LuaValue::Number)
        .ok_or_else(|| fail(JsonError::Number(text.to_owned())))
}

impl<'de> serde::de::Visitor<'de> for Decode {
    type Value = LuaValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON payload of Lua values")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<LuaValue, E> {
        Ok(LuaValue::Bool(b))
    }

    // serde_json hands integers that fit 64 bits over as such (their text is exactly the
    // integer's decimal form), every other number as its text (see `NUMBER_TOKEN`).
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<LuaValue, E> {
        number_from_text(&n.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<LuaValue, E> {
        number_from_text(&n.to_string())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<LuaValue, E> {
        Err(fail(JsonError::Null))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LuaValue, E> {
        Ok(LuaValue::str(s))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<LuaValue, E> {
        Ok(LuaValue::Str(s.into_bytes().into()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<LuaValue, A::Error> {
        if self.depth >= MAX_TABLE_DEPTH {
            return Err(fail(JsonError::TooDeep));
        }
        let inner = Decode {
            depth: self.depth + 1,
        };
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(inner)? {
            values.push(v);
        }
        Ok(LuaValue::Table(Table::array(values)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LuaValue, A::Error> {
        let Some(first) = map.next_key_seed(KeyText)? else {
            return Ok(LuaValue::Table(Table::new()));
        };
        let inner = Decode {
            depth: self.depth + 1,
        };
        match first.as_ref() {
            NUMBER_TOKEN => {
                let text = map.next_value_seed(KeyText)?;
                return number_from_text(&text);
            }
            BYTES | NUM => {
                // A tagged value: one entry whose value is a string.
                let value = map.next_value_seed(inner)?;
                if map.next_key_seed(KeyText)?.is_some() {
                    return Err(fail(JsonError::Key(first.into_owned())));
                }
                let text = match &value {
                    LuaValue::Str(s) => std::str::from_utf8(s).unwrap_or_default(),
                    _ => return Err(fail(JsonError::Key(first.into_owned()))),
                };
                return if first == BYTES {
                    unhex(text).map(|b| LuaValue::Str(b.into())).map_err(fail)
                } else {
                    parse_number(text, true)
                        .map(LuaValue::Number)
                        .ok_or_else(|| fail(JsonError::Number(text.to_owned())))
                };
            }
            _ => {}
        }
        if self.depth >= MAX_TABLE_DEPTH {
            return Err(fail(JsonError::TooDeep));
        }
        let mut table = Table::new();
        let key = decode_key(&first).map_err(fail)?;
        table.insert(key, map.next_value_seed(inner)?);
        while let Some(k) = map.next_key_seed(KeyText)? {
            let key = decode_key(&k).map_err(fail)?;
            table.insert(key, map.next_value_seed(inner)?);
        }
        table.shrink_to_fit();
        Ok(LuaValue::Table(table))
    }
}

/// The JSON object key of a Lua key.
pub fn encode_key(key: &Key) -> Result<String, JsonError> {
    Ok(match key {
        Key::Str(s) => str_key_text(s).into_owned(),
        Key::Num(n) => format!("#{}", number_text(n)?),
        Key::Bool(b) => format!("#{b}"),
    })
}

/// The Lua key of a JSON object key.
pub fn decode_key(key: &str) -> Result<Key, JsonError> {
    if let Some(rest) = key.strip_prefix('#') {
        return match rest {
            "true" => Ok(Key::Bool(true)),
            "false" => Ok(Key::Bool(false)),
            _ => Ok(Key::Num(
                parse_number(rest, true).ok_or_else(|| JsonError::Key(key.to_string()))?,
            )),
        };
    }
    if let Some(rest) = key.strip_prefix('$') {
        if rest.starts_with('$') || rest.starts_with('#') {
            return Ok(Key::str(rest));
        }
        if let Some(h) = rest.strip_prefix('x') {
            return Ok(Key::Str(unhex(h)?.into()));
        }
        return Err(JsonError::Key(key.to_string()));
    }
    Ok(Key::str(key))
}

/// A numeral's value with its text. `Lua` text (a `$num` value or a `#` key) may be one Lua
/// reads as infinite (`1e400`): it is kept as written. A plain JSON number must be finite.
fn parse_number(text: &str, lua: bool) -> Option<Number> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = numeral_value(body.as_bytes())?;
    let value = if negative { -value } else { value };
    (value.is_finite() || (lua && !value.is_nan())).then(|| Number::with_text(value, text))
}

/// The deepest nesting of arrays and objects in JSON text (outside strings), stopping once it
/// passes `limit`: checked before parsing, so hostile input cannot nest without bound.
fn nesting_over(bytes: &[u8], limit: u32) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Lowercase hex of bytes (also the chunk journal's encoding).
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex_into(bytes, &mut out);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the lowercase hex of `bytes`.
pub(crate) fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

pub(crate) fn unhex(text: &str) -> Result<Vec<u8>, JsonError> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(JsonError::Hex(text.to_string()));
    }
    bytes
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
                _ => Err(JsonError::Hex(text.to_string())),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &LuaValue) -> LuaValue {
        from_json_bytes(&to_json_bytes(v).unwrap()).unwrap()
    }

    #[test]
    fn plain_data_looks_like_plain_json() {
        let v = LuaValue::Table(Table::from_entries([
            (Key::str("name"), LuaValue::str("Heretanky-Velen")),
            (
                Key::str("level"),
                LuaValue::Number(Number::with_text(80.0, "80")),
            ),
            (
                Key::str("roles"),
                LuaValue::Table(Table::array([LuaValue::str("Tank"), LuaValue::str("DPS")])),
            ),
            (Key::str("empty"), LuaValue::Table(Table::new())),
        ]));
        let text = String::from_utf8(to_json_bytes(&v).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"name":"Heretanky-Velen","level":80,"roles":["Tank","DPS"],"empty":{}}"#
        );
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn odd_values_keep_their_exact_form() {
        let v = LuaValue::Table(Table::from_entries([
            (Key::str("$bytes"), LuaValue::str([0xff, 0x00, b'a'])),
            (
                Key::str("#1"),
                LuaValue::Number(Number::with_text(16.0, "0x10")),
            ),
            (
                Key::Num(Number::with_text(2.5, "2.5")),
                LuaValue::Bool(true),
            ),
            (
                Key::Bool(false),
                LuaValue::Number(Number::with_text(633.5, "633.50")),
            ),
            (Key::str([0xe9]), LuaValue::str("x")),
            (Key::int(1), LuaValue::str("first")),
        ]));
        let json: serde_json::Value = serde_json::from_slice(&to_json_bytes(&v).unwrap()).unwrap();
        assert_eq!(json["$$bytes"]["$bytes"], "ff0061");
        assert_eq!(json["$#1"]["$num"], "0x10");
        assert_eq!(json["#2.5"], true);
        assert_eq!(json["#false"]["$num"], "633.50");
        assert_eq!(json["$xe9"], "x");
        let back = round_trip(&v);
        assert_eq!(back, v);
        let LuaValue::Table(t) = back else { panic!() };
        assert_eq!(
            t.get(&Key::Bool(false))
                .and_then(|v| v.as_number())
                .and_then(|n| n.text()),
            Some("633.50")
        );
    }

    #[test]
    fn payloads_are_read_entry_by_entry_or_whole() {
        let read = |text: &str| {
            let mut got = Vec::new();
            let streamed = for_each_entry(text.as_bytes(), &mut |e| got.push(e));
            streamed.map(|done| done.then_some(got))
        };
        let got = read(r#"{"b":{"x":1},"$$a":"s"}"#).unwrap().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].part, Part::Keyed(Key::str("b")));
        assert_eq!(got[1].part, Part::Keyed(Key::str("$a")));
        assert_eq!(got[1].value, LuaValue::str("s"));
        let got = read(r#"["a",{"y":true}]"#).unwrap().unwrap();
        assert!(got.iter().all(|e| e.part == Part::Array));
        assert_eq!(got.len(), 2);
        // Read whole: number keys, a repeated key, a tag, no table.
        for whole in [
            r##"{"#1":"a"}"##,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"$x61":2}"#,
            r#"{"$bytes":"00"}"#,
            "1.5",
            "7",
            "\"s\"",
        ] {
            assert_eq!(read(whole).unwrap(), None, "{whole}");
        }
        for bad in [r#"{"a":1"#, r#"{"a":null}"#, r#"[1,]"#] {
            assert!(read(bad).is_err(), "{bad}");
        }
        assert_eq!(
            table_from_json_bytes(b"\"s\"").unwrap_err(),
            JsonError::NotATable("string")
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        for bad in [
            &b"{"[..],
            b"null",
            b"{\"a\":null}",
            b"{\"$bytes\":\"zz\"}",
            b"{\"$num\":\"abc\"}",
            b"{\"#x\":1}",
            b"{\"$q\":1}",
            b"1e999",
        ] {
            assert!(
                from_json_bytes(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert!(from_json_bytes(deep.as_bytes()).is_err());
    }
}
