//! The canonical text of a record, used only to break ties (equal stamps, different content)
//! the same way on every machine. It is defined byte for byte (`docs/PROTOCOL.md`, "Merge rules
//! and the canonical text"), so a Lua 5.1 implementation can reproduce it with
//! `string.format("%.17g")` and byte comparison:
//!
//! - `true`, `false`.
//! - A number: an integer of magnitude below 2^53 as decimal digits (`-` if negative, `0` for
//!   zero); otherwise C's `%.17g`, with the exponent written as `e`, a sign and at least two
//!   digits; `inf`, `-inf`, `nan`.
//! - A string: `"`, its bytes with `"` and `\` escaped by `\` and bytes below 0x20 as `\u00xx`
//!   (lowercase hex), `"`. Other bytes are copied as they are (no UTF-8 check).
//! - A table whose keys are exactly `1..n` (n > 0): `[`, the values in order joined by `,`, `]`.
//! - Any other table: `{`, its fields `key:value` joined by `,`, sorted by the bytes of the
//!   key's text, `}`. A key's text is a string as above, of: a string key itself (with one `$`
//!   in front if it starts with `$` or `#`), `#` and the number's text for a number key, `#true`
//!   or `#false` for a boolean key.

use std::fmt::Write as _;

use crate::lua::{Key, LuaValue, Table};

/// The canonical text of a value.
pub fn canonical(v: &LuaValue) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, v);
    out
}

/// A number's canonical text.
pub fn number_text(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        return format!("{}", v as i64);
    }
    g17(v)
}

/// C's `%.17g`, with a two-digit minimum exponent.
fn g17(v: f64) -> String {
    const P: i32 = 17;
    let e = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if (-4..P).contains(&x) {
        let fixed = format!("{:.*}", (P - 1 - x) as usize, v);
        strip_zeros(&fixed).to_string()
    } else {
        let m = strip_zeros(mantissa);
        let mut out = String::with_capacity(m.len() + 5);
        out.push_str(m);
        out.push('e');
        out.push(if x < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", x.unsigned_abs());
        out
    }
}

/// `%g` drops trailing zeros of the fraction, and the point when nothing follows it.
fn strip_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn key_text(k: &Key) -> Vec<u8> {
    let mut raw = Vec::new();
    match k {
        Key::Str(s) => {
            if s.first().is_some_and(|&c| c == b'$' || c == b'#') {
                raw.push(b'$');
            }
            raw.extend_from_slice(s);
        }
        Key::Num(n) => {
            raw.push(b'#');
            raw.extend_from_slice(number_text(n.value()).as_bytes());
        }
        Key::Bool(b) => raw.extend_from_slice(if *b { b"#true" } else { b"#false" }),
    }
    let mut out = Vec::with_capacity(raw.len() + 2);
    write_string(&mut out, &raw);
    out
}

fn write_table(out: &mut Vec<u8>, t: &Table) {
    let n = t.len();
    if n > 0 && t.sequence_len() == n {
        out.push(b'[');
        for i in 1..=n {
            if i > 1 {
                out.push(b',');
            }
            if let Some(v) = t.get(&Key::int(i as i64)) {
                write_value(out, v);
            }
        }
        out.push(b']');
        return;
    }
    let mut fields: Vec<(Vec<u8>, &LuaValue)> = t.iter().map(|(k, v)| (key_text(k), v)).collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, v: &LuaValue) {
    match v {
        LuaValue::Bool(true) => out.extend_from_slice(b"true"),
        LuaValue::Bool(false) => out.extend_from_slice(b"false"),
        LuaValue::Number(n) => out.extend_from_slice(number_text(n.value()).as_bytes()),
        LuaValue::Str(s) => write_string(out, s),
        LuaValue::Table(t) => write_table(out, t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::Number;

    #[test]
    fn numbers_follow_percent_17g() {
        for (v, want) in [
            (80.0, "80"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "0"),
            (633.5, "633.5"),
            (0.1, "0.10000000000000001"),
            (621.875, "621.875"),
            (1e20, "1e+20"),
            (1e16, "10000000000000000"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (2.288818359375e-05, "2.288818359375e-05"),
            (1.5e-7, "1.4999999999999999e-07"),
            (0.0001, "0.0001"),
            (123_456_789_012_345_680_000.0, "1.2345678901234568e+20"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (1e300, "1.0000000000000001e+300"),
        ] {
            assert_eq!(number_text(v), want, "{v}");
        }
    }

    #[test]
    fn tables_sort_their_keys_and_arrays_keep_order() {
        let t = LuaValue::Table(Table::from_entries([
            (Key::str("b"), LuaValue::str("x\"y\n")),
            (
                Key::str("a"),
                LuaValue::Table(Table::array([LuaValue::Bool(true)])),
            ),
            (
                Key::str("#k"),
                LuaValue::Number(Number::with_text(1.5, "1.50")),
            ),
            (Key::int(2), LuaValue::Bool(false)),
        ]));
        assert_eq!(
            String::from_utf8(canonical(&t)).unwrap(),
            r##"{"#2":false,"$#k":1.5,"a":[true],"b":"x\"y\u000a"}"##
        );
        assert_eq!(canonical(&LuaValue::Table(Table::new())), b"{}");
    }
}
