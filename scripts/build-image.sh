#!/usr/bin/env bash
# Build the Debian 12 systemd base image for lab containers with debootstrap and `docker import`.
# Cached: the image tag carries a hash of the recipe, and it is rebuilt only when the recipe changes.
source "$(dirname "$0")/lib.sh"
need_root

IMAGE_REPO="${AP_IMAGE_REPO:-analytics-platform/debian12-systemd}"
PACKAGES="python3,python3-apt,systemd,systemd-sysv,dbus,sudo,openssh-server,iproute2,procps,ca-certificates"
tag=$(printf '%s\n' "$PACKAGES" | cat - "$AP_ROOT/lab/image/recipe.sh" "$0" | sha256sum | cut -c1-12)
image="$IMAGE_REPO:$tag"

docker info >/dev/null 2>&1 || die "Docker is not running: run scripts/bootstrap-host.sh first"
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" "$IMAGE_REPO:latest"
  step "Base image $image is cached"
  exit 0
fi

work="$AP_CACHE/rootfs-$tag"
rm -rf "$work" && mkdir -p "$work"
mirror=http://deb.debian.org/debian
proxy=""
curl -fsI -m 10 -x http://127.0.0.1:3142 "$mirror/dists/bookworm/Release" >/dev/null 2>&1 && proxy=http://127.0.0.1:3142
step "Building base image $image with debootstrap (about 2 minutes; log: $AP_CACHE/debootstrap.log)"
http_proxy=$proxy run_logged "$AP_CACHE/debootstrap.log" "debootstrap" \
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$work" "$mirror"
step "Customising the root file system"
run_logged "$AP_CACHE/recipe.log" "image recipe (lab/image/recipe.sh)" bash "$AP_ROOT/lab/image/recipe.sh" "$work"
step "Importing into Docker"
tar -C "$work" -c . | docker import \
  --change 'CMD ["/lib/systemd/system/systemd"]' \
  --change 'ENV container=docker' - "$image" >/dev/null || die "docker import of $image failed"
docker tag "$image" "$IMAGE_REPO:latest"
rm -rf "$work"
step "Base image ready: $image"
