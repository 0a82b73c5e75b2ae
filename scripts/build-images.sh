#!/usr/bin/env bash
# Builds the images Vessel needs from Debian packages — no registry exists:
#   vessel/base      what a vessel runs: openssh-server, python3, sudo
#   vessel/testhost  a stand-in GPU server: sshd + a stand-in nvidia-smi
# Each is tagged with a hash of its package list and baked-in files, and
# skipped when that tag exists (idempotent; a content change rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${VESSEL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${VESSEL_IMAGE_CACHE:-/var/cache/vessel-images}
mkdir -p "$CACHE"

command -v debootstrap >/dev/null || {
  echo "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
}

# build NAME "PACKAGES" FILES_DIR
build() {
  local name=$1 packages=$2 files=$3
  local hash
  hash=$( { echo "$SUITE $packages"; tar -C "$files" --sort=name --mtime=@0 --owner=0 --group=0 -cf - . ; } | sha256sum | cut -c1-12)
  local tag="vessel/$name:$hash"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "vessel/$name:latest"
    echo "vessel/$name: cached ($tag)"
    return
  fi
  echo "vessel/$name: building $tag (debootstrap $SUITE: $packages)"
  local root
  root=$(mktemp -d "$CACHE/root.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  # The package download is kept per package list, so a change of baked-in
  # files does not fetch again.
  local tarball
  tarball="$CACHE/$(echo "$SUITE $packages" | sha256sum | cut -c1-12).tgz"
  if [ ! -f "$tarball" ]; then
    debootstrap --variant=minbase --include="$packages" --make-tarball="$tarball.part" \
      "$SUITE" "$root/x" "$MIRROR" >/dev/null
    mv "$tarball.part" "$tarball"
    rm -rf "${root:?}/x"
  fi
  debootstrap --variant=minbase --include="$packages" --unpack-tarball="$tarball" \
    "$SUITE" "$root" "$MIRROR" >/dev/null
  # Host keys are per vessel (supplied by the orchestrator) or per test host.
  rm -f "$root"/etc/ssh/ssh_host_*
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  cp -a "$files"/. "$root"/
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    "${@:4}" - "$tag" >/dev/null
  docker tag "$tag" "vessel/$name:latest"
  echo "vessel/$name: built $tag"
}

build base "openssh-server,python3,sudo,passwd,procps,iproute2,ca-certificates,less" manifests/images/base
build testhost "openssh-server,procps,iproute2,ca-certificates,util-linux" manifests/images/testhost \
  --change 'CMD ["/usr/local/bin/testhost-entrypoint"]'
