//! Wall-clock time as svsync records it: milliseconds since the Unix epoch, and UTC text.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for milliseconds since the Unix epoch.
pub fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYYMMDDTHHMMSSZ`: the same instant, fit for a file name.
pub fn file_stamp(ms: u64) -> String {
    utc_text(ms).replace([':', '-'], "")
}

/// The instant a [`file_stamp`] names (whole seconds), if it is one.
pub fn parse_file_stamp(stamp: &str) -> Option<u64> {
    let b = stamp.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = stamp.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// The pause before attempt `attempts + 1` of something that failed `attempts` times (at least
/// once): `first`, doubling each time, never more than `max`.
pub fn backoff(first: u64, attempts: u32, max: u64) -> u64 {
    first
        .saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(max)
}

/// A system time as milliseconds since the Unix epoch (0 before it).
pub fn ms_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_stamps_read_back_to_their_second() {
        for ms in [0u64, 951_782_400_000, 1_764_680_400_000, 4_102_444_799_000] {
            let stamp = super::file_stamp(ms + 999);
            assert_eq!(super::parse_file_stamp(&stamp), Some(ms), "{stamp}");
        }
        for bad in [
            "",
            "20261202T130620",
            "2026120XT130620Z",
            "20261302T130620Z",
        ] {
            assert_eq!(super::parse_file_stamp(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn utc_text_is_iso() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_764_059_696_123), "2025-11-25T08:34:56Z");
        assert_eq!(file_stamp(1_764_059_696_123), "20251125T083456Z");
    }
}
