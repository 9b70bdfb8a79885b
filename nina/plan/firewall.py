"""From the port and egress tables to concrete security-group rules for one stack (pure data, no Pulumi).

A stack gets: a `base` group on every host (SSH, node exporter), a `bastion` group on the jump host, one group per
role, and for tenancy-scoped roles (SuperLink, SuperNode, VPN) one group per federation, so a SuperNode of one
tenancy can never reach another tenancy's SuperLink. Ingress rules name the peer's group, never a CIDR, except PUBLIC
and ADMIN sources. Groups are created without OpenStack's default allow-all egress: server roles' groups get it back
explicitly, SuperNode groups get only their EGRESS rows (nina/catalog/ports.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import ipaddress

from nina.catalog import ports
from nina.catalog.ports import ADMIN, BASTION, EGRESS, EGRESS_LIMITED_ROLES, EVERY_HOST, PORTS, PUBLIC, Egress, Port
from nina.catalog.roles import ROLES
from nina.config import Host, StackConfig

BASE, JUMP = "base", "bastion"
ANYWHERE = "0.0.0.0/0"
ANYWHERE_V6 = "::/0"


@dataclass(frozen=True)
class Rule:
    """An ingress rule: `port` opened on `group` to a peer group or a CIDR."""

    group: str  # security-group key, e.g. "superlink-test-fl"
    port: Port
    remote_group: str | None  # peer group key, or None when remote_cidr is set
    remote_cidr: str | None

    @property
    def key(self) -> str:
        peer = self.remote_group or (self.remote_cidr or "").replace("/", "_").replace(".", "-")
        return f"{self.group}-{self.port.name}-from-{peer}"


@dataclass(frozen=True)
class EgressRule:
    """An egress rule of `group`: one EGRESS row to one destination, or (row None) every outbound connection."""

    group: str
    row: Egress | None
    remote_group: str | None
    remote_cidr: str | None

    @property
    def ethertype(self) -> str:
        return "IPv6" if self.remote_cidr and ipaddress.ip_network(self.remote_cidr).version == 6 else "IPv4"

    @property
    def key(self) -> str:
        named = {ANYWHERE: "anywhere", ANYWHERE_V6: "anywhere-ipv6"}
        peer = self.remote_group or named.get(self.remote_cidr or "") or (self.remote_cidr or "").replace("/", "_").replace(".", "-").replace(":", "-")
        return f"{self.group}-egress-{self.row.name if self.row else 'all'}-to-{peer}"

    @property
    def description(self) -> str:
        return f"{self.row.name}: {self.row.why}" if self.row else "every outbound connection (a server role)"


def group_key(role: str, federation: str | None = None) -> str:
    return f"{role}-{federation}" if federation else role


def host_groups(cfg: StackConfig, host: Host) -> list[str]:
    """The security groups a host's port carries, in a stable order."""
    keys = [BASE] + ([JUMP] if host.name == cfg.admin.jump_host else [])
    for role in host.roles:
        if ROLES[role].tenancy_scoped:
            keys += [group_key(role, fed.name) for fed in cfg.federations_served_by(host.name, role)]
        else:
            keys.append(role)
    return keys


def all_groups(cfg: StackConfig) -> list[str]:
    return list(dict.fromkeys(k for h in cfg.hosts.values() for k in host_groups(cfg, h)))


def plan(cfg: StackConfig) -> list[Rule]:
    groups = all_groups(cfg)
    existing = set(groups)
    rules: list[Rule] = []
    for port in PORTS:
        for target, fed in _targets(port, groups, cfg):
            for source in port.sources:
                rules += _rules_from(cfg, port, target, fed, source, existing)
    return rules


def egress_plan(cfg: StackConfig) -> list[EgressRule]:
    """Server roles' groups: everything out (IPv4 and IPv6). Groups of roles held to EGRESS rows: those rows. The
    base and bastion groups and add-on roles (not assignable, e.g. gpu): nothing of their own."""
    rules: list[EgressRule] = []
    existing = set(all_groups(cfg))
    for key, (role, fed) in _role_groups(cfg).items():
        if not ROLES[role].assignable:
            continue
        if role not in EGRESS_LIMITED_ROLES:
            rules += [EgressRule(key, None, None, ANYWHERE), EgressRule(key, None, None, ANYWHERE_V6)]
            continue
        for row in EGRESS:
            if row.role == role:
                rules += [EgressRule(key, row, peer, cidr) for peer, cidr in _destinations(cfg, row, fed, existing)]
    return rules


def _role_groups(cfg: StackConfig) -> dict[str, tuple[str, str | None]]:
    """Each role group's key -> (role, federation), in all_groups' order."""
    owners: dict[str, tuple[str, str | None]] = {}
    for host in cfg.hosts.values():
        for role in host.roles:
            feds = [f.name for f in cfg.federations_served_by(host.name, role)] if ROLES[role].tenancy_scoped else [None]
            for fed in feds:
                owners.setdefault(group_key(role, fed), (role, fed))
    return owners


def _destinations(cfg: StackConfig, row: Egress, fed: str | None, existing: set[str]) -> list[tuple[str | None, str | None]]:
    if row.destination == ports.ANYWHERE:
        return [(None, ANYWHERE)]
    if row.destination == ports.NAMESERVERS:
        return [(None, str(net)) for net in cfg.resolvers]
    peer = group_key(row.destination, fed if ROLES[row.destination].tenancy_scoped else None)
    return [(peer, None)] if peer in existing else []


def _targets(port: Port, groups: list[str], cfg: StackConfig) -> list[tuple[str, str | None]]:
    if port.role == EVERY_HOST:
        return [(BASE, None)]
    if ROLES[port.role].tenancy_scoped:
        return [(group_key(port.role, f), f) for f in cfg.federations if group_key(port.role, f) in groups]
    return [(port.role, None)] if port.role in groups else []


def _rules_from(cfg: StackConfig, port: Port, target: str, fed: str | None, source: str, existing: set[str]) -> list[Rule]:
    if source == PUBLIC:
        return [Rule(target, port, None, ANYWHERE)]
    if source == ADMIN:
        return [Rule(target, port, None, str(cidr)) for cidr in cfg.admin.ssh_cidrs]
    if source == BASTION:
        return [Rule(target, port, JUMP, None)] if JUMP in existing else []
    if ROLES[source].tenancy_scoped:
        feds = [fed] if fed else list(cfg.federations)
        peers = [group_key(source, f) for f in feds]
    else:
        peers = [source]
    return [Rule(target, port, peer, None) for peer in peers if peer in existing]
