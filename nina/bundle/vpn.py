"""The site's VPN client (manual §4.1.3.2) under etc/openvpn/client/, from nina/plan/openvpn.py's `site_files`.

One federation: the manual's client.conf (`openvpn-client@client`); several: <federation>.conf with its files in
<federation>/ (`openvpn-client@<federation>`). The remote is the floating IP from the site's stack output, or the
server's public DNS name (a record the stack keeps with nina:dns.public_zone, else the operator's: stack output
public_dns) when the outputs come from an offline evaluation. Certificate and tls-crypt key are included only when
the outputs hold real ones; client.key never is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from nina.bundle.context import Files, SiteContext
from nina.config import Federation
from nina.plan import openvpn, public


@dataclass(frozen=True)
class Client:
    """Where one federation's VPN client lives on the site's VPN client host, and what it is."""

    federation: Federation
    directory: str  # ca.crt, client.crt, client.key, tls-crypt.key
    conf: str  # what openvpn-client@<instance> reads
    unit: str
    server: str  # the VPN server's public address (floating IP) or its public DNS name
    addresses: dict[str, str]  # proto -> the site's tunnel address in that half (a site holds one at a time)

    @property
    def files(self) -> dict[str, str]:
        return {name: f"{self.directory}/{name}" for name in ("ca.crt", "client.crt", "client.key", "tls-crypt.key")}


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def clients(ctx: SiteContext) -> tuple[Client, ...]:
    feds = ctx.vpn_federations
    single = len(feds) == 1
    out = []
    for fed in feds:
        server = ctx.vpn_output(fed.name).get("server")
        instance = "client" if single else fed.name
        addresses = openvpn.site_addresses(fed, ctx.org.name, ctx.cfg.vpn_clients(fed))
        out.append(
            Client(
                federation=fed,
                directory=openvpn.CLIENT_DIR if single else f"{openvpn.CLIENT_DIR}/{fed.name}",
                conf=f"{openvpn.CLIENT_DIR}/{instance}.conf",
                unit=f"openvpn-client@{instance}.service",
                server=str(server) if _is_ip(server) else public.vpn_public_name(ctx.cfg, fed),
                addresses={proto: str(a) for proto, a in addresses.items()},
            )
        )
    return tuple(out)


def files(ctx: SiteContext) -> Files:
    out: Files = {}
    for client in clients(ctx):
        given = ctx.vpn_output(client.federation.name)
        output = {
            "server": client.server,
            "ca_cert_pem": ctx.ca_pem,  # the CA the bundle uses everywhere (--ca-file or the outputs)
            "tls_crypt_key": given.get("tls_crypt_key", ""),
            "clients": {ctx.org.name: {"cert_pem": given.get("cert_pem", "")}},
        }
        rel = client.directory.lstrip("/")
        site = openvpn.site_files(ctx.cfg, client.federation, ctx.org.name, output, remote=client.server, directory=client.directory)
        for name, f in site.items():
            if name == "client.conf":
                out[client.conf.lstrip("/")] = (f.content, int(f.mode, 8))
            elif f.content.startswith("-----BEGIN "):
                out[f"{rel}/{name}"] = (f.content, int(f.mode, 8))
    return out
