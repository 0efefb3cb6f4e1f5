//! Writing values in the layout the WoW client uses.
//!
//! Two layouts are in the wild: the tabs era (before patch 10.2.7: tab indentation, array items
//! followed by `-- [n]`) and the flat era (every line at column 0, no comments). Both use
//! `["key"] = value,` for string keys, `[n] = value,` for other keys, a trailing comma on every
//! field, the array part first, and `{` newline `}` for an empty table. Line endings are LF or
//! CRLF, whatever the file already uses.

use super::limits::MAX_TABLE_DEPTH;
use super::number::{NumberError, format_number};
use super::text::write_quoted;
use super::value::{Key, LuaValue, Number, Table, sequence_len};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indent {
    /// Tab indentation and `-- [n]` after array items.
    Tabs,
    /// Everything at column 0 (the client since 10.2.7).
    Flat,
}

/// The line break a file uses. Lua 5.1 counts `\n`, `\r`, `\r\n` and `\n\r` each as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    CrLf,
    /// Old Mac style.
    Cr,
    LfCr,
}

impl LineEnding {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::CrLf => b"\r\n",
            LineEnding::Cr => b"\r",
            LineEnding::LfCr => b"\n\r",
        }
    }

    /// The first line break of `src` (LF when there is none).
    pub fn detect(src: &[u8]) -> LineEnding {
        match memchr::memchr2(b'\n', b'\r', src) {
            Some(i) => match (src[i], src.get(i + 1)) {
                (b'\r', Some(b'\n')) => LineEnding::CrLf,
                (b'\r', _) => LineEnding::Cr,
                (_, Some(b'\r')) => LineEnding::LfCr,
                _ => LineEnding::Lf,
            },
            None => LineEnding::Lf,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub indent: Indent,
    pub line_ending: LineEnding,
}

impl Default for Layout {
    /// The current client's layout.
    fn default() -> Self {
        Layout {
            indent: Indent::Flat,
            line_ending: LineEnding::Lf,
        }
    }
}

impl Layout {
    /// The layout of an existing file: its first line break decides the line ending, the first
    /// line inside a non-empty table decides the indentation. Files with neither get the
    /// current client's layout.
    pub fn detect(src: &[u8]) -> Layout {
        let line_ending = LineEnding::detect(src);
        let mut indent = Indent::Flat;
        let mut previous_opens = false;
        let sep = if line_ending == LineEnding::Cr {
            b'\r'
        } else {
            b'\n'
        };
        for line in src.split(|&b| b == sep) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_prefix(b"\r").unwrap_or(line);
            if previous_opens {
                match line.first() {
                    Some(b'\t') => {
                        indent = Indent::Tabs;
                        break;
                    }
                    Some(b'}') | None => {}
                    Some(_) => break,
                }
            }
            previous_opens = line.trim_ascii_end().ends_with(b"{");
        }
        Layout {
            indent,
            line_ending,
        }
    }
}

/// Why a value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Number(#[from] NumberError),
    #[error(
        "tables are nested more than {MAX_TABLE_DEPTH} levels deep; Lua 5.1 could not load the result"
    )]
    TooDeep,
    /// Where the text was going refused it (the caller knows why).
    #[error("the text could not be written out")]
    Spill,
}

/// Hands on a writer's buffer (and empties it) while a large table is written: see
/// [`write_items_spilling`].
pub type Spill<'s> = dyn FnMut(&mut Vec<u8>) -> Result<(), WriteError> + 's;

/// A buffer that holds this much is handed on after the field that filled it.
const SPILL_AT: usize = 1 << 16;

/// Appends `value` as it appears after `key = `, for a field whose line is indented `depth`
/// levels (its own fields go one level deeper, its closing brace at `depth`).
pub fn write_value(
    out: &mut Vec<u8>,
    value: &LuaValue,
    layout: Layout,
    depth: usize,
) -> Result<(), WriteError> {
    Writer {
        out,
        layout,
        spill: None,
    }
    .value(value, depth)
}

/// A whole file: the leading empty line the client writes, then `Name = value` per global
/// (`Name = nil` for `None`).
pub fn write_file(
    globals: &[(&str, Option<&LuaValue>)],
    layout: Layout,
) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::new();
    let nl = layout.line_ending.as_bytes();
    out.extend_from_slice(nl);
    for (name, value) in globals {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b" = ");
        match value {
            Some(v) => write_value(&mut out, v, layout, 0)?,
            None => out.extend_from_slice(b"nil"),
        }
        out.extend_from_slice(nl);
    }
    Ok(out)
}

/// Appends a number's text: its original text if it has one, else the shortest round trip.
pub fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), NumberError> {
    match n.text() {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => out.extend_from_slice(format_number(n.value())?.as_bytes()),
    }
    Ok(())
}

/// Appends a key as the client writes it: `["text"]`, `[12]`, `[true]`.
pub fn write_key(out: &mut Vec<u8>, key: &Key) -> Result<(), NumberError> {
    out.push(b'[');
    match key {
        Key::Str(s) => write_quoted(out, s),
        Key::Num(n) => write_number(out, n)?,
        Key::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
    out.push(b']');
    Ok(())
}

/// A table whose fields are tables, each given as items (`{ ["k"] = { items }, ... }`, in this
/// order; no key may be an index of the array part), as [`write_items`] writes it, handing `out`
/// to `spill` as [`write_items_spilling`] does.
pub fn write_tables_spilling(
    out: &mut Vec<u8>,
    tables: &[(&Key, &[(&Key, Item<'_>)])],
    layout: Layout,
    depth: usize,
    spill: &mut Spill<'_>,
) -> Result<(), WriteError> {
    let mut w = Writer {
        out,
        layout,
        spill: Some(spill),
    };
    if depth >= MAX_TABLE_DEPTH as usize {
        return Err(WriteError::TooDeep);
    }
    w.out.push(b'{');
    w.newline();
    for (key, items) in tables {
        w.keyed(key, depth, |w| w.items(items, depth + 1))?;
    }
    w.indent(depth);
    w.out.push(b'}');
    Ok(())
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
    layout: Layout,
    spill: Option<&'o mut Spill<'o>>,
}

impl Writer<'_> {
    fn value(&mut self, value: &LuaValue, depth: usize) -> Result<(), WriteError> {
        match value {
            LuaValue::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            LuaValue::Number(n) => write_number(self.out, n)?,
            LuaValue::Str(s) => write_quoted(self.out, s),
            LuaValue::Table(t) => self.table(t, depth)?,
        }
        Ok(())
    }

    fn indent(&mut self, depth: usize) {
        if self.layout.indent == Indent::Tabs {
            self.out.extend(std::iter::repeat_n(b'\t', depth));
        }
    }

    fn newline(&mut self) {
        self.out
            .extend_from_slice(self.layout.line_ending.as_bytes());
    }

    fn table(&mut self, table: &Table, depth: usize) -> Result<(), WriteError> {
        let items: Vec<(&Key, Item<'_>)> = table.iter().map(|(k, v)| (k, Item::Value(v))).collect();
        self.items(&items, depth)
    }

    /// A table of these entries (in table order), as the client writes one: the array part as
    /// items with `-- [n]` comments (tabs layout), then every other key.
    fn items(&mut self, items: &[(&Key, Item<'_>)], depth: usize) -> Result<(), WriteError> {
        if depth >= MAX_TABLE_DEPTH as usize {
            return Err(WriteError::TooDeep);
        }
        self.out.push(b'{');
        self.newline();
        let n = sequence_len(items.iter().map(|(k, _)| *k));
        let mut array: Vec<Option<&Item<'_>>> = vec![None; n];
        for (k, v) in items {
            if let Some(i) = k.as_index().filter(|&i| i <= n) {
                array[i - 1] = Some(v);
            }
        }
        for (i, item) in array.into_iter().enumerate() {
            // `sequence_len` guarantees every index up to n is present.
            let Some(item) = item else { continue };
            self.indent(depth + 1);
            self.item(item, depth + 1)?;
            self.out.push(b',');
            if self.layout.indent == Indent::Tabs {
                self.out
                    .extend_from_slice(format!(" -- [{}]", i + 1).as_bytes());
            }
            self.newline();
            self.spill_if_full()?;
        }
        for (k, v) in items {
            if k.as_index().is_some_and(|i| i <= n) {
                continue;
            }
            self.keyed(k, depth, |w| w.item(v, depth + 1))?;
        }
        self.indent(depth);
        self.out.push(b'}');
        Ok(())
    }

    /// `["key"] = value,` on its own line, a field of a table whose line is at `depth`.
    fn keyed(
        &mut self,
        key: &Key,
        depth: usize,
        value: impl FnOnce(&mut Self) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        self.indent(depth + 1);
        write_key(self.out, key)?;
        self.out.extend_from_slice(b" = ");
        value(self)?;
        self.out.push(b',');
        self.newline();
        self.spill_if_full()
    }

    fn spill_if_full(&mut self) -> Result<(), WriteError> {
        match &mut self.spill {
            Some(spill) if self.out.len() >= SPILL_AT => spill(self.out),
            _ => Ok(()),
        }
    }

    fn item(&mut self, item: &Item<'_>, depth: usize) -> Result<(), WriteError> {
        match item {
            Item::Value(v) => self.value(v, depth),
            Item::Text(text) => {
                self.out.extend_from_slice(text);
                Ok(())
            }
        }
    }
}

/// A value of a table being written.
#[derive(Debug, Clone, Copy)]
pub enum Item<'v> {
    Value(&'v LuaValue),
    /// A value's text as it already is in the file, written unchanged (it must sit at the same
    /// depth it was read at).
    Text(&'v [u8]),
}

/// Appends a table of `items` (in table order) as it appears after `key = `, for a field
/// whose line is indented `depth` levels: see [`write_value`].
pub fn write_items(
    out: &mut Vec<u8>,
    items: &[(&Key, Item<'_>)],
    layout: Layout,
    depth: usize,
) -> Result<(), WriteError> {
    Writer {
        out,
        layout,
        spill: None,
    }
    .items(items, depth)
}

/// [`write_items`], handing `out` to `spill` whenever it holds 64 KiB after a field (so the
/// text of a large table never exists whole: `spill` writes it out and empties `out`).
pub fn write_items_spilling(
    out: &mut Vec<u8>,
    items: &[(&Key, Item<'_>)],
    layout: Layout,
    depth: usize,
    spill: &mut Spill<'_>,
) -> Result<(), WriteError> {
    Writer {
        out,
        layout,
        spill: Some(spill),
    }
    .items(items, depth)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_line_ending_lua_knows_is_detected() {
        use super::LineEnding::*;
        for (src, want) in [
            (&b"X = {\n}\n"[..], Lf),
            (b"X = {\r\n}\r\n", CrLf),
            (b"X = {\r}\r", Cr),
            (b"X = {\n\r}\n\r", LfCr),
            (b"X = 1", Lf),
        ] {
            assert_eq!(super::LineEnding::detect(src), want);
        }
        assert_eq!(
            super::Layout::detect(b"X = {\r\t[\"a\"] = 1,\r}\r").indent,
            super::Indent::Tabs
        );
    }

    use super::*;

    fn sample() -> LuaValue {
        LuaValue::Table(Table::from_entries([
            (Key::int(1), LuaValue::str("a")),
            (Key::int(2), LuaValue::Number(Number::new(2.5))),
            (Key::str("k"), LuaValue::Table(Table::new())),
            (Key::int(7), LuaValue::Bool(true)),
        ]))
    }

    #[test]
    fn tabs_layout() {
        let layout = Layout {
            indent: Indent::Tabs,
            line_ending: LineEnding::Lf,
        };
        let out = write_file(&[("X", Some(&sample()))], layout).unwrap();
        let expected =
            "\nX = {\n\t\"a\", -- [1]\n\t2.5, -- [2]\n\t[\"k\"] = {\n\t},\n\t[7] = true,\n}\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn flat_crlf_layout() {
        let layout = Layout {
            indent: Indent::Flat,
            line_ending: LineEnding::CrLf,
        };
        let out = write_file(&[("X", Some(&sample())), ("Y", None)], layout).unwrap();
        let expected =
            "\r\nX = {\r\n\"a\",\r\n2.5,\r\n[\"k\"] = {\r\n},\r\n[7] = true,\r\n}\r\nY = nil\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn kept_number_text_is_written_back() {
        let mut out = Vec::new();
        write_number(&mut out, &Number::with_text(0.1, "0.1000000014901161")).unwrap();
        assert_eq!(out, b"0.1000000014901161");
        assert!(write_number(&mut out, &Number::new(f64::INFINITY)).is_err());
    }

    #[test]
    fn detects_layouts() {
        assert_eq!(
            Layout::detect(b"\r\nX = {\r\n\t[\"a\"] = 1,\r\n}\r\n"),
            Layout {
                indent: Indent::Tabs,
                line_ending: LineEnding::CrLf
            }
        );
        assert_eq!(
            Layout::detect(b"\nX = {\n}\nY = {\n[\"a\"] = 1,\n}\n").indent,
            Indent::Flat
        );
        assert_eq!(
            Layout::detect(b"\nX = {\n}\nY = {\n\t1, -- [1]\n}\n").indent,
            Indent::Tabs
        );
        assert_eq!(Layout::detect(b""), Layout::default());
    }

    #[test]
    fn refuses_too_deep() {
        let mut v = LuaValue::Table(Table::new());
        for _ in 0..MAX_TABLE_DEPTH {
            v = LuaValue::Table(Table::array([v]));
        }
        assert_eq!(
            write_value(&mut Vec::new(), &v, Layout::default(), 0),
            Err(WriteError::TooDeep)
        );
    }
}
