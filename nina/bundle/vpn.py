"""The site's VPN client (manual §4.1.3.2) under etc/openvpn/client/, from nina/plan/openvpn.py's `site_files`.

One federation: the manual's client.conf (`openvpn-client@client`); several: <federation>.conf with its files in
<federation>/ (`openvpn-client@<federation>`). The remote is the floating IP from the stack outputs, or the server's
public DNS name (a record the stack keeps with nina:dns.public_zone, else the operator's: stack output public_dns)
when the outputs come from an offline evaluation. Certificate and tls-crypt key are included only when the outputs
hold real ones; client.key never is.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nina.bundle.context import Files, SiteContext
from nina.plan import openvpn, public


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def files(ctx: SiteContext) -> Files:
    cfg = ctx.cfg
    feds = [f for f in cfg.federations.values() if not f.archived and ctx.org.name in cfg.vpn_clients(f)]
    out: Files = {}
    for fed in feds:
        output = dict(ctx.outputs.get("vpn", {}).get(fed.name, {}))
        output["ca_cert_pem"] = ctx.ca_pem  # the CA the bundle uses everywhere (--ca-file or the outputs)
        remote = output.get("server") if _is_ip(output.get("server")) else public.vpn_public_name(cfg, fed)
        single = len(feds) == 1
        directory = openvpn.CLIENT_DIR if single else f"{openvpn.CLIENT_DIR}/{fed.name}"
        conf_name = "client.conf" if single else f"{fed.name}.conf"
        rel = directory.lstrip("/")
        for name, f in openvpn.site_files(cfg, fed, ctx.org.name, output, remote=remote, directory=directory).items():
            if name == "client.conf":
                out[f"{openvpn.CLIENT_DIR.lstrip('/')}/{conf_name}"] = (f.content, int(f.mode, 8))
            elif f.content.startswith("-----BEGIN "):
                out[f"{rel}/{name}"] = (f.content, int(f.mode, 8))
    return out
