#!/usr/bin/env bash
# Run molecule scenarios: scripts/molecule.sh kafka postgresql
# AP_MOLECULE_JOBS=N runs up to N scenarios at once (each in its own lab networks; a scenario starts once the previous
# one has created its networks, so their address ranges never collide). With one job the output streams; with more,
# each scenario's log (reports/molecule/<scenario>.log) is printed when it ends.
# The verifier records each failed test in reports/molecule/<scenario>.failures (molecule/conftest.py). After the first
# failure no new scenario starts; the end of the output lists the failed tests with their messages (after molecule's
# own recap, so the end of a CI log says what failed, or the last failed tasks when no test failed) and how long each scenario took.
# AP_MOLECULE_TIMEOUT (seconds, default 1800) stops a scenario that runs over it, destroys its containers and fails it.
source "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || die "usage: $0 SCENARIO..."
jobs=${AP_MOLECULE_JOBS:-1}
[[ $jobs =~ ^[1-9]$ ]] || die "AP_MOLECULE_JOBS must be a number from 1 to 9 (got '$jobs')"
# One scenario's limit: a hung one is stopped, destroyed and reported instead of eating the whole run's time.
limit=${AP_MOLECULE_TIMEOUT:-1800}
[[ $limit =~ ^[1-9][0-9]*$ ]] || die "AP_MOLECULE_TIMEOUT must be a number of seconds (got '$limit')"
reports="$AP_ROOT/reports/molecule"
mkdir -p "$reports"

# Ansible's own strategy costs ~0.29 CPU-seconds per task and host on the target: each module run imports Ansible's
# module library from a zip, so nothing it compiles is kept. Mitogen keeps one interpreter per host and runs the same
# modules in it: ~3x fewer seconds per task (docs/testing.md). The scenarios and their tests' own ansible runs use it
# unless AP_MITOGEN=0; `make lab` and `make site` keep Ansible's own strategy, so both paths are exercised.
if [ "${AP_MITOGEN:-1}" = 1 ]; then
  ANSIBLE_STRATEGY_PLUGINS=$("$AP_VENV/bin/python" -c \
    'import os, ansible_mitogen.plugins.strategy as s; print(os.path.dirname(s.__file__))') \
    || die "AP_MITOGEN=1 needs mitogen in $AP_VENV (make venv), or run with AP_MITOGEN=0"
  export ANSIBLE_STRATEGY_PLUGINS ANSIBLE_STRATEGY=mitogen_linear
  info "strategy: mitogen_linear (AP_MITOGEN=0: Ansible's own linear strategy)"
fi
for s in "$@"; do
  [ -f "$AP_ROOT/molecule/$s/molecule.yml" ] || die "no molecule scenario '$s' (molecule/$s/molecule.yml)"
done

run_one() {  # scenario: runs it, leaves its exit code in reports/molecule/<s>.rc and its duration in <s>.seconds
  local s=$1 t0 rc=0
  local -a cmd=(timeout --kill-after=60 "$limit" "$AP_VENV/bin/molecule" test -s "$s")
  t0=$(date +%s)
  rm -f "$reports/audit-$s.json"  # the audit matrix reads only what this run's scenarios wrote
  if [ "$jobs" = 1 ]; then
    (cd "$AP_ROOT" && "${cmd[@]}") > >(tee "$reports/$s.log") 2>&1 || rc=$?
  else
    (cd "$AP_ROOT" && "${cmd[@]}") >"$reports/$s.log" 2>&1 || rc=$?
  fi
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    # Cut off: molecule's own destroy never ran. Say so in the log, and remove the scenario's containers and networks.
    echo "TIMEOUT: molecule test -s $s ran over AP_MOLECULE_TIMEOUT=${limit}s and was stopped" >>"$reports/$s.log"
    (cd "$AP_ROOT" && timeout 300 "$AP_VENV/bin/molecule" destroy -s "$s") >>"$reports/$s.log" 2>&1 || true
  fi
  echo $(( $(date +%s) - t0 )) >"$reports/$s.seconds"
  echo "$rc" >"$reports/$s.rc"
}

declare -A running=()  # pid -> scenario
failed=() passed=()
finish() {  # pid: report the scenario that ended
  local s=${running[$1]}
  unset "running[$1]"
  [ "$jobs" = 1 ] || { step "molecule test -s $s: output"; cat "$reports/$s.log"; }
  if [ "$(cat "$reports/$s.rc")" = 0 ]; then
    passed+=("$s")
  else
    failed+=("$s")
  fi
  step "molecule test -s $s: $( [ "$(cat "$reports/$s.rc")" = 0 ] && echo passed || echo FAILED ) in $(cat "$reports/$s.seconds")s"
  [ ${#failed[@]} -eq 0 ] || [ ${#running[@]} -eq 0 ] || info "waiting for what still runs: ${running[*]}"
}

for s in "$@"; do
  [ ${#failed[@]} -eq 0 ] || break
  while [ ${#running[@]} -ge "$jobs" ]; do
    wait -n -p done_pid "${!running[@]}" || true
    finish "$done_pid"
  done
  [ ${#failed[@]} -eq 0 ] || break
  rm -f "$reports/$s".{failures,rc,seconds,log}
  step "molecule test -s $s"
  run_one "$s" &
  running[$!]=$s
  if [ "$jobs" != 1 ]; then
    # Let this scenario claim its address range before the next one looks for a free one.
    for _ in $(seq 300); do
      docker network ls --format '{{.Name}}' | grep -q "^ap-mol-$s-" && break
      [ -f "$reports/$s.rc" ] && break
      sleep 2
    done
  fi
done
while [ ${#running[@]} -gt 0 ]; do
  wait -n -p done_pid "${!running[@]}" || true
  finish "$done_pid"
done

for s in "$@"; do
  [ -f "$reports/$s.seconds" ] && [ -f "$reports/$s.rc" ] && info "$(printf '%-12s %5ss  %s' "$s" "$(cat "$reports/$s.seconds")" \
    "$( [ "$(cat "$reports/$s.rc")" = 0 ] && echo passed || echo FAILED )")"
done
if [ ${#failed[@]} -gt 0 ]; then
  for s in "${failed[@]}"; do
    echo "---- $s: failed tests"
    grep -a "^TIMEOUT: " "$reports/$s.log" 2>/dev/null && \
      { info "its last lines before it was stopped:"; sed 's/\x1b\[[0-9;]*m//g' "$reports/$s.log" | grep -av "^TIMEOUT: " \
        | grep -a -E "TASK \[|fatal: |FAILED|RETRYING|PASSED|::test_" | tail -n 15 | cut -c1-400; }
    cat "$reports/$s.failures" 2>/dev/null && continue
    info "(no failed test recorded: the scenario failed outside its tests; its last failed tasks follow)"
    sed 's/\x1b\[[0-9;]*m//g' "$reports/$s.log" 2>/dev/null | grep -a -E "fatal: |FAILED!|failed: \[|CRITICAL|ERROR " \
      | grep -v -- "-RETRYING" | tail -n 12 | cut -c1-600
  done
  die "molecule: ${#failed[@]} scenario(s) failed: ${failed[*]} (passed: ${passed[*]:-none})"
fi
step "molecule: all ${#passed[@]} scenarios passed"
