"""The sites' VPN certificates through a year: what the stack issued, what the site holds, the preview's warning
until the two are the same, and what the VPN host's collector is told (nina/plan/site_certificates.py)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT, run_nina
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nina.catalog import layout
from nina.config import ShippedCertificate, StackConfig
from nina.plan import site_certificates
from tests.conftest import config_of

FED, ORG = "uat-cardiac", "metro-north"
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc)


def _cert(serial: int, not_after: datetime.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ORG)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(serial)
        .not_valid_before(not_after - datetime.timedelta(days=365)).not_valid_after(not_after).sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _with_shipped(cfg: StackConfig, shipped: Mapping[str, ShippedCertificate]) -> StackConfig:
    org = dataclasses.replace(cfg.organisations[ORG], vpn_certificate_shipped=dict(shipped))
    return dataclasses.replace(cfg, organisations={**cfg.organisations, ORG: org})


def test_a_site_never_recorded_is_warned_about_with_the_line_to_record() -> None:
    cfg = config_of("uat")
    fed = cfg.federations[FED]
    cert = site_certificates.issued(cfg, fed, ORG, _cert(0x1A2B, datetime.datetime(2027, 11, 30, 12, tzinfo=datetime.timezone.utc)))
    assert cert is not None and not cert.shipped
    assert cert.site_expiry == cert.not_after  # a new site's bundle carries the current certificate
    message = site_certificates.shipping_warning(fed, ORG, cert, NOW)
    assert message is not None
    assert "not recorded as shipped" in message and f"nina bundle --org {ORG} --renewal DIR" in message
    assert f"nina:organisations.{ORG}.vpn_certificate_shipped: {FED}: {{serial: \"1A2B\", not_after: \"2027-11-30T12:00:00Z\"}}" in message


def test_recording_the_current_certificate_ends_the_warning() -> None:
    cfg = _with_shipped(config_of("uat"), {FED: ShippedCertificate("1A2B", "2027-11-30T12:00:00Z")})
    fed = cfg.federations[FED]
    cert = site_certificates.issued(cfg, fed, ORG, _cert(0x1A2B, datetime.datetime(2027, 11, 30, 12, tzinfo=datetime.timezone.utc)))
    assert cert is not None and cert.shipped
    assert site_certificates.shipping_warning(fed, ORG, cert, NOW) is None


def test_a_reissued_certificate_warns_until_shipped_and_the_alerts_watch_the_old_one() -> None:
    """pulumi up re-issued the certificate 30 days early; the site still holds the old one, which ends in 20 days."""
    old_end = NOW + datetime.timedelta(days=20)
    cfg = _with_shipped(config_of("uat"), {FED: ShippedCertificate("0F", site_certificates.rfc3339(old_end))})
    fed = cfg.federations[FED]
    cert = site_certificates.issued(cfg, fed, ORG, _cert(0x1A2B, NOW + datetime.timedelta(days=365)))
    assert cert is not None and not cert.shipped
    assert cert.site_expiry == int(old_end.timestamp())
    message = site_certificates.shipping_warning(fed, ORG, cert, NOW)
    assert message is not None and "re-issued (serial 1A2B)" in message and "holds serial 0F, which expires in 20 days" in message
    expired = site_certificates.shipping_warning(fed, ORG, cert, NOW + datetime.timedelta(days=25))
    assert expired is not None and "EXPIRED 5 days ago" in expired


def test_the_preview_and_the_vpn_host_see_a_certificate_not_yet_shipped(project_copy: Callable[[str, dict[str, Any]], Path]) -> None:
    """Through the real program: a recorded old certificate keeps the preview's warning, and the VPN host's collector
    is told the old one's end (what SiteCertificateExpiring watches), not the re-issued one's."""
    config = yaml.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]
    config["nina:organisations"][ORG]["vpn_certificate_shipped"] = {FED: {"serial": "0F", "not_after": "2026-12-20T00:00:00Z"}}
    root = project_copy("uat", config)
    proc = run_nina("preview", "--stack", "uat", "--json", "--materialize", "--show-secrets", "--cwd", str(root))
    assert proc.returncode == 0, proc.stderr
    assert f"VPN certificate of {ORG} for {FED} was re-issued" in proc.stderr and "holds serial 0F" in proc.stderr
    (deliver,) = [r for r in json.loads(proc.stdout)["resources"] if r["name"] == "deliver-vpn"]
    files = {f["path"]: f["content"] for f in json.loads(deliver["inputs"]["stdin"])["files"]}
    (site,) = json.loads(files[layout.VPN_SITES_EXPECTED])["sites"]
    assert site["organisation"] == ORG
    assert site["certificate"]["shipped"] is False
    assert site["certificate"]["site_expiry"] == site_certificates.unix("2026-12-20T00:00:00Z")


def test_a_record_for_a_federation_the_site_is_not_in_is_refused(project_copy: Callable[[str, dict[str, Any]], Path]) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]
    config["nina:organisations"][ORG]["vpn_certificate_shipped"] = {"elsewhere": {"serial": "0F", "not_after": "2026-12-20T00:00:00Z"}}
    config["nina:organisations"]["org-b"]["vpn_certificate_shipped"] = {FED: {"serial": "0f", "not_after": "20 Dec 2026"}}
    root = project_copy("uat", config)
    proc = run_nina("preview", "--stack", "uat", "--json", "--cwd", str(root))
    assert proc.returncode != 0
    assert f"nina:organisations.{ORG}.vpn_certificate_shipped.elsewhere" in proc.stderr
    assert "nina:organisations.org-b.vpn_certificate_shipped: only an on-premises organisation" in proc.stderr
    assert "nina:organisations.org-b.vpn_certificate_shipped.uat-cardiac.serial: must be" in proc.stderr
    assert "nina:organisations.org-b.vpn_certificate_shipped.uat-cardiac.not_after: must be" in proc.stderr


def test_times_as_pulumi_tls_writes_them_are_read_to_the_second() -> None:
    # Go's time.MarshalText keeps the clock's fraction, up to nanoseconds; the config accepts what the output says.
    assert site_certificates.unix("2027-11-30T12:15:34.744055123Z") == site_certificates.unix("2027-11-30T12:15:34Z") == 1827576934
