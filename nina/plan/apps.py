"""Where researchers' Flower apps may connect from a host that runs them: the apps guard, an nftables table
(layout.APPS_GUARD_TABLE) matching the users of the SuperExec and of the apps (README "Threat model").

- Beside a SuperNode (a Nectar host, or a site's own machine) ClientApps sit next to a site's data: they may open
  the runtime API of the host's SuperNodes (the manual's ClientAppIO) on loopback and nothing else, not even the
  local DNS resolver (its sockets are hidden from them too: supernode-superexec@.service).
- Beside a SuperLink, ServerApps may open the runtime API proxy, their own listeners (Ray's, in a simulation) and
  the public internet (runtime dependency installs, public datasets), but never the platform's other ports on the
  host (the SuperLink's loopback port serves the Control API) nor private addresses: the other hosts' services, the
  managed database, instance metadata.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from nina.catalog.ports import Port, listeners
from nina.catalog.roles import APP_USERS, ROLES

# Addresses that are never the public internet: RFC 1918, shared address space, link-local (instance metadata).
PRIVATE_V4 = ("10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")
PRIVATE_V6 = ("fc00::/7", "fe80::/10")


@dataclass(frozen=True)
class AppsGuard:
    users: tuple[str, ...]
    internet: bool  # ServerApps: public addresses allowed, and local ports but `closed_*`
    open_tcp: tuple[str, ...]  # the only local ports apps may open without `internet` (nft port expressions)
    closed_tcp: tuple[str, ...]  # with `internet`: this host's platform ports ("22", "9094-9099")
    closed_udp: tuple[str, ...]
    private_v4: tuple[str, ...]  # with `internet`: never these (the stack's segments included)
    private_v6: tuple[str, ...]
    # Beside SuperNodes of a federation with runtime_dependency_installation: name lookups and HTTPS to public
    # addresses, so uv can fetch an app's packages (README "Runtimes": a ClientApp can then send data out).
    package_index: bool = False


def guard(roles: Iterable[str], segments: Iterable[ipaddress.IPv4Network] = (), package_index: bool = False) -> AppsGuard:
    """The guard of a host with these roles in a network of these segments (a site's machine: ("supernode",)), whose
    federation lets apps install their dependencies or not."""
    roles = tuple(roles)
    ports = listeners(roles)
    return AppsGuard(
        users=APP_USERS,
        internet=all(ROLES[r].apps_reach_internet for r in roles if ROLES[r].runs_apps),
        open_tcp=_exprs(p for p in ports if p.for_apps and p.protocol == "tcp"),
        closed_tcp=_exprs(p for p in ports if not p.for_apps and p.protocol == "tcp"),
        closed_udp=_exprs(p for p in ports if not p.for_apps and p.protocol == "udp"),
        private_v4=private_ranges(segments),
        private_v6=PRIVATE_V6,
        package_index=package_index,
    )


def private_ranges(segments: Iterable[ipaddress.IPv4Network]) -> tuple[str, ...]:
    """Every IPv4 address that is not the public internet: PRIVATE_V4, and the stack's segments where no range of
    it already holds them (nft refuses overlapping elements)."""
    private = [ipaddress.ip_network(n) for n in PRIVATE_V4]
    return PRIVATE_V4 + tuple(str(s) for s in segments if not any(s.subnet_of(n) for n in private))  # type: ignore[arg-type]


def _exprs(ports: Iterable[Port]) -> tuple[str, ...]:
    rows = sorted({(p.port, p.port_max) for p in ports})
    return tuple(str(low) if low == high else f"{low}-{high}" for low, high in rows)
