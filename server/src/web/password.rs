//! Dashboard passwords: argon2id with the crate's default parameters, stored as a PHC
//! string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the parameters travel with the
//! hash and can be raised later without breaking stored ones.
//!
//! Checking a password for a user that has none (or does not exist) still runs one argon2
//! verification against a fixed dummy hash, so the answer's timing does not tell which
//! user names exist.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::LazyLock;

/// Shortest password `users passwd` accepts.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted anywhere (the login form and `users passwd`).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefused {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("could not hash the password: {0}")]
    Hashing(String),
}

/// Hash a new password for storage.
pub fn hash_password(password: &str) -> Result<String, PasswordRefused> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordRefused::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordRefused::TooLong);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordRefused::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordRefused::Hashing(e.to_string()))
}

/// Set the dashboard password of the existing user `name` (ends their signed-in sessions).
pub async fn set_user_password(app: &crate::App, name: &str, password: &str) -> anyhow::Result<()> {
    let name = name.trim();
    let user = app
        .meta()
        .user_password(name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no user {name:?} (users are created by `savesync-server pair --user {name}`)"
            )
        })?
        .user_id;
    // Hashing takes tens of milliseconds of CPU: off the async workers when there are any.
    let phc = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let password = password.to_owned();
            runtime.spawn_blocking(move || hash_password(&password)).await??
        }
        Err(_) => hash_password(password)?,
    };
    app.meta().set_password(user, &phc, crate::timestamps::now_unix()).await?;
    Ok(())
}

/// A stored hash no password matches, verified when the user has none.
static DUMMY: LazyLock<Option<String>> =
    LazyLock::new(|| hash_password("no password matches this one").ok());

/// Whether `password` matches `stored` (constant-time inside argon2). `None` (no such user,
/// or no password set) is verified against a dummy and is always false.
#[must_use]
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => match DUMMY.as_deref() {
            Some(dummy) => (dummy, false),
            None => return false,
        },
    };
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    matches && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_hash_is_argon2id_and_only_its_password_matches() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password("correct horse", Some(&phc)));
        assert!(!verify_password("correct hors", Some(&phc)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("not a phc string")));
        assert_ne!(phc, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn new_passwords_have_a_length_range() {
        assert_eq!(hash_password("short"), Err(PasswordRefused::TooShort));
        assert_eq!(hash_password(&"x".repeat(2000)), Err(PasswordRefused::TooLong));
    }
}
