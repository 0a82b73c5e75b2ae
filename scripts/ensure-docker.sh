#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`:
#   - it answers already: nothing to do;
#   - installed but down: start it (the init script, else dockerd by hand);
#   - absent: install Debian's docker.io, then start it.
# Idempotent: on a machine whose engine runs it only asks `docker info`.
set -euo pipefail

DEADLINE=${VESSEL_DOCKER_DEADLINE:-60}   # seconds for the daemon to answer
LOG=/var/log/dockerd.log

say() { echo "docker: $*"; }

running() {
  local line
  line=$(docker info --format '{{.ServerVersion}} {{.Driver}} cgroup-v{{.CgroupVersion}}' 2>/dev/null) || return 1
  say "running (engine $line)"
}

running && exit 0

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  say "not installed: apt-get install docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi

by_hand() {
  say "running dockerd in the background (log: $LOG)"
  nohup dockerd >>"$LOG" 2>&1 </dev/null &
}

say "starting the daemon"
# `service` works with systemd and with sysvinit scripts alike; where neither
# can start it (a container with no init) dockerd runs by hand.
if ! service docker start >/dev/null 2>&1; then
  say "'service docker start' failed"
  by_hand
fi

for ((i = 0; i < DEADLINE; i++)); do
  running && exit 0
  # Some init scripts report success and the daemon dies right after (no
  # cgroup mounts, say): no dockerd process after a while, so try by hand.
  if ((i == 10)) && ! pgrep -x dockerd >/dev/null; then
    say "no dockerd process after 10s"
    by_hand
  fi
  sleep 1
done
say "the daemon did not answer within ${DEADLINE}s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 2>/dev/null || true
exit 1
