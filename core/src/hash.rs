//! [`ContentHash`]: the SHA-256 of a save's bytes, the only notion of "same content" that
//! savesync trusts. Serialized as 64 lowercase hex digits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// SHA-256 of a save's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash([u8; 32]);

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hex digest: {0:?}")]
pub struct ParseHashError(pub String);

impl ContentHash {
    /// Hash a complete buffer.
    #[must_use]
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(Sha256::digest(bytes).into())
    }

    /// Wrap raw digest bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> ContentHash {
        ContentHash(bytes)
    }

    /// The raw digest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The hash of zero bytes, which an empty save has.
    #[must_use]
    pub fn empty() -> ContentHash {
        ContentHash::of(&[])
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for ContentHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_digest(s.as_bytes())
            .map(ContentHash)
            .ok_or_else(|| ParseHashError(s.chars().take(80).collect()))
    }
}

/// Each byte's value as a hex digit (either case, as the `hex` crate accepts), or
/// `INVALID_DIGIT`.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [INVALID_DIGIT; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID_DIGIT: u8 = 0xFF;

/// 64 hex digits as 32 bytes. A table lookup per digit: a negotiate decodes three hashes
/// per save (30,000 for a 10,000-save manifest), and `hex::decode_to_slice` was a sixth of
/// its time in a profile.
fn decode_digest(digits: &[u8]) -> Option<[u8; 32]> {
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (HEX_DIGITS[usize::from(pair[0])], HEX_DIGITS[usize::from(pair[1])]);
        if high == INVALID_DIGIT || low == INVALID_DIGIT {
            return None;
        }
        *byte = high << 4 | low;
    }
    Some(out)
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Hex on the stack: no allocation per hash in a large listing.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.0, &mut hex).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::str_visitor::deserialize_parsed(d, "a SHA-256 hex digest", ContentHash::from_str)
    }
}

/// Incremental hashing for streamed bodies and files.
#[derive(Debug, Default, Clone)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    /// A hasher that has seen no bytes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything fed so far.
    #[must_use]
    pub fn finish(self) -> ContentHash {
        ContentHash(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_of_empty_input() {
        assert_eq!(
            ContentHash::empty().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digests_decode_like_the_hex_crate() {
        let cases: [(&str, bool); 7] = [
            (&"0123456789abcdef".repeat(4), true),
            (&"0123456789ABCDEF".repeat(4), true),
            (&"aB".repeat(32), true),
            (&"0".repeat(63), false),
            (&"0".repeat(65), false),
            (&format!("{}g", "0".repeat(63)), false),
            (&format!("{} ", "f".repeat(63)), false),
        ];
        for (digits, valid) in cases {
            let mut expected = [0u8; 32];
            let by_crate =
                hex::decode_to_slice(digits, &mut expected).is_ok() && digits.len() == 64;
            assert_eq!(by_crate, valid, "{digits:?}: the table itself");
            let ours = super::decode_digest(digits.as_bytes());
            assert_eq!(ours.is_some(), valid, "{digits:?}");
            if valid {
                assert_eq!(ours, Some(expected), "{digits:?}");
            }
        }
        // Every byte value as the first digit: accepted exactly when it is a hex digit.
        for b in 0..=255u8 {
            let digits = format!("{}{}", b as char, "0".repeat(63));
            let mut out = [0u8; 32];
            let by_crate = digits.len() == 64 && hex::decode_to_slice(&digits, &mut out).is_ok();
            assert_eq!(super::decode_digest(digits.as_bytes()).is_some(), by_crate, "byte {b}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let h = ContentHash::of(b"chrono");
        assert_eq!(h.to_hex().parse::<ContentHash>().unwrap(), h);
        assert!("abc".parse::<ContentHash>().is_err());
        assert!("z".repeat(64).parse::<ContentHash>().is_err());
    }

    #[test]
    fn incremental_equals_one_shot() {
        let mut hasher = ContentHasher::new();
        hasher.update(b"chrono ");
        hasher.update(b"trigger");
        assert_eq!(hasher.finish(), ContentHash::of(b"chrono trigger"));
    }
}
