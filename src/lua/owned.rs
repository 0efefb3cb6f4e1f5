//! A file's bytes and their parse kept together, so a parse can outlive the function that read
//! the file (the receiver reads its file once per sync and splices into it at the end; `watch`
//! and `status` keep parses by content hash).

use super::diag::{ParseError, Position};
use super::parser::{ParseOptions, parse_with};
use super::syntax::{Document, Kind, Node};

self_cell::self_cell!(
    /// Owned bytes and the [`Document`] parsed from them.
    pub struct ParsedFile {
        owner: Vec<u8>,
        #[covariant]
        dependent: Document,
    }

    impl {Debug}
);

/// A parse error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {error}", line = position.line, column = position.column)]
pub struct PlacedError {
    pub error: ParseError,
    pub position: Position,
}

impl ParsedFile {
    /// Parses `bytes`, keeping what `options` asks for.
    pub fn parse(bytes: Vec<u8>, options: &ParseOptions<'_>) -> Result<ParsedFile, PlacedError> {
        ParsedFile::try_new(bytes, |src| {
            parse_with(src, options).map_err(|error| PlacedError {
                position: error.position(src),
                error,
            })
        })
    }

    /// A table's text (`{ ... }`, as a file has it) parsed on its own: the file and the
    /// table's node in it. `None` when the text is not one table.
    pub fn table(text: &[u8]) -> Option<(ParsedFile, Node)> {
        let mut src = Vec::with_capacity(text.len() + 2);
        src.extend_from_slice(b"X=");
        src.extend_from_slice(text);
        let options = ParseOptions {
            keep: super::Keep::All,
            limits: super::Limits {
                lua_compiler_limits: false,
                ..Default::default()
            },
        };
        let file = ParsedFile::parse(src, &options).ok()?;
        let node = file.doc().global("X")?.value;
        matches!(node.kind, Kind::Table { .. }).then_some((file, node))
    }

    /// See [`Document::defer`].
    pub fn defer(&mut self, tables: &[Node]) {
        self.with_dependent_mut(|_, doc| doc.defer(tables));
    }

    pub fn doc(&self) -> &Document<'_> {
        self.borrow_dependent()
    }

    pub fn bytes(&self) -> &[u8] {
        self.borrow_owner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bytes_and_document_together() {
        let f = ParsedFile::parse(b"X = { a = 1 }\n".to_vec(), &ParseOptions::default()).unwrap();
        assert!(f.doc().global("X").is_some());
        assert_eq!(f.bytes().len(), 14);
        let e =
            ParsedFile::parse(b"X = {\n a = \n".to_vec(), &ParseOptions::default()).unwrap_err();
        assert_eq!(e.position.line, 3);
    }
}
