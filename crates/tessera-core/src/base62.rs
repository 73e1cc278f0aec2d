//! Base62 with the alphabet `0-9A-Za-z`, in that order (SPEC: Tokens).

/// The base62 alphabet, index = digit value.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `byte` is a base62 digit.
pub fn is_digit(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

/// Writes `value` as exactly `width` base62 digits, most significant first, zero-padded.
/// Digits beyond `width` are dropped, so callers pick a width that holds their range
/// (6 digits hold every `u32`: 62^6 > 2^32).
pub fn encode_fixed(mut value: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        // `value % 62` is below 62, so the index is always in range.
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits.into_iter().map(char::from).collect()
}

/// Reads a base62 number; `None` on a non-digit or on overflow of `u64`.
pub fn decode(text: &str) -> Option<u64> {
    text.bytes().try_fold(0u64, |acc, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'A'..=b'Z' => byte - b'A' + 10,
            b'a'..=b'z' => byte - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode_fixed(0, 6), "000000");
        assert_eq!(encode_fixed(61, 2), "0z");
        assert_eq!(encode_fixed(62, 2), "10");
        assert_eq!(encode_fixed(u64::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn decode_rejects_non_digits() {
        assert_eq!(decode("ab_c"), None);
        assert_eq!(decode("4gfFC3"), Some(u64::from(u32::MAX)));
    }

    proptest::proptest! {
        #[test]
        fn round_trips_every_u32(value: u32) {
            let text = encode_fixed(u64::from(value), 6);
            proptest::prop_assert_eq!(text.len(), 6);
            proptest::prop_assert_eq!(decode(&text), Some(u64::from(value)));
        }
    }
}
