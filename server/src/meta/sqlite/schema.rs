//! The SQLite schema, as an ordered list of migrations. Never edit a released migration:
//! append a new one.
//!
//! Versions are keyed by `(user_id, path)` rather than by a save row so that an upload
//! which lost its compare-and-swap before the save ever existed still has a home in
//! history (no closed save is ever lost). `device_saves` is keyed by path for the same
//! reason: a device may opt out of a save that does not exist yet.

use rusqlite_migration::{M, Migrations};

const V1: &str = r"
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    seq         INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE TABLE devices (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX devices_user ON devices(user_id);
CREATE TABLE pairing_codes (
    code_hash          TEXT PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users(id),
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    used_at            INTEGER,
    created_by_device  INTEGER REFERENCES devices(id)
);
CREATE TABLE saves (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    path          TEXT NOT NULL,
    rev           INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    hash          TEXT,
    size          INTEGER NOT NULL,
    deleted       INTEGER NOT NULL,
    committed_at  INTEGER NOT NULL,
    device_id     INTEGER REFERENCES devices(id),
    UNIQUE (user_id, path)
);
CREATE TABLE versions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('commit', 'conflict')),
    rev         INTEGER NOT NULL,
    seq         INTEGER,
    hash        TEXT,
    size        INTEGER NOT NULL,
    device_id   INTEGER REFERENCES devices(id),
    created_at  INTEGER NOT NULL
);
CREATE INDEX versions_by_save ON versions(user_id, path, id);
CREATE INDEX versions_by_seq ON versions(user_id, seq) WHERE seq IS NOT NULL;
CREATE INDEX versions_by_hash ON versions(hash);
CREATE TABLE device_saves (
    device_id        INTEGER NOT NULL REFERENCES devices(id),
    path             TEXT NOT NULL,
    last_synced_rev  INTEGER,
    untracked        INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (device_id, path)
);
CREATE TABLE sync_sessions (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    device_id         INTEGER REFERENCES devices(id),
    started_at        INTEGER NOT NULL,
    cursor            INTEGER NOT NULL,
    manifest_entries  INTEGER NOT NULL,
    planned_actions   INTEGER NOT NULL,
    completed_at      INTEGER,
    uploaded          INTEGER,
    downloaded        INTEGER,
    deleted           INTEGER,
    conflicts         INTEGER,
    errors            INTEGER
);
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    device_id  INTEGER REFERENCES devices(id),
    at         INTEGER NOT NULL,
    operation  TEXT NOT NULL,
    path       TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_by_user ON audit_log(user_id, id);
";

/// Pairing codes are now stored as HMAC-SHA256 under the data directory's pairing key, so
/// unused codes stored as plain SHA-256 can never match again: drop them. `wrong_guesses`
/// counts wrong codes presented while the code was live (its attempt budget).
const PAIRING_CODES_KEYED: &str = r"
DELETE FROM pairing_codes WHERE used_at IS NULL;
ALTER TABLE pairing_codes ADD COLUMN wrong_guesses INTEGER NOT NULL DEFAULT 0;
";

/// The canonical caseless key of each save's path (`savesync_core::fold_key`), so the
/// commit can find a sibling a new name would collide with on a case-insensitive share
/// (`names.rs`). Rows from before this migration are filled in at open.
const SAVES_FOLD: &str = r"
ALTER TABLE saves ADD COLUMN fold TEXT;
CREATE INDEX saves_by_fold ON saves(user_id, fold);
";

/// Each user's quota figures as running totals (`quota.rs`), so the check on every upload
/// is a key lookup instead of a pass over all the user's versions. Triggers keep them
/// exact whoever inserts or deletes a version row (commits, conflict versions, restores,
/// pruning, thinning): `bytes` is the size of the user's distinct contents (a content
/// counts while any version of the user has it), `versions` the number of rows.
const USER_USAGE: &str = r"
CREATE INDEX versions_by_user_hash ON versions(user_id, hash);
CREATE TABLE user_usage (
    user_id   INTEGER PRIMARY KEY REFERENCES users(id),
    versions  INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO user_usage (user_id, versions, bytes)
SELECT user_id, SUM(n), SUM(size) FROM (
    SELECT user_id, COUNT(*) AS n, CASE WHEN hash IS NULL THEN 0 ELSE MAX(size) END AS size
    FROM versions GROUP BY user_id, hash)
GROUP BY user_id;
CREATE TRIGGER usage_after_version_insert AFTER INSERT ON versions
BEGIN
    INSERT OR IGNORE INTO user_usage (user_id) VALUES (NEW.user_id);
    UPDATE user_usage SET
        versions = versions + 1,
        bytes = bytes + CASE WHEN NEW.hash IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM versions
            WHERE user_id = NEW.user_id AND hash = NEW.hash AND id != NEW.id)
            THEN NEW.size ELSE 0 END
    WHERE user_id = NEW.user_id;
END;
CREATE TRIGGER usage_after_version_delete AFTER DELETE ON versions
BEGIN
    UPDATE user_usage SET
        versions = versions - 1,
        bytes = bytes - CASE WHEN OLD.hash IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM versions WHERE user_id = OLD.user_id AND hash = OLD.hash)
            THEN OLD.size ELSE 0 END
    WHERE user_id = OLD.user_id;
END;
";

/// The WebDAV face (`crate::dav`, `dav.rs`): each content's MD5 beside its SHA-256 (the
/// hash RetroArch's manifest speaks; one row per distinct content, recorded when an upload
/// is staged or, for content stored before this migration, computed from the blob at the
/// first manifest that needs it), and the library folder each WebDAV device is rooted at.
const WEBDAV: &str = r"
CREATE TABLE content_md5 (
    hash  TEXT PRIMARY KEY,
    md5   TEXT NOT NULL
);
CREATE TABLE dav_roots (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id),
    prefix     TEXT NOT NULL
);
";

/// The web dashboard (`crate::web`): users' argon2 password hashes (PHC strings), one-time
/// login links and signed-in sessions. Links and sessions are stored as SHA-256 of their
/// 256-bit random secrets, never in the clear.
const WEB_LOGIN: &str = r"
CREATE TABLE user_passwords (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id),
    phc         TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE login_links (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions(user_id, created_at);
";

/// SSH push-pull remotes (`meta::remotes`): the remote, its folder maps, and per path the
/// agreed base plus the device file's size, mtime and hash as last seen. A NULL
/// `base_rev` is "no base"; a base with a NULL hash is a tombstone; a NULL `device_hash`
/// means the file was absent on the device.
const REMOTES: &str = r"
CREATE TABLE remotes (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    device_id         INTEGER NOT NULL REFERENCES devices(id),
    ssh_user          TEXT NOT NULL,
    host              TEXT NOT NULL,
    port              INTEGER NOT NULL,
    key_path          TEXT NOT NULL,
    every_secs        INTEGER NOT NULL,
    host_key          TEXT NOT NULL,
    offered_host_key  TEXT,
    created_at        INTEGER NOT NULL,
    next_run          INTEGER NOT NULL,
    lease_until       INTEGER,
    last_run_at       INTEGER,
    last_ok           INTEGER,
    last_error        TEXT
);
CREATE TABLE remote_maps (
    remote_id   INTEGER NOT NULL REFERENCES remotes(id),
    position    INTEGER NOT NULL,
    remote_dir  TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    PRIMARY KEY (remote_id, position)
);
CREATE TABLE remote_files (
    remote_id      INTEGER NOT NULL REFERENCES remotes(id),
    path           TEXT NOT NULL,
    base_rev       INTEGER,
    base_hash      TEXT,
    device_size    INTEGER,
    device_mtime   INTEGER,
    device_hash    TEXT,
    conflict_hash  TEXT,
    PRIMARY KEY (remote_id, path)
);
";

/// The saves a device untracked, found without reading all of the device's rows: every
/// negotiate asks for them, and for a 10,000-save device the scan was a tenth of it.
const UNTRACKED_INDEX: &str = r"
CREATE INDEX device_saves_untracked ON device_saves(device_id, path) WHERE untracked = 1;
";

const MIGRATIONS_SLICE: &[M<'static>] = &[
    M::up(V1),
    M::up(PAIRING_CODES_KEYED),
    M::up(SAVES_FOLD),
    M::up(USER_USAGE),
    M::up(WEBDAV),
    M::up(WEB_LOGIN),
    M::up(REMOTES),
    M::up(UNTRACKED_INDEX),
];

/// All migrations, oldest first.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATIONS_SLICE);

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::MIGRATIONS.validate().is_ok());
    }
}
