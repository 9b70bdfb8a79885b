"""Deployment validation (manual §4.2): what a correctly deployed host looks like, read off the tables.

For each host: the systemd units its roles run (role table, template units expanded to this host's instances), the
ports it listens on (port table), its TLS certificates (role table) and the health endpoints of its services (port
table `health`). The SSH delivery installs this list as layout.CHECKLIST_PATH, next to the checker
(nina/onhost/nina_check.py, layout.CHECK_COMMAND), so `sudo nina-check` on a host says what is not as it should be.
"""

from __future__ import annotations

import json
from typing import Any

from nina.catalog import layout
from nina.catalog.databases import SUPERLINK_BACKUP_TIMER, backup_unit, probe_unit
from nina.catalog.ports import listeners
from nina.catalog.roles import BASE_GUARDS, BASE_UNITS, ROLES
from nina.config import Host, StackConfig
from nina.plan.backups import backed_up_on, superlink_backups_on


def units(cfg: StackConfig, host: Host) -> list[str]:
    """Every unit that must be active on the host; a template unit stands for each instance this host runs."""
    wanted: list[str] = list(BASE_UNITS)
    for role in host.roles:
        for unit in ROLES[role].units:
            if unit == "supernode@.service":
                wanted += [layout.supernode_unit(sn.name) for fed, sn in cfg.supernodes_on(host.name) if not fed.archived]
            elif unit == "supernode-superexec@.service":
                wanted += [layout.supernode_superexec_unit(sn.name) for fed, sn in cfg.supernodes_on(host.name) if not fed.archived]
            elif unit == "openvpn-server@.service":
                wanted += list(layout.OPENVPN_SERVER_UNITS) if cfg.federations_served_by(host.name, "vpn") else []
            else:
                wanted.append(unit)
    wanted += [backup_unit(d.name, "timer") for d in backed_up_on(cfg, host)]
    wanted += [probe_unit(d.name, "timer") for d in backed_up_on(cfg, host)]
    wanted += [SUPERLINK_BACKUP_TIMER] if superlink_backups_on(cfg, host) else []
    return list(dict.fromkeys(wanted))


def listening(cfg: StackConfig, host: Host) -> list[dict[str, Any]]:
    """Every port of the port table this host listens on; a range row (SuperNodes' ClientAppIO) becomes the ports its
    SuperNodes were given."""
    out = []
    for port in listeners(host.roles):
        if port.port != port.port_max:
            out += [
                {"name": f"{port.name} ({sn.name})", "protocol": port.protocol, "port": sn.port}
                for fed, sn in cfg.supernodes_on(host.name)
                if not fed.archived and sn.port is not None
            ]
        else:
            out.append({"name": port.name, "protocol": port.protocol, "port": port.port})
    return out


def health(host: Host) -> list[dict[str, str]]:
    """The health endpoints of the host's services, asked on loopback (every certificate names 127.0.0.1)."""
    out = []
    for port in listeners(host.roles):
        if port.health:
            scheme, _, path = port.health.partition(":")
            out.append({"name": port.name, "url": f"{scheme}://127.0.0.1:{port.port}{path}"})
    return out


def tls(host: Host) -> list[dict[str, str]]:
    return [{"role": role, "cert": tls.cert, "key": tls.key} for role in host.roles if (tls := ROLES[role].tls) is not None]


def guards(host: Host) -> list[str]:
    """The nftables tables the host's guards are: the metadata guard everywhere, and its roles' own."""
    return list(dict.fromkeys([*BASE_GUARDS, *(g for role in host.roles for g in ROLES[role].guards)]))


def mounts(host: Host) -> list[dict[str, str]]:
    """The state volume, mounted by label where the host has one (it outlives the VM)."""
    return [{"path": layout.STATE_DIR, "label": layout.STATE_LABEL}] if host.volume_gb else []


def checklist(cfg: StackConfig, host: Host) -> dict[str, Any]:
    return {
        "host": host.name,
        "environment": cfg.environment,
        "ca": layout.CA_PEM,
        "bootstrap": layout.BOOTSTRAP_MARKER,
        "guards": guards(host),
        "mounts": mounts(host),
        "units": units(cfg, host),
        "listening": listening(cfg, host),
        "tls": tls(host),
        "health": health(host),
    }


def checklist_json(cfg: StackConfig, host: Host) -> str:
    return json.dumps(checklist(cfg, host), indent=1, sort_keys=True) + "\n"
