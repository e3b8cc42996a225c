#!/usr/bin/env bash
# Install and start what the lab needs on this machine: Debian's docker.io (and start dockerd, which nothing
# else starts here), debootstrap for the base image, and apt-cacher-ng so lab containers share one apt cache.
# Re-runnable: every step checks before it acts.
source "$(dirname "$0")/lib.sh"
need_root

# chromium: the audit report's HTML page is checked in a real headless browser (scripts/check_audit_report.py).
# The shellcheck program: ansible-test sanity (make lint) checks the shell scripts with it.
pkgs=(docker.io debootstrap apt-cacher-ng iptables curl chromium shellcheck)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "Installing host packages: ${missing[*]}"
  run_logged "$AP_CACHE/apt-host.log" "apt-get update" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive run_logged "$AP_CACHE/apt-host.log" "apt-get install ${missing[*]}" \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  step "Starting dockerd"
  # No init system starts it on these machines; run it in the background and wait for the socket.
  nohup dockerd >"$AP_CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 15 "$AP_CACHE/dockerd.log" >&2; die "Docker cannot start (log: $AP_CACHE/dockerd.log)"; }
fi

acng_ok() { curl -fsI -m 20 -x http://127.0.0.1:3142 http://deb.debian.org/debian/dists/bookworm/Release >/dev/null 2>&1; }
if ! acng_ok; then
  # Debian's package starts its own instance with remaps to mirrors this machine cannot reach: replace it.
  pkill -f '^/usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng' 2>/dev/null && sleep 1
  step "Starting apt-cacher-ng (apt cache for lab containers on port 3142)"
  # Our own minimal configuration: a plain caching proxy for the mirror the client asks for. Debian's default
  # remaps deb.debian.org to backends this machine cannot reach.
  acng="$AP_CACHE/apt-cacher-ng"
  mkdir -p "$acng/cache" "$acng/log" "$acng/conf"
  cat >"$acng/conf/acng.conf" <<CONF
CacheDir: $acng/cache
LogDir: $acng/log
Port: 3142
BindAddress: 0.0.0.0
ExThreshold: 4
PassThroughPattern: .*:443$
CONF
  /usr/sbin/apt-cacher-ng -c "$acng/conf" ForeGround=0 >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do acng_ok && break; sleep 0.5; done
  acng_ok || info "apt-cacher-ng does not answer: lab containers will use the mirror directly"
fi
step "Host ready: $(docker info --format 'Docker {{.ServerVersion}}, cgroup v{{.CgroupVersion}}')"
