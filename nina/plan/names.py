"""Internal DNS names of services (stable aliases, so a host can move without touching its peers' configs).

Each role's alias comes from its row of the role table (`keycloak`, `superlink-{federation}`). Certificates carry
these names as SANs and configs refer to them; `/etc/hosts` blocks mapping them to the current IPs are delivered
over SSH (they change in operation, user-data must not).
"""

from __future__ import annotations

from nina.catalog.roles import ROLES
from nina.config import Federation, Host, StackConfig

_TENANCY_ALIASES = tuple(r for r in ROLES.values() if r.alias and r.tenancy_scoped)


def superlink_alias(fed: Federation) -> str:
    return ROLES["superlink"].alias_for(fed.name)


def vpn_alias(fed: Federation) -> str:
    return ROLES["vpn"].alias_for(fed.name)


def role_aliases(cfg: StackConfig, host: Host, role: str) -> list[str]:
    """Short names clients use for one role on a host: the service alias first (the certificate's CN), then the host."""
    row = ROLES[role]
    if row.alias is None:
        names = []
    elif row.tenancy_scoped:
        names = [row.alias_for(fed.name) for fed in cfg.federations_served_by(host.name, role)]
    else:
        names = [row.alias]
    return names + [host.name]


def aliases(cfg: StackConfig, host: Host) -> list[str]:
    """Short names (without the internal domain) a host answers to: its own, its roles' service aliases, then per
    federation the tenancy aliases it serves."""
    names = [host.name]
    names += [alias for r in host.roles if (alias := ROLES[r].alias) and not ROLES[r].tenancy_scoped]
    served = {(row.name, fed.name) for row in _TENANCY_ALIASES for fed in cfg.federations_served_by(host.name, row.name)}
    for fed in cfg.federations.values():
        names += [row.alias_for(fed.name) for row in _TENANCY_ALIASES if (row.name, fed.name) in served]
    return list(dict.fromkeys(names))


def fqdn(cfg: StackConfig, short: str) -> str:
    return f"{short}.{cfg.dns.internal_domain}"


def hosts_block(cfg: StackConfig) -> str:
    """The /etc/hosts lines every Nectar host gets for its peers."""
    lines = []
    for host in cfg.hosts.values():
        names = aliases(cfg, host)
        lines.append(" ".join([str(host.ip)] + [fqdn(cfg, n) for n in names] + names))
    return "\n".join(lines) + "\n"
