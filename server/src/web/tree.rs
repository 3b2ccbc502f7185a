//! The Saves page's tree: saves grouped by platform (their top-level directory: `snes`,
//! `gba`, ...), filtered by a search. A pure function, so the grouping and the search are
//! tested without a server.

use savesync_core::wire::SaveMeta;

/// Group name for saves that sit at the top level, outside any platform directory.
pub const TOP_LEVEL: &str = "(top level)";

/// One platform's saves, in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform<'a> {
    pub name: &'a str,
    /// `(name below the platform, save)`.
    pub saves: Vec<(&'a str, &'a SaveMeta)>,
    pub bytes: u64,
}

/// Whether `path` matches the search `query`: every whitespace-separated word occurs in
/// it, ignoring case. An empty query matches everything.
#[must_use]
pub fn matches(path: &str, query: &str) -> bool {
    let path = path.to_lowercase();
    query.split_whitespace().all(|word| path.contains(&word.to_lowercase()))
}

/// `saves` (sorted by path, as the store lists them) grouped by platform, keeping those
/// that match `query`; platforms in name order, the top level last.
#[must_use]
pub fn group<'a>(saves: &'a [SaveMeta], query: &str) -> Vec<Platform<'a>> {
    let mut out: Vec<Platform<'a>> = Vec::new();
    let mut top: Option<Platform<'a>> = None;
    for save in saves.iter().filter(|s| matches(s.path.as_str(), query)) {
        let (platform, rest) = match save.path.as_str().split_once('/') {
            Some((platform, rest)) => (platform, rest),
            None => (TOP_LEVEL, save.path.as_str()),
        };
        let slot = if platform == TOP_LEVEL {
            top.get_or_insert_with(|| Platform { name: TOP_LEVEL, saves: Vec::new(), bytes: 0 })
        } else {
            match out.iter().position(|p| p.name == platform) {
                Some(i) => &mut out[i],
                None => {
                    out.push(Platform { name: platform, saves: Vec::new(), bytes: 0 });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            }
        };
        slot.saves.push((rest, save));
        slot.bytes = slot.bytes.saturating_add(save.size);
    }
    out.sort_by(|a, b| a.name.cmp(b.name));
    out.extend(top);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use savesync_core::{Rev, SavePath, Seq};

    fn save(path: &str, size: u64) -> SaveMeta {
        SaveMeta {
            path: SavePath::parse(path).unwrap(),
            rev: Rev(1),
            seq: Seq(1),
            hash: None,
            size,
            deleted: false,
            committed_at: String::new(),
            device: None,
        }
    }

    #[test]
    fn saves_group_by_top_level_directory_and_filter_by_search() {
        let saves = vec![
            save("gba/Pokemon Emerald.sav", 128),
            save("notes.txt", 1),
            save("snes/Chrono Trigger.srm", 8),
            save("snes/sub/Zelda.srm", 8),
        ];
        // (query, expected [(platform, [names], bytes)])
        type Shown<'a> = Vec<(&'a str, Vec<&'a str>, u64)>;
        let table: [(&str, Shown<'_>); 5] = [
            (
                "",
                vec![
                    ("gba", vec!["Pokemon Emerald.sav"], 128),
                    ("snes", vec!["Chrono Trigger.srm", "sub/Zelda.srm"], 16),
                    (TOP_LEVEL, vec!["notes.txt"], 1),
                ],
            ),
            ("chrono", vec![("snes", vec!["Chrono Trigger.srm"], 8)]),
            ("SNES zel", vec![("snes", vec!["sub/Zelda.srm"], 8)]),
            ("gba snes", vec![]),
            ("txt", vec![(TOP_LEVEL, vec!["notes.txt"], 1)]),
        ];
        for (query, expected) in table {
            let got: Shown<'_> = group(&saves, query)
                .into_iter()
                .map(|p| (p.name, p.saves.iter().map(|(n, _)| *n).collect(), p.bytes))
                .collect();
            assert_eq!(got, expected, "query {query:?}");
        }
    }
}
