"""The public web services: which public name nginx serves and which internal service it forwards to (§4.1.2.7).

`<public>.<dns.public_domain>` is what browsers use; nginx re-encrypts to `names.fqdn(cfg, alias)` on the port of
the port-table row `port`, verifying the local CA. The ingress template and the stack's `public_urls` output both
read this table, and so do the public DNS records (`public_records`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nina.config import Federation, StackConfig
from nina.names import fqdn, vpn_alias
from nina.ports import PORTS


@dataclass(frozen=True)
class PublicService:
    public: str  # first label of the public name
    alias: str  # internal service alias (nina/names.py SERVICE_ALIASES)
    port: str  # row of the port table the service listens on
    role: str  # role whose host runs it


PUBLIC_SERVICES: tuple[PublicService, ...] = (
    PublicService("keycloak", "keycloak", "keycloak", "iam"),
    PublicService("flhub", "jupyterhub", "jupyterhub", "notebook"),
    PublicService("grafana", "grafana", "grafana", "monitoring"),
)

# (public, alias, port row) tuples, as the ingress templates iterate them.
ROWS = tuple((s.public, s.alias, s.port) for s in PUBLIC_SERVICES)


def public_name(cfg: StackConfig, service: PublicService) -> str:
    return f"{service.public}.{cfg.dns.public_domain}"


def upstream(cfg: StackConfig, service: PublicService) -> str:
    (port,) = (p.port for p in PORTS if p.name == service.port)
    return f"https://{fqdn(cfg, service.alias)}:{port}"


def vpn_public_name(cfg: StackConfig, fed: Federation) -> str:
    """A tenancy's OpenVPN server as hospitals' clients reach it (offline site bundles name it instead of an IP)."""
    return f"{vpn_alias(fed)}.{cfg.dns.public_domain}"


def public_records(cfg: StackConfig) -> dict[str, str]:
    """Every public DNS name -> the host whose floating IP it must resolve to: the web services on the ingress host
    (nginx serves them, certbot validates them) and each tenancy's VPN server."""
    ingress = cfg.the_host_with("ingress").name
    records = {public_name(cfg, s): ingress for s in PUBLIC_SERVICES}
    for fed in cfg.federations.values():
        if fed.vpn_host:
            records[vpn_public_name(cfg, fed)] = fed.vpn_host
    return records
