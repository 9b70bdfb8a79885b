"""The public names: which name nginx serves for each web role and where it forwards it (§4.1.2.7), and each
tenancy's OpenVPN server name.

`<label>.<dns.public_domain>` (the role's `public` in the role table) is what browsers use; nginx re-encrypts to
the role's internal alias on the port of its port-table row, verifying the local CA. The ingress template, the
stack's `public_urls` output, the public DNS records and the TLS probes all read these.
"""

from __future__ import annotations

from nina.catalog.ports import PORTS
from nina.catalog.roles import WEB_ROLES, Role
from nina.config import Federation, StackConfig
from nina.plan.names import fqdn, vpn_alias


def public_name(cfg: StackConfig, role: Role) -> str:
    assert role.public is not None, f"{role.name} is not served publicly"
    return f"{role.public.label}.{cfg.dns.public_domain}"


def port(role: Role) -> int:
    """The port the web role listens on inside Nectar (its port-table row)."""
    assert role.public is not None
    (number,) = (p.port for p in PORTS if p.name == role.public.port)
    return number


def upstream(cfg: StackConfig, role: Role) -> str:
    assert role.alias is not None
    return f"https://{fqdn(cfg, role.alias)}:{port(role)}"


def public_urls(cfg: StackConfig) -> dict[str, str]:
    return {role.public.label: f"https://{public_name(cfg, role)}/" for role in WEB_ROLES if role.public}


def vpn_public_name(cfg: StackConfig, fed: Federation) -> str:
    """A tenancy's OpenVPN server as hospitals' clients reach it (offline site bundles name it instead of an IP)."""
    return f"{vpn_alias(fed)}.{cfg.dns.public_domain}"


def public_records(cfg: StackConfig) -> dict[str, str]:
    """Every public DNS name -> the host whose floating IP it must resolve to: the web services on the ingress host
    (nginx serves them, certbot validates them) and each tenancy's VPN server."""
    ingress = cfg.the_host_with("ingress").name
    records = {public_name(cfg, role): ingress for role in WEB_ROLES}
    for fed in cfg.federations.values():
        if fed.vpn_host:
            records[vpn_public_name(cfg, fed)] = fed.vpn_host
    return records
