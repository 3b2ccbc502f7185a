#!/usr/bin/env python3
"""What storing an upload durably costs on this disk, without HTTP or the server.

docs/performance.md ("The blob store's durable path") uses it. For each way a server could
store 1,000 bodies of 64 KiB, it measures the wall time and the CPU per body with 8
threads, in fresh directories under ROOT. It prints each way's ratio to `plain`, the local
baseline of `server_load` (each body written and fsynced under its own name):

- plain: open, write, fsync, close (the baseline);
- blob-store: what `FsBlobStore` does: hash, staging file in tmp/, write, fsync, rename
  to ab/cd/HASH, fsync of that directory;
- no-dir-sync: the same without the directory fsync (not durable; shows its share);
- tmpfile-link: O_TMPFILE in the final directory, write, fsync, linkat, directory fsync;
- flat-shared-sync: one directory for every blob, its fsync shared by the renames that
  arrive together (group commit of the directory);
- sqlite-group: each body a row in one SQLite database (WAL, synchronous=FULL), bodies
  that arrive together committed by one writer in one transaction;
- pack-group: each body appended to one file, appends that arrive together made durable
  by one fdatasync (what a log-structured store would do).

Usage: scripts/measure_blob_paths.py [ROOT] [ROUNDS]   (defaults: a new dir in /tmp, 3)
Rounds interleave the ways, so a slow moment of the disk does not land on one way only.
Nothing is deleted until the end: on ext4 creating files right after mass deletes is slower.
"""

import ctypes
import hashlib
import os
import queue
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

COUNT, WORKERS, SIZE = 1000, 8, 64 * 1024
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400
libc = ctypes.CDLL(None, use_errno=True)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, flags=os.O_CREAT | os.O_EXCL):
    fd = os.open(path, os.O_WRONLY | flags, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupSync:
    """Callers that arrive while a sync runs share the next one: group commit."""

    def __init__(self, sync):
        self.sync, self.cond = sync, threading.Condition()
        self.written = self.synced = 0
        self.busy = False

    def after(self, action):
        """Run `action` under the lock, then return once a sync that followed it is done."""
        with self.cond:
            action()
            self.written += 1
            mine = self.written
            while self.synced < mine:
                if self.busy:
                    self.cond.wait()
                    continue
                self.busy, target = True, self.written
                self.cond.release()
                try:
                    self.sync()
                finally:
                    self.cond.acquire()
                self.synced, self.busy = target, False
                self.cond.notify_all()


def way_plain(root):
    return lambda i, data: write_file(f"{root}/{i}", data, os.O_CREAT | os.O_TRUNC)


def blob_dir(root, data):
    hexhash = hashlib.sha256(data).hexdigest()
    directory = f"{root}/{hexhash[:2]}/{hexhash[2:4]}"
    os.makedirs(directory, exist_ok=True)
    return directory, hexhash


def way_blob_store(root, dir_sync=True):
    os.makedirs(f"{root}/tmp")

    def store(i, data):
        staging = f"{root}/tmp/upload-{i}"
        write_file(staging, data)
        directory, hexhash = blob_dir(root, data)
        os.rename(staging, f"{directory}/{hexhash}")
        if dir_sync:
            fsync_dir(directory)

    return store


def way_tmpfile_link(root):
    def store(_i, data):
        directory, hexhash = blob_dir(root, data)
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
            src, dst = f"/proc/self/fd/{fd}".encode(), f"{directory}/{hexhash}".encode()
            if libc.linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) != 0:
                raise OSError(ctypes.get_errno(), "linkat")
        finally:
            os.close(fd)
        fsync_dir(directory)

    return store


def way_flat_shared_sync(root):
    os.makedirs(f"{root}/tmp")
    os.makedirs(f"{root}/blobs")
    dir_fd = os.open(f"{root}/blobs", os.O_RDONLY)
    group = GroupSync(lambda: os.fsync(dir_fd))

    def store(i, data):
        staging = f"{root}/tmp/upload-{i}"
        write_file(staging, data)
        target = f"{root}/blobs/{hashlib.sha256(data).hexdigest()}"
        group.after(lambda: os.rename(staging, target))

    return store


def way_sqlite_group(root):
    db = sqlite3.connect(f"{root}/blobs.db", isolation_level=None, check_same_thread=False)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=full")
    db.execute("create table blobs(hash blob primary key, data blob not null)")
    arrivals = queue.Queue()

    def writer():
        while (first := arrivals.get()) is not None:
            batch = [first]
            while len(batch) < 64:
                try:
                    batch.append(arrivals.get_nowait())
                except queue.Empty:
                    break
            db.execute("begin immediate")
            db.executemany("insert or ignore into blobs values (?, ?)", [b[:2] for b in batch])
            db.execute("commit")
            for _, _, done in batch:
                done.set()

    threading.Thread(target=writer, daemon=True).start()

    def store(_i, data):
        done = threading.Event()
        arrivals.put((hashlib.sha256(data).digest(), data, done))
        done.wait()

    store.stop = lambda: arrivals.put(None)
    return store


def way_pack_group(root):
    fd = os.open(f"{root}/pack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    group = GroupSync(lambda: os.fdatasync(fd))

    def store(_i, data):
        header = hashlib.sha256(data).digest() + len(data).to_bytes(8, "little")
        group.after(lambda: os.write(fd, header + data))

    return store


WAYS = {
    "plain": way_plain,
    "blob-store": way_blob_store,
    "no-dir-sync": lambda root: way_blob_store(root, dir_sync=False),
    "tmpfile-link": way_tmpfile_link,
    "flat-shared-sync": way_flat_shared_sync,
    "sqlite-group": way_sqlite_group,
    "pack-group": way_pack_group,
}


def measure(store, bodies):
    def worker(first):
        for i in range(first, COUNT, WORKERS):
            store(i, bodies[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(WORKERS)]
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    getattr(store, "stop", lambda: None)()
    return wall, cpu / COUNT


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="blob-paths-")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.makedirs(root, exist_ok=True)
    results = {name: [] for name in WAYS}
    try:
        for r in range(rounds):
            bodies = [os.urandom(SIZE) for _ in range(COUNT)]
            for name, way in WAYS.items():
                directory = f"{root}/{r}-{name}"
                os.makedirs(directory)
                results[name].append(measure(way(directory), bodies))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    plain = statistics.median(wall for wall, _ in results["plain"])
    print(f"{COUNT} x {SIZE // 1024} KiB, {WORKERS} threads, median of {rounds} rounds")
    print(f"{'way':<18}{'wall':>10}{'ratio':>8}{'CPU/body':>11}   walls of each round")
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        each = ", ".join(f"{w * 1000:.0f}" for w, _ in runs)
        print(f"{name:<18}{wall * 1000:>7.0f} ms{wall / plain:>7.2f}x{cpu * 1e6:>8.0f} µs   {each}")


if __name__ == "__main__":
    main()
