//! Tokenizer for the data subset of Lua 5.1, over bytes.
//!
//! Follows `llex.c` of Lua 5.1.5 for everything the data subset can contain: whitespace and
//! comments, quoted and long strings (including the level-0 `[[` nesting error of
//! `LUA_COMPAT_LSTR`), numerals, names. Tokens are spans into the source; nothing is copied.

use super::diag::{ErrorCode, ParseError};
use super::limits::StringHash;
use super::number::is_valid_numeral;
use super::text::{escape_value, skip_line_break};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Name,
    Number,
    /// A string literal; `open`/`close` are the delimiter lengths around the body.
    Str {
        open: u32,
        close: u32,
        long: bool,
        /// The body needs decoding: escapes in a quoted string, a `\r` in a long one.
        escaped: bool,
        /// The [`StringHash`] of a quoted string's decoded bytes, made while it was read (0 for
        /// a long string).
        hash: u64,
    },
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Assign,
    Comma,
    Semi,
    Minus,
    LParen,
    /// Any other operator or punctuation of Lua (`+`, `..`, `==`, `.`, ...).
    Op,
    /// A byte that is no Lua token at all.
    Unknown,
    Eof,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

const WS: u8 = 1;
const NAME_START: u8 = 2;
const DIGIT: u8 = 4;
const NEWLINE: u8 = 8;
/// Bytes that end or interrupt a quoted string's plain text (either quote, a backslash, a
/// line break).
const STRING_STOP: u8 = 16;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    t[b' ' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[0x0B] = WS;
    t[0x0C] = WS;
    t[b'\n' as usize] = WS | NEWLINE | STRING_STOP;
    t[b'\r' as usize] = WS | NEWLINE | STRING_STOP;
    t[b'"' as usize] = STRING_STOP;
    t[b'\'' as usize] = STRING_STOP;
    t[b'\\' as usize] = STRING_STOP;
    let mut c = b'a';
    while c <= b'z' {
        t[c as usize] = NAME_START;
        t[(c - 32) as usize] = NAME_START;
        c += 1;
    }
    t[b'_' as usize] = NAME_START;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = DIGIT;
        d += 1;
    }
    t
}

static CLASS: [u8; 256] = classes();

#[inline]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pub pos: usize,
    /// Where the next raw CR is, at or after where it was last looked for (`usize::MAX`:
    /// none); see [`Lexer::cr_within`].
    next_cr: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a [u8]) -> Self {
        Lexer {
            src,
            pos: 0,
            next_cr: 0,
        }
    }

    /// A lexer that goes on at `pos` in `src`, remembering the next CR as `next_cr` (0 when
    /// unknown); see [`Lexer::next_cr`].
    pub fn resume(src: &'a [u8], pos: usize, next_cr: usize) -> Self {
        Lexer { src, pos, next_cr }
    }

    /// What this lexer remembers of where the next CR is, to hand to [`Lexer::resume`] over
    /// the same bytes.
    pub fn next_cr(&self) -> usize {
        self.next_cr
    }

    pub fn src(&self) -> &'a [u8] {
        self.src
    }

    /// The next token, after whitespace and comments.
    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(&b) = self.src.get(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let single = |lexer: &mut Self, tok| {
            lexer.pos += 1;
            Ok(Token {
                tok,
                start,
                end: start + 1,
            })
        };
        match b {
            b'{' => single(self, Tok::LBrace),
            b'}' => single(self, Tok::RBrace),
            b']' => single(self, Tok::RBracket),
            b',' => single(self, Tok::Comma),
            b';' => single(self, Tok::Semi),
            b'-' => single(self, Tok::Minus),
            b'(' => single(self, Tok::LParen),
            b'"' | b'\'' => self.quoted(start, b),
            b'[' => match self.long_bracket_level(start)? {
                Some(level) => self.long_string(start, level),
                None => single(self, Tok::LBracket),
            },
            b'=' => {
                if self.src.get(start + 1) == Some(&b'=') {
                    self.pos += 2;
                    Ok(Token {
                        tok: Tok::Op,
                        start,
                        end: start + 2,
                    })
                } else {
                    single(self, Tok::Assign)
                }
            }
            b'.' => {
                if self.src.get(start + 1).is_some_and(|&n| is(n, DIGIT)) {
                    self.numeral(start)
                } else {
                    let len = self.src[start..]
                        .iter()
                        .take(3)
                        .take_while(|&&c| c == b'.')
                        .count();
                    self.pos += len;
                    Ok(Token {
                        tok: Tok::Op,
                        start,
                        end: start + len,
                    })
                }
            }
            _ if is(b, DIGIT) => self.numeral(start),
            _ if is(b, NAME_START) => {
                let mut i = start + 1;
                while i < self.src.len() && is(self.src[i], NAME_START | DIGIT) {
                    i += 1;
                }
                self.pos = i;
                Ok(Token {
                    tok: Tok::Name,
                    start,
                    end: i,
                })
            }
            b'~' | b'<' | b'>' => {
                let len = if self.src.get(start + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                if b == b'~' && len == 1 {
                    return single(self, Tok::Unknown);
                }
                self.pos += len;
                Ok(Token {
                    tok: Tok::Op,
                    start,
                    end: start + len,
                })
            }
            b'+' | b'*' | b'/' | b'%' | b'^' | b'#' | b')' | b':' => single(self, Tok::Op),
            _ => single(self, Tok::Unknown),
        }
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        let src = self.src;
        let mut i = self.pos;
        loop {
            while i < src.len() && is(src[i], WS) {
                i += 1;
            }
            if i + 1 < src.len() && src[i] == b'-' && src[i + 1] == b'-' {
                let comment_start = i;
                i += 2;
                // `--[` opens a long comment only with a well-formed bracket; `--[=x` is a
                // short comment (Lua 5.1 raises the delimiter error for strings only).
                if src.get(i) == Some(&b'[')
                    && let Ok(Some(level)) = self.long_bracket_level_at(i)
                {
                    let body = i + level as usize + 2;
                    i = self.long_body_end(comment_start, body, level, false)?;
                    continue;
                }
                i = match memchr::memchr2(b'\n', b'\r', &src[i..]) {
                    Some(n) => i + n,
                    None => src.len(),
                };
                continue;
            }
            break;
        }
        self.pos = i;
        Ok(())
    }

    /// At a `[`: `Some(level)` if a long bracket opens here, `None` for a plain `[`.
    fn long_bracket_level(&self, at: usize) -> Result<Option<u32>, ParseError> {
        self.long_bracket_level_at(at)
    }

    fn long_bracket_level_at(&self, at: usize) -> Result<Option<u32>, ParseError> {
        let src = self.src;
        let mut i = at + 1;
        while i < src.len() && src[i] == b'=' {
            i += 1;
        }
        let level = i - at - 1;
        if src.get(i) == Some(&b'[') {
            let level = u32::try_from(level).map_err(|_| too_large(at))?;
            Ok(Some(level))
        } else if level > 0 {
            Err(ParseError::new(
                at,
                ErrorCode::InvalidLongDelimiter,
                "invalid long bracket: `[=` must be followed by more `=` and then `[`",
            ))
        } else {
            Ok(None)
        }
    }

    fn long_string(&mut self, start: usize, level: u32) -> Result<Token, ParseError> {
        let level_len = level as usize;
        let mut body_start = start + level_len + 2;
        // A line break right after the opening bracket is not part of the string.
        if matches!(self.src.get(body_start), Some(b'\n' | b'\r')) {
            body_start = skip_line_break(self.src, body_start);
        }
        let end = self.long_body_end(start, body_start, level, true)?;
        let close = level + 2;
        let body = &self.src[body_start..end - close as usize];
        self.pos = end;
        Ok(Token {
            tok: Tok::Str {
                open: (body_start - start) as u32,
                close,
                long: true,
                escaped: memchr::memchr(b'\r', body).is_some(),
                hash: 0,
            },
            start,
            end,
        })
    }

    /// Finds the end (exclusive) of a long bracket body that starts at `from`.
    fn long_body_end(
        &self,
        opened_at: usize,
        from: usize,
        level: u32,
        is_string: bool,
    ) -> Result<usize, ParseError> {
        let src = self.src;
        let level = level as usize;
        let mut i = from;
        loop {
            let found = if level == 0 {
                memchr::memchr2(b']', b'[', &src[i..])
            } else {
                memchr::memchr(b']', &src[i..])
            };
            let Some(n) = found else {
                let what = if is_string {
                    "long text"
                } else {
                    "long comment"
                };
                return Err(ParseError::new(
                    opened_at,
                    ErrorCode::UnfinishedLongBracket,
                    format!(
                        "this {what} is never closed: the file ends inside it \
                         (it may have been cut off while the game was saving)"
                    ),
                ));
            };
            let at = i + n;
            let mut j = at + 1;
            while j < src.len() && src[j] == b'=' {
                j += 1;
            }
            let same_level = j - at - 1 == level;
            if src[at] == b']' {
                if same_level && src.get(j) == Some(&b']') {
                    return Ok(j + 1);
                }
            } else if same_level && src.get(j) == Some(&b'[') {
                // Only reachable at level 0: Lua 5.1 (LUA_COMPAT_LSTR == 1) refuses `[[` here.
                return Err(ParseError::new(
                    at,
                    ErrorCode::NestedLongBracket,
                    "`[[` inside a `[[...]]` text or comment: Lua 5.1 refuses this nesting",
                ));
            }
            i = j.max(at + 1);
        }
    }

    /// A quoted string, read in one pass: plain stretches are jumped over with `memchr`, and
    /// the string is hashed as it is read (each stretch, and the byte each escape stands for),
    /// so its constant is counted without decoding it.
    fn quoted(&mut self, start: usize, quote: u8) -> Result<Token, ParseError> {
        let src = self.src;
        let mut i = start + 1;
        let mut escaped = false;
        let mut hash = StringHash::default();
        loop {
            // The next byte that ends or interrupts the plain text.
            let Some(stop) = self.next_stop(i, quote)? else {
                return Err(ParseError::new(
                    start,
                    ErrorCode::UnfinishedString,
                    "this text is never closed: the file ends inside it \
                     (it may have been cut off while the game was saving)",
                ));
            };
            hash.write(&src[i..stop]);
            i = stop;
            match src[i] {
                b'\n' => return Err(raw_line_break(i, b'\n')),
                b'\\' => {
                    escaped = true;
                    i += 1;
                    let Some(&e) = src.get(i) else { continue };
                    if e == b'\n' || e == b'\r' {
                        // Backslash-newline is a newline; a CRLF or LFCR pair counts once.
                        hash.byte(b'\n');
                        i = skip_line_break(src, i);
                    } else if is(e, DIGIT) {
                        let digits = src[i..]
                            .iter()
                            .take(3)
                            .take_while(|d| is(**d, DIGIT))
                            .count();
                        let value = src[i..i + digits]
                            .iter()
                            .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                        let Ok(byte) = u8::try_from(value) else {
                            return Err(ParseError::new(
                                i - 1,
                                ErrorCode::EscapeTooLarge,
                                format!(
                                    "escape `\\{}` is larger than 255, the largest byte value",
                                    String::from_utf8_lossy(&src[i..i + digits])
                                ),
                            ));
                        };
                        hash.byte(byte);
                        i += digits;
                    } else {
                        hash.byte(escape_value(e));
                        i += 1;
                    }
                }
                _ => {
                    // The closing quote.
                    self.pos = i + 1;
                    return Ok(Token {
                        tok: Tok::Str {
                            open: 1,
                            close: 1,
                            long: false,
                            escaped,
                            hash: hash.finish(),
                        },
                        start,
                        end: i + 1,
                    });
                }
            }
        }
    }

    /// The first byte at or after `i` that ends or interrupts a quoted string's plain text:
    /// its quote, a backslash or a line break (a raw CR is an error). `None`: the file ends
    /// first. Most strings are short: their first bytes are looked at one by one, and `memchr`
    /// takes over for longer ones.
    fn next_stop(&mut self, i: usize, quote: u8) -> Result<Option<usize>, ParseError> {
        let src = self.src;
        let short = (i + 24).min(src.len());
        for (j, &b) in src[i..short].iter().enumerate() {
            if is(b, STRING_STOP) {
                match b {
                    b'\r' => return Err(raw_line_break(i + j, b'\r')),
                    b'\\' | b'\n' => return Ok(Some(i + j)),
                    _ if b == quote => return Ok(Some(i + j)),
                    // The other quote is plain text.
                    _ => {}
                }
            }
        }
        let stop = memchr::memchr3(quote, b'\\', b'\n', &src[short..]).map(|n| short + n);
        if let Some(cr) = self.cr_within(short, stop.unwrap_or(src.len())) {
            return Err(raw_line_break(cr, b'\r'));
        }
        Ok(stop)
    }

    /// The first raw CR in `from..to`, if any. A raw CR is rare inside strings (and absent from
    /// files with LF line ends): the next CR of the file is found once and remembered, so a
    /// file is searched for CRs about once in all.
    fn cr_within(&mut self, from: usize, to: usize) -> Option<usize> {
        if self.next_cr < from {
            self.next_cr =
                memchr::memchr(b'\r', &self.src[from..]).map_or(usize::MAX, |n| from + n);
        }
        (self.next_cr < to).then_some(self.next_cr)
    }

    fn numeral(&mut self, start: usize) -> Result<Token, ParseError> {
        // Cut the token exactly as llex.c's read_numeral does, then judge the whole text.
        let src = self.src;
        let mut i = start;
        while i < src.len() && (is(src[i], DIGIT) || src[i] == b'.') {
            i += 1;
        }
        // llex.c tests for the exponent with strchr("Ee", c), which also matches a NUL byte.
        let damaged = src.get(i) == Some(&0)
            || (matches!(src.get(i), Some(b'e' | b'E')) && src.get(i + 1) == Some(&0));
        if damaged {
            let digits = String::from_utf8_lossy(&src[start..i]);
            return Err(ParseError::new(
                i,
                ErrorCode::DamagedNumber,
                format!(
                    "a NUL byte (0) right after the number `{digits}`: the file is damaged, and the \
                     game would silently read a different number here"
                ),
            ));
        }
        if i < src.len() && (src[i] == b'e' || src[i] == b'E') {
            i += 1;
            if i < src.len() && (src[i] == b'+' || src[i] == b'-') {
                i += 1;
            }
        }
        while i < src.len() && is(src[i], NAME_START | DIGIT) {
            i += 1;
        }
        let text = &src[start..i];
        if !is_valid_numeral(text) {
            let shown = String::from_utf8_lossy(text);
            let hex_float = text.len() > 2
                && text[..2].eq_ignore_ascii_case(b"0x")
                && text.iter().any(|&b| b == b'p' || b == b'P' || b == b'.');
            let message = if hex_float {
                format!(
                    "`{shown}` is a hexadecimal number with a fraction or exponent: Lua 5.1 reads \
                     it only where the C library does (it is not Lua 5.1's own syntax), so the \
                     game may not; svsync does not accept it"
                )
            } else {
                format!("`{shown}` is not a number Lua can read")
            };
            return Err(ParseError::new(start, ErrorCode::MalformedNumber, message));
        }
        self.pos = i;
        Ok(Token {
            tok: Tok::Number,
            start,
            end: i,
        })
    }
}

fn raw_line_break(at: usize, byte: u8) -> ParseError {
    let message = if byte == b'\r' {
        "a raw carriage return (byte 13) inside quoted text: Lua 5.1 reads it as a line break \
         and cannot load this file (it must be written as \\r)"
    } else {
        "this text is not closed before the end of the line: Lua 5.1 cannot load this file \
         (a line break inside text must be written as \\n)"
    };
    ParseError::new(at, ErrorCode::RawLineBreakInString, message)
}

fn too_large(at: usize) -> ParseError {
    ParseError::new(at, ErrorCode::TooLarge, "long bracket level is too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let mut lx = Lexer::new(src.as_bytes());
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    fn err(src: &str) -> ErrorCode {
        let mut lx = Lexer::new(src.as_bytes());
        loop {
            match lx.next_token() {
                Ok(t) if t.tok == Tok::Eof => panic!("no error in {src:?}"),
                Ok(_) => {}
                Err(e) => return e.code,
            }
        }
    }

    #[test]
    fn comments_everywhere() {
        let src = "--x\nA --[[ block\n ]] = --[==[ ]] ]==] { -- [1]\n}";
        assert_eq!(
            toks(src),
            vec![Tok::Name, Tok::Assign, Tok::LBrace, Tok::RBrace]
        );
    }

    proptest::proptest! {
        /// The hash made while a quoted string is read is the hash of its decoded bytes,
        /// whatever escapes spell them.
        #[test]
        fn quoted_strings_hash_their_decoded_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            spelling in proptest::collection::vec(0u8..4, 40),
        ) {
            let mut src = vec![b'"'];
            for (i, &b) in bytes.iter().enumerate() {
                let named = b"abfnrtv\\\"'".iter().find(|&&e| escape_value(e) == b);
                match (spelling[i], b, named) {
                    (2, _, Some(&e)) => src.extend_from_slice(&[b'\\', e]),
                    (3, b'\n', _) => src.extend_from_slice(b"\\\r\n"),
                    (_, b'"' | b'\\' | b'\r' | b'\n', _) | (1 | 2, _, _) => {
                        src.extend_from_slice(format!("\\{b:03}").as_bytes());
                    }
                    _ => src.push(b),
                }
            }
            src.push(b'"');
            let mut lx = Lexer::new(&src);
            let t = lx.next_token().unwrap();
            let Tok::Str { hash, .. } = t.tok else { panic!("{:?}", t.tok) };
            proptest::prop_assert_eq!(hash, crate::lua::limits::hash_bytes(&bytes));
        }
    }

    #[test]
    fn string_hashes_do_not_depend_on_how_the_bytes_are_split() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let whole = crate::lua::limits::hash_bytes(&bytes);
        for cut in 0..bytes.len() {
            let mut h = StringHash::default();
            h.write(&bytes[..cut]);
            h.byte(bytes[cut]);
            h.write(&bytes[cut + 1..]);
            assert_eq!(h.finish(), whole, "{cut}");
        }
        assert_ne!(whole, crate::lua::limits::hash_bytes(&bytes[1..]));
    }

    #[test]
    fn long_strings_with_levels() {
        let mut lx = Lexer::new(b"[==[\nab]]c]==]");
        let t = lx.next_token().unwrap();
        assert_eq!(
            t.tok,
            Tok::Str {
                open: 5,
                close: 4,
                long: true,
                escaped: false,
                hash: 0
            }
        );
        assert_eq!(t.end, 14);
    }

    #[test]
    fn string_errors() {
        assert_eq!(err("'abc"), ErrorCode::UnfinishedString);
        assert_eq!(err("\"a\rb\""), ErrorCode::RawLineBreakInString);
        assert_eq!(err("\"a\nb\""), ErrorCode::RawLineBreakInString);
        assert_eq!(err("\"\\256\""), ErrorCode::EscapeTooLarge);
        assert_eq!(err("[[ a [[ b ]]"), ErrorCode::NestedLongBracket);
        assert_eq!(err("[==[ a ]]"), ErrorCode::UnfinishedLongBracket);
        assert_eq!(err("[= x"), ErrorCode::InvalidLongDelimiter);
        assert_eq!(err("--[[ open"), ErrorCode::UnfinishedLongBracket);
        assert_eq!(err("--[=x\n'"), ErrorCode::UnfinishedString);
        assert_eq!(err("1e+"), ErrorCode::MalformedNumber);
        assert_eq!(err("3abc"), ErrorCode::MalformedNumber);
    }

    #[test]
    fn escaped_quote_and_backslash_newline() {
        assert_eq!(toks("\"a\\\"b\" 'c\\\r\nd'").len(), 2);
        // `\255` is fine, `[=[` inside level 0 is fine.
        assert_eq!(toks("\"\\255\" [[ [=[ ]]").len(), 2);
    }

    #[test]
    fn operators_are_tokens() {
        assert_eq!(
            toks("a.b .. ... == ~= <= + ( )"),
            vec![
                Tok::Name,
                Tok::Op,
                Tok::Name,
                Tok::Op,
                Tok::Op,
                Tok::Op,
                Tok::Op,
                Tok::Op,
                Tok::Op,
                Tok::LParen,
                Tok::Op
            ]
        );
        assert_eq!(toks(".5"), vec![Tok::Number]);
    }
}
