"""The sites' VPN certificates as the program sees them on each run (nina/plan/site_certificates.py): the one the
stack issued beside the one recorded as shipped, for the VPN host's collector and the preview's warnings."""

from __future__ import annotations

import functools

import pulumi

from components.pki import Pki
from nina.config import StackConfig
from nina.plan import site_certificates
from nina.plan.openvpn import SiteCertificate


def site_certificates_of(cfg: StackConfig, pki: Pki) -> dict[tuple[str, str], pulumi.Output[SiteCertificate | None]]:
    """(federation, organisation) -> its certificate, known once pulumi-tls has signed it (None: an offline
    preview's stand-in)."""

    def of(fed: str, org: str, pem: str) -> SiteCertificate | None:
        return site_certificates.issued(cfg, cfg.federations[fed], org, pem)

    return {
        (fed, org): issued.cert_pem.apply(functools.partial(of, fed, org))
        for (fed, org), issued in sorted(pki.vpn_clients.items())
    }


def warn_until_shipped(cfg: StackConfig, pki: Pki) -> None:
    """A warning on every preview until the site's current certificate is recorded as shipped."""
    for (fed, org), cert in site_certificates_of(cfg, pki).items():

        def check(value: SiteCertificate | None, fed: str = fed, org: str = org) -> None:
            message = site_certificates.shipping_warning(cfg.federations[fed], org, value) if value else None
            if message:
                pulumi.log.warn(message)

        cert.apply(check)
