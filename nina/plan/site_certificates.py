"""The lifecycle of the sites' VPN client certificates (README: Site certificates): what the stack issued, what the
site holds, and what the preview says until the two are the same.

`pulumi up` re-issues a site's certificate 30 days before it ends (nina/catalog/pki.py), but the site only has it
once the operator ships it (`nina bundle --org <org> --renewal DIR`) and the site installs it. The operator then
records it in the stack (nina:organisations.<org>.vpn_certificate_shipped.<federation>), which ends the preview
warning, and the expiry alerts (SiteCertificateExpiring) watch the recorded certificate: the one the tunnel uses.
"""

from __future__ import annotations

import datetime
import re

from cryptography import x509

from nina.config import Federation, StackConfig
from nina.plan.openvpn import SiteCertificate, serial_hex


def unix(rfc3339: str) -> int:
    """Whole seconds of an RFC 3339 UTC time (a certificate's notAfter has no fraction; Go may write up to nine digits)."""
    whole = re.sub(r"\.\d+Z$", "Z", rfc3339)
    return int(datetime.datetime.fromisoformat(whole.replace("Z", "+00:00")).timestamp())


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def issued(cfg: StackConfig, fed: Federation, org: str, cert_pem: str) -> SiteCertificate | None:
    """The certificate the stack holds for `org` in `fed`, beside the one recorded as shipped (if any). None for the
    offline preview's stand-in text (`nina preview` without --materialize): no certificate to read."""
    if not cert_pem.startswith("-----BEGIN CERTIFICATE-----"):
        return None
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    shipped = cfg.organisations[org].vpn_certificate_shipped.get(fed.name)
    return SiteCertificate(
        serial_hex(cert.serial_number),
        int(cert.not_valid_after_utc.timestamp()),
        shipped.serial if shipped else None,
        unix(shipped.not_after) if shipped else None,
    )


def record_line(fed: Federation, cert: SiteCertificate) -> str:
    """What the operator puts under nina:organisations.<org>.vpn_certificate_shipped once the site has it."""
    end = rfc3339(datetime.datetime.fromtimestamp(cert.not_after, datetime.timezone.utc))
    return f'{fed.name}: {{serial: "{cert.serial}", not_after: "{end}"}}'  # quoted: YAML reads digits as numbers


def shipping_warning(fed: Federation, org: str, cert: SiteCertificate, now: datetime.datetime | None = None) -> str | None:
    """The preview's warning while the site does not hold the stack's certificate (None once recorded as shipped)."""
    if cert.shipped:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = f"nina:organisations.{org}.vpn_certificate_shipped"
    ship = f"`nina bundle --org {org} --renewal DIR` writes it; once {org} has installed it, record under {key}: {record_line(fed, cert)}"
    if cert.shipped_not_after is None:
        return f"VPN certificate of {org} for {fed.name} (serial {cert.serial}) is not recorded as shipped: {ship}"
    left = (cert.shipped_not_after - int(now.timestamp())) // 86400
    state = f"expires in {left} days" if left >= 0 else f"EXPIRED {-left} days ago: its tunnel is down"
    return (
        f"VPN certificate of {org} for {fed.name} was re-issued (serial {cert.serial}) but the site holds serial "
        f"{cert.shipped_serial}, which {state}: {ship}"
    )
