//! [`SavePath`]: a validated, relative, `/`-separated path inside one user's save library.
//!
//! Every path that crosses a trust boundary (an HTTP request, a FUSE lookup, a manifest
//! entry) is parsed into a `SavePath` first, so nothing downstream ever sees `..`, an
//! absolute path, a NUL byte or a control character. Names ending in [`CONFLICT_SUFFIX`]
//! are reserved for the mount's conflict copies and are refused here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Longest single component, in bytes (the common `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest whole path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Suffix of the sibling that shows the other side of a conflict.
pub const CONFLICT_SUFFIX: &str = ".conflict";

/// A save path such as `snes/Chrono Trigger.srm`.
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
    #[error("names ending in '.conflict' are reserved for conflict copies")]
    ReservedConflictName,
}

impl SavePath {
    /// Validate `s` as a save path.
    pub fn parse(s: &str) -> Result<SavePath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_BYTES {
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
            validate_component(component)?;
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

/// Check one path component (also used by the mount for names it receives from FUSE).
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
    if component.ends_with(CONFLICT_SUFFIX) {
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
        let s = String::deserialize(d)?;
        SavePath::parse(&s).map_err(serde::de::Error::custom)
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
        assert!(SavePath::parse(&"x".repeat(255)).is_ok());
        assert_eq!(SavePath::parse(&"x".repeat(256)), Err(PathError::ComponentTooLong));
        let long = vec!["y".repeat(200); 6].join("/");
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
