"""The role table: what each role a host can carry means, in the Operations Manual's words.

One row per role. The cloud-init renderer, the security groups, the host component and the tests all read this
table; nothing else decides which roles exist or which of them face the internet.
"""

from __future__ import annotations

from dataclasses import dataclass

from nina import layout


@dataclass(frozen=True)
class Role:
    name: str  # as written in a stack's `roles:` list
    component: str  # the manual's name for it (§3.2)
    service_users: tuple[str, ...]  # §4.1.2.1: system users, no shell, group fl_system
    public_facing: bool  # gets a floating IP (§3.3: the public-facing partition)
    python_venv: str | None  # §4.1.2.11
    units: tuple[str, ...]  # systemd units the role runs (alerting watches these, §5.3.4)
    tenancy_scoped: bool = False  # one instance per federation (its own security group)
    assignable: bool = True  # False: implied by other host settings, never written in `roles:`


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("ingress", "ReverseProxy nginx", (), True, None, ("nginx.service",)),
        Role("iam", "IAM Keycloak", ("keycloak",), False, None, ("keycloak.service",)),
        Role(
            "notebook",
            "UserInterface JupyterHub",
            ("jupyterhub",),
            False,
            "/opt/python/jupyter_env",
            ("jupyterhub.service", "docker.service"),
        ),
        Role(
            "superlink",
            "Flower SuperLink",
            ("superlink",),
            False,
            "/opt/python/flower_env",
            ("superlink.service", layout.SUPERLINK_PROXY_UNIT),
            tenancy_scoped=True,
        ),
        Role(
            "supernode",
            "Flower SuperNode",
            ("supernode",),
            False,
            "/opt/python/flower_env",
            ("supernode@.service",),  # one instance per SuperNode on the host (layout.supernode_unit)
            tenancy_scoped=True,
        ),
        # openvpn-server@.service covers its UDP and TCP instances (layout.OPENVPN_SERVER_UNITS).
        Role("vpn", "Nectar.VPN OpenVPN server", (), True, None, ("openvpn-server@.service",), tenancy_scoped=True),
        Role(
            "monitoring",
            "Monitoring Prometheus + Grafana",
            (),
            False,
            None,
            ("prometheus.service", "prometheus-alertmanager.service", "prometheus-blackbox-exporter.service", "grafana-server.service"),
        ),
        # A host with `gpu: true` carries this role: NVIDIA driver, DCGM and its exporter (§3.2.2, §5.1.1).
        Role("gpu", "Nvidia.GPU drivers + DCGM exporter", (), False, None, ("nvidia-persistenced.service", "nvidia-dcgm.service", "dcgm-exporter.service"), assignable=False),
    )
}

ASSIGNABLE_ROLES = tuple(name for name, role in ROLES.items() if role.assignable)

# Every host, whatever its roles (§4.1.2.1: "this needs to be executed on all servers").
SYSTEM_GROUP = "fl_system"
BASE_UNITS = ("ssh.service", "prometheus-node-exporter.service")
