#!/bin/sh
# vessel init: runs as root, once, when the container starts. Its inputs are
# in /.vessel (root only) and sshd's files in /etc/vessel, unpacked from what
# the orchestrator sent on stdin. Every command here is a process started
# while the user waits for their vessel: shell built-ins where they do.
set -eu
. /.vessel/env
log() { echo "vessel-init: $*"; }

if ! getent passwd "$VESSEL_USER" >/dev/null; then
  if getent passwd "$VESSEL_UID" >/dev/null; then
    log "uid $VESSEL_UID is taken in this image by $(getent passwd "$VESSEL_UID" | cut -d: -f1)"
    exit 64
  fi
  getent group "$VESSEL_UID" >/dev/null || groupadd -g "$VESSEL_UID" "$VESSEL_USER"
  # A locked password ('!') makes sshd refuse key logins without PAM; '*'
  # is "no password" without the lock. No subordinate ids: nothing in a
  # vessel can use them (no-new-privileges disarms newuidmap), and writing
  # /etc/subuid and /etc/subgid doubled useradd's time.
  useradd -u "$VESSEL_UID" -g "$VESSEL_UID" -M -d "/home/$VESSEL_USER" -s /bin/bash -p '*' \
    -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$VESSEL_USER"
else
  usermod -p '*' "$VESSEL_USER"
fi

# True when the directory holds nothing, dot files included.
is_empty() {
  for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then return 1; fi
  done
  return 0
}

home="/home/$VESSEL_USER"
# The bind mount makes it; an image run by hand may not.
[ -d "$home" ] || mkdir -p "$home"
# Docker creates a missing bind source as root, empty: hand it to its owner
# once. A home that holds files of another uid is someone else's (a renamed
# or departed user's, a uid changed by an admin): taking it over would hand
# their files to this user, so the vessel fails instead, saying why.
owner=$(stat -c %u "$home")
if [ "$owner" != "$VESSEL_UID" ]; then
  if ! is_empty "$home"; then
    log "refusing $home: it holds files and belongs to uid $owner, not to $VESSEL_USER (uid $VESSEL_UID); if it is theirs, an admin hands it over on the host (chown -R $VESSEL_UID:$VESSEL_UID)"
    exit 66
  fi
  install -d -o "$VESSEL_UID" -g "$VESSEL_UID" -m 750 "$home"
fi

# sshd's files came in the archive with their modes; a container started
# again by hand may have lost its /run.
[ -d /run/sshd ] || mkdir -m 755 /run/sshd

# Jupyter listens on the vessel's loopback only: its token travels in a
# plain-HTTP URL, which anyone on the path (the LAN in direct or macvlan
# mode) could read. The researcher reaches it through SSH, pinned host key
# and all: `vessel jupyter NAME` (ssh -L 8888:127.0.0.1:8888).
if command -v jupyter >/dev/null 2>&1; then
  log "starting jupyter on 127.0.0.1:8888 (reach it with vessel jupyter)"
  su -s /bin/sh "$VESSEL_USER" -c "cd \"$home\" && nohup jupyter lab --no-browser --ip=127.0.0.1 --port=8888 --IdentityProvider.token='$JUPYTER_TOKEN' >/tmp/jupyter.log 2>&1 &"
fi

if [ "${VESSEL_TAILSCALE:-}" = 1 ]; then
  if ! command -v tailscaled >/dev/null 2>&1 || ! command -v tailscale >/dev/null 2>&1; then
    log "this image has no tailscale/tailscaled, and its host joins vessels to the tailnet: use an image with tailscale (see manifests/images/cuda/Dockerfile)"
    exit 65
  fi
  # Userspace networking: no NET_ADMIN, no /dev/net/tun; the tailnet
  # address reaches local ports (sshd, Jupyter) through tailscaled.
  mkdir -p /run/tailscale /var/lib/tailscale
  tailscaled --tun=userspace-networking --state=mem: --socket=/run/tailscale/tailscaled.sock >/var/log/tailscaled.log 2>&1 &
  i=0
  while [ ! -S /run/tailscale/tailscaled.sock ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  tailscale --socket=/run/tailscale/tailscaled.sock up \
    --auth-key=file:/.vessel/ts-authkey --hostname="$VESSEL_TS_HOSTNAME" \
    --accept-dns=false --timeout=60s
  rm -f /.vessel/ts-authkey
  log "joined the tailnet as $VESSEL_TS_HOSTNAME"
fi

log "ready for $VESSEL_USER (uid $VESSEL_UID), GPUs: $VESSEL_GPUS"
exec /usr/sbin/sshd -D -e -f /etc/vessel/sshd_config
