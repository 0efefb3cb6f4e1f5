//! Checking a file read in blocks: the parser sees the same tokens at the same offsets as over
//! the whole file in memory, while only a window of it is held (a block or two, or one token
//! longer than that). `validate` uses it so that checking a large file takes less memory than
//! the file.
//!
//! The lexer is not changed for this: each token is cut in the window as if the window were
//! the file, and a token that ends too close to the window's end (where the rest of the file
//! could change how it is cut), or an error before the file's end, is cut again once more of
//! the file is in. Errors are not worth exact messages here: the caller parses such a file
//! again in memory, which words every error as it always does.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use super::diag::{ErrorCode, LineIndex, LineStarts, ParseError};
use super::lexer::{Lexer, Token};
use super::parser::{ParseOptions, Source, parse_source};
use super::syntax::{Document, Field, FieldKey, Global, Kind, Node};

/// How many bytes past a token's end the lexer may look to cut it (`==`, a NUL after a
/// number's `e`): a token must end this far before the window's end to be taken as cut.
const LOOKAHEAD: usize = 4;

/// How many tokens back the parser reads the text of a token (a key, read again after `]`,
/// `=` and `{`): the window keeps the last this many tokens.
const PINNED: usize = 8;

/// The longest a window may grow (one token, or the rest of a file after an error): a file
/// with a longer token is checked whole, which takes less memory than such a window.
const MAX_WINDOW: usize = 8 << 20;

struct WindowSource<R> {
    reader: R,
    buf: Vec<u8>,
    /// The offset in the file of `buf[0]`.
    base: usize,
    /// Where the next token is looked for, in the file.
    pos: usize,
    /// The lexer's memory of the next CR, relative to `buf` (0: look again).
    next_cr: usize,
    eof: bool,
    block: usize,
    max_window: usize,
    /// The starts of the last [`PINNED`] tokens handed out; `recent[next_slot]` is the oldest.
    recent: [usize; PINNED],
    next_slot: usize,
    lines: LineStarts,
    error: Option<std::io::Error>,
}

impl<R: Read> WindowSource<R> {
    /// Drops what no token needs any more and reads at least one more block (as much as the
    /// window holds, so that a long token is read again only a few times). Fails on a read
    /// error (kept in `error`) and when the window would pass `max_window`.
    fn refill(&mut self) -> Result<(), ()> {
        let keep_from = self.recent[self.next_slot].min(self.pos).max(self.base);
        let drop = keep_from - self.base;
        if drop > 0 {
            self.buf.drain(..drop);
            self.base = keep_from;
        }
        if self.buf.len() >= self.max_window {
            return Err(());
        }
        let want = self.block.max(self.buf.len());
        let before = self.buf.len();
        self.buf.reserve(want);
        match (&mut self.reader)
            .take(want as u64)
            .read_to_end(&mut self.buf)
        {
            Ok(read) => self.eof = read < want,
            Err(e) => {
                self.error = Some(e);
                return Err(());
            }
        }
        self.lines.feed(&self.buf[before..], self.base + before);
        self.next_cr = 0;
        Ok(())
    }
}

impl<R: Read> Source<'static> for WindowSource<R> {
    fn next_token(&mut self) -> Result<Token, ParseError> {
        loop {
            let mut lexer = Lexer::resume(&self.buf, self.pos - self.base, self.next_cr);
            let result = lexer.next_token();
            let cut =
                self.eof || matches!(&result, Ok(tok) if tok.end + LOOKAHEAD < self.buf.len());
            if cut {
                self.next_cr = lexer.next_cr();
                self.pos = self.base + lexer.pos;
                let base = self.base;
                return match result {
                    Ok(tok) => {
                        let tok = Token {
                            tok: tok.tok,
                            start: base + tok.start,
                            end: base + tok.end,
                        };
                        self.recent[self.next_slot] = tok.start;
                        self.next_slot = (self.next_slot + 1) % PINNED;
                        Ok(tok)
                    }
                    Err(mut e) => {
                        e.offset += base;
                        Err(e)
                    }
                };
            }
            if self.refill().is_err() {
                return Err(ParseError::new(
                    self.pos,
                    ErrorCode::Unexpected,
                    "the file could not be read",
                ));
            }
        }
    }

    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        start
            .checked_sub(self.base)
            .zip(end.checked_sub(self.base))
            .and_then(|(s, e)| self.buf.get(s..e))
            .unwrap_or_default()
    }

    fn cow(&self, start: usize, end: usize) -> Cow<'static, [u8]> {
        Cow::Owned(self.bytes(start, end).to_vec())
    }

    fn pos(&self) -> usize {
        self.pos
    }

    fn set_pos(&mut self, pos: usize) {
        self.pos = pos.max(self.base);
    }

    fn line_of(&self, _offset: usize) -> usize {
        // Only error messages ask, and the caller words errors again from the whole file.
        0
    }
}

/// Why a file read in blocks has no result.
#[derive(Debug)]
pub enum BlocksError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not valid, or it needs an exact recount of its constants: parse it in
    /// memory for the exact answer.
    NeedsWholeFile,
}

/// What a file read in blocks holds: its top-level statements and the kept tables' fields,
/// with every span an offset in the file, and the file's line index. The text is not kept;
/// [`BlockParse::text_ranges`] says which of it a [`Document`] needs.
#[derive(Debug)]
pub struct BlockParse {
    /// How many bytes were read: the file's size, unless it changed while it was read.
    pub len: usize,
    globals: Vec<Global>,
    fields: Vec<Field>,
    lines: LineIndex,
}

/// Checks a whole file read from `reader` (`len` bytes) in blocks of `block` bytes, keeping
/// the tables `options.keep` asks for. Peak memory is a window of the file (about two
/// blocks, or the longest token) plus the kept tables and the line index.
pub fn parse_blocks(
    reader: impl Read,
    len: usize,
    options: &ParseOptions<'_>,
    block: usize,
) -> Result<BlockParse, BlocksError> {
    parse_blocks_within(reader, len, options, block, MAX_WINDOW)
}

fn parse_blocks_within(
    reader: impl Read,
    len: usize,
    options: &ParseOptions<'_>,
    block: usize,
    max_window: usize,
) -> Result<BlockParse, BlocksError> {
    if len > options.limits.max_file_size {
        return Err(BlocksError::NeedsWholeFile);
    }
    let source = WindowSource {
        // A file that grows while it is read is not read on (and its spans stay small).
        reader: reader.take(len as u64 + 1),
        buf: Vec::new(),
        base: 0,
        pos: 0,
        next_cr: 0,
        eof: false,
        block: block.max(1),
        max_window,
        recent: [0; PINNED],
        next_slot: 0,
        lines: LineStarts::new(),
        error: None,
    };
    let (result, mut source) = parse_source(source, len, options);
    if let Some(e) = source.error.take() {
        return Err(BlocksError::Io(e));
    }
    match result {
        Ok((globals, fields, None)) => Ok(BlockParse {
            len: source.base + source.buf.len(),
            globals,
            fields,
            lines: source.lines.finish(),
        }),
        Ok((_, _, Some(_))) | Err(_) => Err(BlocksError::NeedsWholeFile),
    }
}

impl BlockParse {
    /// The byte ranges of the file a [`Document`] of this parse reads: every kept name, key
    /// and scalar, from the start of its line (so that columns can be counted), merged where
    /// they are close. Sorted and disjoint.
    pub fn text_ranges(&self) -> Vec<Range<usize>> {
        const GAP: usize = 4096;
        /// 40 characters of 4 bytes.
        const QUOTED: u32 = 160;
        let mut spans: Vec<Range<usize>> = Vec::new();
        let mut add = |start: u32, end: u32| spans.push(start as usize..end as usize);
        // A table's fields are added one by one; of its own text, only the start, which a
        // finding may quote (up to 40 characters) or place.
        fn add_node(node: &Node, add: &mut dyn FnMut(u32, u32)) {
            match node.kind {
                Kind::Skipped | Kind::Deferred => {}
                Kind::Table { len, .. } if len > 0 => {
                    add(node.span.start, node.span.end.min(node.span.start + QUOTED));
                }
                _ => add(node.span.start, node.span.end),
            }
        }
        for global in &self.globals {
            add(global.name.start, global.name.end);
            add_node(&global.value, &mut add);
        }
        for field in &self.fields {
            match field.key {
                FieldKey::Positional => {}
                FieldKey::Name(span) => add(span.start, span.end),
                FieldKey::Bracket(key) => add(key.span.start, key.span.end),
            }
            add_node(&field.value, &mut add);
        }
        for range in &mut spans {
            range.start = self.lines.line_start(range.start);
        }
        spans.sort_unstable_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for range in spans {
            match merged.last_mut() {
                Some(last) if range.start <= last.end + GAP => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        merged
    }

    /// A document over `src`, a buffer as long as the file holding at least
    /// [`BlockParse::text_ranges`] at their offsets, and the file's line index.
    pub fn into_document(self, src: &[u8]) -> (Document<'_>, LineIndex) {
        (
            Document {
                src,
                globals: self.globals,
                fields: self.fields,
            },
            self.lines,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::{Keep, parse_with};

    /// Every block size gives the parse of the whole file, and an invalid file asks for the
    /// whole file.
    fn same_as_whole(src: &[u8], keep: Keep<'_>) {
        let options = ParseOptions {
            keep,
            ..Default::default()
        };
        let whole = parse_with(src, &options);
        for block in [1, 2, 3, 5, 7, 16, 64, 1000] {
            let blocks = parse_blocks(src, src.len(), &options, block);
            match (&whole, blocks) {
                (Ok(doc), Ok(parse)) => {
                    assert_eq!(parse.globals, doc.globals, "block {block}");
                    assert_eq!(parse.fields, doc.fields, "block {block}");
                    assert_eq!(parse.lines.line_start(src.len()), {
                        LineIndex::new(src).line_start(src.len())
                    });
                }
                (Err(_), Err(BlocksError::NeedsWholeFile)) => {}
                (whole, blocks) => panic!("block {block}: {whole:?} against {blocks:?}"),
            }
        }
    }

    #[test]
    fn blocks_match_the_whole_file() {
        let files: &[&[u8]] = &[
            b"X = 1\n",
            b"X = { a = 1, [\"b\"] = \"two\\\"\\n\", [3] = -4.5e+3, { 1, 2, 3 } }\r\nY = [==[\nlong]]\n]==]\n",
            b"-- comment\n--[[ long\ncomment ]] A = { [ [[k]] ] = { x = true, y = false, z = nil } } ; B = 0x1F",
            b"S = { sharedData = { roster = { { name = \"a\\065\\\\\" } } }, log = { \"x\", \"y\" } }",
            b"X = 1e",
            b"X = \"unfinished",
            b"X = { a = 1 ",
            b"X = [=[ never closed",
            b"X = 1 == 2",
            b"X = \"raw\rcr\"",
        ];
        let paths: &[&[&str]] = &[&["S", "sharedData"]];
        for src in files {
            same_as_whole(src, Keep::All);
            same_as_whole(src, Keep::Nothing);
            same_as_whole(src, Keep::Paths(paths));
        }
    }

    #[test]
    fn a_token_longer_than_the_window_may_grow_asks_for_the_whole_file() {
        let src = format!("X = {{ \"{}\", 1 }}", "a".repeat(100));
        let options = ParseOptions::default();
        let short = parse_blocks_within(src.as_bytes(), src.len(), &options, 8, 64);
        assert!(
            matches!(short, Err(BlocksError::NeedsWholeFile)),
            "{short:?}"
        );
        let long = parse_blocks_within(src.as_bytes(), src.len(), &options, 8, 128);
        assert!(long.is_ok(), "{long:?}");
    }

    #[test]
    fn a_file_that_grows_is_read_one_byte_past_its_size() {
        let r = parse_blocks(&b"X = 1 Y = 2"[..], 5, &ParseOptions::default(), 2);
        assert!(matches!(&r, Ok(parse) if parse.len == 6), "{r:?}");
    }

    #[test]
    fn a_read_error_is_reported() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let r = parse_blocks(Broken, 10, &ParseOptions::default(), 4);
        assert!(matches!(r, Err(BlocksError::Io(_))), "{r:?}");
    }
}
