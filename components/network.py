"""The Nectar network partition (manual §2.1, §3.3): one network + subnet per segment, all behind one router.

Segments: `public` (hosts with floating IPs: nginx, OpenVPN), `internal` (Keycloak, JupyterHub, SuperLink,
monitoring) and one per Nectar-hosted organisation (the cloud-only topology keeps each organisation in its own
segment; security groups, not routing, decide who talks to whom). Each tenancy's VPN client range is routed by
the router to that tenancy's OpenVPN server, so Prometheus can reach node exporters across the VPN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_openstack as openstack

from nina.config import Cloud, Segment


class NetworkPartition(pulumi.ComponentResource):
    networks: dict[str, openstack.networking.Network]
    subnets: dict[str, openstack.networking.Subnet]

    def __init__(
        self,
        name: str,
        environment: str,
        cloud: Cloud,
        segments: Mapping[str, Segment],
        vpn_routes: Sequence[tuple[str, str, str]],  # (federation, client range, VPN host's address)
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nina:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        external = openstack.networking.get_network_output(name=cloud.external_network, opts=pulumi.InvokeOutputOptions(parent=self))
        self.router = openstack.networking.Router(
            f"{name}-router",
            name=f"nina-{environment}",
            admin_state_up=True,
            external_network_id=external.id,
            opts=child,
        )
        self.networks, self.subnets = {}, {}
        for seg in segments.values():
            net = openstack.networking.Network(
                f"{name}-{seg.name}",
                name=f"nina-{environment}-{seg.name}",
                admin_state_up=True,
                # Nectar ports filter by security group; port security stays on everywhere.
                port_security_enabled=True,
                opts=child,
            )
            subnet = openstack.networking.Subnet(
                f"{name}-{seg.name}",
                name=f"nina-{environment}-{seg.name}",
                network_id=net.id,
                cidr=str(seg.cidr),
                ip_version=4,
                gateway_ip=str(seg.gateway),
                dns_nameservers=list(cloud.dns_nameservers),
                enable_dhcp=True,
                opts=pulumi.ResourceOptions(parent=net),
            )
            openstack.networking.RouterInterface(
                f"{name}-{seg.name}",
                router_id=self.router.id,
                subnet_id=subnet.id,
                opts=pulumi.ResourceOptions(parent=self.router),
            )
            self.networks[seg.name], self.subnets[seg.name] = net, subnet
        for federation, destination, next_hop in vpn_routes:
            openstack.networking.RouterRoute(
                f"{name}-vpn-{federation}",
                router_id=self.router.id,
                destination_cidr=destination,
                next_hop=next_hop,
                opts=pulumi.ResourceOptions(parent=self.router, depends_on=list(self.subnets.values())),
            )
        self.register_outputs({"router_id": self.router.id, "network_ids": {k: n.id for k, n in self.networks.items()}})
