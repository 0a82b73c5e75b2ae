#!/usr/bin/env bash
# Installs Prometheus from Debian's packages if missing. Tests start their
# own `prometheus` processes (their own config, storage and port), so the
# packaged service is not needed and is left alone.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  echo "prometheus: $(prometheus --version 2>&1 | head -n1)"
  exit 0
fi
echo "prometheus: installing"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
# The package starts its own instance on :9090; tests do not use it.
service prometheus stop >/dev/null 2>&1 || true
echo "prometheus: $(prometheus --version 2>&1 | head -n1)"
