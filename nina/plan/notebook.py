"""Where researchers' notebook containers may connect, forwarded by the JupyterHub host (the container guard,
layout.NOTEBOOK_GUARD, README "Threat model"): their federations' SuperLink proxies (the researcher-journey issue
narrows this per container), the resolvers, and the web (package indexes, datasets) at public addresses; never a
private address: other hosts' services, Keycloak's admin API, the managed database, instance metadata.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nina.catalog.ports import HTTP_PORT, HTTPS_PORT, SUPERLINK_PORT
from nina.config import StackConfig
from nina.plan.apps import private_ranges


@dataclass(frozen=True)
class NotebookEgress:
    superlinks: tuple[str, ...]  # the SuperLink hosts' addresses
    superlink_port: int
    nameservers: tuple[str, ...]  # IPv4: the containers' network is IPv4
    web_ports: tuple[int, ...]
    private_v4: tuple[str, ...]


def notebook_egress(cfg: StackConfig) -> NotebookEgress:
    return NotebookEgress(
        superlinks=tuple(sorted({str(cfg.hosts[f.superlink_host].ip) for f in cfg.federations.values()}, key=ipaddress.ip_address)),
        superlink_port=SUPERLINK_PORT,
        nameservers=tuple(str(n) for n in cfg.resolvers if n.version == 4),
        web_ports=(HTTP_PORT, HTTPS_PORT),
        private_v4=private_ranges(s.cidr for s in cfg.network.segments.values()),
    )
