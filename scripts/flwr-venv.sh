#!/usr/bin/env bash
# A separate virtual environment with the Flower release the platform pins, for tests that run real
# flower-superlink / flower-supernode / flwr processes. Separate because flwr 1.41 pins versions that conflict
# with the project's Pulumi packages. Idempotent. Usage: scripts/flwr-venv.sh [DIR] (default .venv-flwr).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${NINA_FLWR_VENV:-.venv-flwr}}
# The platform's pin, from the one place that says it (nina/catalog/versions.py).
version=$(python3 -c 'import runpy; print(runpy.run_path("nina/catalog/versions.py")["FLWR"])')
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import flwr, numpy, sys; sys.exit(flwr.__version__ != '$version')" 2>/dev/null; then
  "$venv/bin/pip" install --disable-pip-version-check --no-input --quiet "flwr==$version" numpy
fi
echo "flwr-venv: $venv has flwr $("$venv/bin/python" -c 'import flwr; print(flwr.__version__)')"
