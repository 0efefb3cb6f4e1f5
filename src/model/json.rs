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

use serde_json::{Map, Value};

use crate::lua::{Key, LuaValue, MAX_TABLE_DEPTH, Number, Table, format_number, numeral_value};

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
}

const BYTES: &str = "$bytes";
const NUM: &str = "$num";

/// Encodes a value as JSON.
pub fn to_json(value: &LuaValue) -> Result<Value, JsonError> {
    encode(value, false)
}

/// The same value with every object's keys sorted: one text per value, whatever the order its
/// fields were written in (used to break ties the same way on every machine).
pub fn canonical(value: &LuaValue) -> Result<Vec<u8>, JsonError> {
    let json = encode(value, true)?;
    serde_json::to_vec(&json).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Encodes a value as compact JSON bytes.
pub fn to_json_bytes(value: &LuaValue) -> Result<Vec<u8>, JsonError> {
    let json = to_json(value)?;
    serde_json::to_vec(&json).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Decodes JSON bytes made by [`to_json_bytes`].
pub fn from_json_bytes(bytes: &[u8]) -> Result<LuaValue, JsonError> {
    use serde::Deserialize;
    // Tables nest down to Lua's limit, and a tagged value adds one level.
    if nesting_over(bytes, MAX_TABLE_DEPTH + 1) {
        return Err(JsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let json = Value::deserialize(&mut de).map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    from_json(&json)
}

/// Decodes a JSON value made by [`to_json`].
pub fn from_json(json: &Value) -> Result<LuaValue, JsonError> {
    decode(json, 0)
}

fn encode(value: &LuaValue, sorted: bool) -> Result<Value, JsonError> {
    Ok(match value {
        LuaValue::Bool(b) => Value::Bool(*b),
        LuaValue::Number(n) => encode_number(n)?,
        LuaValue::Str(s) => match std::str::from_utf8(s) {
            Ok(text) => Value::String(text.to_string()),
            Err(_) => tagged(BYTES, hex(s)),
        },
        LuaValue::Table(t) => encode_table(t, sorted)?,
    })
}

fn tagged(tag: &str, text: String) -> Value {
    let mut map = Map::new();
    map.insert(tag.to_string(), Value::String(text));
    Value::Object(map)
}

fn number_text(n: &Number) -> Result<String, JsonError> {
    match n.text() {
        Some(text) => Ok(text.to_string()),
        None => format_number(n.value()).map_err(|_| JsonError::Number(n.value().to_string())),
    }
}

fn encode_number(n: &Number) -> Result<Value, JsonError> {
    // A numeral Lua reads as infinite (`1e400`) has no shortest form: its text travels.
    if let (false, Some(text)) = (n.value().is_finite(), n.text()) {
        return Ok(tagged(NUM, text.to_string()));
    }
    let shortest =
        format_number(n.value()).map_err(|_| JsonError::Number(n.value().to_string()))?;
    let text = number_text(n)?;
    if text == shortest
        && let Ok(Value::Number(json)) = serde_json::from_str::<Value>(&text)
    {
        return Ok(Value::Number(json));
    }
    Ok(tagged(NUM, text))
}

fn encode_table(t: &Table, sorted: bool) -> Result<Value, JsonError> {
    let n = t.len();
    if n > 0 && t.sequence_len() == n {
        // Keys are exactly 1..n (in any order): an array, in index order.
        let mut items: Vec<(usize, &LuaValue)> = t
            .entries()
            .iter()
            .map(|(k, v)| (k.as_index().unwrap_or(0), v))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        let items = items
            .into_iter()
            .map(|(_, v)| encode(v, sorted))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(items));
    }
    let mut fields: Vec<(String, Value)> = t
        .entries()
        .iter()
        .map(|(k, v)| Ok((encode_key(k)?, encode(v, sorted)?)))
        .collect::<Result<_, JsonError>>()?;
    if sorted {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(Value::Object(fields.into_iter().collect()))
}

/// The JSON object key of a Lua key.
pub fn encode_key(key: &Key) -> Result<String, JsonError> {
    Ok(match key {
        Key::Str(s) => match std::str::from_utf8(s) {
            Ok(text) if text.starts_with('$') || text.starts_with('#') => format!("${text}"),
            Ok(text) => text.to_string(),
            Err(_) => format!("$x{}", hex(s)),
        },
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
            return Ok(Key::Str(rest.as_bytes().to_vec()));
        }
        if let Some(h) = rest.strip_prefix('x') {
            return Ok(Key::Str(unhex(h)?));
        }
        return Err(JsonError::Key(key.to_string()));
    }
    Ok(Key::Str(key.as_bytes().to_vec()))
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

fn decode(json: &Value, depth: u32) -> Result<LuaValue, JsonError> {
    Ok(match json {
        Value::Null => return Err(JsonError::Null),
        Value::Bool(b) => LuaValue::Bool(*b),
        Value::Number(n) => {
            let text = n.to_string();
            LuaValue::Number(parse_number(&text, false).ok_or(JsonError::Number(text))?)
        }
        Value::String(s) => LuaValue::Str(s.as_bytes().to_vec()),
        Value::Array(items) => {
            if depth >= MAX_TABLE_DEPTH {
                return Err(JsonError::TooDeep);
            }
            let values = items
                .iter()
                .map(|v| decode(v, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            LuaValue::Table(Table::array(values))
        }
        Value::Object(map) => {
            if map.len() == 1
                && let Some((tag, Value::String(text))) = map.iter().next()
            {
                match tag.as_str() {
                    BYTES => return Ok(LuaValue::Str(unhex(text)?)),
                    NUM => {
                        return parse_number(text, true)
                            .map(LuaValue::Number)
                            .ok_or_else(|| JsonError::Number(text.clone()));
                    }
                    _ => {}
                }
            }
            if depth >= MAX_TABLE_DEPTH {
                return Err(JsonError::TooDeep);
            }
            let mut table = Table::new();
            for (k, v) in map {
                table.insert(decode_key(k)?, decode(v, depth + 1)?);
            }
            LuaValue::Table(table)
        }
    })
}

/// Lowercase hex of bytes (also the chunk journal's encoding).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
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
            (Key::str("$bytes"), LuaValue::Str(vec![0xff, 0x00, b'a'])),
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
            (Key::Str(vec![0xe9]), LuaValue::str("x")),
            (Key::int(1), LuaValue::str("first")),
        ]));
        let json = to_json(&v).unwrap();
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
    fn canonical_text_ignores_field_order() {
        let a = LuaValue::Table(Table::from_entries([
            (Key::str("b"), LuaValue::str("1")),
            (Key::str("a"), LuaValue::str("2")),
        ]));
        let b = LuaValue::Table(Table::from_entries([
            (Key::str("a"), LuaValue::str("2")),
            (Key::str("b"), LuaValue::str("1")),
        ]));
        assert_eq!(canonical(&a).unwrap(), canonical(&b).unwrap());
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
