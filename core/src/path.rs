//! [`SavePath`]: a validated, relative, `/`-separated path inside one user's save library.
//!
//! Every path that crosses a trust boundary (an HTTP request, a FUSE lookup, a manifest
//! entry) is parsed into a `SavePath` first, so nothing downstream ever sees `..`, an
//! absolute path, a NUL byte or a control character.
//!
//! Parsing *normalises* rather than refuses: the result is the NFC form of the input
//! ([`crate::names::to_nfc`]), so a client or program that spells a name in NFD gets the
//! same save as one that spells it in NFC. The other name rules (`crate::names`) refuse:
//! invisible formatting characters, and names a case-insensitive file system would take
//! for a conflict copy (`NAME.conflict`, any case, trailing dots and spaces ignored).
//! Components are bounded so that `NAME.conflict` still fits in `NAME_MAX` (255 bytes),
//! and whole paths by `PATH_MAX - 1` (4,095 bytes), both counted on the NFC form.

use crate::names::{invisible_char, is_reserved_conflict_name, to_nfc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

pub use crate::names::CONFLICT_SUFFIX;

/// The common `NAME_MAX`: the longest name a Linux file system (and the mount) holds.
pub const NAME_MAX_BYTES: usize = 255;
/// Longest single component, in bytes: `NAME_MAX` less the conflict suffix, so the
/// conflict copy of any save is itself a valid file name.
pub const MAX_COMPONENT_BYTES: usize = NAME_MAX_BYTES - CONFLICT_SUFFIX.len();
/// Longest whole path, in bytes: Linux `PATH_MAX` (4,096) less its NUL.
pub const MAX_PATH_BYTES: usize = 4095;
/// Most components a path can have (`a/b/...`): bounds every walk up or down a path.
pub const MAX_PATH_COMPONENTS: usize = MAX_PATH_BYTES.div_ceil(2);
/// Longest input parse looks at before normalising: NFD spells a character in at most
/// four times the bytes NFC does, so no valid path is longer than this in any form.
const MAX_INPUT_BYTES: usize = 4 * MAX_PATH_BYTES;

/// A save path such as `snes/Chrono Trigger.srm`, in NFC.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SavePath(String);

/// Why a string is not a valid save path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path must be relative (no leading '/')")]
    Absolute,
    #[error("path has an empty component ('//' or a trailing '/')")]
    EmptyComponent,
    #[error("path has a '.' or '..' component")]
    DotComponent,
    #[error("path has a NUL or control character")]
    ControlCharacter,
    #[error("path has a backslash, which is ambiguous across platforms")]
    Backslash,
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error(
        "names ending in '.conflict' (any case, with trailing dots or spaces) are reserved for conflict copies"
    )]
    ReservedConflictName,
    #[error("path has the invisible formatting character U+{:04X}", u32::from(*.0))]
    InvisibleCharacter(char),
}

impl SavePath {
    /// Validate `s` as a save path; the path returned is its NFC form.
    pub fn parse(s: &str) -> Result<SavePath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_INPUT_BYTES {
            return Err(PathError::TooLong);
        }
        let s = to_nfc(s);
        if s.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if s.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if let Some(c) = invisible_char(&s) {
            return Err(PathError::InvisibleCharacter(c));
        }
        if s.contains('\\') {
            return Err(PathError::Backslash);
        }
        for component in s.split('/') {
            validate_component(component)?;
        }
        Ok(SavePath(s.into_owned()))
    }

    /// A path read back from a store this program wrote (a server database, a device's
    /// state DB), possibly by an older version with looser name rules. Only the rules that
    /// keep a path safe to use are checked (relative, no `.`/`..` or empty component, no
    /// control character or backslash, bounded); the spelling is kept exactly as stored, so
    /// the path still matches its row. New names from outside always go through
    /// [`SavePath::parse`].
    pub fn from_stored(s: &str) -> Result<SavePath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_INPUT_BYTES {
            return Err(PathError::TooLong);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if s.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if s.contains('\\') {
            return Err(PathError::Backslash);
        }
        for component in s.split('/') {
            match component {
                "" => return Err(PathError::EmptyComponent),
                "." | ".." => return Err(PathError::DotComponent),
                c if c.len() > NAME_MAX_BYTES => return Err(PathError::ComponentTooLong),
                _ => {}
            }
        }
        Ok(SavePath(s.to_owned()))
    }

    /// Join one more component onto this path.
    pub fn join(&self, name: &str) -> Result<SavePath, PathError> {
        SavePath::parse(&format!("{}/{}", self.0, name))
    }

    /// A single-component path, or the child of an optional parent.
    pub fn child_of(parent: Option<&SavePath>, name: &str) -> Result<SavePath, PathError> {
        match parent {
            Some(p) => p.join(name),
            None => SavePath::parse(name),
        }
    }

    /// The path as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    #[must_use]
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the last component, if any.
    #[must_use]
    pub fn parent(&self) -> Option<SavePath> {
        self.0.rsplit_once('/').map(|(p, _)| SavePath(p.to_owned()))
    }

    /// The components in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// True if `self` is `prefix` itself or lies below it.
    #[must_use]
    pub fn starts_with(&self, prefix: &SavePath) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }
}

/// Check one NFC path component (also used by the mount for names it receives from FUSE).
/// Character rules (controls, invisible characters) are checked by [`SavePath::parse`].
pub fn validate_component(component: &str) -> Result<(), PathError> {
    if component.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent);
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PathError::ComponentTooLong);
    }
    if is_reserved_conflict_name(component) {
        return Err(PathError::ReservedConflictName);
    }
    Ok(())
}

impl fmt::Debug for SavePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SavePath({:?})", self.0)
    }
}

impl fmt::Display for SavePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SavePath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SavePath::parse(s)
    }
}

impl AsRef<str> for SavePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for SavePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SavePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::str_visitor::deserialize_parsed(d, "a save path", SavePath::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_platform_nested_paths() {
        for ok in
            ["snes/Chrono Trigger.srm", "psx/memcards/card1.mcd", "a", "gba/Pokémon Émeraude.sav"]
        {
            assert_eq!(SavePath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_traversal_absolute_and_empty_components() {
        assert_eq!(SavePath::parse(""), Err(PathError::Empty));
        assert_eq!(SavePath::parse("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(SavePath::parse("../../etc"), Err(PathError::DotComponent));
        assert_eq!(SavePath::parse("snes/./x"), Err(PathError::DotComponent));
        assert_eq!(SavePath::parse("snes//x"), Err(PathError::EmptyComponent));
        assert_eq!(SavePath::parse("snes/"), Err(PathError::EmptyComponent));
        assert_eq!(SavePath::parse("snes\\x"), Err(PathError::Backslash));
    }

    #[test]
    fn rejects_nul_and_control_characters() {
        assert_eq!(SavePath::parse("a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(SavePath::parse("a\nb"), Err(PathError::ControlCharacter));
        assert_eq!(SavePath::parse("a\u{7f}b"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn bounds_component_and_path_length() {
        assert!(SavePath::parse(&"x".repeat(246)).is_ok());
        assert_eq!(SavePath::parse(&"x".repeat(247)), Err(PathError::ComponentTooLong));
        let long = vec!["y".repeat(200); 21].join("/");
        assert_eq!(SavePath::parse(&long), Err(PathError::TooLong));
    }

    #[test]
    fn conflict_names_are_reserved() {
        assert_eq!(SavePath::parse("snes/a.srm.conflict"), Err(PathError::ReservedConflictName));
        assert!(SavePath::parse("snes.conflict.d/a").is_ok());
    }

    #[test]
    fn parent_file_name_and_prefix() {
        let p = SavePath::parse("psx/memcards/card1.mcd").unwrap();
        assert_eq!(p.file_name(), "card1.mcd");
        assert_eq!(p.parent().unwrap().as_str(), "psx/memcards");
        assert!(p.starts_with(&SavePath::parse("psx").unwrap()));
        assert!(!p.starts_with(&SavePath::parse("ps").unwrap()));
    }

    #[test]
    fn serde_refuses_invalid_paths() {
        assert!(serde_json::from_str::<SavePath>("\"../x\"").is_err());
        assert!(serde_json::from_str::<SavePath>("\"a/b\"").is_ok());
    }
}
