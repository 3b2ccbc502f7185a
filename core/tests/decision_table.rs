//! One test per row of the decision table in `docs/protocol.md` (and design.md), named for
//! the row, plus the edge rules: absent equals tombstone, and a remote older than the base
//! (server restored from backup) distrusts the base.

use savesync_core::{ContentHash, Decision, Rev, Version, decide};

fn h(s: &str) -> ContentHash {
    ContentHash::of(s.as_bytes())
}

// ---- base: none ----

#[test]
fn no_base_no_remote_local_present_uploads_as_create() {
    assert_eq!(decide(Some(h("a")), None, None), Decision::Upload { expected: Rev::NONE });
}

#[test]
fn no_base_remote_present_local_absent_downloads() {
    let r = Version::live(3, h("r"));
    assert_eq!(decide(None, None, Some(r)), Decision::Download(r));
}

#[test]
fn no_base_remote_present_local_same_hash_records_base() {
    let r = Version::live(3, h("same"));
    assert_eq!(decide(Some(h("same")), None, Some(r)), Decision::RecordBase(Some(r)));
}

#[test]
fn no_base_remote_present_local_other_hash_conflicts() {
    let r = Version::live(3, h("theirs"));
    assert_eq!(decide(Some(h("mine")), None, Some(r)), Decision::Conflict(r));
}

#[test]
fn no_base_remote_tombstone_local_present_uploads_conditional_on_tombstone() {
    let r = Version::tombstone(4);
    assert_eq!(decide(Some(h("mine")), None, Some(r)), Decision::Upload { expected: Rev(4) });
}

#[test]
fn no_base_remote_tombstone_local_absent_records_base() {
    let r = Version::tombstone(4);
    assert_eq!(decide(None, None, Some(r)), Decision::RecordBase(Some(r)));
}

#[test]
fn no_base_no_remote_local_absent_is_noop() {
    assert_eq!(decide(None, None, None), Decision::NoOp);
}

// ---- base: rev r, remote: rev r ----

#[test]
fn head_is_base_local_same_is_noop() {
    let b = Version::live(5, h("x"));
    assert_eq!(decide(Some(h("x")), Some(b), Some(b)), Decision::NoOp);
}

#[test]
fn head_is_base_local_changed_uploads_conditional_on_base() {
    let b = Version::live(5, h("x"));
    assert_eq!(decide(Some(h("y")), Some(b), Some(b)), Decision::Upload { expected: Rev(5) });
}

#[test]
fn head_is_base_local_deleted_deletes_remote_conditional_on_base() {
    let b = Version::live(5, h("x"));
    assert_eq!(decide(None, Some(b), Some(b)), Decision::DeleteRemote { expected: Rev(5) });
}

#[test]
fn head_is_base_tombstone_local_recreated_uploads() {
    let b = Version::tombstone(5);
    assert_eq!(decide(Some(h("new")), Some(b), Some(b)), Decision::Upload { expected: Rev(5) });
}

#[test]
fn head_is_base_tombstone_local_absent_is_noop() {
    let b = Version::tombstone(5);
    assert_eq!(decide(None, Some(b), Some(b)), Decision::NoOp);
}

// ---- base: rev r, remote: rev > r ----

#[test]
fn newer_head_local_same_as_base_downloads() {
    let b = Version::live(5, h("x"));
    let r = Version::live(7, h("z"));
    assert_eq!(decide(Some(h("x")), Some(b), Some(r)), Decision::Download(r));
}

#[test]
fn newer_tombstone_local_same_as_base_deletes_local() {
    let b = Version::live(5, h("x"));
    let r = Version::tombstone(6);
    assert_eq!(decide(Some(h("x")), Some(b), Some(r)), Decision::DeleteLocal(r));
}

#[test]
fn newer_head_local_equals_remote_converged_records_base() {
    let b = Version::live(5, h("x"));
    let r = Version::live(6, h("z"));
    assert_eq!(decide(Some(h("z")), Some(b), Some(r)), Decision::RecordBase(Some(r)));
}

#[test]
fn newer_head_local_changed_and_differs_conflicts() {
    let b = Version::live(5, h("x"));
    let r = Version::live(6, h("theirs"));
    assert_eq!(decide(Some(h("mine")), Some(b), Some(r)), Decision::Conflict(r));
}

#[test]
fn newer_tombstone_local_changed_uploads_because_change_beats_delete() {
    let b = Version::live(5, h("x"));
    let r = Version::tombstone(6);
    assert_eq!(decide(Some(h("mine")), Some(b), Some(r)), Decision::Upload { expected: Rev(6) });
}

#[test]
fn newer_head_local_deleted_downloads_because_change_beats_delete() {
    let b = Version::live(5, h("x"));
    let r = Version::live(6, h("theirs"));
    assert_eq!(decide(None, Some(b), Some(r)), Decision::Download(r));
}

#[test]
fn deleted_on_both_sides_has_converged() {
    let b = Version::live(5, h("x"));
    let r = Version::tombstone(6);
    assert_eq!(decide(None, Some(b), Some(r)), Decision::RecordBase(Some(r)));
}

// ---- the server forgot: restored from an older backup ----

#[test]
fn remote_older_than_base_treats_save_as_never_synced() {
    let b = Version::live(9, h("mine"));
    let r = Version::live(4, h("old"));
    assert_eq!(decide(Some(h("mine")), Some(b), Some(r)), Decision::Conflict(r));
    assert_eq!(decide(None, Some(b), Some(r)), Decision::Download(r));
    let same = Version::live(4, h("mine"));
    assert_eq!(decide(Some(h("mine")), Some(b), Some(same)), Decision::RecordBase(Some(same)));
}

#[test]
fn remote_missing_with_a_base_reuploads_local_or_forgets_base() {
    let b = Version::live(9, h("mine"));
    assert_eq!(decide(Some(h("mine")), Some(b), None), Decision::Upload { expected: Rev::NONE });
    assert_eq!(decide(None, Some(b), None), Decision::RecordBase(None));
}

#[test]
fn head_with_base_rev_but_other_content_distrusts_base() {
    // Restored from a backup, the server re-issued rev 5 for other bytes.
    let b = Version::live(5, h("mine-at-5"));
    let r = Version::live(5, h("reissued-5"));
    assert_eq!(decide(Some(h("mine-at-5")), Some(b), Some(r)), Decision::Conflict(r));
    assert_eq!(decide(None, Some(b), Some(r)), Decision::Download(r));
    assert_eq!(decide(Some(h("reissued-5")), Some(b), Some(r)), Decision::RecordBase(Some(r)));
}
