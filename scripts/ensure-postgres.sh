#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 with:
#   - a role `vessel`, password `vessel`, NOT a superuser: it may create
#     databases (tests create one each) and owns what it creates, nothing
#     more (a leaked password reads no files and runs no programs);
#   - a database `vessel` owned by it;
#   - max_connections >= 300 (many tests at once, each with its own pool).
# Installs Debian's `postgresql` if missing, creates and starts the cluster.
# Verifies a real password login over TCP, as the orchestrator makes one.
# Idempotent: a second run only checks. The last line printed is
#   export DATABASE_URL=postgres://vessel:vessel@127.0.0.1:5432/vessel
set -euo pipefail

PORT=5432
DEADLINE=${VESSEL_POSTGRES_DEADLINE:-30}   # seconds for the server to accept
say() { echo "postgres: $*"; }

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "not installed: apt-get install postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q postgresql >/dev/null
fi

# The cluster on our port (Debian's package makes `<version> main` on 5432;
# another version installed beside it gets 5433 and is not ours).
cluster_line() { pg_lsclusters -h | awk -v port="$PORT" '$3 == port' | head -n1; }
if [ -z "$(cluster_line)" ]; then
  version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n1)
  say "no cluster on port $PORT: creating $version/main"
  pg_createcluster --port="$PORT" "$version" main >/dev/null
fi
read -r version cluster _port status _ < <(cluster_line)

if [ "$status" != online ]; then
  say "starting cluster $version/$cluster"
  # pg_ctlcluster goes through systemd where systemd runs, and works without.
  pg_ctlcluster "$version" "$cluster" start || service postgresql start
fi

wait_ready() {
  for ((i = 0; i < DEADLINE; i++)); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && return 0
    sleep 1
  done
  say "not accepting connections on 127.0.0.1:$PORT after ${DEADLINE}s; see /var/log/postgresql/" >&2
  exit 1
}
wait_ready

# As the postgres superuser over the local socket (peer auth). From / so
# that psql does not complain about a cwd the postgres user cannot read.
as_postgres() { (cd / && runuser -u postgres -- psql -X -p "$PORT" -v ON_ERROR_STOP=1 -qtAc "$1"); }

role=$(as_postgres "SELECT NOT rolsuper AND rolcreatedb AND rolcanlogin FROM pg_roles WHERE rolname = 'vessel'")
# The password is checked by logging in with it (it is stored hashed).
if [ "$role" = t ] && PGPASSWORD=vessel PGCONNECT_TIMEOUT=5 psql -X -qtA -h 127.0.0.1 -p "$PORT" -U vessel -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  :
elif [ -z "$role" ]; then
  say "creating role vessel"
  as_postgres "CREATE ROLE vessel LOGIN NOSUPERUSER CREATEDB PASSWORD 'vessel'"
else
  say "resetting role vessel (login, no superuser, createdb, password)"
  as_postgres "ALTER ROLE vessel LOGIN NOSUPERUSER CREATEDB PASSWORD 'vessel'"
fi

if [ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname = 'vessel'")" != 1 ]; then
  say "creating database vessel"
  as_postgres "CREATE DATABASE vessel OWNER vessel"
fi

if [ "$(as_postgres "SHOW max_connections")" -lt 300 ]; then
  say "raising max_connections to 300 (restart)"
  as_postgres "ALTER SYSTEM SET max_connections = 300"
  pg_ctlcluster "$version" "$cluster" restart
  wait_ready
fi

# What the orchestrator and the tests do: TCP to 127.0.0.1 with a password
# (Debian's pg_hba.conf has `host all all 127.0.0.1/32 scram-sha-256`).
if ! out=$(PGPASSWORD=vessel PGCONNECT_TIMEOUT=5 psql -X -qtA -h 127.0.0.1 -p "$PORT" -U vessel -d vessel \
  -c "SELECT current_user || ' ' || (SELECT rolcreatedb AND NOT rolsuper FROM pg_roles WHERE rolname = current_user)" 2>&1); then
  say "cannot log in as vessel over TCP with a password: $out" >&2
  say "pg_hba.conf must allow 'host all all 127.0.0.1/32 scram-sha-256' (or md5):" >&2
  grep -v -e '^#' -e '^$' "/etc/postgresql/$version/$cluster/pg_hba.conf" >&2 || true
  exit 1
fi
[ "$out" = "vessel true" ] || { say "unexpected login check: '$out'" >&2; exit 1; }

say "ready: PostgreSQL $version/$cluster on 127.0.0.1:$PORT, role vessel (not a superuser, password login verified)"
echo "export DATABASE_URL=postgres://vessel:vessel@127.0.0.1:$PORT/vessel"
