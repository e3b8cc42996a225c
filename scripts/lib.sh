# shellcheck shell=bash
# Shared helpers for the host scripts: progress lines, one-line failures, caches.
set -euo pipefail

AP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AP_CACHE="${AP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/analytics-platform}"
AP_ARTIFACTS="${AP_ARTIFACTS:-$AP_ROOT/artifacts}"
AP_VENV="${AP_VENV:-$AP_ROOT/.venv}"
export AP_ROOT AP_CACHE AP_ARTIFACTS AP_VENV
mkdir -p "$AP_CACHE"

_ap_t0=$(date +%s)
step() { printf '==> [%4ss] %s\n' "$(( $(date +%s) - _ap_t0 ))" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# run_logged LOGFILE DESCRIPTION CMD...: run a noisy command, keep its output in a log,
# and on failure print the last lines and one line naming what failed.
run_logged() {
  local log=$1 what=$2; shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 25 "$log" >&2 || true
    die "$what failed (full log: $log)"
  fi
}

need_root() { [ "$(id -u)" = 0 ] || die "$0 must run as root (it installs packages and starts dockerd)"; }

# sha256 of a list of files and strings: used to key caches on their recipe.
recipe_hash() { cat "$@" | sha256sum | cut -c1-16; }
