//! What the `.history` directories contain, and finding one name in them.
//!
//! A directory `.history/<p>` holds (1) the library's entries below `<p>` as the mount
//! shows them (directories, and saves as directories), read from the in-memory tree, plus
//! saves deleted here that the state DB still has records of; and (2) when `<p>` is a save,
//! its versions, from the server's history endpoint (cached [`super::LIST_TTL`]). Only (2)
//! ever touches the network.

use super::inodes::{Node, VersionNode};
use super::names::{version_file_name, version_mtime};
use super::{HISTORY_DIR, LIST_TTL, NET_TIMEOUT, bounded};
use crate::error::{FsError, FsResult};
use crate::remote::RemoteError;
use crate::savefs::{SaveFs, lock};
use crate::state::InodeKind;
use crate::tree::ROOT_INO;
use savesync_core::SavePath;
use savesync_core::wire::HistoryEntry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl SaveFs {
    /// The library's entries directly below `dir` ("" for the root), by name: directories
    /// and saves (synced regular files), never conflict copies, temp names or specials.
    fn library_children(&self, dir: &str) -> BTreeMap<String, ()> {
        let mut out = BTreeMap::new();
        {
            let t = lock(&self.tree.table);
            let dino = if dir.is_empty() {
                Some(ROOT_INO)
            } else {
                SavePath::parse(dir).ok().and_then(|p| t.lookup_path(&p))
            };
            if let Some(dino) =
                dino.filter(|d| t.get(*d).is_some_and(|i| i.row.kind == InodeKind::Dir))
            {
                for (name, ino) in t.children(dino) {
                    if dino == ROOT_INO && name == HISTORY_DIR {
                        continue;
                    }
                    let keep = t.get(ino).is_some_and(|i| match i.row.kind {
                        InodeKind::Dir => true,
                        InodeKind::File => t.save_path(ino).is_some(),
                        _ => false,
                    });
                    if keep {
                        out.insert(name, ());
                    }
                }
            }
        }
        // Saves deleted here (the tree no longer has them) keep their records.
        if let Ok(records) = self.tree.db.all_records() {
            for (path, rec) in records {
                let p = path.as_str();
                if parent_of(p) == dir && (rec.base.is_some() || rec.head.is_some()) {
                    let name = path.file_name().to_owned();
                    if !(dir.is_empty() && name == HISTORY_DIR) {
                        out.insert(name, ());
                    }
                }
            }
        }
        out
    }

    /// True when `path` is an entry of the library (directory or save) shown in `.history`.
    fn is_library_entry(&self, path: &str) -> bool {
        if path.split('/').next() == Some(HISTORY_DIR) {
            return false;
        }
        let Ok(sp) = SavePath::parse(path) else { return false };
        {
            let t = lock(&self.tree.table);
            if let Some(ino) = t.lookup_path(&sp) {
                let kind = t.get(ino).map(|i| i.row.kind);
                if kind == Some(InodeKind::Dir) || t.save_path(ino).is_some() {
                    return true;
                }
            }
        }
        self.has_record(&sp)
    }

    /// True when `path` names a save (live in the tree, or deleted with its record kept):
    /// its directory lists versions.
    fn is_save(&self, path: &str) -> Option<SavePath> {
        if path.is_empty() || path.split('/').next() == Some(HISTORY_DIR) {
            return None;
        }
        let sp = SavePath::parse(path).ok()?;
        let in_tree = {
            let t = lock(&self.tree.table);
            t.lookup_path(&sp).and_then(|ino| t.save_path(ino)).is_some()
        };
        (in_tree || self.has_record(&sp)).then_some(sp)
    }

    fn has_record(&self, sp: &SavePath) -> bool {
        self.tree.db.record(sp).is_ok_and(|r| r.base.is_some() || r.head.is_some())
    }

    /// The versions of `save`, newest first: from the cache while fresh, else from the
    /// server (a save the server never had has none).
    pub(super) fn version_list(&self, save: &SavePath) -> FsResult<Arc<Vec<HistoryEntry>>> {
        let h = &self.history;
        if let Some((at, list)) = lock(&h.versions).get(save)
            && at.elapsed() < LIST_TTL
        {
            return Ok(Arc::clone(list));
        }
        h.calls.fetch_add(1, Ordering::Relaxed);
        let remote = Arc::clone(&h.remote);
        let path = save.clone();
        let got = self.rt.block_on(bounded(NET_TIMEOUT, async move { remote.history(path).await }));
        let list = match got {
            Ok(history) => Arc::new(history.versions),
            Err(RemoteError::NotFound) => Arc::new(Vec::new()),
            Err(e) => return Err(h.net_error(&format!("listing the versions of {save}"), &e)),
        };
        h.net_ok();
        lock(&h.versions).put(save.clone(), (Instant::now(), Arc::clone(&list)));
        Ok(list)
    }

    /// The version files of `save`, by name.
    fn version_nodes(&self, save: &SavePath) -> FsResult<Vec<(String, Node)>> {
        let list = self.version_list(save)?;
        Ok(list
            .iter()
            .filter_map(|e| {
                let name = version_file_name(e, save.file_name())?;
                let node = VersionNode {
                    save: save.clone(),
                    kind: e.kind,
                    rev: e.rev,
                    version_id: e.version_id,
                    hash: e.hash,
                    size: e.size,
                    mtime: version_mtime(&e.created_at),
                };
                Some((name, Node::Version(node)))
            })
            .collect())
    }

    /// Everything in the history directory `node`, by name.
    pub(super) fn history_entries(&self, node: &Node) -> FsResult<Vec<(String, Node)>> {
        let dir = match node {
            Node::Root => "",
            Node::Dir(p) => p.as_str(),
            Node::Version(_) => return Err(FsError::not_dir(HISTORY_DIR)),
        };
        let mut out: Vec<(String, Node)> = self
            .library_children(dir)
            .into_keys()
            .map(|name| {
                let path = join(dir, &name);
                (name, Node::Dir(path))
            })
            .collect();
        if let Some(save) = self.is_save(dir) {
            out.extend(self.version_nodes(&save)?);
        }
        Ok(out)
    }

    /// The entry `name` of the history directory `node`.
    pub(super) fn history_child(&self, node: &Node, name: &str) -> FsResult<Node> {
        let dir = match node {
            Node::Root => "",
            Node::Dir(p) => p.as_str(),
            Node::Version(_) => return Err(FsError::not_dir(name)),
        };
        let path = join(dir, name);
        if self.is_library_entry(&path) {
            return Ok(Node::Dir(path));
        }
        if let Some(save) = self.is_save(dir)
            && let Some((_, n)) = self.version_nodes(&save)?.into_iter().find(|(n, _)| n == name)
        {
            return Ok(n);
        }
        Err(FsError::not_found(format!("{HISTORY_DIR}/{path}")))
    }
}
