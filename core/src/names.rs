//! The pure rules that make two names that *look* the same *be* the same save, shared by
//! [`crate::SavePath`], the server's commit and the mount:
//!
//! - [`to_nfc`]: every name is kept in Unicode Normalization Form C. "Pokémon" typed on
//!   Linux (NFC) and written by macOS or a Samba client (NFD) is one name.
//! - [`fold_key`]: the canonical caseless form (Unicode §3.13, D145: case-fold the
//!   canonical decomposition, full folding from `CaseFolding.txt`, returned recomposed).
//!   Two different names with the same key would collide on a case-insensitive re-export
//!   (Samba's default, Windows, macOS), so a second such sibling is refused.
//! - [`invisible_char`]: formatting characters that render as nothing (bidi overrides,
//!   zero-width characters, BOM, line separators ...), which would let two saves look
//!   identical or a name display reversed.
//! - [`is_reserved_conflict_name`]: the `.conflict` suffix matched the way Windows and
//!   Samba match names (case-insensitive, trailing dots and spaces ignored).
//!
//! Folding uses the `caseless` crate (the unicode-rs project, same data pipeline as
//! `unicode-normalization`, Unicode 16): it implements exactly the default case folding
//! of the standard, which is a superset of what NTFS, APFS and Samba treat as equal, so
//! a name accepted here never collides on any of them.

use caseless::Caseless;
use std::borrow::Cow;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Suffix of the sibling that shows the other side of a conflict.
pub const CONFLICT_SUFFIX: &str = ".conflict";

/// `s` in Normalization Form C; borrowed when it already is (the common case, checked
/// without allocating).
#[must_use]
pub fn to_nfc(s: &str) -> Cow<'_, str> {
    match is_nfc_quick(s.chars()) {
        IsNormalized::Yes => Cow::Borrowed(s),
        IsNormalized::No | IsNormalized::Maybe => {
            let n: String = s.nfc().collect();
            if n == s { Cow::Borrowed(s) } else { Cow::Owned(n) }
        }
    }
}

/// The key two names share exactly when they are canonically caseless-equal: NFC of the
/// full case fold of the NFD form. `'/'` folds to itself, so the key of a whole path is the
/// keys of its components joined by `'/'`.
#[must_use]
pub fn fold_key(s: &str) -> String {
    if s.is_ascii() {
        // ASCII is its own NFD and NFC, and folds by lowercasing A-Z: the same key,
        // without the three Unicode passes (a 10,000-entry manifest checks every name).
        return s.to_ascii_lowercase();
    }
    s.nfd().default_case_fold().nfc().collect()
}

/// Inclusive ranges of characters that are invisible formatting: refused in names.
/// Variation selectors are not here (emoji need U+FE0F); C0/C1 controls are refused
/// separately as control characters.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark (bidi)
    ('\u{115F}', '\u{1160}'),   // Hangul choseong/jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{2028}', '\u{2029}'),   // line and paragraph separators
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // bidi isolates, deprecated format characters
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FEFF}', '\u{FEFF}'),   // byte order mark / zero-width no-break space
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0000}', '\u{E007F}'), // tag characters
];

/// The first invisible formatting character in `s`, if any.
#[must_use]
pub fn invisible_char(s: &str) -> Option<char> {
    if s.is_ascii() {
        return None; // every range above starts past ASCII
    }
    s.chars().find(|c| INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(c)))
}

/// True when `component` names a conflict copy as a case-insensitive file system would
/// see it: `x.conflict`, `x.CONFLICT`, `x.conflict.`, `x.conflict ` ... (Windows and Samba
/// drop trailing dots and spaces, so those would open the conflict copy).
#[must_use]
pub fn is_reserved_conflict_name(component: &str) -> bool {
    let trimmed = component.trim_end_matches(['.', ' ']);
    if trimmed.is_ascii() {
        // What folding an ASCII name comes to, without allocating.
        let n = CONFLICT_SUFFIX.len();
        return trimmed.len() >= n
            && trimmed.as_bytes()[trimmed.len() - n..]
                .eq_ignore_ascii_case(CONFLICT_SUFFIX.as_bytes());
    }
    // The suffix is ASCII, so a folded name ends with it exactly when the name's last
    // characters fold to it (this also catches ligatures such as U+FB02 "ﬂ").
    fold_key(trimmed).ends_with(CONFLICT_SUFFIX)
}
