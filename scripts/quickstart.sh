#!/usr/bin/env bash
# Brings Vessel up on this machine with no Slack account: Postgres, Docker,
# the images, two "hosts" that are this machine's own Docker engine reached
# over SSH (a 4-GPU host with a declared inventory in queue 3090, and a CPU
# host), the orchestrator, and then a first vessel you can SSH into.
# Idempotent: run it again to restart the orchestrator with your changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${VESSEL_HOME:-$ROOT/.vessel-local}
PORT=${VESSEL_PORT:-8700}
NET=vessel-local
mkdir -p "$STATE/keys" "$STATE/homes"

scripts/ensure-rig.sh
command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null
command -v python3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 >/dev/null
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null

key() { [ -f "$STATE/keys/$1" ] || ssh-keygen -q -t ed25519 -N '' -C "vessel-$1" -f "$STATE/keys/$1"; }
key ops; key host-gpu; key host-cpu
# Your key: the usual one if you have it, else one made for this demo.
if [ -f "$HOME/.ssh/id_ed25519.pub" ]; then USER_KEY=$HOME/.ssh/id_ed25519; else key you; USER_KEY=$STATE/keys/you; fi

echo "== network and hosts"
# Inter-container traffic off: vessels on one host must not reach each other
# (the orchestrator refuses a bridge that lets them). A network made by an
# older quick start had it on: it is made again, its containers with it.
if [ "$(docker network inspect -f '{{index .Options "com.docker.network.bridge.enable_icc"}}' "$NET" 2>/dev/null || echo missing)" = "" ]; then
  docker rm -f $(docker ps -aq -f "network=$NET") >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null
fi
if ! docker network inspect "$NET" >/dev/null 2>&1; then
  for third in 213 214 215 216 217; do
    docker network create --driver bridge --subnet "10.$third.0.0/24" --ip-range "10.$third.0.0/25" \
      -o com.docker.network.bridge.enable_icc=false "$NET" >/dev/null 2>&1 && break
  done
fi
SUBNET=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$NET")
# Both "hosts" are this one Docker engine on this one network, so each gets
# its own quarter of the subnet's upper half (Docker hands out the lower half
# to the host containers): with one shared pool, each host's allocator would
# give out the same address, and a second vessel failed "Address already in
# use". The orchestrator refuses overlapping pools.
PREFIX=${SUBNET%.0/24}

host() { # NAME QUEUE GPUS_CSV POOL
  local c="vessel-local-$1"
  if [ -z "$(docker ps -q -f "name=^$c$")" ]; then
    docker rm -f "$c" >/dev/null 2>&1 || true
    docker run -d --name "$c" --network "$NET" --restart unless-stopped \
      -e AUTHORIZED_KEYS="$(cat "$STATE/keys/ops.pub")" ${3:+-e "GPUS_CSV=$3"} \
      -v /var/run/docker.sock:/var/run/docker.sock -v "$STATE/homes:$STATE/homes" \
      -v "$STATE/keys/host-$1:/etc/ssh/ssh_host_ed25519_key:ro" \
      -v "$STATE/keys/host-$1.pub:/etc/ssh/ssh_host_ed25519_key.pub:ro" \
      vessel/testhost:latest >/dev/null
  fi
  local ip; ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$c")
  cat <<TOML
[[hosts]]
name = "local-$1"
queue = "$2"
home_root = "$STATE/homes"
gpu_runtime = "none"
[hosts.ssh]
address = "$ip:22"
key_path = "$STATE/keys/ops"
host_key = "$(cut -d' ' -f1,2 "$STATE/keys/host-$1.pub")"
[hosts.network]
mode = "direct"
docker_network = "$NET"
subnet = "$SUBNET"
pool = "$4"

TOML
}
# Four declared GPUs: `demo` holds one, so the README's headline
# `/vessel create gpu=2 queue=3090` runs at once, and a second one shows the
# waiting line.
GPUS=$(for i in 0 1 2 3; do
  echo "$i, GPU-11111111-0000-4000-8000-00000000000$i, NVIDIA GeForce RTX 3090 (declared), 24576 MiB, 00000000:0$((i + 1)):00.0"
done)
{ host gpu 3090 "$GPUS" "$PREFIX.128/26"; host cpu cpu "" "$PREFIX.192/26"; } > "$STATE/hosts.toml"

# The service key: the bot signs with the private half; the orchestrator
# holds only the public half, so nothing it has can mint a token.
if [ ! -f "$STATE/keys/service.key" ]; then
  (umask 077; openssl genpkey -algorithm ed25519 -out "$STATE/keys/service.key")
  openssl pkey -in "$STATE/keys/service.key" -pubout -out "$STATE/keys/service.pub"
fi
ME=$(whoami); [ "$ME" = root ] && ME=researcher
cat > "$STATE/vessel.toml" <<TOML
listen = "127.0.0.1:$PORT"
database_url = "postgres://vessel:vessel@127.0.0.1:5432/vessel"
fleet = "local"
hosts_file = "hosts.toml"
[auth]
service_public_key = { file = "$STATE/keys/service.pub" }
# The console's user is this fleet's admin (vessel-bot console --admin).
admins = ["console:$ME"]
# The demo's CLI signs in with a printed token (no identity provider):
# let it last a working day.
max_token_ttl = "12h"
[conductor]
workers = 4
[queues.3090]
gpus = 1
cpus = 1
memory = "2G"
image = "vessel/base:latest"
[queues.cpu]
gpus = 0
cpus = 1
memory = "1G"
image = "vessel/base:latest"
# The web portal at http://127.0.0.1:$PORT/: a sign-in form that takes a
# name and the key in dev-sign-in.key (only you can read it), allowed only
# because listen is loopback.
[portal]
dev_sign_in = true
dev_sign_in_key_file = "$STATE/dev-sign-in.key"
TOML

# The dev sign-in's key: kept across runs, readable by you alone.
if [ ! -s "$STATE/dev-sign-in.key" ]; then
  (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$STATE/dev-sign-in.key")
fi
chmod 600 "$STATE/dev-sign-in.key"

cat > "$STATE/vessel-bot.toml" <<TOML
orchestrator_url = "http://127.0.0.1:$PORT"
default_queue = "3090"
[auth]
private_key = { file = "$STATE/keys/service.key" }
TOML

echo "== orchestrator"
cargo build -q -p vessel-orchestrator -p vessel-bot -p vessel-cli
BIN=$ROOT/target/debug/vessel-orchestrator
if [ -f "$STATE/orchestrator.pid" ] && kill -0 "$(cat "$STATE/orchestrator.pid")" 2>/dev/null; then
  kill "$(cat "$STATE/orchestrator.pid")"; sleep 1
fi
nohup "$BIN" --config "$STATE/vessel.toml" > "$STATE/orchestrator.log" 2>&1 &
echo $! > "$STATE/orchestrator.pid"
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$PORT/health" >/dev/null || { echo "the orchestrator did not start; see $STATE/orchestrator.log" >&2; exit 1; }
echo "orchestrator: http://127.0.0.1:$PORT (log: $STATE/orchestrator.log)"

echo "== a first vessel"
# The console's user: you, unless you are root (not a name to hand a vessel).
TOKEN=$("$BIN" --config "$STATE/vessel.toml" token "console:$ME" --key "$STATE/keys/service.key")
api() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
api -X POST "http://127.0.0.1:$PORT/v1/me/keys" -d "{\"public_key\": \"$(cat "$USER_KEY.pub")\"}" >/dev/null
STATE_NOW=$(api "http://127.0.0.1:$PORT/v1/vessels/demo" 2>/dev/null | json 'd["state"]' 2>/dev/null || true)
if [ "$STATE_NOW" != running ] && [ "$STATE_NOW" != provisioning ]; then
  api -X POST "http://127.0.0.1:$PORT/v1/vessels" -d '{"queue": "3090", "gpus": 1, "name": "demo"}' >/dev/null
fi
for _ in $(seq 1 120); do
  STATE_NOW=$(api "http://127.0.0.1:$PORT/v1/vessels/demo" | json 'd["state"]')
  [ "$STATE_NOW" = running ] || [ "$STATE_NOW" = failed ] && break
  sleep 0.25
done
VESSEL=$(api "http://127.0.0.1:$PORT/v1/vessels/demo")
if [ "$STATE_NOW" != running ]; then echo "the vessel is $STATE_NOW: $(echo "$VESSEL" | json 'd["reason"]')" >&2; exit 1; fi
echo "$VESSEL" | json 'd["ssh"]["config"]' | sed "s#~/.ssh/id_ed25519#$USER_KEY#" > "$STATE/ssh_config"
echo "$VESSEL" | json 'd["ssh"]["known_hosts"]' > "$STATE/known_hosts"
cat <<MSG

Vessel "demo" is running: $(echo "$VESSEL" | json '"%s GPU(s) %s, %s cores, %d MiB on %s" % (d["gpus"], ",".join(d["gpu_uuids"]), d["cpus"], d["memory_bytes"] >> 20, d["host"])')
Log in (host key pinned, no trust on first use):

  ssh -F $STATE/ssh_config -o UserKnownHostsFile=$STATE/known_hosts demo

The API: export TOKEN=\$($BIN --config $STATE/vessel.toml token console:$ME --key $STATE/keys/service.key)
  curl -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$PORT/v1/vessels
  curl -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$PORT/v1/fleet
  curl -X DELETE -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$PORT/v1/vessels/demo
MSG

cat <<MSG
The portal (this link carries the dev sign-in's key: keep it to yourself):

  http://127.0.0.1:$PORT/sign-in?key=$(cat "$STATE/dev-sign-in.key")

MSG

# The CLI's way in for the demo: a token file, private to you.
(umask 077; "$BIN" --config "$STATE/vessel.toml" token "console:$ME" --key "$STATE/keys/service.key" > "$STATE/cli.token")
cat <<MSG
The CLI, next to the console (the same requests from your shell; single
sign-on replaces the token file where an identity provider is configured):

  alias vessel=$ROOT/target/debug/vessel
  vessel login --server http://127.0.0.1:$PORT --token-file $STATE/cli.token
  vessel keys add $USER_KEY.pub    (already registered; the CLI learns which key to log in with)
  vessel ls · vessel create gpu=1 queue=3090 --wait · vessel ssh demo · vessel config-ssh

MSG

CONSOLE="$ROOT/target/debug/vessel-bot --config $STATE/vessel-bot.toml console --as $ME"
if [ -t 0 ] && [ -t 1 ]; then
  echo "== the console: the Slack commands in a terminal (try: list · ssh demo · create queue=cpu · kill demo · quit)"
  exec $CONSOLE
else
  echo "The console (the Slack commands in a terminal): $CONSOLE"
fi
