//! Names that never leave the device: editor and desktop temp files, macOS and Windows
//! metadata droppings. The mount keeps them in the local cache and never uploads them.

/// True when a file name (one path component) is a temp or metadata name that must stay
/// local: `*.tmp`, `.goutputstream-*`, `~$*`, `._*`, `.DS_Store`, `Thumbs.db`.
#[must_use]
pub fn is_local_only_name(name: &str) -> bool {
    name.ends_with(".tmp")
        || name.starts_with(".goutputstream-")
        || name.starts_with("~$")
        || name.starts_with("._")
        || name == ".DS_Store"
        || name == "Thumbs.db"
}

#[cfg(test)]
mod tests {
    use super::is_local_only_name;

    #[test]
    fn temp_and_metadata_names_stay_local() {
        for name in
            ["save.tmp", ".goutputstream-ABC123", "~$doc", "._card1.mcd", ".DS_Store", "Thumbs.db"]
        {
            assert!(is_local_only_name(name), "{name}");
        }
    }

    #[test]
    fn save_names_are_synced() {
        for name in ["Chrono Trigger.srm", "card1.mcd", "tmp", "state.tmp.srm", "DS_Store"] {
            assert!(!is_local_only_name(name), "{name}");
        }
    }
}
