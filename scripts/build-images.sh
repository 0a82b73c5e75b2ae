#!/usr/bin/env bash
# Builds the images Vessel needs from Debian packages (no registry exists):
#   vessel/base      what a vessel runs: sshd, python3, sudo, useradd
#   vessel/testhost  a stand-in GPU server: sshd + a stand-in nvidia-smi
# and, with the argument `control`, the control plane's bases
# (manifests/compose.yaml; scripts/build-service-images.sh puts the binaries
# on the first two):
#   vessel/buildtools  binutils: the stage that strips the binaries
#   vessel/runtime     what the orchestrator and bot run on: CA roots, curl
#   vessel/postgres    Debian's PostgreSQL 15, initialised from secrets
#   vessel/prometheus  Debian's Prometheus
# Each is `debootstrap --variant=minbase` + the files under
# manifests/images/<name>/, turned into an image by `docker import`, and
# tagged vessel/<name>:<hash> and vessel/<name>:latest. The hash covers the
# package list, the baked-in files and this script's recipe functions, so an
# image whose tag exists is "cached" and skipped, and any change rebuilds.
# The debootstrap of each package list is kept under $CACHE: a change of
# files rebuilds in seconds without downloading again.
# After building anything, scripts/check-images.sh tests the images.
#
# Env: VESSEL_DEBIAN_MIRROR, VESSEL_IMAGE_CACHE, VESSEL_SKIP_IMAGE_CHECK=1.
#
# usage: scripts/build-images.sh [control]
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-vessels}
case $SET in vessels | control) ;; *) echo "usage: $0 [control]" >&2; exit 2 ;; esac

SUITE=bookworm
MIRROR=${VESSEL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${VESSEL_IMAGE_CACHE:-/var/cache/vessel-images}

BASE_PACKAGES=openssh-server,python3,sudo,passwd,procps,iproute2,ca-certificates,less
TESTHOST_PACKAGES=openssh-server,procps,iproute2,ca-certificates,coreutils
# The orchestrator speaks SSH itself (russh) and TLS with rustls, so its
# runtime needs no ssh client and no OpenSSL: CA roots (the bot's Slack
# client reads the system's) and curl for the health checks.
RUNTIME_PACKAGES=ca-certificates,curl
BUILDTOOLS_PACKAGES=binutils
POSTGRES_PACKAGES=postgresql-15,postgresql-client-15
PROMETHEUS_PACKAGES=prometheus,curl

for tool in debootstrap:debootstrap sha256sum:coreutils flock:util-linux; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "images: installing ${tool#*:}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${tool#*:}" >/dev/null
  fi
done
ARCH=$(dpkg --print-architecture)
mkdir -p "$CACHE"
# One build at a time on this machine (test.sh and quickstart.sh both call us).
exec 9>"$CACHE/.lock"
flock 9

# Scratch directories, removed however the script ends. rm stays on this
# file system: an interrupted debootstrap can leave /proc mounted inside.
SCRATCH=()
cleanup() {
  local d
  for d in "${SCRATCH[@]}"; do
    [ -e "$d" ] || continue
    grep -o " $d/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf --one-file-system "$d"
  done
}
trap cleanup EXIT
# debootstrap (dpkg) carries on through Ctrl-C, and bash then forgets the
# interrupt; this makes the script stop (and clean up) once it returns.
trap 'exit 130' INT

# ---- The recipe. `declare -f` of these functions goes into the content hash:
# ---- a change of what they do rebuilds (a change of comments does not).

# The cache key of a package list's pristine tree.
rootfs_key() { printf '%s\n' "$SUITE" "$ARCH" "$1" | sha256sum | cut -c1-12; }

# Sets PRISTINE to a pristine debootstrap of PACKAGES, made if missing.
pristine_rootfs() {
  local packages=$1 key dir
  key=$(rootfs_key "$packages")
  dir=$CACHE/rootfs-$key
  if [ ! -d "$dir" ]; then
    echo "images:   debootstrap --variant=minbase $SUITE, with $packages"
    SCRATCH+=("$dir.part")
    rm -rf --one-file-system "$dir.part"
    if ! debootstrap --variant=minbase --arch="$ARCH" --include="$packages" \
      "$SUITE" "$dir.part" "$MIRROR" >"$CACHE/debootstrap-$key.log" 2>&1; then
      echo "debootstrap failed; the end of $CACHE/debootstrap-$key.log:" >&2
      tail -n 25 "$CACHE/debootstrap-$key.log" >&2
      return 1
    fi
    rm -f "$dir.part"/var/cache/apt/archives/*.deb
    mv "$dir.part" "$dir"
  fi
  PRISTINE=$dir
}

# Turns a copy of the pristine tree into the image's tree.
finish_rootfs() {
  local root=$1 files=$2
  # No host keys in an image: the orchestrator gives each vessel its own, and
  # a test host is given one or makes its own at start.
  rm -f "$root"/etc/ssh/ssh_host_*
  # sshd wants its privilege separation directory; /run in a container is
  # the image's own (no tmpfs, no systemd-tmpfiles), so it is made here.
  install -d -m 755 "$root/run/sshd"
  # Leftovers of apt and of the build machine (Docker provides resolv.conf
  # and hostname at run time).
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/bootstrap.log
  : >"$root/etc/resolv.conf"
  echo localhost >"$root/etc/hostname"
  # The baked-in files, owned by root whoever checked the repo out; existing
  # directories keep their owner and mode.
  tar -C "$files" --owner=0 --group=0 --mode=go-w -cf - . | tar -C "$root" --no-overwrite-dir -xf -
}

# Imports ROOT as TAG, with IMPORT_CHANGES (Dockerfile instructions).
import_rootfs() {
  local root=$1 tag=$2 change
  local args=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8')
  for change in "${IMPORT_CHANGES[@]}"; do args+=(--change "$change"); done
  # --numeric-owner: the image's uids are those of its own /etc/passwd.
  tar -C "$root" --numeric-owner -cf - . | docker import "${args[@]}" - "$tag" >/dev/null
}

# ---- End of the recipe.

# build NAME PACKAGES [CHANGE...]: the files are manifests/images/NAME (an
# image without any gets an empty directory).
build() {
  local name=$1 packages=$2 files=manifests/images/$1
  if [ ! -d "$files" ]; then
    files=$(mktemp -d)
    SCRATCH+=("$files")
  fi
  IMPORT_CHANGES=("${@:3}")
  local hash tag
  hash=$({
    printf '%s\n' "$SUITE" "$ARCH" "$packages" "${IMPORT_CHANGES[@]}"
    declare -f rootfs_key pristine_rootfs finish_rootfs import_rootfs
    tar -C "$files" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w -cf - .
  } | sha256sum | cut -c1-12)
  tag=vessel/$name:$hash
  BUILT_TAGS+=("$tag")
  if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "vessel/$name:latest"
    echo "images: vessel/$name cached ($tag)"
    return
  fi
  echo "images: building $tag"
  local start=$SECONDS root
  pristine_rootfs "$packages"
  root=$(mktemp -d "$CACHE/build-$name.XXXXXX")
  SCRATCH+=("$root")
  # Same file system as the cache, so a reflink or a quick copy.
  cp -a --reflink=auto "$PRISTINE"/. "$root"/
  finish_rootfs "$root" "$files"
  import_rootfs "$root" "$tag"
  rm -rf --one-file-system "$root"
  docker tag "$tag" "vessel/$name:latest"
  # Older content tags of this image go (an image still used by a container
  # or by a child image stays; that refusal is fine).
  docker image ls --format '{{.Repository}}:{{.Tag}}' "vessel/$name" |
    grep -v -x -e "$tag" -e "vessel/$name:latest" | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "images: built $tag in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
  NEW=1
}

NEW=0
BUILT_TAGS=()
if [ "$SET" = vessels ]; then
  build base "$BASE_PACKAGES"
  build testhost "$TESTHOST_PACKAGES" 'CMD ["/usr/local/bin/testhost-entrypoint"]'
else
  # The label marks what the service images' strip stage leaves behind.
  build buildtools "$BUILDTOOLS_PACKAGES" 'LABEL org.vessel.stage=slim'
  build runtime "$RUNTIME_PACKAGES"
  # The entrypoint starts as root (to read the password secret and own the
  # data directory) and runs the server as `postgres`.
  build postgres "$POSTGRES_PACKAGES" \
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV PGDATA=/var/lib/postgresql/data' \
    'EXPOSE 5432' 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]'
  build prometheus "$PROMETHEUS_PACKAGES" 'USER prometheus' 'EXPOSE 9090' \
    'ENTRYPOINT ["/usr/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2"]'
fi

# Pristine trees of package lists no longer built, and the tarballs of an
# older version of this script, only take disk space.
keep=$(for p in "$BASE_PACKAGES" "$TESTHOST_PACKAGES" "$BUILDTOOLS_PACKAGES" "$RUNTIME_PACKAGES" \
  "$POSTGRES_PACKAGES" "$PROMETHEUS_PACKAGES"; do echo "rootfs-$(rootfs_key "$p")"; done)
for old in "$CACHE"/rootfs-* "$CACHE"/*.tgz; do
  [ -e "$old" ] || continue
  case $old in *.part) continue ;; esac
  if ! grep -qx "$(basename "$old")" <<<"$keep"; then
    echo "images: removing stale cache $old"
    rm -rf --one-file-system "$old" "$CACHE/debootstrap-$(basename "$old" | sed 's/^rootfs-//').log"
  fi
done

# The check is of the vessel images; the control plane's are tested by the
# deploy test (tests/e2e/deploy.rs).
if [ "$SET" = vessels ] && [ "$NEW" = 1 ] && [ "${VESSEL_SKIP_IMAGE_CHECK:-}" != 1 ]; then
  flock -u 9
  scripts/check-images.sh
fi
echo "images: ready: ${BUILT_TAGS[*]}"
