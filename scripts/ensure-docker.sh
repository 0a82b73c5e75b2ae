#!/usr/bin/env bash
# Makes sure a Docker engine answers: starts the daemon if it is installed
# but down, installs docker.io if it is absent. Idempotent.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker: running"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker: installing docker.io"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
fi
echo "docker: starting the daemon"
if ! service docker start >/dev/null 2>&1; then
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "docker: running"; exit 0; }
  sleep 1
done
echo "docker: the daemon did not come up in 60s; see /var/log/dockerd.log" >&2
exit 1
