#!/usr/bin/env bash
# Builds vessel/orchestrator and vessel/bot (manifests/compose.yaml runs
# them) from binaries cargo has already built, with
# manifests/images/service/Dockerfile on the debootstrap bases of
# `scripts/build-images.sh control` (built here if missing).
#
# usage: scripts/build-service-images.sh [BIN_DIR]
#   BIN_DIR  where vessel-orchestrator and vessel-bot are; default
#            target/release (`cargo build --release --locked --bins`). The
#            tests pass target/debug, which scripts/test.sh has built anyway:
#            CI compiles nothing twice for the images.
#
# Each image is tagged vessel/NAME:<hash of the binary, the Dockerfile and
# the bases' ids> and :latest; an existing tag is "cached" and skipped, so
# a second run with the same binaries takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${1:-target/release}
DOCKERFILE=manifests/images/service/Dockerfile

for bin in vessel-orchestrator vessel-bot; do
  if [ ! -x "$BIN_DIR/$bin" ]; then
    echo "images: $BIN_DIR/$bin is missing: cargo build --locked --bins$([ "$BIN_DIR" = target/release ] && echo ' --release')" >&2
    exit 1
  fi
done
for base in buildtools runtime; do
  if ! docker image inspect "vessel/$base:latest" >/dev/null 2>&1; then
    scripts/build-images.sh control
    break
  fi
done
BUILDTOOLS=$(docker image inspect -f '{{.Id}}' vessel/buildtools:latest)
RUNTIME=$(docker image inspect -f '{{.Id}}' vessel/runtime:latest)

# The same lock as build-images.sh: two test runs build one image once.
CACHE=${VESSEL_IMAGE_CACHE:-/var/cache/vessel-images}
mkdir -p "$CACHE"
exec 9>"$CACHE/.service-lock"
flock 9

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# service NAME BIN: vessel/NAME from $BIN_DIR/BIN.
service() {
  local name=$1 bin=$2 hash tag start=$SECONDS
  hash=$({
    sha256sum <"$BIN_DIR/$bin"
    sha256sum <"$DOCKERFILE"
    printf '%s\n' "$bin" "$BUILDTOOLS" "$RUNTIME"
  } | sha256sum | cut -c1-12)
  tag=vessel/$name:$hash
  if docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "vessel/$name:latest"
    echo "images: vessel/$name cached ($tag)"
    return
  fi
  # The build context is the binary alone (not the repository).
  local context=$SCRATCH/$name
  mkdir "$context"
  cp --reflink=auto "$BIN_DIR/$bin" "$context/$bin"
  # The classic builder: Debian's docker.io has no buildx, and the
  # Dockerfile needs nothing BuildKit adds (its deprecation notice is
  # dropped).
  if ! DOCKER_BUILDKIT=0 docker build -q -f "$DOCKERFILE" --build-arg BIN="$bin" \
    --build-arg BUILDTOOLS="$BUILDTOOLS" --build-arg RUNTIME="$RUNTIME" \
    -t "$tag" "$context" >"$SCRATCH/$name.log" 2>&1; then
    grep -v -e DEPRECATED -e 'BuildKit is currently' -e 'environment-variable' "$SCRATCH/$name.log" >&2
    return 1
  fi
  docker tag "$tag" "vessel/$name:latest"
  # Older content tags go.
  docker image ls --format '{{.Repository}}:{{.Tag}}' "vessel/$name" |
    grep -v -x -e "$tag" -e "vessel/$name:latest" | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "images: built $tag in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
}

# Both at once: most of the time is the daemon committing layers.
service orchestrator vessel-orchestrator &
orchestrator=$!
service bot vessel-bot &
bot=$!
status=0
wait "$orchestrator" || status=1
wait "$bot" || status=1
# The `slim` stages the classic builder leaves behind as dangling images
# (each holds an unstripped binary).
docker image prune -f --filter label=org.vessel.stage=slim >/dev/null
exit "$status"
