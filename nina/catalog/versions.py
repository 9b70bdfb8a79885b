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

# NVIDIA's production driver branch as Ubuntu builds it (-server), and the CUDA runtime it carries.
NVIDIA_DRIVER_BRANCH = "570-server"
DCGM_PACKAGE = "datacenter-gpu-manager-4-cuda12"
# The site bundle's GPU SuperNode image (§5.7.1).
CUDA_IMAGE = "nvidia/cuda:12.9.1-cudnn-devel-ubuntu24.04"
