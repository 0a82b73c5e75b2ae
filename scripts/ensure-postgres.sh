#!/usr/bin/env bash
# Makes sure Postgres runs on 127.0.0.1:5432 with a `vessel` role (password
# `vessel`, may create databases: tests make one each) and a `vessel`
# database. Installs the Debian package if missing. Idempotent.
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  echo "postgres: installing"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
read -r version cluster _ < <(pg_lsclusters -h | head -n1)
if ! pg_lsclusters -h | head -n1 | grep -q online; then
  echo "postgres: starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "postgres: not ready after 30s" >&2; exit 1; }

as_postgres() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname = 'vessel'")" != 1 ]; then
  echo "postgres: creating role vessel"
  # Superuser: test databases are created and migrations add triggers.
  as_postgres "CREATE ROLE vessel LOGIN SUPERUSER PASSWORD 'vessel'"
fi
if [ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname = 'vessel'")" != 1 ]; then
  as_postgres "CREATE DATABASE vessel OWNER vessel"
fi
# Many tests at once, each with a pool of its own.
if [ "$(as_postgres "SHOW max_connections")" -lt 300 ]; then
  echo "postgres: raising max_connections to 300"
  as_postgres "ALTER SYSTEM SET max_connections = 300"
  pg_ctlcluster "$version" "$cluster" restart
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
echo "postgres: ready at postgres://vessel:vessel@127.0.0.1:5432/vessel"
