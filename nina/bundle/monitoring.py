"""The site seen by the platform's monitoring (manual §5.1, §5.2): node exporter and, on a GPU site
(`nina:organisations.<org>.gpu`), NVIDIA's DCGM exporter, on the site's VPN tunnel addresses only.

The platform's Prometheus scrapes every tunnel address the site may hold (one per OpenVPN instance,
nina.plan.openvpn.site_addresses) through the tunnel; the VPN host forwards only the monitoring host's scrapes. The
addresses exist only while the tunnel is up, so systemd holds the sockets (FreeBind=yes) and hands them to node
exporter (`--web.systemd-socket`); dcgm-exporter cannot take a socket, so systemd-socket-proxyd forwards to it on
127.0.0.1. Ports are the port table's (node-exporter, dcgm-exporter). install-monitoring.sh sets it up.
"""

from __future__ import annotations

from cloudinit import render_template
from nina.bundle import vpn
from nina.bundle.context import Files, SiteContext
from nina.catalog.ports import PORTS

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"  # Debian's and Ubuntu's package (upstream: node_exporter)
SOCKET_PROXYD = "/usr/lib/systemd/systemd-socket-proxyd"
NODE_SOCKET, NODE_SERVICE = "nina-node-exporter.socket", "nina-node-exporter.service"
DCGM_SOCKET, DCGM_PROXY, DCGM_SERVICE = "nina-dcgm-exporter.socket", "nina-dcgm-exporter-proxy.service", "dcgm-exporter.service"
# The site's units the systemd collector reports (the SuperNodes, their SuperExecs, the VPN client, the apps guard).
UNIT_INCLUDE = r"(supernode|supernode-superexec|openvpn-client)@.+\.service|nina-apps-guard\.service"
UNIT_DIR = "etc/systemd/system"


def port(name: str) -> int:
    (row,) = (p for p in PORTS if p.name == name)
    return row.port


def addresses(ctx: SiteContext) -> tuple[str, ...]:
    """Every tunnel address of the site, UDP half first, federation by federation."""
    return tuple(a for client in vpn.clients(ctx) for a in (client.addresses["udp"], client.addresses["tcp"]))


def exporters(ctx: SiteContext) -> tuple[tuple[str, int, str], ...]:
    """(what, port, socket unit) of each exporter the site runs."""
    found = [("node exporter", port("node-exporter"), NODE_SOCKET)]
    if ctx.org.gpu:
        found.append(("DCGM exporter", port("dcgm-exporter"), DCGM_SOCKET))
    return tuple(found)


def files(ctx: SiteContext) -> Files:
    listen = addresses(ctx)
    if not listen:  # no VPN: monitoring has no way to the site
        return {}
    cfg = ctx.cfg
    node_port, dcgm_port = port("node-exporter"), port("dcgm-exporter")
    out: Files = {
        f"{UNIT_DIR}/{NODE_SOCKET}": (
            render_template("supernode/bundle/exporter.socket.j2", cfg, exporter="node exporter", addresses=listen, port=node_port, service=""), 0o644
        ),
        f"{UNIT_DIR}/{NODE_SERVICE}": (
            render_template("supernode/bundle/nina-node-exporter.service.j2", cfg, node_exporter=NODE_EXPORTER, unit_include=UNIT_INCLUDE), 0o644
        ),
    }
    units, enable, services = [NODE_SOCKET, NODE_SERVICE], [NODE_SOCKET], [NODE_SERVICE]
    if ctx.org.gpu:
        out[f"{UNIT_DIR}/{DCGM_SOCKET}"] = (
            render_template("supernode/bundle/exporter.socket.j2", cfg, exporter="DCGM exporter", addresses=listen, port=dcgm_port, service=DCGM_PROXY), 0o644
        )
        out[f"{UNIT_DIR}/{DCGM_PROXY}"] = (
            render_template("supernode/bundle/nina-dcgm-exporter-proxy.service.j2", cfg, socket_proxyd=SOCKET_PROXYD, port=dcgm_port), 0o644
        )
        out[f"{UNIT_DIR}/{DCGM_SERVICE}"] = (render_template("gpu/dcgm-exporter.service.j2", cfg, dcgm_listen="127.0.0.1"), 0o644)
        units += [DCGM_SOCKET, DCGM_PROXY, DCGM_SERVICE]
        enable += [DCGM_SERVICE, DCGM_SOCKET]
        services += [DCGM_PROXY]
    out["install-monitoring.sh"] = (
        render_template(
            "supernode/bundle/install-monitoring.sh.j2", cfg, gpu=ctx.org.gpu, addresses=listen, node_port=node_port, dcgm_port=dcgm_port,
            node_exporter=NODE_EXPORTER, units=units, enable=enable, socket_services=services,
        ),
        0o755,
    )
    return out
