//! Lua 5.1 numerals: which texts are numbers, their value, and the text of a new number.
//!
//! Lua 5.1 reads a numeral with C `strtod`, falling back to `strtoul(..., 16)` for hex. The
//! data subset accepted here is the portable part of that: decimal with optional fraction and
//! exponent (`12`, `.5`, `5.`, `1e+20`, `2.288818359375e-05`) and hex integers (`0x1F`).

/// True when `text` (a numeral token as the lexer cut it) is a number Lua 5.1 reads.
pub fn is_valid_numeral(text: &[u8]) -> bool {
    if let Some(hex) = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
    {
        return !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit);
    }
    let mut i = 0;
    let int_digits = count_digits(&text[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    if text.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = count_digits(&text[i..]);
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = count_digits(&text[i..]);
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == text.len()
}

fn count_digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The value of a valid numeral (without sign). Hex is converted exactly and rounded once,
/// as glibc's `strtod` does; decimal uses Rust's correctly rounded parser, as `strtod` does.
pub fn numeral_value(text: &[u8]) -> Option<f64> {
    if !is_valid_numeral(text) {
        return None;
    }
    if let Some(hex) = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
    {
        return Some(hex_value(hex));
    }
    // Valid numerals are ASCII, so this cannot fail; stay total anyway.
    std::str::from_utf8(text).ok()?.parse::<f64>().ok()
}

fn hex_value(digits: &[u8]) -> f64 {
    // Skip leading zeros, then take up to 16 significant hex digits exactly in a u64 and scale
    // the rest; digits past the 16th only matter for rounding far beyond f64 precision except
    // in a sticky-bit sense, which we fold in.
    let digits = {
        let start = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len());
        &digits[start..]
    };
    let mut mantissa: u64 = 0;
    let mut taken = 0;
    for &d in digits.iter().take(16) {
        mantissa = (mantissa << 4) | u64::from(hex_digit(d));
        taken += 1;
    }
    let rest = &digits[taken..];
    if rest.is_empty() {
        return mantissa as f64;
    }
    // Sticky bit: any non-zero digit beyond keeps rounding direction correct.
    if rest.iter().any(|&d| d != b'0') {
        mantissa |= 1;
    }
    let scale = 4.0 * rest.len() as f64;
    (mantissa as f64) * scale.exp2()
}

fn hex_digit(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

/// Why a number cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("infinite numbers cannot be written: the game would save them as `inf` and lose them")]
    Infinite,
    #[error("`nan` cannot be written: the game cannot load it back")]
    NotANumber,
}

/// Text for a number svsync creates: integers as plain digits, other values as the shortest
/// text that reads back to the same double. Never `inf`, `nan` or `-0`.
pub fn format_number(value: f64) -> Result<String, NumberError> {
    if value.is_nan() {
        return Err(NumberError::NotANumber);
    }
    if value.is_infinite() {
        return Err(NumberError::Infinite);
    }
    if value == 0.0 {
        return Ok("0".to_string());
    }
    let magnitude = value.abs();
    if value.fract() == 0.0 && magnitude < 1e16 {
        return Ok(format!("{}", value as i64));
    }
    // Rust's Display and LowerExp both print the shortest round-trip digits; pick the shorter.
    let plain = format!("{value}");
    let exp = format!("{value:e}");
    Ok(if exp.len() < plain.len() { exp } else { plain })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerals_lua_accepts() {
        for ok in [
            "0",
            "12",
            "007",
            ".5",
            "5.",
            "1.5",
            "1e5",
            "1E+5",
            "2.288818359375e-05",
            "0x1F",
            "0XfF",
            "1.e5",
            "3.0517578125e-05",
        ] {
            assert!(is_valid_numeral(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn numerals_lua_refuses() {
        for bad in [
            "", ".", "1e", "1e+", "0x", "1..2", "1.5.3", "1e5e", "12abc", "0x1g", "1_0",
        ] {
            assert!(!is_valid_numeral(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(numeral_value(b"0x1F"), Some(31.0));
        assert_eq!(numeral_value(b".5"), Some(0.5));
        assert_eq!(numeral_value(b"5."), Some(5.0));
        assert_eq!(numeral_value(b"1e999"), Some(f64::INFINITY));
        assert_eq!(
            numeral_value(b"0xFFFFFFFFFFFFFFFF"),
            Some(18446744073709551615.0)
        );
        assert_eq!(
            numeral_value(b"0x123456789abcdef0123"),
            Some(0x123456789abcdef0123u128 as f64)
        );
    }

    #[test]
    fn new_numbers() {
        assert_eq!(format_number(80.0).unwrap(), "80");
        assert_eq!(format_number(-0.0).unwrap(), "0");
        assert_eq!(format_number(621.875).unwrap(), "621.875");
        assert_eq!(format_number(0.1).unwrap(), "0.1");
        assert_eq!(format_number(1e300).unwrap(), "1e300");
        assert_eq!(format_number(-6.103515625e-05).unwrap(), "-6.103515625e-5");
        assert_eq!(format_number(f64::INFINITY), Err(NumberError::Infinite));
        assert_eq!(format_number(f64::NAN), Err(NumberError::NotANumber));
        for v in [0.1f64, 1.0 / 3.0, 123456.789e-20, 5e-324, f64::MAX] {
            let text = format_number(v).unwrap();
            assert_eq!(
                numeral_value(text.trim_start_matches('-').as_bytes()),
                Some(v.abs())
            );
        }
    }
}
