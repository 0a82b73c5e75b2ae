#!/usr/bin/env bash
# Everything the system and its tests need on this machine, idempotently and
# fail-fast: the Docker engine, Postgres, Prometheus (the tests start their
# own), the SSH client (the tests make keys and log in), Glewlwyd (the
# identity provider of the sign-in tests), chromium (the portal's browser
# tests), and the images.
# A second run only checks (about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

scripts/ensure-docker.sh
scripts/ensure-postgres.sh
scripts/ensure-prometheus.sh
# On this machine kind openssh-client comes preinstalled; a bare Debian lacks it.
if ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "ssh: installing openssh-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-client >/dev/null
fi
# The tests make keys and certificates with openssl (OIDC, TLS, the service
# key); Debian images usually have it, a minimal one may not.
if ! command -v openssl >/dev/null 2>&1; then
  echo "openssl: installing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null
fi
# The sign-in tests run a real identity provider: Debian's Glewlwyd
# (OAuth 2 / OpenID Connect with the device grant), on SQLite.
if ! command -v glewlwyd >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1; then
  echo "glewlwyd, sqlite3: installing"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q glewlwyd sqlite3 >/dev/null
  # Tests start their own, each on its own port and database.
  service glewlwyd stop >/dev/null 2>&1 || true
fi
# The portal's tests drive a real browser: Debian's chromium, through
# chromium-driver's WebDriver (started by each test on its own port).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "chromium, chromium-driver: installing"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-dejavu-core >/dev/null
fi
scripts/build-images.sh
# The control plane's bases (the deploy test runs the compose stack).
scripts/build-images.sh control

tags() { docker image inspect -f '{{join .RepoTags " "}}' "$1:latest" | tr ' ' '\n' | grep -v ':latest$' | head -n1; }
echo "rig: ready in $((SECONDS - start))s: docker $(docker info -f '{{.ServerVersion}}/{{.Driver}}')," \
  "postgres 127.0.0.1:5432 (DATABASE_URL=postgres://vessel:vessel@127.0.0.1:5432/vessel)," \
  "images $(tags vessel/base) $(tags vessel/testhost)"
