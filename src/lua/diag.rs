//! Errors of the SavedVariables reader and the mapping from byte offsets to line and column.
//!
//! Offsets are kept as bytes everywhere; line and column are computed only when something is
//! reported, so the parser's hot path never counts lines.

use std::fmt;

/// What went wrong, as a closed set, so callers and tests can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A quoted string is not closed before a line break or the end of the file.
    UnfinishedString,
    /// A raw carriage return or line feed inside a quoted string.
    RawLineBreakInString,
    /// `\ddd` with a value above 255.
    EscapeTooLarge,
    /// A long string or long comment is not closed.
    UnfinishedLongBracket,
    /// `[[` inside a level-0 long string or comment (Lua 5.1 refuses it).
    NestedLongBracket,
    /// `[=` not followed by `[`.
    InvalidLongDelimiter,
    /// A numeral Lua cannot read, such as `1e` or `0x`.
    MalformedNumber,
    /// A NUL byte right after a number: Lua 5.1 reads `7<NUL>213` as `7` (the NUL passes for an
    /// exponent mark) and silently drops the rest, so svsync refuses the damaged file.
    DamagedNumber,
    /// The file ends in the middle of a table or statement.
    Truncated,
    /// A token that cannot appear where it is.
    Unexpected,
    /// A name used as a value (`inf`, `nan`, a variable).
    NameAsValue,
    /// An operator or call: the data subset allows none.
    Expression,
    /// A statement other than `Name = value` (`local`, `function`, `if`...).
    Statement,
    /// `[nil] = value`: Lua fails at run time.
    NilKey,
    /// A table used as a key.
    TableKey,
    /// Nesting deeper than Lua 5.1's parser allows.
    TooDeep,
    /// More registers than Lua 5.1's code generator has.
    TooComplex,
    /// More distinct constants than Lua 5.1's code generator allows.
    TooManyConstants,
    /// The input is larger than the reader accepts.
    TooLarge,
}

impl ErrorCode {
    /// The bound a limit error reports, if this error is a bound being hit.
    pub fn is_bound(self) -> bool {
        matches!(
            self,
            ErrorCode::TooDeep
                | ErrorCode::TooComplex
                | ErrorCode::TooManyConstants
                | ErrorCode::TooLarge
        )
    }
}

/// A syntax error at a byte offset, with a message meant for a player.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub offset: usize,
    pub code: ErrorCode,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, code: ErrorCode, message: impl Into<String>) -> Self {
        ParseError {
            offset,
            code,
            message: message.into(),
        }
    }

    /// Line and column of the error in `src`.
    pub fn position(&self, src: &[u8]) -> Position {
        Position::of(src, self.offset)
    }
}

/// A 1-based line and column. Lines follow Lua's rule (`\n`, `\r`, `\r\n` and `\n\r` each end one
/// line), so the line numbers agree with Lua's own error messages. Columns count characters (a
/// UTF-8 sequence is one column, an invalid byte is one column, a tab is one column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Position {
    /// Computes the position of one offset with a single scan. For many offsets in one file,
    /// build a [`LineIndex`].
    pub fn of(src: &[u8], offset: usize) -> Position {
        LineIndex::new(&src[..offset.min(src.len())]).position(src, offset)
    }
}

/// Line starts of a file, for turning many offsets into positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &[u8]) -> LineIndex {
        let mut starts = LineStarts::new();
        starts.feed(src, 0);
        starts.finish()
    }

    /// Where the line holding `offset` starts.
    pub fn line_start(&self, offset: usize) -> usize {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        self.starts[line - 1]
    }

    pub fn position(&self, src: &[u8], offset: usize) -> Position {
        let offset = offset.min(src.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = 1 + src[start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        Position { line, column }
    }

    /// Number of lines (a final line break does not open a new counted line of text, but the
    /// offset after it still maps to a line).
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }
}

/// Builds a [`LineIndex`] from a file read in pieces: the same index as [`LineIndex::new`] over
/// the whole file, whatever the pieces (a CRLF pair may be split between two).
#[derive(Debug)]
pub(crate) struct LineStarts {
    index: LineIndex,
    /// The line break that ended the last piece, whose partner may open the next one.
    pending: Option<u8>,
}

impl LineStarts {
    pub fn new() -> Self {
        LineStarts {
            index: LineIndex { starts: vec![0] },
            pending: None,
        }
    }

    /// Adds the next piece of the file, which starts at `offset`.
    pub fn feed(&mut self, piece: &[u8], offset: usize) {
        let mut i = 0;
        if let (Some(prev), Some(&first)) = (self.pending, piece.first()) {
            self.pending = None;
            if matches!(first, b'\n' | b'\r') && first != prev {
                if let Some(last) = self.index.starts.last_mut() {
                    *last = offset + 1;
                }
                i = 1;
            }
        }
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &piece[i..]) {
            // A CRLF or LFCR pair is one line break, as in Lua's lexer.
            let at = i + found;
            let next = super::text::skip_line_break(piece, at);
            self.index.starts.push(offset + next);
            if next == piece.len() && next == at + 1 {
                self.pending = Some(piece[at]);
            }
            i = next;
        }
    }

    pub fn finish(self) -> LineIndex {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_lua_rules() {
        let src = b"a\nb\r\nc\rd\n\re";
        let idx = LineIndex::new(src);
        assert_eq!(idx.position(src, 0), Position { line: 1, column: 1 });
        assert_eq!(idx.position(src, 2), Position { line: 2, column: 1 });
        assert_eq!(idx.position(src, 5), Position { line: 3, column: 1 });
        assert_eq!(idx.position(src, 7), Position { line: 4, column: 1 });
        // "\n\r" is one line break in Lua.
        assert_eq!(idx.position(src, 10), Position { line: 5, column: 1 });
    }

    #[test]
    fn columns_count_characters() {
        let src = "é\tx".as_bytes();
        assert_eq!(Position::of(src, 3), Position { line: 1, column: 3 });
        let bad = b"\xff\xfex";
        assert_eq!(Position::of(bad, 2), Position { line: 1, column: 3 });
    }

    #[test]
    fn line_starts_in_pieces_match_the_whole() {
        let src = b"a\r\nb\n\rc\r\r\n\nd\re\n";
        let whole = LineIndex::new(src).starts;
        for cut in 0..=src.len() {
            for cut2 in cut..=src.len() {
                let mut pieces = LineStarts::new();
                pieces.feed(&src[..cut], 0);
                pieces.feed(&src[cut..cut2], cut);
                pieces.feed(&src[cut2..], cut2);
                assert_eq!(pieces.finish().starts, whole, "cut at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn offset_past_end_is_clamped() {
        assert_eq!(Position::of(b"ab", 99), Position { line: 1, column: 3 });
    }
}
