#!/usr/bin/env bash
# One command from a fresh clone to a mounted, synced save folder on embedded defaults:
# builds savesync and savesync-server, starts the server (SQLite + local blob dir), pairs this
# machine as a device (once) and mounts the save library in the foreground. Ctrl-C unmounts
# and stops the server; nothing is lost, and running it again picks up where it left off.
#
#   ./scripts/quickstart.sh [MOUNTPOINT]       default: ~/Saves
#
# Environment: SAVESYNC_LISTEN (default 127.0.0.1:7878), SAVESYNC_DATA_DIR (server data,
# default ~/.local/share/savesync-server), SAVESYNC_USER (default $USER or "player").
set -euo pipefail
cd "$(dirname "$0")/.."

mountpoint="${1:-$HOME/Saves}"
listen="${SAVESYNC_LISTEN:-127.0.0.1:7878}"
server_data="${SAVESYNC_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/savesync-server}"
user="${SAVESYNC_USER:-${USER:-player}}"
url="http://$listen"

# What the mount and this script need from the system: fusermount3 (fuse3) and curl. As root
# they are installed when missing (as .ci/install-deps does); otherwise the script says what
# to install and stops before building anything.
missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "quickstart: installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "quickstart: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

echo "quickstart: building (cargo build --release) ..."
cargo build --release --locked -q -p savesync-server -p savesync-fs
bin="$(pwd)/target/release"

mkdir -p "$server_data" "$mountpoint"
echo "quickstart: starting savesync-server on $url (data in $server_data)"
# The URL is this machine's own on purpose: say so, so the server does not warn that other
# devices cannot reach it (see README for serving a handheld).
"$bin/savesync-server" serve --data-dir "$server_data" --listen "$listen" --public-url "$url" &
server_pid=$!
cleanup() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# Wait (bounded) until the server answers its health check.
for _ in $(seq 1 100); do
  if curl -fsS "$url/api/v1/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "quickstart: server failed to start" >&2; exit 1; fi
  sleep 0.1
done

if "$bin/savesync" status >/dev/null 2>&1; then
  echo "quickstart: this device is already paired"
else
  code="$("$bin/savesync-server" pair --user "$user" --data-dir "$server_data" --quiet)"
  "$bin/savesync" pair "$url" "$code" --name "$(hostname)"
fi

echo "quickstart: mounting your save library at $mountpoint (Ctrl-C to unmount)"
"$bin/savesync" mount "$mountpoint" --foreground
