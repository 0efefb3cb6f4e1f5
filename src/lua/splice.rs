//! Replacing values inside a SavedVariables file while every other byte stays identical.
//!
//! A path names a value by a global and string keys, e.g. `GuildHelper_SavedVariables` ->
//! `sharedDataRemote` -> `roster`. An existing value is replaced in place (its span is
//! rewritten, nothing around it); a missing one is added as a new last field of the deepest
//! table that exists, in the file's layout.

use super::lexer::{Lexer, Tok};
use super::limits::MAX_TABLE_DEPTH;
use super::syntax::{Document, Kind, Node};
use super::value::{Key, LuaValue};
use super::write::{Indent, Layout, WriteError, write_key, write_value};

/// A value's place: a global and the string keys below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPath<'p> {
    pub global: &'p str,
    pub keys: &'p [&'p str],
}

impl std::fmt::Display for KeyPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.global)?;
        for k in self.keys {
            write!(f, ".{k}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpliceError {
    #[error("`{0}` is not defined in the file")]
    MissingGlobal(String),
    #[error("`{0}` is not a table, so nothing can be stored under it")]
    NotATable(String),
    #[error("`{0}` was not kept when the file was parsed")]
    NotKept(String),
    #[error("two edits overlap at `{0}`")]
    Overlap(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Writes a value's text at a depth (see [`write_value`]).
pub type WriteFn<'w> = dyn Fn(&mut Vec<u8>, usize) -> Result<(), WriteError> + 'w;

/// `{ ["k1"] = { ["k2"] = ... value ... } }` for the keys of `tail`, as the writer writes
/// tables of one key.
fn write_nested(
    out: &mut Vec<u8>,
    tail: &[&str],
    write: &WriteFn<'_>,
    layout: Layout,
    depth: usize,
) -> Result<(), WriteError> {
    let Some((key, rest)) = tail.split_first() else {
        return write(out, depth);
    };
    if depth >= MAX_TABLE_DEPTH as usize {
        return Err(WriteError::TooDeep);
    }
    let indent = |out: &mut Vec<u8>, d: usize| {
        if layout.indent == Indent::Tabs {
            out.extend(std::iter::repeat_n(b'\t', d));
        }
    };
    out.push(b'{');
    out.extend_from_slice(layout.line_ending.as_bytes());
    indent(out, depth + 1);
    write_key(out, &Key::str(key))?;
    out.extend_from_slice(b" = ");
    write_nested(out, rest, write, layout, depth + 1)?;
    out.push(b',');
    out.extend_from_slice(layout.line_ending.as_bytes());
    indent(out, depth);
    out.push(b'}');
    Ok(())
}

/// A set of replacements on one document, applied together.
pub struct Splicer<'d, 'a, 'w> {
    doc: &'d Document<'a>,
    layout: Layout,
    edits: Vec<Edit<'w>>,
}

struct Edit<'w> {
    start: usize,
    end: usize,
    text: Text<'w>,
    path: String,
}

/// A new field's value: made already, or written when finishing.
enum Value<'w> {
    Made(Vec<u8>),
    Later(&'w WriteFn<'w>),
}

/// An edit's new text: made already, or written straight into the output by `finish` (a large
/// table then never exists twice, as its own text and in the output).
enum Text<'w> {
    Made(Vec<u8>),
    Later {
        write: &'w WriteFn<'w>,
        depth: usize,
    },
}

impl<'d, 'a, 'w> Splicer<'d, 'a, 'w> {
    pub fn new(doc: &'d Document<'a>, layout: Layout) -> Self {
        Splicer {
            doc,
            layout,
            edits: Vec::new(),
        }
    }

    /// Sets the value at `path`: replaces it if present, adds it (and any missing tables on the
    /// way) if not. The global itself must exist and be a table when `keys` is not empty.
    pub fn set(&mut self, path: KeyPath<'_>, value: &LuaValue) -> Result<(), SpliceError> {
        let layout = self.layout;
        self.place(
            path,
            &|out, depth| write_value(out, value, layout, depth),
            None,
        )
    }

    /// [`Splicer::set`] with the value's text made by `write(out, depth)` (as
    /// [`write_value`] would write a value at that depth). A replacement is written straight
    /// into the output by [`Splicer::finish`].
    pub fn set_with(
        &mut self,
        path: KeyPath<'_>,
        write: &'w WriteFn<'w>,
    ) -> Result<(), SpliceError> {
        self.place(path, write, Some(write))
    }

    /// Finds where `path` goes; `later`: write a replacement only when finishing.
    fn place(
        &mut self,
        path: KeyPath<'_>,
        write: &WriteFn<'_>,
        later: Option<&'w WriteFn<'w>>,
    ) -> Result<(), SpliceError> {
        let doc = self.doc;
        let global = doc
            .global(path.global)
            .ok_or_else(|| SpliceError::MissingGlobal(path.global.to_string()))?;
        let Some((last, parents)) = path.keys.split_last() else {
            let mut text = Vec::new();
            write(&mut text, 0)?;
            return self.push(global.value.span.range(), text, path);
        };
        let mut table = global.value;
        let mut depth = 0usize;
        let mut walked = vec![path.global];
        for (i, key) in parents.iter().chain(std::iter::once(last)).enumerate() {
            self.check_table(table, &walked)?;
            let is_last = i == parents.len();
            match doc.get(table, key.as_bytes()) {
                Some(field) if is_last => {
                    let range = field.value.span.range();
                    if let Some(write) = later {
                        self.edits.push(Edit {
                            start: range.start,
                            end: range.end,
                            text: Text::Later {
                                write,
                                depth: depth + 1,
                            },
                            path: path.to_string(),
                        });
                        return Ok(());
                    }
                    let mut text = Vec::new();
                    write(&mut text, depth + 1)?;
                    return self.push(range, text, path);
                }
                Some(field) => {
                    table = field.value;
                    depth += 1;
                    walked.push(key);
                }
                None => {
                    // The missing tail, as nested tables around the value.
                    let tail = &path.keys[i + 1..];
                    let value = match later {
                        // The value itself is the new field's: written when finishing.
                        Some(later) if tail.is_empty() => Value::Later(later),
                        _ => {
                            let layout = self.layout;
                            let mut text = Vec::new();
                            write_nested(&mut text, tail, write, layout, depth + 1)?;
                            Value::Made(text)
                        }
                    };
                    return self.insert(table, depth, key, value, path);
                }
            }
        }
        Ok(())
    }

    fn check_table(&self, node: Node, walked: &[&str]) -> Result<(), SpliceError> {
        match node.kind {
            Kind::Table { .. } => Ok(()),
            Kind::Skipped | Kind::Deferred => Err(SpliceError::NotKept(walked.join("."))),
            _ => Err(SpliceError::NotATable(walked.join("."))),
        }
    }

    /// Adds `["key"] = value,` as the last field of `table`, whose own line is at `depth`.
    fn insert(
        &mut self,
        table: Node,
        depth: usize,
        key: &str,
        value: Value<'w>,
        path: KeyPath<'_>,
    ) -> Result<(), SpliceError> {
        let src = self.doc.src();
        let nl = self.layout.line_ending.as_bytes();
        let close = table.span.end as usize - 1;
        let mut before = Vec::new();
        self.indent(&mut before, depth + 1);
        write_key(&mut before, &Key::str(key)).map_err(WriteError::from)?;
        before.extend_from_slice(b" = ");
        let mut after = b",".to_vec();

        // A separator after the last field if it has none (the client always writes one).
        if let Some(last) = self.doc.fields(table).last() {
            let end = last.value.span.end as usize;
            if !next_token_is_separator(&src[end..close]) {
                self.push(end..end, b",".to_vec(), path)?;
            }
        }
        let line_start = src[..close]
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |i| i + 1);
        let brace_on_own_line = line_start > 0 && matches!(src[line_start - 1], b'\n' | b'\r');
        let at = if brace_on_own_line {
            after.extend_from_slice(nl);
            line_start
        } else {
            before.splice(0..0, nl.iter().copied());
            after.extend_from_slice(nl);
            self.indent(&mut after, depth);
            close
        };
        // Three insertions at one point, kept in this order.
        match value {
            Value::Made(text) => {
                before.extend_from_slice(&text);
                before.extend_from_slice(&after);
                self.push(at..at, before, path)
            }
            Value::Later(write) => {
                self.push(at..at, before, path)?;
                self.edits.push(Edit {
                    start: at,
                    end: at,
                    text: Text::Later {
                        write,
                        depth: depth + 1,
                    },
                    path: path.to_string(),
                });
                self.push(at..at, after, path)
            }
        }
    }

    fn indent(&self, out: &mut Vec<u8>, depth: usize) {
        if self.layout.indent == Indent::Tabs {
            out.extend(std::iter::repeat_n(b'\t', depth));
        }
    }

    fn push(
        &mut self,
        range: std::ops::Range<usize>,
        text: Vec<u8>,
        path: KeyPath<'_>,
    ) -> Result<(), SpliceError> {
        self.edits.push(Edit {
            start: range.start,
            end: range.end,
            text: Text::Made(text),
            path: path.to_string(),
        });
        Ok(())
    }

    /// The edits in file order; an error if two overlap (an insertion may touch a
    /// replacement's boundary).
    fn sorted(&mut self) -> Result<(), SpliceError> {
        // Stable: insertions at one point keep the order they were made in.
        self.edits.sort_by_key(|e| (e.start, e.end));
        let mut at = 0;
        for edit in &self.edits {
            if edit.start < at {
                return Err(SpliceError::Overlap(edit.path.clone()));
            }
            at = edit.end;
        }
        Ok(())
    }

    /// [`Splicer::finish`], handed to `sink` piece by piece instead of built in memory. A
    /// replacement written later is made in a buffer, which its writer may hand to `sink`
    /// itself on the way (see [`write_items_spilling`](super::write_items_spilling)); what is
    /// left in the buffer follows it.
    pub fn finish_to(
        mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), SpliceError>,
    ) -> Result<(), SpliceError> {
        self.sorted()?;
        let src = self.doc.src();
        let mut at = 0;
        let mut buf = Vec::new();
        for edit in &self.edits {
            sink(&src[at..edit.start])?;
            match &edit.text {
                Text::Made(text) => sink(text)?,
                Text::Later { write, depth } => {
                    buf.clear();
                    write(&mut buf, *depth)?;
                    sink(&buf)?;
                }
            }
            at = edit.end;
        }
        sink(&src[at..])
    }

    /// The file with every edit applied. Edits must not overlap (an insertion may touch a
    /// replacement's boundary).
    pub fn finish(mut self) -> Result<Vec<u8>, SpliceError> {
        self.sorted()?;
        let src = self.doc.src();
        // A text written later is guessed as long as what it replaces.
        let added: usize = self
            .edits
            .iter()
            .map(|e| match &e.text {
                Text::Made(t) => t.len(),
                Text::Later { .. } => e.end.saturating_sub(e.start),
            })
            .sum();
        let removed: usize = self
            .edits
            .iter()
            .map(|e| e.end.saturating_sub(e.start))
            .sum();
        let mut out = Vec::with_capacity((src.len() + added).saturating_sub(removed));
        let mut at = 0;
        for edit in &self.edits {
            out.extend_from_slice(&src[at..edit.start]);
            match &edit.text {
                Text::Made(text) => out.extend_from_slice(text),
                Text::Later { write, depth } => write(&mut out, *depth)?,
            }
            at = edit.end;
        }
        out.extend_from_slice(&src[at..]);
        Ok(out)
    }
}

/// Whether the first token in `between` (the text after a field, up to the closing brace) is
/// a field separator. Uses the lexer, so comments of every kind are skipped exactly.
fn next_token_is_separator(between: &[u8]) -> bool {
    matches!(
        Lexer::new(between).next_token().map(|t| t.tok),
        Ok(Tok::Comma | Tok::Semi)
    )
}

/// Replaces or adds one value; see [`Splicer::set`].
pub fn splice(
    doc: &Document<'_>,
    path: KeyPath<'_>,
    value: &LuaValue,
    layout: Layout,
) -> Result<Vec<u8>, SpliceError> {
    let mut splicer = Splicer::new(doc, layout);
    splicer.set(path, value)?;
    splicer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::{Table, parse};

    fn gh(keys: &'static [&'static str]) -> KeyPath<'static> {
        KeyPath { global: "GH", keys }
    }

    #[test]
    fn replaces_in_place() {
        let src =
            b"\nGH = {\n\t[\"a\"] = 1,\n\t[\"b\"] = {\n\t\t\"x\", -- [1]\n\t},\n}\nOther = 5\n";
        let doc = parse(src).unwrap();
        let layout = Layout::detect(src);
        let out = splice(
            &doc,
            gh(&["b"]),
            &LuaValue::Table(Table::array([LuaValue::str("y")])),
            layout,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\nGH = {\n\t[\"a\"] = 1,\n\t[\"b\"] = {\n\t\t\"y\", -- [1]\n\t},\n}\nOther = 5\n"
        );
    }

    #[test]
    fn inserts_before_closing_brace() {
        let src = b"\r\nGH = {\r\n[\"a\"] = 1,\r\n}\r\n";
        let doc = parse(src).unwrap();
        let out = splice(
            &doc,
            gh(&["r"]),
            &LuaValue::Table(Table::new()),
            Layout::detect(src),
        )
        .unwrap();
        assert_eq!(
            out,
            b"\r\nGH = {\r\n[\"a\"] = 1,\r\n[\"r\"] = {\r\n},\r\n}\r\n".to_vec()
        );
    }

    #[test]
    fn inserts_nested_path_and_missing_separator() {
        let src = b"GH = { a = 1 }";
        let doc = parse(src).unwrap();
        let out = splice(
            &doc,
            gh(&["x", "y"]),
            &LuaValue::Bool(true),
            Layout::default(),
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "GH = { a = 1, \n[\"x\"] = {\n[\"y\"] = true,\n},\n}");
        assert!(parse(out.as_bytes()).is_ok());
    }

    #[test]
    fn separator_after_a_long_comment_is_found() {
        let src = b"GH = {\n[\"a\"] = 1 --[[ note ]],\n}\n";
        let doc = parse(src).unwrap();
        let out = splice(&doc, gh(&["b"]), &LuaValue::Bool(true), Layout::default()).unwrap();
        assert_eq!(
            out,
            b"GH = {\n[\"a\"] = 1 --[[ note ]],\n[\"b\"] = true,\n}\n".to_vec()
        );
    }

    #[test]
    fn several_edits_at_once() {
        let src = b"GH = {\n[\"a\"] = 1,\n[\"b\"] = 2,\n}\n";
        let doc = parse(src).unwrap();
        let mut s = Splicer::new(&doc, Layout::default());
        s.set(gh(&["b"]), &LuaValue::str("B")).unwrap();
        s.set(gh(&["a"]), &LuaValue::str("A")).unwrap();
        s.set(gh(&["c"]), &LuaValue::str("C")).unwrap();
        assert_eq!(
            String::from_utf8(s.finish().unwrap()).unwrap(),
            "GH = {\n[\"a\"] = \"A\",\n[\"b\"] = \"B\",\n[\"c\"] = \"C\",\n}\n"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let doc = parse(b"GH = 5").unwrap();
        assert_eq!(
            splice(&doc, gh(&["a"]), &LuaValue::Bool(true), Layout::default()),
            Err(SpliceError::NotATable("GH".into()))
        );
        assert_eq!(
            splice(
                &doc,
                KeyPath {
                    global: "Nope",
                    keys: &["a"]
                },
                &LuaValue::Bool(true),
                Layout::default()
            ),
            Err(SpliceError::MissingGlobal("Nope".into()))
        );
    }

    /// A value written when finishing (`set_with`) comes out as the same value set at once,
    /// whether it replaces a value or is a new field (at a closing brace on its own line or
    /// not), built in memory or handed out piece by piece.
    #[test]
    fn a_value_written_later_is_the_value_set_at_once() {
        let value = LuaValue::Table(Table::from_entries([
            (Key::str("x"), LuaValue::str("y")),
            (Key::int(1), LuaValue::Bool(true)),
        ]));
        let sources: [&[u8]; 4] = [
            b"\nGH = {\n\t[\"a\"] = 1,\n}\n",
            b"GH = { a = 1 }",
            b"\r\nGH = {\r\n[\"r\"] = {\r\n},\r\n}\r\n",
            b"GH = {}\n",
        ];
        for src in sources {
            let doc = parse(src).unwrap();
            let layout = Layout::detect(src);
            for keys in [&["r"][..], &["r", "s"][..]] {
                let path = KeyPath { global: "GH", keys };
                let want = splice(&doc, path, &value, layout);
                let write =
                    |out: &mut Vec<u8>, depth: usize| write_value(out, &value, layout, depth);
                let mut s = Splicer::new(&doc, layout);
                s.set_with(path, &write).unwrap();
                assert_eq!(s.finish(), want, "{}", String::from_utf8_lossy(src));
                let mut s = Splicer::new(&doc, layout);
                s.set_with(path, &write).unwrap();
                let mut pieces = Vec::new();
                s.finish_to(&mut |p| {
                    pieces.extend_from_slice(p);
                    Ok(())
                })
                .unwrap();
                assert_eq!(Ok(pieces), want, "{}", String::from_utf8_lossy(src));
            }
        }
    }
}
