#!/usr/bin/env bash
# A separate virtual environment for tests that run real flower-superlink / flower-supernode / flwr processes,
# installed exactly as hosts install the test stack's runtime: CPython 3.12 (Ubuntu 24.04's), from
# runtimes/locks/<runtime>.txt with pip --require-hashes (nina/catalog/runtimes.py), so the tests run the very
# packages a SuperLink, a SuperNode and a notebook get. Separate because flwr's pins conflict with the project's
# Pulumi packages. Idempotent (the lock's sha256 is recorded in the venv, as nina-runtime does on hosts).
# Usage: scripts/flwr-venv.sh [DIR] (default .venv-flwr; NINA_FLWR_VENV overrides; NINA_PYTHON312 names the interpreter).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${NINA_FLWR_VENV:-.venv-flwr}}
runtime=$(python3 -c 'import yaml, sys; print(yaml.safe_load(open("Pulumi.test.yaml"))["config"]["nina:federations"]["test-fl"].get("runtime", "numpy"))' 2>/dev/null ||
  sed -n 's/^ *runtime: *\([a-z0-9-]*\).*/\1/p' Pulumi.test.yaml | head -1)
lock=runtimes/locks/$runtime.txt
marker=.nina-lock-sha256

python=
for candidate in "${NINA_PYTHON312:-}" python3.12 /usr/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "flwr-venv: CPython 3.12 (what the hosts run) is required; set NINA_PYTHON312" >&2
  exit 1
fi

sum=$(sha256sum "$lock")
sum=${sum%% *}
if [ "$(cat "$venv/$marker" 2>/dev/null)" != "$sum" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # Only PyPI, as on the hosts: this machine's pip configuration (extra indexes, constraints) stays out.
  PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 "$venv/bin/pip" install --require-hashes --only-binary :all: --no-input \
    --disable-pip-version-check --quiet -r "$lock"
  echo "$sum" >"$venv/$marker"
fi
# What nina-runtime adds to a runtime it builds: the file apps hold while they run from it (the lab mounts this
# venv as the hosts' runtime).
[ -e "$venv/.in-use" ] || install -m 0644 /dev/null "$venv/.in-use"
echo "flwr-venv: $venv has flwr $("$venv/bin/python" -c 'import flwr; print(flwr.__version__)') and runtime $runtime ($lock)"
