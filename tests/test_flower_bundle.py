"""`nina bundle` for an on-premises site (issue 4): everything to run its SuperNodes, and no private key."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import run_nina

from nina import bundle
from nina.catalog import layout

# PEM private keys of any flavour (PKCS#8, EC, RSA, OpenSSH), and the base64 start of an OpenSSH private key.
PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|b3BlbnNzaC1rZXktdjE")


@pytest.fixture(scope="module")
def metro_north(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    run = run_nina("bundle", "--stack", "uat", "--org", "metro-north", "--out", str(out), "--materialize")
    assert run.returncode == 0, run.stderr
    return out


def test_bundle_holds_what_the_site_needs(metro_north: Path) -> None:
    files = {str(p.relative_to(metro_north)) for p in metro_north.rglob("*") if p.is_file()}
    sn = layout.supernode_dir("mn-sn1").lstrip("/")
    for needed in (
        f"{sn}/supernode.conf", f"{sn}/certs/ca.pem", "opt/flwr/supernode/run_supernode.sh", "etc/systemd/system/supernode@.service",
        "docker/Dockerfile.cpu", "docker/Dockerfile.cuda", "docker/run-docker.sh", "docker/run-podman.sh", "README.md",
    ):
        assert needed in files, needed
    conf = (metro_north / sn / "supernode.conf").read_text()
    assert f"ROOT_CERTIFICATES=/{sn}/certs/ca.pem\n" in conf  # inside the one directory the container mounts
    assert "SUPERLINK=superlink-uat-cardiac.uat.nina.internal:9092\n" in conf
    ca = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(metro_north / sn / "certs/ca.pem")], capture_output=True, text=True, check=False)
    assert ca.returncode == 0 and "NINA uat local CA" in ca.stdout, ca.stderr
    readme = (metro_north / "README.md").read_text()
    assert f"ssh-keygen -t ecdsa -b 384 -N \"\" -C \"\" -f {sn}/certs/client_credentials" in readme
    assert "Send only the `.pub` file" in readme
    for dockerfile in ("docker/Dockerfile.cpu", "docker/Dockerfile.cuda"):
        text = (metro_north / dockerfile).read_text()
        assert "flwr==1.41.0" in text and "USER supernode" in text and "opt/flwr/supernode/run_supernode.sh" in text


def test_bundle_has_no_private_key(metro_north: Path) -> None:
    leaks = [str(p) for p in metro_north.rglob("*") if p.is_file() and PRIVATE.search(p.read_text(errors="replace"))]
    assert leaks == []
    assert not list(metro_north.rglob("client_credentials"))  # the site makes its own
    # The check itself can fail: a key dropped into the bundle is found.
    probe = metro_north / "probe"
    probe.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n")
    try:
        assert PRIVATE.search(probe.read_text())
    finally:
        probe.unlink()


def test_bundle_scripts_pass_shellcheck(metro_north: Path) -> None:
    scripts = sorted(metro_north.rglob("*.sh"))
    assert len(scripts) >= 4
    check = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    broken = metro_north / "broken.sh"
    broken.write_text("#!/bin/bash\necho $undefined_quote\n")
    try:
        assert subprocess.run(["shellcheck", str(broken)], capture_output=True, check=False).returncode != 0
    finally:
        broken.unlink()


def test_bundle_unit_passes_systemd_analyze_verify(metro_north: Path, tmp_path: Path) -> None:
    unit = (metro_north / "etc/systemd/system/supernode@.service").read_text()
    # The wrapper is installed at /opt/flwr/supernode on the site; verify against the bundle's copy.
    script = metro_north / "opt/flwr/supernode/run_supernode.sh"
    assert "ExecStart=/opt/flwr/supernode/run_supernode.sh %i" in unit
    (tmp_path / "supernode@.service").write_text(unit.replace("/opt/flwr/supernode/run_supernode.sh", str(script)))
    (tmp_path / "supernode@mn-sn1.service").symlink_to("supernode@.service")
    check = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "supernode@mn-sn1.service")], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and not check.stderr.strip(), check.stderr
    (tmp_path / "supernode@.service").write_text(unit.replace("Type=simple", "Type=bogus"))
    bad = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "supernode@mn-sn1.service")], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 or "bogus" in bad.stderr


def test_bundle_refuses_nectar_organisations_and_offline_ca(tmp_path: Path) -> None:
    nectar = run_nina("bundle", "--stack", "uat", "--org", "org-b", "--out", str(tmp_path / "b"))
    assert nectar.returncode == 2 and "Nectar-hosted" in nectar.stderr
    offline = run_nina("bundle", "--stack", "uat", "--org", "metro-north", "--out", str(tmp_path / "c"))
    assert offline.returncode == 2 and "--ca-file" in offline.stderr
    assert not (tmp_path / "c").exists()


def test_the_bundle_is_built_by_every_builder() -> None:
    from nina.bundle import runtime, supernode, vpn

    assert bundle.BUILDERS == (supernode.files, runtime.files, vpn.files)
