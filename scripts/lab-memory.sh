#!/usr/bin/env bash
# The running lab's memory: every platform service's resident memory (RSS of its processes, summed per systemd unit
# inside each container; shared pages count once per process, so the sum is an upper bound), the lab's total, and the
# host's memory in use as a cross-check. make lab-memory (LAB_NAME=lab by default). docs/lab.md keeps the numbers.
source "$(dirname "$0")/lib.sh"

lab="${LAB_NAME:-lab}"
mapfile -t containers < <(docker ps --filter "name=^ap-${lab}-" --format '{{.Names}}' | sort)
[ ${#containers[@]} -gt 0 ] || die "no running containers named ap-${lab}-*: start the lab first (make lab)"

printf '| Host | Service (systemd unit) | Resident MiB |\n|---|---|---|\n'
total_rss=0
for c in "${containers[@]}"; do
  # Units holding more than 20 MiB; the rest (sshd, journald, systemd...) is summed as "base system".
  while read -r kib unit; do
    mib=$(( kib / 1024 ))
    total_rss=$(( total_rss + kib ))
    printf '| %s | %s | %s |\n' "${c#ap-"${lab}"-}" "$unit" "$mib"
  done < <(docker exec "$c" ps -eo rss=,unit= | awk '
      { rss[$2] += $1 }
      END { for (u in rss) { if (rss[u] >= 20480) print rss[u], u; else small += rss[u] } print small, "base system" }' \
    | sort -rn)
done
printf '\nResident memory of every process in the lab: %d MiB\n' $(( total_rss / 1024 ))

# Docker's own per-container figure is not usable here (cgroup v1 with systemd inside: docker stats reports 0 for most
# containers), so the host's view is the cross-check: everything in use on this machine, the lab included.
free -m | awk '/^Mem:/ { printf "Memory in use on the whole host (free -m, the lab and everything else): %d MiB of %d MiB\n", $3, $2 }'
