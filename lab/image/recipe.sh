#!/usr/bin/env bash
# Customise the debootstrapped root (run by scripts/build-image.sh with the root as $1).
# Any change to this file or to the package list rebuilds the image.
set -euo pipefail
root=$1

# Debian's main, updates and security suites (the base role's patching relies on the security suite).
cat >"$root/etc/apt/sources.list" <<'SRC'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
# The mirror these machines reach may serve a dated snapshot whose Release files have expired.
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/10lab-valid-until"

# Every container must get its own SSH host keys and machine id, not the image's.
rm -f "$root"/etc/ssh/ssh_host_*
: >"$root/etc/machine-id"
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/10-hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
mkdir -p "$root/root/.ssh" && chmod 0700 "$root/root/.ssh"

# Units that have nothing to do in a container (no consoles, no kernel tuning of the host).
for unit in getty@tty1.service console-getty.service serial-getty@.service getty-static.service \
            systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
            systemd-firstboot.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /lib/systemd/system/ssh.service "$root/etc/systemd/system/multi-user.target.wants/ssh.service"

# Keep the image small: no docs or caches.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
# No package lists in the image, and an old time stamp so that `apt: update_cache, cache_valid_time` refreshes them.
mkdir -p "$root/var/lib/apt/lists/partial" && touch -d @0 "$root/var/lib/apt/lists"
