//! The value tree of a parsed SavedVariables file: every value with its byte span.
//!
//! The tree borrows the file's bytes and stores no text of its own: a string is a span (decoded
//! on demand), a number is a span (its original text is the source), a table is a run of fields
//! in one arena. That keeps a tree of a large file small and lets `splice` replace one value
//! while every other byte stays where it was.

use std::borrow::Cow;

use super::number::numeral_value;
use super::text::{decode_long, decode_quoted};

/// A quoted string's body decoded (`escaped`: it has a backslash, as the lexer saw).
fn quoted(body: &[u8], escaped: bool) -> Cow<'_, [u8]> {
    if escaped {
        decode_quoted(body)
    } else {
        Cow::Borrowed(body)
    }
}

/// A byte range `start..end` in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What a value is. Text is never copied: see [`Document`] for reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nil,
    Bool(bool),
    /// A number; `digits` is where the numeral starts (after a unary minus, if any).
    Number {
        digits: u32,
    },
    /// A string literal; `open`/`close` are the delimiter lengths around its body.
    Str {
        open: u32,
        close: u32,
        long: bool,
        escaped: bool,
    },
    /// A table whose fields are `Document::fields[first..first + len]`.
    Table {
        first: u32,
        len: u32,
    },
    /// A table that was checked but not kept (outside the paths the caller asked for).
    Skipped,
    /// A table whose fields were let go after the parse ([`Document::defer`]): only its span
    /// is kept, and its value is read from its text when asked for ([`Document::value`];
    /// [`ParsedFile::table`](super::ParsedFile::table) parses it).
    Deferred,
}

/// A value and where it is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

/// How a field names its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKey {
    /// An item of the array part: `value,`
    Positional,
    /// `name = value`: the span of the name.
    Name(Span),
    /// `[key] = value`: the key (a string, number or boolean); [`Document::key_node`] gives it
    /// as a [`Node`].
    Bracket(KeyNode),
}

/// The key of a `[key] = value` field, in 12 bytes: what a [`Node`] of it would say beyond its
/// kind (where a long string's body starts) is read from the text when asked for, and a
/// negative number notes how far its digits are from the minus. A large file has millions of
/// fields; each is 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyNode {
    pub span: Span,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Str {
        long: bool,
        escaped: bool,
    },
    /// `minus`: how far the digits are from the start (0 without a minus sign; `u16::MAX`: at
    /// least that far, found again by skipping what is between).
    Number {
        minus: u16,
    },
    Bool(bool),
}

impl KeyNode {
    /// The key a value node makes (`None`: nil and tables are not keys).
    pub fn of(node: Node) -> Option<KeyNode> {
        let kind = match node.kind {
            Kind::Str { long, escaped, .. } => KeyKind::Str { long, escaped },
            Kind::Number { digits } => KeyKind::Number {
                minus: u16::try_from(digits.saturating_sub(node.span.start)).unwrap_or(u16::MAX),
            },
            Kind::Bool(b) => KeyKind::Bool(b),
            _ => return None,
        };
        Some(KeyNode {
            span: node.span,
            kind,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub key: FieldKey,
    pub value: Node,
}

const _: () = assert!(std::mem::size_of::<Field>() == 32);

/// One top-level `Name = value` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global {
    pub name: Span,
    pub value: Node,
}

/// A parsed file. Borrows the bytes it was parsed from.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    pub(crate) src: &'a [u8],
    pub(crate) globals: Vec<Global>,
    pub(crate) fields: Vec<Field>,
}

impl<'a> Document<'a> {
    pub fn src(&self) -> &'a [u8] {
        self.src
    }

    /// Every top-level statement in file order (a name assigned twice appears twice).
    pub fn globals(&self) -> &[Global] {
        &self.globals
    }

    /// The value a name has after the file runs: its last assignment.
    pub fn global(&self, name: &str) -> Option<&Global> {
        self.globals
            .iter()
            .rev()
            .find(|g| self.text(g.name) == name.as_bytes())
    }

    pub fn text(&self, span: Span) -> &'a [u8] {
        &self.src[span.range()]
    }

    /// The fields of a kept table (empty for anything else).
    pub fn fields(&self, node: Node) -> &[Field] {
        match node.kind {
            Kind::Table { first, len } => &self.fields[first as usize..(first + len) as usize],
            _ => &[],
        }
    }

    /// Keeps only the spans of `tables` (tables of this document): each becomes
    /// [`Kind::Deferred`] and the fields under it are let go, so that a file's records, once
    /// read, cost one node each. Their values are then read from their text when asked for.
    pub fn defer(&mut self, tables: &[Node]) {
        // What goes is one run of `fields` per table: its nested tables close, and append their
        // fields, before it appends its own.
        let mut starts = Vec::new();
        let mut runs = Vec::new();
        for node in tables {
            if let Kind::Table { first, len } = node.kind {
                starts.push(node.span.start);
                runs.push((self.subtree_start(first, len), first + len));
            }
        }
        if runs.is_empty() {
            return;
        }
        starts.sort_unstable();
        runs.sort_unstable();
        // Runs of tables nested in one another merge.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
        for (start, end) in runs {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        // Per run: its end, and how many fields go up to it.
        let mut gone = 0u32;
        let ends: Vec<(u32, u32)> = merged
            .iter()
            .map(|&(start, end)| {
                gone += end - start;
                (end, gone)
            })
            .collect();
        let moved = |i: u32| {
            let before = ends.partition_point(|&(end, _)| end <= i);
            i - before.checked_sub(1).map_or(0, |r| ends[r].1)
        };
        let remap = |node: Node| match node.kind {
            Kind::Table { .. } if starts.binary_search(&node.span.start).is_ok() => Node {
                kind: Kind::Deferred,
                ..node
            },
            Kind::Table { first, len } => Node {
                kind: Kind::Table {
                    first: moved(first),
                    len,
                },
                ..node
            },
            _ => node,
        };
        let mut out = 0usize;
        let mut at = 0usize;
        let mut runs = merged.iter().peekable();
        while at < self.fields.len() {
            if let Some(&&(start, end)) = runs.peek()
                && at == start as usize
            {
                at = end as usize;
                runs.next();
                continue;
            }
            let mut field = self.fields[at];
            field.value = remap(field.value);
            self.fields[out] = field;
            out += 1;
            at += 1;
        }
        self.fields.truncate(out);
        self.fields.shrink_to_fit();
        for global in &mut self.globals {
            global.value = remap(global.value);
        }
    }

    /// Where the fields under the table whose own fields are `first..first + len` begin: at
    /// those of its first nested table, which closed first.
    fn subtree_start(&self, mut first: u32, mut len: u32) -> u32 {
        loop {
            let nested = self.fields[first as usize..(first + len) as usize]
                .iter()
                .find_map(|f| match f.value.kind {
                    Kind::Table { first, len } => Some((first, len)),
                    _ => None,
                });
            match nested {
                Some((f, l)) => (first, len) = (f, l),
                None => return first,
            }
        }
    }

    pub fn is_table(&self, node: Node) -> bool {
        matches!(
            node.kind,
            Kind::Table { .. } | Kind::Skipped | Kind::Deferred
        )
    }

    /// The bytes of a string value, escapes decoded.
    pub fn string(&self, node: Node) -> Option<Cow<'a, [u8]>> {
        match node.kind {
            Kind::Str {
                open,
                close,
                long,
                escaped,
            } => {
                let body =
                    &self.src[(node.span.start + open) as usize..(node.span.end - close) as usize];
                Some(if long {
                    decode_long(body)
                } else {
                    quoted(body, escaped)
                })
            }
            _ => None,
        }
    }

    /// The original text of a number, with its minus sign if it has one.
    pub fn number_text(&self, node: Node) -> Option<Cow<'a, str>> {
        let Kind::Number { digits } = node.kind else {
            return None;
        };
        let numeral = &self.src[digits as usize..node.span.end as usize];
        // Numerals are ASCII; the lexer checked them.
        let numeral = std::str::from_utf8(numeral).ok()?;
        Some(if digits == node.span.start {
            Cow::Borrowed(numeral)
        } else {
            Cow::Owned(format!("-{numeral}"))
        })
    }

    pub fn number(&self, node: Node) -> Option<f64> {
        let Kind::Number { digits } = node.kind else {
            return None;
        };
        let value = numeral_value(&self.src[digits as usize..node.span.end as usize])?;
        Some(if digits == node.span.start {
            value
        } else {
            -value
        })
    }

    /// A field's key as a string, for `name =` and `["string"] =` keys.
    pub fn key_string(&self, field: &Field) -> Option<Cow<'a, [u8]>> {
        match field.key {
            FieldKey::Name(span) => Some(Cow::Borrowed(self.text(span))),
            FieldKey::Bracket(key) => self.string(self.key_node(key)),
            FieldKey::Positional => None,
        }
    }

    /// A `[key]` as the node the parser made of it.
    pub fn key_node(&self, key: KeyNode) -> Node {
        let Span { start, end } = key.span;
        let kind = match key.kind {
            KeyKind::Str { long, escaped } => {
                // A long bracket's level is the count of `=` between its two `[`; a line
                // break right after it is not part of the string (as the lexer has it).
                let (open, close) = if long {
                    let after = self.src.get(start as usize + 1..).unwrap_or_default();
                    let close = after.iter().take_while(|&&b| b == b'=').count() + 2;
                    let mut body = start as usize + close;
                    if matches!(self.src.get(body), Some(b'\n' | b'\r')) {
                        body = super::text::skip_line_break(self.src, body);
                    }
                    ((body - start as usize) as u32, close as u32)
                } else {
                    (1, 1)
                };
                Kind::Str {
                    open,
                    close,
                    long,
                    escaped,
                }
            }
            KeyKind::Number { minus: u16::MAX } => {
                // 64 KiB or more of whitespace and comments between the minus sign and the
                // digits: the digits are the next token. (The lexer also reads the byte after
                // them, which `validate`'s sparse copy of a large file may not hold: there such
                // a key reads as no number, and `validate` warns about it as about any number
                // key that is not an index.)
                let mut lexer = super::lexer::Lexer::resume(self.src, start as usize + 1, 0);
                let digits = lexer.next_token().map_or(start + 1, |t| t.start as u32);
                Kind::Number {
                    digits: digits.min(end),
                }
            }
            KeyKind::Number { minus } => Kind::Number {
                digits: (start + u32::from(minus)).min(end),
            },
            KeyKind::Bool(b) => Kind::Bool(b),
        };
        Node {
            span: Span { start, end },
            kind,
        }
    }

    /// The field a string key resolves to in a kept table (the last one, as in Lua).
    pub fn get(&self, table: Node, key: &[u8]) -> Option<&Field> {
        self.fields(table)
            .iter()
            .rev()
            .find(|f| self.key_string(f).is_some_and(|k| k.as_ref() == key))
    }

    /// Where a field starts: its key, or its value for an array item.
    pub fn field_start(&self, field: &Field) -> u32 {
        match field.key {
            FieldKey::Positional => field.value.span.start,
            FieldKey::Name(span) => span.start,
            // The `[` is just before the key expression, possibly with trivia between; the
            // key's own span is a good place to point at.
            FieldKey::Bracket(key) => key.span.start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table node of `doc`, in the order met.
    fn tables(doc: &Document<'_>) -> Vec<Node> {
        let mut out = Vec::new();
        let mut stack: Vec<Node> = doc.globals.iter().map(|g| g.value).collect();
        while let Some(node) = stack.pop() {
            if matches!(node.kind, Kind::Table { .. }) {
                out.push(node);
                for f in doc.fields(node) {
                    stack.push(f.value);
                    if let FieldKey::Bracket(k) = f.key {
                        stack.push(doc.key_node(k));
                    }
                }
            }
        }
        out
    }

    /// A `[key]` kept in 12 bytes reads back as the node the parser made: long brackets of
    /// any level, escapes, negative numbers with trivia after the minus, booleans.
    #[test]
    fn bracket_keys_read_back_as_their_nodes() {
        let src = b"X = { [ [==[a]]b]==] ] = 1, [- --[[c]]\n 5] = 2, [-5e1] = 3, [\"q\\\"x\"] = 4,\n\
                    [true] = 5, [0x10] = 6, [ [[l]] ] = 7, [false] = 8, [7] = 9, [ [=[\r\nn\r\n]=] ] = 10,\n\
                    [ [[\n]] ] = 11 }";
        let doc = crate::lua::parse(src).unwrap();
        let table = doc.global("X").unwrap().value;
        let keys: Vec<_> = doc
            .fields(table)
            .iter()
            .map(|f| {
                let FieldKey::Bracket(k) = f.key else {
                    panic!("a bracket key");
                };
                let node = doc.key_node(k);
                assert_eq!(node.span, k.span);
                (doc.field_key(f, 0), doc.number_text(node))
            })
            .collect();
        use crate::lua::{Key, Number};
        let num = |n: f64| Some(Key::Num(Number::new(n)));
        assert_eq!(
            keys,
            vec![
                (Some(Key::str("a]]b")), None),
                (num(-5.0), Some("-5".into())),
                (num(-50.0), Some("-5e1".into())),
                (Some(Key::str("q\"x")), None),
                (Some(Key::Bool(true)), None),
                (num(16.0), Some("0x10".into())),
                (Some(Key::str("l")), None),
                (Some(Key::Bool(false)), None),
                (num(7.0), Some("7".into())),
                (Some(Key::str("n\n")), None),
                (Some(Key::str("")), None),
            ]
        );
        // Digits farther from their minus sign than a key notes are found again.
        for gap in [1, 65_534, 65_535, 70_000] {
            let src = format!("X = {{ [-{}--[[c]]5] = 1 }}", " ".repeat(gap));
            let doc = crate::lua::parse(src.as_bytes()).unwrap();
            let field = doc.fields(doc.global("X").unwrap().value)[0];
            let FieldKey::Bracket(k) = field.key else {
                panic!("a bracket key");
            };
            assert_eq!(doc.field_key(&field, 0), num(-5.0), "{gap}");
            assert_eq!(doc.number_text(doc.key_node(k)).as_deref(), Some("-5"));
        }
    }

    /// Deferring any set of tables keeps every value (deferred ones read from their text) and
    /// lets go of exactly the fields under them.
    #[test]
    fn deferring_any_tables_keeps_every_value() {
        let src = br#"
A = { 1, "}", { x = { {}, { "{" } }, [2] = { y = 1 } }, ["k"] = { 3, 4 }, n = -1.5e3 }
B = { { { { deep = true } } }, [ [[lo]] ] = { [10] = { "a", "b" } }, {} }
C = 7
"#;
        let doc = crate::lua::parse(src).unwrap();
        let all = tables(&doc);
        assert!(all.len() >= 12 && all.len() < 20, "{}", all.len());
        let want: Vec<_> = doc.globals.iter().map(|g| doc.value(g.value)).collect();
        // Fields at or under a table, itself included when it is a field's value.
        let under = |n: Node| {
            tables(&Document {
                src: doc.src,
                globals: vec![Global {
                    name: Span { start: 0, end: 0 },
                    value: n,
                }],
                fields: doc.fields.clone(),
            })
            .iter()
            .map(|t| doc.fields(*t).len())
            .sum::<usize>()
        };
        for mask in 0u32..1 << all.len() {
            let chosen: Vec<Node> = (0..all.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i])
                .collect();
            let mut deferred = doc.clone();
            deferred.defer(&chosen);
            let got: Vec<_> = deferred
                .globals
                .iter()
                .map(|g| deferred.value(g.value))
                .collect();
            assert_eq!(got, want, "{mask:b}");
            let left = tables(&deferred);
            for t in &chosen {
                assert!(!left.iter().any(|l| l.span == t.span), "{mask:b}");
            }
            // What is left is the fields of the tables not under a chosen one.
            let gone: usize = {
                let mut outer: Vec<Node> = Vec::new();
                for t in &chosen {
                    let inside = chosen.iter().any(|o| {
                        o.span != t.span && o.span.start <= t.span.start && t.span.end <= o.span.end
                    });
                    if !inside {
                        outer.push(*t);
                    }
                }
                outer.iter().map(|t| under(*t)).sum()
            };
            assert_eq!(deferred.fields.len(), doc.fields.len() - gone, "{mask:b}");
        }
    }
}
