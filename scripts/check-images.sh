#!/usr/bin/env bash
# Tests vessel/testhost:latest and vessel/base:latest the way the
# orchestrator uses them, on a Docker network of its own (removed after,
# with every container it started):
#   testhost, GPU: root login with a key from $AUTHORIZED_KEYS, a pinned host
#     key given by bind mount, nvidia-smi printing $GPUS_CSV, and an SSH
#     streamlocal forward to the engine's socket answering /_ping;
#   testhost, CPU: generated host keys, and no nvidia-smi;
#   base: useradd works, no host keys baked in, and sshd serves a user
#     logged in with a key, as the orchestrator's init sets it up.
# build-images.sh runs it after building; run it by hand any time.
set -euo pipefail

say() { echo "check: $*"; }
fail() { echo "check: FAILED: $*" >&2; exit 1; }

for tool in ssh:openssh-client ssh-keygen:openssh-client curl:curl; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    say "installing ${tool#*:}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${tool#*:}" >/dev/null
  fi
done

ID=vessel-check-$$
TMP=$(mktemp -d)
NET=$ID
FORWARD_PID=
cleanup() {
  [ -z "$FORWARD_PID" ] || kill "$FORWARD_PID" 2>/dev/null || true
  docker rm -f "$ID-gpu" "$ID-cpu" "$ID-base" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -C "$ID" -f "$TMP/key"
ssh-keygen -q -t ed25519 -N '' -C "$ID-host" -f "$TMP/hostkey"
# Our own config only: no user config, no known_hosts of the machine's.
SSH=(ssh -F /dev/null -i "$TMP/key" -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)

docker network create "$NET" >/dev/null
address() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"; }

# Waits until `ssh USER@IP true` works (sshd is up), 30 s at most.
wait_ssh() {
  local target=$1
  shift
  for ((i = 0; i < 60; i++)); do
    "${SSH[@]}" "$@" "$target" true 2>/dev/null && return 0
    sleep 0.5
  done
  "${SSH[@]}" "$@" "$target" true || fail "no SSH to $target"
}

GPUS='0, GPU-3c8e5a10-1b2c-4d5e-8f90-a1b2c3d4e5f6, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:01:00.0
1, GPU-7f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b, NVIDIA GeForce RTX 3090, 24576 MiB, 00000000:02:00.0'

say "testhost with 2 GPUs and a pinned host key"
docker run -d --name "$ID-gpu" --network "$NET" \
  -e AUTHORIZED_KEYS="$(cat "$TMP/key.pub")" -e GPUS_CSV="$GPUS" \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$TMP/hostkey:/etc/ssh/ssh_host_ed25519_key:ro" \
  -v "$TMP/hostkey.pub:/etc/ssh/ssh_host_ed25519_key.pub:ro" \
  vessel/testhost:latest >/dev/null
ip=$(address "$ID-gpu")
echo "$ip $(cut -d' ' -f1,2 "$TMP/hostkey.pub")" >"$TMP/known_hosts"
PINNED=(-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$TMP/known_hosts")
wait_ssh "root@$ip" "${PINNED[@]}"
out=$("${SSH[@]}" "${PINNED[@]}" "root@$ip" nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv,noheader)
[ "$out" = "$GPUS" ] || fail "nvidia-smi printed '$out'"
out=$("${SSH[@]}" "${PINNED[@]}" "root@$ip" nvidia-smi -L)
[ "$out" = "$GPUS" ] || fail "nvidia-smi -L printed '$out'"
say "  ok: root login, pinned host key, nvidia-smi prints the declared GPUs"
# What the orchestrator's probe reads besides (a remote command: the
# single quotes are meant).
# shellcheck disable=SC2016
"${SSH[@]}" "${PINNED[@]}" "root@$ip" 'lscpu -p=CPU,NODE | grep -qv "^#" && awk "/^MemTotal:/ {exit !(\$2 > 0)}" /proc/meminfo' ||
  fail "lscpu or /proc/meminfo"

"${SSH[@]}" "${PINNED[@]}" -N -o ExitOnForwardFailure=yes -L "$TMP/docker.sock:/var/run/docker.sock" "root@$ip" &
FORWARD_PID=$!
for ((i = 0; i < 50; i++)); do [ -S "$TMP/docker.sock" ] && break; sleep 0.1; done
out=$(curl -sS --max-time 5 --unix-socket "$TMP/docker.sock" http://d/_ping) || fail "no answer through the forward"
[ "$out" = OK ] || fail "/_ping through the forward answered '$out'"
kill "$FORWARD_PID"
FORWARD_PID=
say "  ok: streamlocal forward to /var/run/docker.sock answers /_ping"

say "testhost without GPUs and with generated host keys"
docker run -d --name "$ID-cpu" --network "$NET" -e AUTHORIZED_KEYS="$(cat "$TMP/key.pub")" \
  vessel/testhost:latest >/dev/null
ip=$(address "$ID-cpu")
NOPIN=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null)
wait_ssh "root@$ip" "${NOPIN[@]}"
if "${SSH[@]}" "${NOPIN[@]}" "root@$ip" 'command -v nvidia-smi'; then
  fail "a CPU testhost has nvidia-smi"
fi
say "  ok: root login, no nvidia-smi"

say "base: useradd and sshd"
out=$(docker run --rm vessel/base:latest sh -c \
  'useradd -m -u 4242 alice && id alice && ls /etc/ssh/ssh_host_* 2>/dev/null; ls -d /run/sshd /usr/sbin/sshd')
grep -q '^uid=4242(alice)' <<<"$out" || fail "useradd in vessel/base: $out"
! grep -q ssh_host_ <<<"$out" || fail "vessel/base has host keys baked in: $out"
grep -qx /run/sshd <<<"$out" || fail "vessel/base has no /run/sshd: $out"
# Much as the orchestrator's init does: a user, its key, a host key, sshd.
docker run -d --name "$ID-base" --network "$NET" -e KEY="$(cat "$TMP/key.pub")" vessel/base:latest sh -c '
  set -e
  groupadd -g 4242 alice && useradd -u 4242 -g 4242 -m -s /bin/bash alice && usermod -p "*" alice
  echo "$KEY" > /etc/ssh/authorized_keys_alice
  ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
  exec /usr/sbin/sshd -D -e -o UsePAM=no -o AuthorizedKeysFile=/etc/ssh/authorized_keys_alice' >/dev/null
ip=$(address "$ID-base")
wait_ssh "alice@$ip" "${NOPIN[@]}"
out=$("${SSH[@]}" "${NOPIN[@]}" "alice@$ip" 'id -u; python3 -c "print(6*7)"; sudo -V >/dev/null && echo sudo')
[ "$out" = "$(printf '4242\n42\nsudo')" ] || fail "in a vessel/base session: $out"
say "  ok: useradd, no baked-in host keys, sshd login as the user, python3, sudo"

say "all passed"
