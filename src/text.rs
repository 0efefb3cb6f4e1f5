//! Text that came from a file or a message, made safe to print or log.
//!
//! A toon name, an account folder's name or a peer's error reason can hold newlines, escape
//! sequences or other control characters (a crafted file, a hostile message). Everything svsync
//! prints or logs that it did not write itself goes through [`printable`]: control characters
//! become `\n`, `\u{1b}` and the like, so one line stays one line and a terminal is never driven
//! by data.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character escaped (other characters, `\` included, unchanged).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Bytes (a Lua string, a path) as printable text: invalid UTF-8 is replaced, control
/// characters escaped.
pub fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes)).into_owned()
}

/// A path as printable text.
pub fn printable_path(path: &std::path::Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("Heretanky-Velen"), "Heretanky-Velen");
        assert_eq!(printable("a\nb\x1b[31mc\u{7f}"), "a\\nb\\u{1b}[31mc\\u{7f}");
        assert_eq!(printable_bytes(b"x\xffy\r"), "x\u{fffd}y\\r");
    }
}
