//! Table tests of the name rules (issue 7, item 8): NFC normalisation, canonical caseless
//! keys, invisible characters, the reserved `.conflict` suffix and the length bounds.

use savesync_core::{
    CONFLICT_SUFFIX, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, NAME_MAX_BYTES, PathError, SavePath,
    fold_key, invisible_char, is_reserved_conflict_name, to_nfc,
};

const NFC: &str = "gba/Pok\u{e9}mon Emerald.sav";
const NFD: &str = "gba/Poke\u{301}mon Emerald.sav";

#[test]
fn parse_returns_the_nfc_form_of_any_spelling() {
    let table = [
        (NFC, NFC),
        (NFD, NFC),
        // Hangul: conjoining jamo compose into one syllable.
        ("\u{1100}\u{1161}.srm", "\u{AC00}.srm"),
        // Singleton: OHM SIGN is canonically GREEK CAPITAL OMEGA.
        ("\u{2126}.sav", "\u{3A9}.sav"),
        ("snes/Chrono Trigger.srm", "snes/Chrono Trigger.srm"),
    ];
    for (input, nfc) in table {
        assert_eq!(SavePath::parse(input).unwrap().as_str(), nfc, "{input:?}");
        assert_eq!(to_nfc(input), nfc, "{input:?}");
    }
    // Both spellings are the same save, also through serde.
    let from_json: SavePath = serde_json::from_str(&serde_json::to_string(NFD).unwrap()).unwrap();
    assert_eq!(from_json, SavePath::parse(NFC).unwrap());
}

#[test]
fn fold_key_matches_names_a_case_insensitive_share_merges() {
    let same = [
        ("Zelda.SRM", "zelda.srm"),
        ("Pok\u{e9}mon.sav", "POKE\u{301}MON.SAV"),
        ("stra\u{df}e.sav", "STRASSE.sav"), // full folding: sharp s is "ss"
        ("\u{212A}elvin", "kelvin"),        // KELVIN SIGN
        ("\u{3A3}\u{391}\u{3A3}", "\u{3C3}\u{3B1}\u{3C2}"), // final sigma
        ("Snes/A.srm", "snes/a.SRM"),
    ];
    for (a, b) in same {
        assert_eq!(fold_key(a), fold_key(b), "{a:?} vs {b:?}");
    }
    let different = [("a.srm", "b.srm"), ("e.sav", "\u{e9}.sav"), ("a", "a ")];
    for (a, b) in different {
        assert_ne!(fold_key(a), fold_key(b), "{a:?} vs {b:?}");
    }
}

#[test]
fn invisible_formatting_characters_are_refused() {
    let refused = [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{200F}', // zero-width, marks
        '\u{202A}',
        '\u{202B}',
        '\u{202C}',
        '\u{202D}',
        '\u{202E}', // bidi overrides
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}', // bidi isolates
        '\u{2060}',
        '\u{FEFF}', // word joiner, BOM
        '\u{2028}',
        '\u{2029}', // line and paragraph separators
        '\u{00AD}',
        '\u{061C}',
        '\u{180E}',
        '\u{3164}',
        '\u{E0041}',
    ];
    for c in refused {
        let name = format!("snes/ev{c}il.srm");
        assert_eq!(invisible_char(&name), Some(c), "U+{:04X}", u32::from(c));
        assert_eq!(SavePath::parse(&name), Err(PathError::InvisibleCharacter(c)));
    }
    // Visible non-ASCII, and the emoji variation selector, stay allowed.
    for ok in ["Pok\u{e9}mon.sav", "\u{2764}\u{FE0F}.sav", "\u{65E5}\u{672C}.srm", "a b.srm"] {
        assert_eq!(invisible_char(ok), None, "{ok:?}");
        assert!(SavePath::parse(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn the_conflict_suffix_is_reserved_in_any_case_and_before_trailing_dots_and_spaces() {
    let reserved = [
        "x.conflict",
        "x.CONFLICT",
        "x.Conflict",
        "x.conflict.",
        "x.conflict ",
        "x.conflict. .",
        ".conflict",
        "x.con\u{FB02}ict", // the "fl" ligature folds to "fl"
    ];
    for name in reserved {
        assert!(is_reserved_conflict_name(name), "{name:?}");
        assert_eq!(SavePath::parse(&format!("snes/{name}")), Err(PathError::ReservedConflictName));
    }
    for ok in ["x.conflicts", "x.conflict.d", "conflict", "x.conflict.srm", "x.confl1ct"] {
        assert!(!is_reserved_conflict_name(ok), "{ok:?}");
        assert!(SavePath::parse(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn components_leave_room_for_the_conflict_suffix_and_paths_reach_path_max_minus_one() {
    assert_eq!(MAX_COMPONENT_BYTES + CONFLICT_SUFFIX.len(), NAME_MAX_BYTES);
    let longest = "n".repeat(MAX_COMPONENT_BYTES);
    assert!(SavePath::parse(&longest).is_ok());
    assert!(
        format!("{longest}{CONFLICT_SUFFIX}").len() <= NAME_MAX_BYTES,
        "the conflict copy of the longest name must be a valid name"
    );
    assert_eq!(
        SavePath::parse(&"n".repeat(MAX_COMPONENT_BYTES + 1)),
        Err(PathError::ComponentTooLong)
    );
    // Multi-byte: 123 two-byte characters is 246 bytes, one more is too long.
    assert!(SavePath::parse(&"\u{e9}".repeat(123)).is_ok());
    assert_eq!(SavePath::parse(&"\u{e9}".repeat(124)), Err(PathError::ComponentTooLong));

    // A path of exactly PATH_MAX - 1 bytes.
    assert_eq!(MAX_PATH_BYTES, 4095);
    let mut path = vec!["d".repeat(200); 20].join("/"); // 4,019 bytes
    path.push('/');
    path.push_str(&"f".repeat(MAX_PATH_BYTES - path.len()));
    assert_eq!(path.len(), 4095);
    assert_eq!(SavePath::parse(&path).unwrap().as_str(), path);
    path.push('g');
    assert_eq!(SavePath::parse(&path), Err(PathError::TooLong));
    // The bound is on the NFC form: an NFD spelling longer than 4,095 bytes whose NFC form
    // fits is accepted.
    let nfd = vec!["e\u{301}".repeat(80); 18].join("/"); // 3 bytes per char in NFD
    assert!(nfd.len() > MAX_PATH_BYTES);
    assert!(SavePath::parse(&nfd).unwrap().as_str().len() <= MAX_PATH_BYTES);
    // The deepest possible path.
    let deep = vec!["a"; MAX_PATH_BYTES.div_ceil(2)].join("/");
    assert_eq!(deep.len(), MAX_PATH_BYTES);
    assert_eq!(SavePath::parse(&deep).unwrap().components().count(), 2048);
}

#[test]
fn paths_read_back_from_a_store_keep_their_spelling_and_only_safety_rules_apply() {
    // Rows written under the older, looser rules still read back, spelled as stored.
    for stored in [
        "gba/Poke\u{301}mon.sav",            // NFD
        "snes/Zelda.CONFLICT",               // reserved only since the case rule
        "psx/a\u{200b}b.mcd",                // an invisible character
        &format!("n64/{}", "x".repeat(250)), // a component over 246 bytes
    ] {
        assert_eq!(SavePath::from_stored(stored).unwrap().as_str(), stored);
    }
    // What would make a path unsafe is refused even from a store.
    let refused = [
        ("", PathError::Empty),
        ("/etc/passwd", PathError::Absolute),
        ("a/../../etc", PathError::DotComponent),
        ("a//b", PathError::EmptyComponent),
        ("a/b\u{0}c", PathError::ControlCharacter),
        ("a\\b", PathError::Backslash),
    ];
    for (stored, why) in refused {
        assert_eq!(SavePath::from_stored(stored), Err(why), "{stored:?}");
    }
    assert_eq!(SavePath::from_stored(&"y".repeat(256)), Err(PathError::ComponentTooLong));
}

/// The ASCII shortcuts in `fold_key`, `invisible_char` and `is_reserved_conflict_name`
/// give exactly what the full Unicode pipeline gives, for names built from every ASCII
/// character.
#[test]
fn ascii_fast_paths_agree_with_the_unicode_pipeline() {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    let full_fold = |s: &str| -> String { s.nfd().default_case_fold().nfc().collect() };
    for byte in 0u8..128 {
        let c = char::from(byte);
        for name in [
            format!("{c}"),
            format!("Save{c}File.SRM"),
            format!("x.conflict{c}"),
            format!("x.CONFLICT{c}"),
            format!("x{c}CoNfLiCt"),
            format!("x.conflic{c}"),
        ] {
            assert_eq!(fold_key(&name), full_fold(&name), "{name:?}");
            assert_eq!(invisible_char(&name), None, "{name:?}");
            let trimmed = name.trim_end_matches(['.', ' ']);
            assert_eq!(
                is_reserved_conflict_name(&name),
                full_fold(trimmed).ends_with(CONFLICT_SUFFIX),
                "{name:?}"
            );
        }
    }
}
