//! The value tree of a parsed SavedVariables file: every value with its byte span.
//!
//! The tree borrows the file's bytes and stores no text of its own: a string is a span (decoded
//! on demand), a number is a span (its original text is the source), a table is a run of fields
//! in one arena. That keeps a tree of a large file small and lets `splice` replace one value
//! while every other byte stays where it was.

use std::borrow::Cow;

use super::number::numeral_value;
use super::text::{decode_long, decode_quoted};

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
    /// `[key] = value`: the key (a string, number or boolean).
    Bracket(Node),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub key: FieldKey,
    pub value: Node,
}

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

    pub fn is_table(&self, node: Node) -> bool {
        matches!(node.kind, Kind::Table { .. } | Kind::Skipped)
    }

    /// The bytes of a string value, escapes decoded.
    pub fn string(&self, node: Node) -> Option<Cow<'a, [u8]>> {
        match node.kind {
            Kind::Str {
                open, close, long, ..
            } => {
                let body =
                    &self.src[(node.span.start + open) as usize..(node.span.end - close) as usize];
                Some(if long {
                    decode_long(body)
                } else {
                    decode_quoted(body)
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
            FieldKey::Bracket(node) => self.string(node),
            FieldKey::Positional => None,
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
            FieldKey::Bracket(node) => node.span.start,
        }
    }
}
