#!/usr/bin/env bash
# Create .venv with the pinned tool chain from pyproject.toml ([project.optional-dependencies] dev).
# Re-runnable: reinstalls only when the pins change.
source "$(dirname "$0")/lib.sh"

pins=$(python3 -c 'import tomllib,sys; print("\n".join(tomllib.load(open(sys.argv[1],"rb"))["project"]["optional-dependencies"]["dev"]))' \
  "$AP_ROOT/pyproject.toml") || die "cannot read the tool chain pins from pyproject.toml"
want=$(printf '%s\n' "$pins" | sha256sum | cut -c1-16)
if [ -x "$AP_VENV/bin/python" ] && [ "$(cat "$AP_VENV/.pins" 2>/dev/null)" = "$want" ]; then
  step "Python tool chain: up to date ($AP_VENV)"
  exit 0
fi
step "Python tool chain: installing $(printf '%s\n' "$pins" | wc -l) pinned packages into $AP_VENV (log: $AP_CACHE/venv.log)"
[ -x "$AP_VENV/bin/python" ] || run_logged "$AP_CACHE/venv.log" "python3 -m venv" python3 -m venv "$AP_VENV"
printf '%s\n' "$pins" >"$AP_CACHE/dev-requirements.txt"
run_logged "$AP_CACHE/venv.log" "pip install of the tool chain" \
  "$AP_VENV/bin/pip" install --disable-pip-version-check -q -r "$AP_CACHE/dev-requirements.txt"
echo "$want" >"$AP_VENV/.pins"
step "Python tool chain: $("$AP_VENV/bin/ansible" --version | sed -n 1p)"
