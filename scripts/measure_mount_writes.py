#!/usr/bin/env python3
"""The mount's own write and read path: wall time and the daemon's CPU per save.

docs/performance.md (run 16) uses it to compare two builds of the mount daemon on the same
machine in the same minutes. Mount the library first (`savesync mount DIR --foreground`)
and pass the daemon's pid. With the profile's server stopped nothing uploads, so the
figures are the FUSE write path alone; with it running they include the uploads' share
of the daemon.

It writes N saves of SIZE bytes into a new directory under MOUNTPOINT, each with open,
write, fsync and close (what an emulator saving does), then reads each back once. For
each part it prints the wall time and the daemon's user + system CPU per save, read from
/proc/PID/stat before and after.

Usage: scripts/measure_mount_writes.py MOUNTPOINT N SIZE DAEMON_PID
Alternate the builds (A, B, A, B, ...): this machine's noise is larger than most of the
differences worth measuring.
"""

import os
import sys
import time


def daemon_cpu_secs(pid: int) -> float:
    """User + system CPU of `pid` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    mountpoint, n, size, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    folder = os.path.join(mountpoint, f"measure-{time.time_ns()}")
    os.mkdir(folder)
    body = os.urandom(size)
    names = [os.path.join(folder, f"save-{i:05}.srm") for i in range(n)]

    cpu0, t0 = daemon_cpu_secs(pid), time.perf_counter()
    for name in names:
        fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        os.write(fd, body)
        os.fsync(fd)
        os.close(fd)
    cpu1, t1 = daemon_cpu_secs(pid), time.perf_counter()
    for name in names:
        with open(name, "rb") as f:
            f.read()
    cpu2, t2 = daemon_cpu_secs(pid), time.perf_counter()

    print(
        f"write {n} x {size} B: {(t1 - t0) * 1e3:.0f} ms, daemon {(cpu1 - cpu0) / n * 1e6:.0f} µs/save; "
        f"read: {(t2 - t1) * 1e3:.0f} ms, daemon {(cpu2 - cpu1) / n * 1e6:.0f} µs/save"
    )


if __name__ == "__main__":
    main()
