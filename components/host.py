"""One VM: its network port (fixed IP, security groups), the instance with its cloud-init user-data, an optional
state volume that outlives the instance, and a floating IP only for roles that face the internet."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_openstack as openstack

from components.network import NetworkPartition
from nina.config import Cloud, Host


class Vm(pulumi.ComponentResource):
    public_ip: pulumi.Output[str] | None

    def __init__(
        self,
        environment: str,
        cloud: Cloud,
        host: Host,
        network: NetworkPartition,
        security_group_ids: Sequence[pulumi.Input[str]],
        user_data: str,
        forwarded_ranges: Sequence[str] = (),  # a VPN server forwards its clients' addresses: port security lets them through
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        name = host.name
        super().__init__("nina:host:Host", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.port = openstack.networking.Port(
            name,
            name=f"nina-{environment}-{name}",
            network_id=network.networks[host.segment].id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=network.subnets[host.segment].id, ip_address=str(host.ip))],
            security_group_ids=list(security_group_ids),
            allowed_address_pairs=[openstack.networking.PortAllowedAddressPairArgs(ip_address=r) for r in forwarded_ranges] or None,
            admin_state_up=True,
            opts=child,
        )
        self.instance = openstack.compute.Instance(
            name,
            name=f"nina-{environment}-{name}",
            flavor_name=host.flavor,
            image_name=cloud.image,
            availability_zone=cloud.availability_zone,
            networks=[openstack.compute.InstanceNetworkArgs(port=self.port.id)],
            user_data=user_data,
            metadata={"nina-environment": environment, "nina-roles": ",".join(host.roles)},
            stop_before_destroy=True,
            opts=child,
        )
        if host.volume_gb:
            # Protected: it holds the SuperLink database / notebooks / metrics and must survive replacement.
            self.volume = openstack.blockstorage.Volume(
                name,
                name=f"nina-{environment}-{name}-state",
                size=host.volume_gb,
                availability_zone=cloud.availability_zone,
                description=f"NINA {environment} {name}: service state (mounted at /var/lib/nina)",
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            openstack.compute.VolumeAttach(
                name,
                instance_id=self.instance.id,
                volume_id=self.volume.id,
                opts=child,
            )
        self.public_ip = None
        if host.public_facing:
            fip = openstack.networking.FloatingIp(
                name,
                pool=cloud.external_network,
                description=f"NINA {environment} {name}",
                opts=child,
            )
            openstack.networking.FloatingIpAssociate(name, floating_ip=fip.address, port_id=self.port.id, opts=child)
            self.public_ip = fip.address
        self.private_ip = str(host.ip)
        self.register_outputs({"private_ip": self.private_ip, "public_ip": self.public_ip})
