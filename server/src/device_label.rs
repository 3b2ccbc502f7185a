//! The printable-only rule for the labels a pairing device gives itself (`device_name`,
//! `device_kind`). They end up in logs, audit lines, `devices list` and other devices'
//! screens, so they must not carry anything that can forge a log line or disguise text:
//! control characters (newlines, escapes), line and paragraph separators, and invisible
//! formatting characters (bidi embeddings, overrides and isolates, zero-width characters,
//! the BOM, soft hyphen, tags). A pure function, so the rule has a table test.

/// Why a label was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelError {
    /// Empty (after trimming) where a value is required.
    Empty,
    /// More than the allowed number of characters.
    TooLong,
    /// Holds a character the rule refuses.
    NotPrintable,
}

/// `raw` trimmed, if it is at most `max_chars` printable characters (and not empty when
/// `required`).
pub fn printable_label(raw: &str, max_chars: usize, required: bool) -> Result<&str, LabelError> {
    let label = raw.trim();
    if label.is_empty() && required {
        return Err(LabelError::Empty);
    }
    if label.chars().count() > max_chars {
        return Err(LabelError::TooLong);
    }
    if label.chars().any(refused) {
        return Err(LabelError::NotPrintable);
    }
    Ok(label)
}

/// Control characters, line/paragraph separators, and the invisible format characters
/// (Unicode general category Cf).
fn refused(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    use super::{LabelError, printable_label};

    #[test]
    fn the_printable_only_rule() {
        let cases: &[(&str, usize, bool, Result<&str, LabelError>)] = &[
            ("deck", 128, true, Ok("deck")),
            ("  Steam Deck  ", 128, true, Ok("Steam Deck")),
            ("Pokémon 🎮 handheld", 128, true, Ok("Pokémon 🎮 handheld")),
            ("日本語の端末", 128, true, Ok("日本語の端末")),
            ("", 128, true, Err(LabelError::Empty)),
            ("   ", 128, true, Err(LabelError::Empty)),
            ("", 64, false, Ok("")),
            ("abcde", 4, true, Err(LabelError::TooLong)),
            ("éééé", 4, true, Ok("éééé")),
            ("deck\nINFO forged line", 128, true, Err(LabelError::NotPrintable)),
            ("deck\r", 128, true, Ok("deck")),
            ("de\rck", 128, true, Err(LabelError::NotPrintable)),
            ("deck\u{1b}[31m", 128, true, Err(LabelError::NotPrintable)),
            ("deck\u{0}", 128, true, Err(LabelError::NotPrintable)),
            ("de\u{85}ck", 128, true, Err(LabelError::NotPrintable)),
            ("evil\u{202E}gpj.exe", 128, true, Err(LabelError::NotPrintable)),
            ("a\u{2066}b\u{2069}", 128, true, Err(LabelError::NotPrintable)),
            ("zero\u{200B}width", 128, true, Err(LabelError::NotPrintable)),
            ("\u{FEFF}bom", 128, true, Err(LabelError::NotPrintable)),
            ("line\u{2028}sep", 128, true, Err(LabelError::NotPrintable)),
            ("para\u{2029}sep", 128, true, Err(LabelError::NotPrintable)),
            ("soft\u{AD}hyphen", 128, true, Err(LabelError::NotPrintable)),
            ("tag\u{E0041}", 128, true, Err(LabelError::NotPrintable)),
            ("handheld\t", 64, false, Ok("handheld")),
            ("hand\theld", 64, false, Err(LabelError::NotPrintable)),
        ];
        for (raw, max, required, expected) in cases {
            assert_eq!(printable_label(raw, *max, *required), *expected, "{raw:?}");
        }
    }
}
