"""The VPN part of `nina bundle` (issue 5): the uat on-premises organisation gets a client config that the
tunnel test proves working (same nina.plan.openvpn.site_files), a certificate from its CSR, and no private key."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nina.bundle import vpn
from nina.bundle.context import SiteContext, organisation_supernodes
from nina.config import parse
from nina.offline.stack_files import stack_config
from nina.plan import openvpn, site

ROOT = Path(__file__).resolve().parents[1]
CLIENT = openvpn.CLIENT_DIR.lstrip("/")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vpn-bundle")
    run = subprocess.run(
        [sys.executable, "-m", "nina.cli", "bundle", "--stack", "uat", "--org", "metro-north", "--out", str(out), "--materialize"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr
    return out


def test_bundle_has_the_vpn_client_files(bundle: Path) -> None:
    files = sorted(str(p.relative_to(bundle / CLIENT)) for p in (bundle / CLIENT).iterdir())
    assert files == ["ca.crt", "client.conf", "client.crt", "tls-crypt.key"]  # client.key stays at the site
    assert stat.S_IMODE((bundle / CLIENT / "tls-crypt.key").stat().st_mode) == 0o600
    assert "-----BEGIN OpenVPN Static key V1-----" in (bundle / CLIENT / "tls-crypt.key").read_text()
    conf = (bundle / CLIENT / "client.conf").read_text()
    assert f"key {openvpn.CLIENT_DIR}/client.key\n" in conf and f"cert {openvpn.CLIENT_DIR}/client.crt\n" in conf
    # Offline the floating IP is unknown: the server's public name stands in.
    assert "remote vpn-uat-cardiac.uat.nina.qcif.edu.au 1194 udp\nremote vpn-uat-cardiac.uat.nina.qcif.edu.au 443 tcp\n" in conf


def test_bundle_certificate_is_the_sites_and_verifies(bundle: Path) -> None:
    d = bundle / CLIENT
    verify = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(d / "ca.crt"), str(d / "client.crt")], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(d / "client.crt")], capture_output=True, text=True, check=True)
    assert "CN = metro-north" in subject.stdout
    # Signed from the CSR in Pulumi.uat.yaml: the certificate carries the site's public key, not a generated one.
    cert_key = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", str(d / "client.crt")], capture_output=True, text=True, check=True)
    raw, _, _ = stack_config(ROOT, "uat")
    csr = parse({**raw, "nina:ssh_private_key": "x"}).organisations["metro-north"].vpn_csr
    csr_key = subprocess.run(["openssl", "req", "-noout", "-pubkey"], input=csr, capture_output=True, text=True, check=True)
    assert cert_key.stdout == csr_key.stdout


def test_real_outputs_give_the_floating_ip_and_omit_placeholders() -> None:
    raw, _, _ = stack_config(ROOT, "uat")
    cfg = parse({**raw, "nina:ssh_private_key": "x"})
    outputs = {"vpn": {"uat-cardiac": {"server": "203.0.113.9", "tls_crypt_key": "[computed: random]", "clients": {"metro-north": {"cert_pem": "-----BEGIN CERTIFICATE-----\n"}}}}}
    view = site.from_full_outputs(outputs, "metro-north", "uat")  # the older --outputs form, still read
    ctx = SiteContext(cfg, cfg.organisations["metro-north"], organisation_supernodes(cfg, "metro-north"), "-----BEGIN CERTIFICATE-----\nCA\n", view)
    files = vpn.files(ctx)
    assert set(files) == {f"{CLIENT}/client.conf", f"{CLIENT}/ca.crt", f"{CLIENT}/client.crt"}  # no placeholder key file
    assert "remote 203.0.113.9 1194 udp\n" in files[f"{CLIENT}/client.conf"][0]
    nectar = SiteContext(cfg, cfg.organisations["org-b"], organisation_supernodes(cfg, "org-b"), ctx.ca_pem, site.from_full_outputs(outputs, "org-b", "uat"))
    assert vpn.files(nectar) == {}  # Nectar-hosted: no VPN


def test_bundle_from_the_deployed_stacks_outputs(tmp_path: Path) -> None:
    """The operator's older path: `pulumi stack output --json --show-secrets > outputs.json; nina bundle --outputs ...`
    (every output, from a stack deployed before site_<org> existed; tests/test_site_bundle.py has the site's own).

    The outputs of a materialised evaluation stand in for the deployed stack's, with the floating IP a real
    deployment would report; the bundle must carry exactly those values, not a CA or key of its own."""
    preview = subprocess.run(
        [sys.executable, "-m", "nina.cli", "preview", "--stack", "uat", "--json", "--materialize", "--show-secrets"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )
    import json

    outputs = json.loads(preview.stdout)["outputs"]
    del outputs["site_metro-north"]
    outputs["vpn"]["uat-cardiac"]["server"] = "203.0.113.7"
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    out = tmp_path / "bundle"
    run = subprocess.run(
        [sys.executable, "-m", "nina.cli", "bundle", "--stack", "uat", "--org", "metro-north", "--out", str(out), "--outputs", str(tmp_path / "outputs.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr
    d = out / CLIENT
    assert (d / "ca.crt").read_text() == outputs["ca_cert_pem"]
    assert (d / "tls-crypt.key").read_text() == outputs["vpn"]["uat-cardiac"]["tls_crypt_key"]
    assert "remote 203.0.113.7 1194 udp\nremote 203.0.113.7 443 tcp\n" in (d / "client.conf").read_text()
    supernode_ca = next(out.rglob("certs/ca.pem"))
    assert supernode_ca.read_text() == outputs["ca_cert_pem"]

    # Masked outputs (forgotten --show-secrets) are refused rather than written into a site's kit.
    outputs["vpn"]["uat-cardiac"]["tls_crypt_key"] = "[secret]"
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    masked = subprocess.run(
        [sys.executable, "-m", "nina.cli", "bundle", "--stack", "uat", "--org", "metro-north", "--out", str(tmp_path / "b2"), "--outputs", str(tmp_path / "outputs.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert masked.returncode == 2 and "--show-secrets" in masked.stderr
