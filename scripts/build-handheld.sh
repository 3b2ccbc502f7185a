#!/usr/bin/env bash
# Static musl binaries for handhelds and small NAS boxes: `savesync` and `savesync-server`
# for aarch64 and armv7, built with cargo-zigbuild (zig is the C cross compiler the bundled
# SQLite and ring need). Installs what is missing, and is safe to run again: a second run
# only rebuilds what changed.
#
#   ./scripts/build-handheld.sh [--targets aarch64,armv7] [--bins savesync,savesync-server]
#
# Output: target/<triple>/handheld/<bin> (profile `handheld` in Cargo.toml: release, no debug
# info, stripped, thin LTO). Each binary is checked to be a static ELF for its CPU.
#
# Tools (installed when missing):
#   - the Rust std of each target (`rustup target add`); where rustup cannot download it,
#     std is built from the rust-src component instead (-Zbuild-std, see below);
#   - cargo-zigbuild and ziglang from PyPI, pinned, in a venv under
#     ${SAVESYNC_HANDHELD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/savesync-handheld};
#   - as root on Debian/Ubuntu: python3-venv and binutils (readelf) with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
PROFILE=handheld

targets=aarch64,armv7
bins=savesync,savesync-server
while (($#)); do
  case "$1" in
    --targets) targets="${2:?--targets needs a value}"; shift 2 ;;
    --targets=*) targets="${1#*=}"; shift ;;
    --bins) bins="${2:?--bins needs a value}"; shift 2 ;;
    --bins=*) bins="${1#*=}"; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-handheld: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "build-handheld: $*"; }
die() { echo "build-handheld: $*" >&2; exit 1; }

# Short names -> (Rust triple, ELF machine as readelf prints it).
triple_of() {
  case "$1" in
    aarch64) echo aarch64-unknown-linux-musl ;;
    armv7) echo armv7-unknown-linux-musleabihf ;;
    *) die "unknown target $1 (aarch64 or armv7)" ;;
  esac
}
machine_of() {
  case "$1" in
    aarch64) echo AArch64 ;;
    armv7) echo ARM ;;
  esac
}

# Which binary comes from which package.
cargo_bin_args=()
for bin in ${bins//,/ }; do
  case "$bin" in
    savesync) cargo_bin_args+=(-p savesync-fs --bin savesync) ;;
    savesync-server) cargo_bin_args+=(-p savesync-server --bin savesync-server) ;;
    *) die "unknown binary $bin (savesync or savesync-server)" ;;
  esac
done

apt_install() { # apt_install PACKAGE... (root on Debian/Ubuntu only)
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
  else
    die "missing $*; install with: sudo apt-get install -y $*"
  fi
}

# --- system tools --------------------------------------------------------------------------
command -v readelf >/dev/null 2>&1 || apt_install binutils
if ! command -v python3 >/dev/null 2>&1; then apt_install python3 python3-venv; fi

# --- cargo-zigbuild + zig, pinned, in their own venv -------------------------------------
tools="${SAVESYNC_HANDHELD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/savesync-handheld}"
venv="$tools/venv"
pins="ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
if [[ ! -x "$venv/bin/cargo-zigbuild" || "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
  if [[ ! -x "$venv/bin/python3" ]]; then
    mkdir -p "$tools"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
  fi
  say "installing $pins into $venv (pip)"
  # shellcheck disable=SC2086 # $pins is a list of requirement specifiers
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check $pins
  echo "$pins" >"$venv/.pins"
fi
# cargo-zigbuild runs zig as `python3 -m ziglang` when no `zig` is on PATH: the venv's
# python3 comes first, so it is the pinned zig whatever else is installed.
export PATH="$venv/bin:$PATH"
say "$(cargo-zigbuild --version 2>/dev/null | head -n1), zig $(python3 -m ziglang version)"

# --- Rust std per target ---------------------------------------------------------------------
# Targets whose prebuilt std rustup could not install get std built from source. That needs
# the nightly-only -Zbuild-std, which RUSTC_BOOTSTRAP=1 unlocks on this stable toolchain,
# and `-C link-self-contained=no`: without a prebuilt std there are no self-contained musl
# start files (crt1.o), so the linker (zig) supplies its own.
declare -A build_std=()
installed_targets="$(rustup target list --installed)"
for short in ${targets//,/ }; do
  triple="$(triple_of "$short")"
  if grep -qx "$triple" <<<"$installed_targets"; then continue; fi
  say "rustup target add $triple"
  if ! rustup target add "$triple" >/dev/null 2>"$tools/rustup-$triple.log"; then
    say "no prebuilt std for $triple from rustup ($(grep -m1 -i error "$tools/rustup-$triple.log" || true)); building std from rust-src"
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
    build_std[$triple]=1
  fi
done

# --- build -------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-target}"
built=()
for short in ${targets//,/ }; do
  triple="$(triple_of "$short")"
  extra=()
  envs=()
  if [[ -n "${build_std[$triple]:-}" ]]; then
    extra=(-Zbuild-std)
    envs=(RUSTC_BOOTSTRAP=1 "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C link-self-contained=no")
  fi
  say "cargo zigbuild --profile $PROFILE --target $triple ${cargo_bin_args[*]} ${extra[*]}"
  start=$SECONDS
  env "${envs[@]}" cargo zigbuild --locked --profile "$PROFILE" --target "$triple" \
    "${cargo_bin_args[@]}" "${extra[@]}"
  say "built $triple in $((SECONDS - start)) s"

  # --- check: an ELF for the right CPU, with no program interpreter and no shared libs ---
  for bin in ${bins//,/ }; do
    path="$target_dir/$triple/$PROFILE/$bin"
    [[ -x "$path" ]] || die "$path was not built"
    machine="$(readelf -h "$path" | sed -n 's/^ *Machine: *//p')"
    [[ "$machine" == *"$(machine_of "$short")"* ]] || die "$path is for '$machine', not $short"
    if readelf -l "$path" | grep -q INTERP; then die "$path asks for a dynamic loader"; fi
    if readelf -d "$path" 2>/dev/null | grep -q NEEDED; then
      die "$path needs shared libraries: $(readelf -d "$path" | grep NEEDED)"
    fi
    built+=("$path|$machine")
  done
done

say "static binaries:"
for entry in "${built[@]}"; do
  path="${entry%%|*}"
  size=$(stat -c %s "$path")
  printf '  %-56s %5.1f MiB  %s, static\n' "$path" "$(awk "BEGIN { print $size / 1048576 }")" "${entry#*|}"
done
