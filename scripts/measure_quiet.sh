#!/usr/bin/env bash
# Measure what a mount costs when nothing happens (docs/performance.md, "Quiet when idle"):
# CPU seconds (utime+stime from /proc/PID/stat) and bytes read (rchar and read_bytes from
# /proc/PID/io) of the mount daemon
#   idle:    online and idle for IDLE_SECS (default 600)
#   offline: the server stopped for OFFLINE_SECS (default 60)
# with SAVES cached saves (default 1000) of SAVE_BYTES (default 65536) each.
#
#   scripts/measure_quiet.sh BIN_DIR idle|offline
#
# BIN_DIR holds `savesync` and `savesync-server`. Needs FUSE (run as root or with fuse3).
set -euo pipefail
bin="$1"; mode="$2"
saves="${SAVES:-1000}"; size="${SAVE_BYTES:-65536}"
work="$(mktemp -d /tmp/savesync-measure-XXXX)"
port="$(( 20000 + RANDOM % 20000 ))"; url="http://127.0.0.1:$port"
export HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$work/mnt"
server_pid=""; mount_pid=""
cleanup() {
  [ -n "$mount_pid" ] && kill "$mount_pid" 2>/dev/null && wait "$mount_pid" 2>/dev/null || true
  fusermount3 -uz "$work/mnt" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
start_server() {
  "$bin/savesync-server" serve --data-dir "$work/server" --listen "127.0.0.1:$port" \
    >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do curl -fsS "$url/api/v1/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
start_server
code="$("$bin/savesync-server" pair --user measure --data-dir "$work/server" --quiet)"
"$bin/savesync" pair "$url" "$code" --name measure >/dev/null
RUST_LOG=info "$bin/savesync" mount "$work/mnt" --foreground >"$work/mount.log" 2>&1 &
mount_pid=$!
for _ in $(seq 1 200); do mountpoint -q "$work/mnt" && break; sleep 0.1; done
mkdir -p "$work/mnt/lib"
for i in $(seq 1 "$saves"); do head -c "$size" /dev/urandom >"$work/mnt/lib/save-$i.srm"; done
# Wait (bounded) until the queue drained.
for _ in $(seq 1 1200); do
  [ "$("$bin/savesync" status --json | grep -o '"pending": [0-9]*' | grep -o '[0-9]*$')" = 0 ] && break
  sleep 0.5
done
sample() {
  local stat io; stat="$(cut -d' ' -f14,15 "/proc/$mount_pid/stat")"
  io="$(grep -E '^(rchar|read_bytes):' "/proc/$mount_pid/io" | awk '{print $2}' | xargs)"
  echo "$stat $io"
}
ticks="$(getconf CLK_TCK)"
if [ "$mode" = offline ]; then
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  for _ in $(seq 1 100); do
    "$bin/savesync" status --json | grep -q '"online": false' && break; sleep 0.2
  done
  secs="${OFFLINE_SECS:-60}"
else
  secs="${IDLE_SECS:-600}"
fi
lines0="$(wc -l <"$work/mount.log")"
read -r u0 s0 r0 b0 <<<"$(sample)"
sleep "$secs"
read -r u1 s1 r1 b1 <<<"$(sample)"
tail -n +"$((lines0 + 1))" "$work/mount.log" >"$work/run.log"
cpu="$(echo "scale=2; ($u1 + $s1 - $u0 - $s0) / $ticks" | bc)"
echo "mode=$mode saves=$saves size=$size secs=$secs cpu_s=$cpu rchar=$((r1 - r0)) read_bytes=$((b1 - b0))"
echo "status: $("$bin/savesync" status --json | tr -d '\n ' )"
echo "warn lines during the run: $(grep -c 'WARN' "$work/run.log" || true)"
echo "'server connection lost' lines during the run: $(grep -c 'server connection lost' "$work/run.log" || true)"
echo "negotiations during the run: $(grep -c 'negotiated with the server' "$work/run.log" || true)"
