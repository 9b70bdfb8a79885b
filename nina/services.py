"""The public web services: which public name nginx serves and which internal service it forwards to (§4.1.2.7).

`<public>.<dns.public_domain>` is what browsers use; nginx re-encrypts to `names.fqdn(cfg, alias)` on the port of
the port-table row `port`, verifying the local CA. The ingress template and the stack's `public_urls` output both
read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from nina.config import StackConfig
from nina.names import fqdn
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
