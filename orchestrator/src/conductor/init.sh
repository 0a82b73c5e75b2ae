#!/bin/sh
# vessel init: runs as root, once, when the container starts. Its inputs are
# in /.vessel (root only), uploaded by the orchestrator before the start.
set -eu
. /.vessel/env
log() { echo "vessel-init: $*"; }

if ! getent passwd "$VESSEL_USER" >/dev/null; then
  if getent passwd "$VESSEL_UID" >/dev/null; then
    log "uid $VESSEL_UID is taken in this image by $(getent passwd "$VESSEL_UID" | cut -d: -f1)"
    exit 64
  fi
  getent group "$VESSEL_UID" >/dev/null || groupadd -g "$VESSEL_UID" "$VESSEL_USER"
  useradd -u "$VESSEL_UID" -g "$VESSEL_UID" -M -d "/home/$VESSEL_USER" -s /bin/bash "$VESSEL_USER"
fi
# A locked password ('!') makes sshd refuse key logins without PAM; '*' is
# "no password" without the lock.
usermod -p '*' "$VESSEL_USER"

home="/home/$VESSEL_USER"
mkdir -p "$home"
# Docker creates a missing bind source as root, empty: hand it to its owner
# once. A home that holds files of another uid is someone else's (a renamed
# or departed user's, a uid changed by an admin): taking it over would hand
# their files to this user, so the vessel fails instead, saying why.
owner=$(stat -c %u "$home")
if [ "$owner" != "$VESSEL_UID" ]; then
  if [ -n "$(ls -A "$home")" ]; then
    log "refusing $home: it holds files and belongs to uid $owner, not to $VESSEL_USER (uid $VESSEL_UID); if it is theirs, an admin hands it over on the host (chown -R $VESSEL_UID:$VESSEL_UID)"
    exit 66
  fi
  chown "$VESSEL_UID:$VESSEL_UID" "$home"
  chmod 750 "$home"
fi

install -d -m 755 /etc/vessel
install -m 644 /.vessel/authorized_keys /etc/vessel/authorized_keys
install -m 600 /.vessel/ssh_host_ed25519_key /etc/vessel/ssh_host_ed25519_key
install -m 644 /.vessel/ssh_host_ed25519_key.pub /etc/vessel/ssh_host_ed25519_key.pub
cat > /etc/vessel/sshd_config <<SSHD
Port 22
HostKey /etc/vessel/ssh_host_ed25519_key
AuthorizedKeysFile /etc/vessel/authorized_keys
AllowUsers $VESSEL_USER
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
X11Forwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding no
Subsystem sftp internal-sftp
SetEnv NVIDIA_VISIBLE_DEVICES=$VESSEL_GPUS VESSEL_NAME=$VESSEL_NAME
SSHD
mkdir -p /run/sshd
chmod 755 /run/sshd

if command -v jupyter >/dev/null 2>&1; then
  log "starting jupyter on :8888"
  su -s /bin/sh "$VESSEL_USER" -c "cd \"$home\" && nohup jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --IdentityProvider.token='$JUPYTER_TOKEN' >/tmp/jupyter.log 2>&1 &"
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
