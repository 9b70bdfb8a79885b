"""Internal DNS names of services (stable aliases, so a host can move without touching its peers' configs).

Certificates carry these names as SANs and configs refer to them; `/etc/hosts` blocks mapping them to the current
IPs are delivered over SSH (they change in operation, user-data must not).
"""

from __future__ import annotations

from nina.config import Federation, Host, StackConfig

# singleton role -> service alias
SERVICE_ALIASES = {"iam": "keycloak", "notebook": "jupyterhub", "monitoring": "grafana", "ingress": "ingress"}


def superlink_alias(fed: Federation) -> str:
    return f"superlink-{fed.name}"


def vpn_alias(fed: Federation) -> str:
    return f"vpn-{fed.name}"


def role_aliases(cfg: StackConfig, host: Host, role: str) -> list[str]:
    """Short names clients use for one role on a host: the service alias first (the certificate's CN), then the host."""
    names = [SERVICE_ALIASES[role]] if role in SERVICE_ALIASES else []
    for fed in cfg.federations.values():
        if role == "superlink" and fed.superlink_host == host.name:
            names.append(superlink_alias(fed))
        if role == "vpn" and fed.vpn_host == host.name:
            names.append(vpn_alias(fed))
    return names + [host.name]


def aliases(cfg: StackConfig, host: Host) -> list[str]:
    """Short names (without the internal domain) a host answers to."""
    names = [host.name]
    names += [SERVICE_ALIASES[r] for r in host.roles if r in SERVICE_ALIASES]
    for fed in cfg.federations.values():
        if fed.superlink_host == host.name:
            names.append(superlink_alias(fed))
        if fed.vpn_host == host.name:
            names.append(vpn_alias(fed))
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
