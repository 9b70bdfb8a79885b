"""From the port table to concrete security-group rules for one stack (pure data, no Pulumi).

A stack gets: a `base` group on every host (SSH, node exporter), a `bastion` group on the jump host, one group per
role, and for tenancy-scoped roles (SuperLink, SuperNode, VPN) one group per federation, so a SuperNode of one
tenancy can never reach another tenancy's SuperLink. Rules name the peer's group, never a CIDR, except PUBLIC and
ADMIN sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from nina.catalog.ports import ADMIN, BASTION, EVERY_HOST, PORTS, PUBLIC, Port
from nina.catalog.roles import ROLES
from nina.config import Host, StackConfig

BASE, JUMP = "base", "bastion"
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Rule:
    group: str  # security-group key, e.g. "superlink-test-fl"
    port: Port
    remote_group: str | None  # peer group key, or None when remote_cidr is set
    remote_cidr: str | None

    @property
    def key(self) -> str:
        peer = self.remote_group or (self.remote_cidr or "").replace("/", "_").replace(".", "-")
        return f"{self.group}-{self.port.name}-from-{peer}"


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
