"""Where researchers' notebook containers may connect, forwarded by the JupyterHub host (the container guard,
layout.NOTEBOOK_GUARD, README "Threat model"): the SuperLink proxies of their own federations only, the resolvers,
and the web (package indexes, datasets) at public addresses; never a private address: other hosts' services,
Keycloak's admin API, the managed database, instance metadata.

Which federations are a researcher's comes from their Keycloak groups at spawn (README "People and federations"):
`federations_json` is what the hub and nina-jupyter-access (nina/onhost/nina_jupyter_access.py) know of each
federation: its group, its SuperLink's address, and its flwr connection as TOML (quoted here, so nothing on the
hub writes TOML of its own).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from nina.catalog import layout
from nina.catalog.ports import HTTP_PORT, HTTPS_PORT, SUPERLINK_PORT
from nina.config import StackConfig
from nina.plan import flower, realm
from nina.plan.apps import private_ranges


@dataclass(frozen=True)
class NotebookEgress:
    superlink_port: int  # to a SuperLink proxy: only the pairs of the access set (container . SuperLink)
    nameservers: tuple[str, ...]  # IPv4: the containers' network is IPv4
    web_ports: tuple[int, ...]
    private_v4: tuple[str, ...]


def notebook_egress(cfg: StackConfig) -> NotebookEgress:
    return NotebookEgress(
        superlink_port=SUPERLINK_PORT,
        nameservers=tuple(str(n) for n in cfg.resolvers if n.version == 4),
        web_ports=(HTTP_PORT, HTTPS_PORT),
        private_v4=private_ranges(s.cidr for s in cfg.network.segments.values()),
    )


def federations(cfg: StackConfig) -> dict[str, Any]:
    """layout.NOTEBOOK_FEDERATIONS: the containers' network, the guard's set, the group that reaches every
    federation, and per federation (stack order) its group, SuperLink address and flwr connection."""
    network = ipaddress.ip_network(layout.NOTEBOOK_SUBNET)
    assert ipaddress.ip_address(layout.NOTEBOOK_GATEWAY) in network
    return {
        "network": {"subnet": layout.NOTEBOOK_SUBNET, "gateway": layout.NOTEBOOK_GATEWAY},
        "guard": {"table": layout.NOTEBOOK_GUARD, "set": layout.NOTEBOOK_ACCESS_SET},
        "all_federations_group": realm.ADMINS,
        "federations": [  # a list: the stack's order survives sorted keys
            {
                "name": fed.name,
                "group": realm.federation_group(fed.name),
                "superlink": str(cfg.hosts[fed.superlink_host].ip),
                "default": flower.default_toml(fed) if not fed.archived else "",
                "connection": flower.connection_toml(cfg, fed),
            }
            for fed in cfg.federations.values()
        ],
        "no_federation": flower.default_toml(None),
    }


def federations_json(cfg: StackConfig) -> str:
    return json.dumps(federations(cfg), indent=1, sort_keys=True) + "\n"
