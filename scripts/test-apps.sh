#!/usr/bin/env bash
# Tests of the Python services in apps/: each service is installed from the wheelhouse (which proves the wheelhouse
# is complete: lab hosts install from it with --no-index) into .venv-apps, with the test fixtures package.
# The integration fixtures start real Kafka (SASL_SSL), PostgreSQL (TLS) and SeaweedFS (S3 over TLS) on 127.0.0.1.
source "$(dirname "$0")/lib.sh"

APPS_VENV="${AP_APPS_VENV:-$AP_ROOT/.venv-apps}"
services=()
for d in "$AP_ROOT"/apps/*/; do
  name=$(basename "$d")
  [ "$name" = testing ] && continue
  [ -f "$d/pyproject.toml" ] && services+=("$name")
done
[ ${#services[@]} -gt 0 ] || { step "No services in apps/: nothing to test"; exit 0; }

if ! dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "ok installed"; then
  step "Installing PostgreSQL 15 for the integration tests (Debian package)"
  [ "$(id -u)" = 0 ] || die "installing postgresql-15 needs root"
  DEBIAN_FRONTEND=noninteractive run_logged "$AP_CACHE/apt-pg.log" "apt-get install postgresql-15" \
    apt-get install -y -qq --no-install-recommends postgresql-15
  # Only the binaries are used: the tests start their own clusters.
  (command -v pg_ctlcluster >/dev/null && pg_ctlcluster 15 main stop) >/dev/null 2>&1 || true
fi

[ -d "$AP_ARTIFACTS/wheelhouse" ] || die "no wheelhouse in $AP_ARTIFACTS: run scripts/build-artifacts.sh"
TEST_TOOLS=("pytest==9.2.0" "pytest-asyncio==1.5.0" "httpx==0.28.1" "hypothesis==6.170.15" "jinja2==3.1.6")
want=$( (cat "$AP_ARTIFACTS/wheelhouse/SHA256SUMS" "$AP_ROOT/apps/testing/pyproject.toml"; echo "${TEST_TOOLS[*]}") \
  | sha256sum | cut -c1-16)
if [ "$(cat "$APPS_VENV/.stamp" 2>/dev/null)" != "$want" ]; then
  step "Service test environment: installing ${services[*]} from the wheelhouse (log: $AP_CACHE/venv-apps.log)"
  rm -rf "$APPS_VENV"
  run_logged "$AP_CACHE/venv-apps.log" "python3 -m venv" python3 -m venv "$APPS_VENV"
  pkgs=()
  for s in "${services[@]}"; do pkgs+=("${s//_/-}"); done
  run_logged "$AP_CACHE/venv-apps.log" "install of the services from the wheelhouse (--no-index)" \
    "$APPS_VENV/bin/pip" install -q --no-index --find-links "$AP_ARTIFACTS/wheelhouse" "${pkgs[@]}"
  run_logged "$AP_CACHE/venv-apps.log" "install of the test tools" \
    "$APPS_VENV/bin/pip" install -q "$AP_ROOT/apps/testing" "${TEST_TOOLS[@]}"
  echo "$want" >"$APPS_VENV/.stamp"
fi

cd "$AP_ROOT" || die "cannot enter $AP_ROOT"
# Import the services from their source trees (so tests run against the checkout) with the wheelhouse's dependencies.
PYTHONPATH="$(printf '%s:' "$AP_ROOT"/apps/*/src)"
export PYTHONPATH
if [ "${1:-}" = --bench ]; then
  shift
  step "Benchmarks of the services against real servers (scripts/benchmark.py $*)"
  exec "$APPS_VENV/bin/python" "$AP_ROOT/scripts/benchmark.py" "$@"
fi

if [ "${1:-}" = --contract-heavy ]; then
  shift
  export AP_PROPERTY_EXAMPLES="${AP_PROPERTY_EXAMPLES:-1500}"
  step "The event contract's property test, $AP_PROPERTY_EXAMPLES examples, against real servers"
  exec "$APPS_VENV/bin/python" -m pytest -p no:cacheprovider apps/analytics_api/tests/test_contract_stores.py "$@"
fi

step "Service tests (unit and integration against real servers)"
args=()
for s in "${services[@]}"; do [ -d "apps/$s/tests" ] && args+=("apps/$s/tests"); done
"$APPS_VENV/bin/python" -m pytest -p no:cacheprovider "${args[@]}" "$@"

# The collection's probes against the same real servers (tests/live), with the tool chain's Python (Ansible and the
# modules' libraries) and the fixtures package from its source tree.
step "The audit's probes against real servers (tests/live)"
# shellcheck disable=SC2153 # AP_VENV is set by lib.sh (not a misspelling of APPS_VENV)
PYTHONPATH="$AP_ROOT/apps/testing/src" ANSIBLE_CONFIG="$AP_ROOT/ansible.cfg" \
  exec "$AP_VENV/bin/python" -m pytest -p no:cacheprovider -p no:analytics_testing -p analytics_testing.fixtures tests/live "$@"
