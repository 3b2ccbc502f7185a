//! Schema of the mount's state DB, as ordered migrations. Never edit a released migration:
//! append a new one.
//!
//! - `inodes`: the local tree with stable inode numbers (kind 0 file, 1 dir, 2 conflict
//!   copy); `cache_size`/`cache_mtime_ns` are the cache file's stat at the last durable
//!   flush, so a crash between a write and its close is detected at the next start.
//! - `records`: per save path, the base this device last agreed on and the last server head
//!   it heard of (NULL hash with a rev = tombstone).
//! - `pending`: paths that need a sync decision, with a due time (debounce, backoff) and a
//!   generation so "changed again while uploading" is never lost.
//! - `conflicts`: the other side's version shown as `NAME.conflict`.
//! - `specials` (migration 2): the symlink target or device number of the local-only
//!   special kinds (kind 3 symlink, 4 FIFO, 5 socket, 6 char device, 7 block device); a
//!   trigger drops the row with its inode.
//! - `links` (migration 2): the extra names (hard links) of special inodes; the first name
//!   stays in `inodes`. The same trigger drops them with their inode.
//! - `conflicts.backed_up_hash` (migration 3): the hash of this device's bytes it last
//!   kept on the server as a `conflict` version while the conflict is open.
//! - `kv`: feed cursor and the next inode number; `status`: one row the daemon keeps fresh
//!   for `savesync status`.
//! - migration 4: a trigger keeps `kv.next_ino` above every inode number ever inserted
//!   (deleted numbers are never reused); `hashes` caches each cache file's content hash
//!   keyed by its (size, mtime ns, file inode), so a negotiation re-hashes only files that
//!   changed; `given_up` lists saves the server refused for good (shown by `status`);
//!   `status.save_bytes_read` counts cached save bytes the engine read; `origins` holds,
//!   for a never-downloaded save that was moved, the server version its bytes are.
//! - migration 5 (synced folder, `crate::folder`): `folder_hashes` caches the content hash
//!   of each file of a synced folder by save path, keyed by its (size, mtime ns, file
//!   inode), so a rescan reads only files that changed.
//! - migration 6: `uploads_in_flight` notes each upload sent but not yet answered, so a
//!   crash between the server's commit and the device's bookkeeping is recognised.
//! - migration 7: `pending_due` indexes the queue by due time; the queue worker asks for
//!   the earliest due entries after every sync.

use rusqlite_migration::{M, Migrations};

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE inodes (
            ino INTEGER PRIMARY KEY,
            parent INTEGER NOT NULL,
            name TEXT NOT NULL,
            kind INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            size INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            cached INTEGER NOT NULL,
            cache_size INTEGER NOT NULL DEFAULT 0,
            cache_mtime_ns INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX inodes_parent_name ON inodes(parent, name);
        CREATE TABLE records (
            path TEXT PRIMARY KEY,
            base_rev INTEGER,
            base_hash TEXT,
            head_rev INTEGER,
            head_hash TEXT,
            head_size INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE pending (
            path TEXT PRIMARY KEY,
            due_ms INTEGER NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE conflicts (
            path TEXT PRIMARY KEY,
            ino INTEGER NOT NULL,
            rev INTEGER NOT NULL,
            hash TEXT NOT NULL,
            size INTEGER NOT NULL
        );
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE status (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            online INTEGER NOT NULL,
            last_error TEXT,
            mountpoint TEXT,
            pid INTEGER,
            updated_ms INTEGER NOT NULL
        );",
        ),
        M::up(
            "CREATE TABLE specials (
                ino INTEGER PRIMARY KEY,
                target BLOB NOT NULL,
                rdev INTEGER NOT NULL
            );
            CREATE TABLE links (
                ino INTEGER NOT NULL,
                parent INTEGER NOT NULL,
                name TEXT NOT NULL,
                PRIMARY KEY (parent, name)
            );
            CREATE TRIGGER specials_follow_inodes AFTER DELETE ON inodes
            BEGIN
                DELETE FROM specials WHERE ino = OLD.ino;
                DELETE FROM links WHERE ino = OLD.ino;
            END;",
        ),
        M::up("ALTER TABLE conflicts ADD COLUMN backed_up_hash TEXT;"),
        M::up(
            "INSERT OR REPLACE INTO kv (key, value)
                SELECT 'next_ino', COALESCE(MAX(ino), 1) + 1 FROM inodes;
            CREATE TRIGGER inodes_next_ino AFTER INSERT ON inodes
            BEGIN
                INSERT OR REPLACE INTO kv (key, value)
                SELECT 'next_ino', MAX(NEW.ino + 1, COALESCE(
                    (SELECT CAST(value AS INTEGER) FROM kv WHERE key = 'next_ino'), 0));
            END;
            CREATE TABLE hashes (
                ino INTEGER PRIMARY KEY,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                file_ino INTEGER NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE TABLE origins (
                ino INTEGER PRIMARY KEY,
                path TEXT NOT NULL,
                rev INTEGER NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE TRIGGER hashes_follow_inodes AFTER DELETE ON inodes
            BEGIN
                DELETE FROM hashes WHERE ino = OLD.ino;
                DELETE FROM origins WHERE ino = OLD.ino;
            END;
            CREATE TABLE given_up (
                path TEXT PRIMARY KEY,
                error TEXT NOT NULL,
                at_ms INTEGER NOT NULL
            );
            ALTER TABLE status ADD COLUMN save_bytes_read INTEGER NOT NULL DEFAULT 0;",
        ),
        M::up(
            "CREATE TABLE folder_hashes (
                path TEXT PRIMARY KEY,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                file_ino INTEGER NOT NULL,
                hash TEXT NOT NULL
            );",
        ),
        M::up(
            "CREATE TABLE uploads_in_flight (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL,
                hash TEXT NOT NULL,
                expected_rev INTEGER NOT NULL,
                UNIQUE (path, hash, expected_rev)
            );",
        ),
        M::up("CREATE INDEX pending_due ON pending(due_ms);"),
    ])
}
