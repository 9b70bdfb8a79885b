#!/usr/bin/env bash
# A separate virtual environment with exactly the JupyterHub packages the notebook role pins, so the tests can load
# the rendered jupyterhub_config.py against the real classes and refuse any setting that is not a real trait.
# The pins are read from nina/catalog/versions.py (JUPYTERHUB_PACKAGES), the one place that decides them. Idempotent.
# Usage: scripts/jupyterhub-venv.sh [DIR] (default .venv-jupyterhub, or $NINA_JUPYTERHUB_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${NINA_JUPYTERHUB_VENV:-.venv-jupyterhub}}
mapfile -t pins < <(python3 -c 'import runpy; print(*runpy.run_path("nina/catalog/versions.py")["JUPYTERHUB_PACKAGES"], sep=chr(10))')
if [ "${#pins[@]}" -eq 0 ]; then
  echo "jupyterhub-venv: no pins found in nina/catalog/versions.py" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
installed=$("$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null | grep -cxF -f <(printf '%s\n' "${pins[@]}") || true)
if [ "$installed" -ne "${#pins[@]}" ]; then
  "$venv/bin/pip" install --disable-pip-version-check --no-input --quiet "${pins[@]}"
fi
echo "jupyterhub-venv: $venv has ${pins[*]}"
