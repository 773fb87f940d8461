//! ASCII number parsing shared by the processes' input codecs (the feed handler's CSV
//! timestamps, the gateway's FIX fields): hot path, no allocation, never wraps.

/// Parses 1..=20 ASCII digits into a `u64`; `None` if empty, not all digits, or over
/// `u64::MAX` (checked: never wraps).
#[inline]
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::parse_u64;

    #[test]
    fn digits_parse_and_anything_else_or_an_overflow_is_none() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"1770025140888145"), Some(1_770_025_140_888_145));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"000000000000000000001"), None);
        for bad in [&b""[..], b"12a", b"-1", b"1.5", b" 1"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}
