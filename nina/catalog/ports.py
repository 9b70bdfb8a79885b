"""The port table: the single source of truth for who may reach which port (manual §3.3.1).

Updated to the Flower release we pin (shared/FLOWER.md): the SuperLink serves the Fleet API and the Control API on
one HTTPS port, so the manual's 9091/9092/9093 rows become one row. We keep 9092, the port the manual tells hospitals
to open outbound for their SuperNodes, so no hospital firewall changes.

Security groups are generated from this table and the tests read the same table. A source is either a role (the
rule references that role's security group, never a CIDR), PUBLIC (the internet), ADMIN (the operators' SSH CIDRs),
BASTION (the jump host pulumi-command connects through) or nothing at all: LOOPBACK rows document a listener that
stays on 127.0.0.1 and open no rule, but still count for port-collision checks.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC = "@public"
ADMIN = "@admin"
BASTION = "@bastion"
EVERY_HOST = "*"  # the row applies to every host (the base security group)


@dataclass(frozen=True)
class Port:
    name: str
    role: str  # role whose hosts listen; EVERY_HOST for the base group
    protocol: str  # "tcp" | "udp"
    port: int
    port_max: int  # == port unless a range
    sources: tuple[str, ...]  # roles or PUBLIC/ADMIN/BASTION; empty = loopback only
    manual: str  # the §3.3.1 row it comes from, or why it differs
    health: str = ""  # "<scheme>:<path>" the service answers on this port when healthy (nina-check asks it locally)
    for_apps: bool = False  # researchers' apps on the host may open it (the apps guard closes every other listener)
    forwarded: bool = False  # nothing listens on the host: it routes the port to the sites behind its tunnels

    @property
    def loopback_only(self) -> bool:
        return not self.sources

    def covers(self, protocol: str, port: int) -> bool:
        return self.protocol == protocol and self.port <= port <= self.port_max


def _p(
    name: str,
    role: str,
    protocol: str,
    port: int | tuple[int, int],
    sources: tuple[str, ...],
    manual: str,
    health: str = "",
    for_apps: bool = False,
    forwarded: bool = False,
) -> Port:
    low, high = port if isinstance(port, tuple) else (port, port)
    return Port(name, role, protocol, low, high, sources, manual, health, for_apps, forwarded)


SUPERLINK_PORT = 9092
SUPERLINK_LOOPBACK_PORT = 9091  # the manual's old Fleet port, free since flwr 1.41 serves everything on one port
SUPERLINK_RUNTIME_PORT = 9089  # the runtime API alone, for ServerApps (superlink-proxy passes /v1/runtime/ only)
SUPERNODE_PORTS = (9094, 9099)
NODE_EXPORTER_PORT = 9900
DCGM_EXPORTER_PORT = 9400

PORTS: tuple[Port, ...] = (
    _p("ssh", EVERY_HOST, "tcp", 22, (ADMIN, BASTION), "Global SSH 22; only from operators and the jump host"),
    _p("node-exporter", EVERY_HOST, "tcp", NODE_EXPORTER_PORT, ("monitoring",), "Prometheus Node Exporter 9900"),
    _p("https", "ingress", "tcp", 443, (PUBLIC,), "ReverseProxy nginx 443"),
    # Let's Encrypt validates on 80 (http-01); nginx answers the challenges there and redirects everything else.
    _p("http", "ingress", "tcp", 80, (PUBLIC,), "ReverseProxy nginx 80: ACME http-01 challenges, redirect to 443"),
    _p("openvpn-udp", "vpn", "udp", 1194, (PUBLIC,), "Nectar.VPN OpenVPN 1194/udp"),
    _p("openvpn-tcp", "vpn", "tcp", 443, (PUBLIC,), "Nectar.VPN OpenVPN 443/tcp fallback"),
    _p("jupyterhub", "notebook", "tcp", 8000, ("ingress", "monitoring"), "JupyterHub; 8000 (§4.1.2.13 bind_url) so it can share a host with nginx", "https:/hub/health"),
    _p("keycloak", "iam", "tcp", 8443, ("ingress", "notebook", "monitoring"), "IAM Keycloak 8443"),
    _p(
        "superlink",
        "superlink",
        "tcp",
        SUPERLINK_PORT,
        ("supernode", "vpn", "notebook", "monitoring"),  # monitoring: /health only (the proxy's ACL)
        "Flower SuperLink Fleet + Control API (flwr 1.41: one HTTPS port, was 9091-9093)",
        "https:/health",  # through the ACL proxy, which allows /health from localhost
    ),
    # The SuperLink itself listens on loopback; the nginx in front of it owns "superlink" and enforces who may reach
    # which API path (README: Federations). The registration commands use this port directly; the SuperExec and
    # its ServerApps use "superlink-runtime", and the apps guard closes this one to them.
    _p("superlink-loopback", "superlink", "tcp", SUPERLINK_LOOPBACK_PORT, (), "Flower SuperLink behind its ACL proxy; loopback only"),
    # ServerApps reach the SuperLink only here: the runtime API's paths, through superlink-proxy (Flower serves the
    # Control API, unauthenticated, on the same loopback port as the runtime API).
    _p("superlink-runtime", "superlink", "tcp", SUPERLINK_RUNTIME_PORT, (), "ServerApps' runtime API (/v1/runtime/ only); loopback", for_apps=True),
    # The manual's ClientAppIO: flwr 1.41 calls it the SuperNode's runtime API, what its SuperExec and ClientApps use.
    _p("supernode-clientappio", "supernode", "tcp", SUPERNODE_PORTS, (), "SuperNode ClientAppIO (runtime API) 9094-9099; loopback", for_apps=True),
    # JupyterHub's own API for the single-user containers: bound to the Docker bridge, never to the host network.
    _p("jupyterhub-hub-api", "notebook", "tcp", 8081, (), "JupyterHub hub API; Docker bridge only (§4.1.2.13)"),
    _p("configurable-http-proxy-api", "notebook", "tcp", 8001, (), "configurable-http-proxy REST API; loopback only"),
    _p("keycloak-management", "iam", "tcp", 9000, ("monitoring",), "Keycloak health and metrics (management interface)", "https:/health/ready"),
    _p("grafana", "monitoring", "tcp", 3000, ("ingress",), "Monitoring Grafana 3000", "https:/api/health"),
    _p("prometheus", "monitoring", "tcp", 9090, (), "Prometheus 9090; read by Grafana on the same host", "http:/-/ready"),
    _p("alertmanager", "monitoring", "tcp", 9093, (), "Prometheus 9093 (Alertmanager); same host only", "http:/-/ready"),
    _p("blackbox-exporter", "monitoring", "tcp", 9115, (), "Prometheus blackbox exporter (SuperLink /health, TLS expiry probes); loopback"),
    _p("dcgm-exporter", "gpu", "tcp", DCGM_EXPORTER_PORT, ("monitoring",), "DCGM exporter 9400 (§5.1.1)"),
    # §3.2.5: exporters on every host, VPN clients included. The monitoring host scrapes the on-premises sites'
    # exporters through their tunnels: the VPN host's security group admits the scrapes, its forward rules pass
    # them to the sites' tunnel addresses (cloudinit/templates/vpn/vpn-forward.nft.j2), the site kit binds the
    # exporters to those addresses only.
    _p("site-node-exporter", "vpn", "tcp", NODE_EXPORTER_PORT, ("monitoring",), "Node Exporter 9900 of the sites, through the VPN", forwarded=True),
    _p("site-dcgm-exporter", "vpn", "tcp", DCGM_EXPORTER_PORT, ("monitoring",), "DCGM exporter 9400 of GPU sites, through the VPN", forwarded=True),
)

# ------------------------------------------------------------------------------------------------------ egress
# What a host may open. Server roles' groups allow every outbound connection (they fetch packages, mail alerts, call
# Keycloak and Nectar's APIs). A host that only runs SuperNodes sits next to data: its groups allow the rows below and
# nothing else (the SuperNode's host firewall then keeps ClientApps off even these, README "Threat model"). The base
# and bastion groups and add-on roles (gpu) add no egress: a host's other groups decide.

ANYWHERE = "@anywhere"
NAMESERVERS = "@nameservers"  # StackConfig.resolvers: nina:cloud.dns_nameservers, or the segments (Neutron's resolver)
HTTP_PORT, HTTPS_PORT = 80, 443  # package mirrors and indexes (the notebook containers' web too, nina/plan/notebook.py)


@dataclass(frozen=True)
class Egress:
    name: str
    role: str  # the role whose hosts are held to these rows
    protocol: str
    port: int
    destination: str  # a role (its group; the same federation's if tenancy-scoped), ANYWHERE or NAMESERVERS
    why: str


EGRESS: tuple[Egress, ...] = (
    Egress("superlink", "supernode", "tcp", SUPERLINK_PORT, "superlink", "the Fleet API of the federation's own SuperLink"),
    Egress("dns-udp", "supernode", "udp", 53, NAMESERVERS, "name resolution"),
    Egress("dns-tcp", "supernode", "tcp", 53, NAMESERVERS, "name resolution (large answers)"),
    Egress("ntp", "supernode", "udp", 123, ANYWHERE, "time: certificates and tokens are checked against it"),
    Egress("http", "supernode", "tcp", HTTP_PORT, ANYWHERE, "the Ubuntu archive; cloud-init's metadata service (169.254.169.254)"),
    Egress("https", "supernode", "tcp", HTTPS_PORT, ANYWHERE, "flwr and its Python packages from PyPI; security updates"),
)
EGRESS_LIMITED_ROLES = frozenset(e.role for e in EGRESS)

# Managed PostgreSQL (Trove, §4.1.2.8) is not a host role: Trove owns its instance's security group, so the stack
# cannot attach ours. It sits on the internal segment and only keycloak and grafana hold credentials.
POSTGRES_PORT = 5432


def ports_for_role(role: str) -> tuple[Port, ...]:
    return tuple(p for p in PORTS if p.role == role)


def listeners(roles: tuple[str, ...]) -> tuple[Port, ...]:
    """Every port a host with these roles listens on (base rows included; forwarded rows are not listeners)."""
    return tuple(p for p in PORTS if (p.role == EVERY_HOST or p.role in roles) and not p.forwarded)
