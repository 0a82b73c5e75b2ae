#!/usr/bin/env bash
# Everything the system and its tests need on this machine, idempotently:
# the Docker engine, Postgres, the SSH client, and the images.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-docker.sh
scripts/ensure-postgres.sh
scripts/ensure-prometheus.sh
if ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "ssh: installing openssh-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-client >/dev/null
fi
scripts/build-images.sh
echo "rig: ready"
