"""Every version the product pins, in one place: what a host installs, what a site builds, what the tests run.

A change here is a reviewed upgrade. What each one costs (a VM replaced or a re-delivery) depends on where the
template that reads it sits (README "Upgrading pinned versions"). scripts/flwr-venv.sh and
scripts/jupyterhub-venv.sh read FLWR and JUPYTERHUB_PACKAGES from this file, so the tests run what hosts install.
"""

from __future__ import annotations

# Flower (shared/FLOWER.md): SuperLink, SuperNodes, the researchers' CLI and the site bundle.
FLWR = "1.41.0"

# Keycloak's official tarball (manual §4.1.2.9): the newest 26.7 release (26.7.1-26.7.4 fix CVEs in 26.7.0), and the
# sha256 of keycloak-26.7.4.tar.gz as downloaded from its GitHub release. The bootstrap refuses any other bytes, so a
# wrong pin fails closed, printing what it got. Change both together (README: Upgrading pinned versions).
KEYCLOAK = "26.7.4"
KEYCLOAK_SHA256 = "04823c336b797a7e18889a44262a7a64e6bf624cbbcc518c85e2622176ff2eee"

# JupyterHub and the packages its config uses (§4.1.2.13), in the notebook role's venv.
JUPYTERHUB_PACKAGES = ("jupyterhub==6.1.1", "oauthenticator==17.4.0", "dockerspawner==14.0.0", "jupyterhub-idle-culler==2.0.0")
# configurable-http-proxy 5.1 is the newest that runs on Ubuntu 24.04's Node.js 18.
CONFIGURABLE_HTTP_PROXY = "5.1.0"
# The researchers' single-user image (manual §4.1.2.14), by date tag.
NOTEBOOK_IMAGE = "quay.io/jupyter/scipy-notebook:2026-09-21"

# One Grafana major from Grafana Labs' APT repository (apt pins 12.*).
GRAFANA_MAJOR = "12"

# The GPU stack, said once (README "Runtimes"): NVIDIA's driver branch as Ubuntu builds it (-server), the newest CUDA
# major that branch runs, and what must agree with it. R580 is supported to 2028 (R570 reached end of life in
# February 2026, and Ubuntu turns 570-server into a transition to 580-server) and carries CUDA 13; a newer driver
# also runs older CUDA user-space (TensorFlow publishes CUDA 12 builds only). tests/test_runtimes.py holds the GPU
# locks' CUDA libraries, DCGM and the site's CUDA image to these.
NVIDIA_DRIVER_BRANCH = "580-server"
CUDA_MAJOR = 13
# The newest CUDA major each driver branch runs (NVIDIA's CUDA compatibility table), to check the pair above.
DRIVER_CUDA = {"535-server": 12, "550-server": 12, "570-server": 12, "575-server": 12, "580-server": 13}
DCGM_PACKAGE = f"datacenter-gpu-manager-4-cuda{CUDA_MAJOR}"
# The site bundle's GPU SuperNode image (§5.7.1): CUDA's base layer for Ubuntu 24.04; the CUDA libraries the apps
# use come with the runtime's lock (nvidia-* wheels), so nothing else of the image needs to match.
CUDA_IMAGE = f"nvidia/cuda:{CUDA_MAJOR}.0.2-base-ubuntu24.04"
