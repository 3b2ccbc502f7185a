//! Device tokens and pairing codes: how they are generated, normalised and hashed.
//!
//! Only hashes are ever stored; the plaintext exists in the pair response (tokens) or on the
//! admin's terminal (codes). Lookups go by hash and are confirmed with a constant-time
//! comparison so response timing says nothing about stored secrets.
//!
//! Tokens carry 256 random bits, so a plain SHA-256 is enough. Pairing codes carry only
//! about 40 bits: a plain hash of one could be brute-forced from a copy of the database in
//! minutes. They are stored as HMAC-SHA256 under a [`PairingKey`] that lives in a separate
//! file of the data directory (see `crate::data_dir`), so the database alone is useless.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes a savesync token recognisable in config files and secret scanners.
const TOKEN_PREFIX: &str = "ss_";
/// No 0/O, 1/I/L: codes are read off a screen and typed on a gamepad keyboard.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_GROUP: usize = 4;

/// A freshly generated device token. `Debug` never shows it.
pub struct Token(String);

impl Token {
    /// 32 random bytes from the thread-local CSPRNG (seeded from the OS), hex encoded.
    #[must_use]
    pub fn generate() -> Token {
        let bytes: [u8; 32] = rand::random();
        Token(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
    }

    /// The plaintext, to hand to the device exactly once.
    #[must_use]
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// What the database stores.
    #[must_use]
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 hex of a presented token.
#[must_use]
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two stored/computed hashes.
#[must_use]
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A one-time pairing code such as `K7QM-3XWP`. `Debug` never shows it.
pub struct PairingSecret(String);

impl PairingSecret {
    /// Eight characters from a 31-symbol alphabet (about 40 bits): enough for a code that
    /// lives ten minutes and dies on first use.
    #[must_use]
    pub fn generate() -> PairingSecret {
        let mut out = String::with_capacity(2 * CODE_GROUP + 1);
        for i in 0..2 * CODE_GROUP {
            if i == CODE_GROUP {
                out.push('-');
            }
            let idx = rand::random_range(0..CODE_ALPHABET.len());
            out.push(char::from(CODE_ALPHABET[idx]));
        }
        PairingSecret(out)
    }

    /// The code as shown to the user.
    #[must_use]
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// What the database stores.
    #[must_use]
    pub fn hash(&self, key: &PairingKey) -> String {
        key.hash_code(&self.0)
    }
}

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret(<redacted>)")
    }
}

/// Bytes in a [`PairingKey`].
pub const PAIRING_KEY_BYTES: usize = 32;

/// The server secret pairing codes are keyed with. `Debug` never shows it.
#[derive(Clone)]
pub struct PairingKey([u8; PAIRING_KEY_BYTES]);

impl PairingKey {
    /// A fresh random key (from the thread-local CSPRNG, seeded from the OS).
    #[must_use]
    pub fn generate() -> PairingKey {
        PairingKey(rand::random())
    }

    /// The key as stored in its file: lowercase hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse the file's contents (hex, surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<PairingKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(PairingKey(bytes.try_into().ok()?))
    }

    /// HMAC-SHA256 hex of a typed code, after forgiving case, spaces and dashes.
    #[must_use]
    pub fn hash_code(&self, typed: &str) -> String {
        let normalised: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_to_64_hex() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a.reveal(), b.reveal());
        assert!(a.reveal().starts_with("ss_"));
        assert_eq!(a.reveal().len(), 3 + 64);
        assert_eq!(a.hash(), hash_token(a.reveal()));
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), a.reveal());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let t = Token::generate();
        let c = PairingSecret::generate();
        let k = PairingKey::generate();
        assert!(!format!("{t:?}").contains(t.reveal()));
        assert!(!format!("{c:?}").contains(c.reveal()));
        assert!(!format!("{k:?}").contains(&k.to_hex()));
    }

    #[test]
    fn pairing_code_is_two_groups_from_the_unambiguous_alphabet() {
        let code = PairingSecret::generate();
        let s = code.reveal();
        assert_eq!(s.len(), 9);
        assert_eq!(&s[4..5], "-");
        assert!(s.chars().filter(|c| *c != '-').all(|c| CODE_ALPHABET.contains(&(c as u8))));
    }

    #[test]
    fn typed_code_tolerates_case_spaces_and_missing_dash() {
        let key = PairingKey::generate();
        let code = PairingSecret::generate();
        let sloppy = code.reveal().to_lowercase().replace('-', " ");
        assert_eq!(key.hash_code(&sloppy), code.hash(&key));
    }

    #[test]
    fn code_hashes_depend_on_the_key_and_are_not_a_plain_sha256() {
        let (a, b) = (PairingKey::generate(), PairingKey::generate());
        let code = PairingSecret::generate();
        assert_ne!(code.hash(&a), code.hash(&b));
        let plain = hex::encode(Sha256::digest(code.reveal().replace('-', "").as_bytes()));
        assert_ne!(code.hash(&a), plain);
        assert_eq!(code.hash(&a).len(), 64);
    }

    #[test]
    fn pairing_key_round_trips_through_hex_and_rejects_other_lengths() {
        let key = PairingKey::generate();
        let back = PairingKey::from_hex(&format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(back.to_hex(), key.to_hex());
        assert!(PairingKey::from_hex("abcd").is_none());
        assert!(PairingKey::from_hex("not hex").is_none());
    }

    #[test]
    fn constant_time_compare_agrees_with_equality() {
        assert!(hashes_match("abc", "abc"));
        assert!(!hashes_match("abc", "abd"));
        assert!(!hashes_match("abc", "abcd"));
    }
}
