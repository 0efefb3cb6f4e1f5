//! Lua string literals as bytes: decoding the escapes of Lua 5.1 and writing a literal back.
//!
//! Strings are bytes (UTF-8 usually, not always): nothing here assumes valid UTF-8, so invalid
//! sequences survive a read/write cycle byte for byte.

use std::borrow::Cow;

/// The index just past a line break that starts at `at` (`src[at]` is `\n` or `\r`): a pair of
/// different line-break bytes (`\r\n` or `\n\r`) is one line break, as in Lua's lexer.
pub(crate) fn skip_line_break(src: &[u8], at: usize) -> usize {
    match src.get(at + 1) {
        Some(&n) if (n == b'\n' || n == b'\r') && n != src[at] => at + 2,
        _ => at + 1,
    }
}

/// Decodes the body of a quoted string (between the quotes). The lexer has already checked
/// that the body is well formed; this is total anyway: a malformed escape keeps its bytes.
pub fn decode_quoted(body: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', body).is_none() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    decode_quoted_into(body, &mut out);
    Cow::Owned(out)
}

/// Appends the decoded body of a quoted string to `out`, copying plain stretches whole.
pub fn decode_quoted_into(body: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(n) = memchr::memchr(b'\\', &body[i..]) {
        out.extend_from_slice(&body[i..i + n]);
        i += n + 1;
        let Some(&e) = body.get(i) else { return };
        i += 1;
        match e {
            b'\n' | b'\r' => {
                // Backslash-newline is a newline; a CRLF or LFCR pair counts once.
                out.push(b'\n');
                i = skip_line_break(body, i - 1);
            }
            b'0'..=b'9' => {
                let mut value = u32::from(e - b'0');
                let mut digits = 1;
                while digits < 3 {
                    match body.get(i) {
                        Some(&d) if d.is_ascii_digit() => {
                            value = value * 10 + u32::from(d - b'0');
                            i += 1;
                            digits += 1;
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(value).unwrap_or(u8::MAX));
            }
            other => out.push(escape_value(other)),
        }
    }
    out.extend_from_slice(&body[i..]);
}

/// The byte a one-character escape `\e` stands for: `\a \b \f \n \r \t \v` their control
/// characters; `\\`, `\"`, `\'` and any unknown escape the character itself.
pub(crate) fn escape_value(e: u8) -> u8 {
    match e {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0B,
        other => other,
    }
}

/// Decodes the body of a long string (after the opening bracket and its skipped first line
/// break, before the closing bracket): every line break becomes `\n`, as in Lua 5.1.
pub fn decode_long(body: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\r', body).is_none() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'\r' || b == b'\n' {
            out.push(b'\n');
            i = skip_line_break(body, i);
        } else {
            out.push(b);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Appends `bytes` as a double-quoted Lua literal: `\` and `"` escaped, a newline as `\n`,
/// other control bytes as decimal `\ddd` (padded to three digits when a digit follows), every
/// other byte as it is.
pub fn write_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let needs_escape = b == b'\\' || b == b'"' || b < 0x20 || b == 0x7F;
        if !needs_escape {
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => {
                let next_is_digit = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                out.push(b'\\');
                if next_is_digit {
                    out.extend_from_slice(format!("{b:03}").as_bytes());
                } else {
                    out.extend_from_slice(b.to_string().as_bytes());
                }
            }
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_escape() {
        let body = br#"\a\b\f\n\r\t\v\\\"\'\65\0651\x"#;
        let expected: &[u8] = b"\x07\x08\x0c\n\r\t\x0b\\\"'AA1x";
        assert_eq!(decode_quoted(body).as_ref(), expected);
    }

    #[test]
    fn backslash_newline_pairs_count_once() {
        assert_eq!(decode_quoted(b"a\\\r\nb").as_ref(), b"a\nb");
        assert_eq!(decode_quoted(b"a\\\n\rb").as_ref(), b"a\nb");
        assert_eq!(decode_quoted(b"a\\\n\nb").as_ref(), b"a\n\nb");
    }

    #[test]
    fn plain_bodies_are_borrowed() {
        assert!(matches!(decode_quoted(b"plain"), Cow::Borrowed(_)));
        assert!(matches!(decode_long(b"plain\nline"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_string_line_breaks_normalize() {
        assert_eq!(decode_long(b"a\r\nb\rc\n\rd").as_ref(), b"a\nb\nc\nd");
    }

    #[test]
    fn writes_escapes_per_spec() {
        let mut out = Vec::new();
        write_quoted(&mut out, b"a\"b\\c\nd\te\x001\x7f|cffff0000x|r\xff");
        assert_eq!(
            out,
            b"\"a\\\"b\\\\c\\nd\\9e\\0001\\127|cffff0000x|r\xff\"".to_vec()
        );
    }

    #[test]
    fn written_literal_decodes_back() {
        let all: Vec<u8> = (0..=255u8).chain(b"0123".iter().copied()).collect();
        let mut out = Vec::new();
        write_quoted(&mut out, &all);
        let body = &out[1..out.len() - 1];
        assert_eq!(decode_quoted(body).as_ref(), all.as_slice());
    }
}
