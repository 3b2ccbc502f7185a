//! Device tokens and pairing codes: how they are generated, normalised and hashed.
//!
//! Only SHA-256 hashes are ever stored; the plaintext exists in the pair response (tokens)
//! or on the admin's terminal (codes). Lookups go by hash and are confirmed with a
//! constant-time comparison so response timing says nothing about stored secrets.

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
    pub fn hash(&self) -> String {
        hash_pairing_code(&self.0)
    }
}

impl std::fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingSecret(<redacted>)")
    }
}

/// Hash of a typed code, after forgiving case, spaces and dashes.
#[must_use]
pub fn hash_pairing_code(typed: &str) -> String {
    let normalised: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normalised.as_bytes()))
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
        assert!(!format!("{t:?}").contains(t.reveal()));
        assert!(!format!("{c:?}").contains(c.reveal()));
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
        let code = PairingSecret::generate();
        let sloppy = code.reveal().to_lowercase().replace('-', " ");
        assert_eq!(hash_pairing_code(&sloppy), code.hash());
    }

    #[test]
    fn constant_time_compare_agrees_with_equality() {
        assert!(hashes_match("abc", "abc"));
        assert!(!hashes_match("abc", "abd"));
        assert!(!hashes_match("abc", "abcd"));
    }
}
