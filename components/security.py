"""Security groups and their rules, materialised from `nina.firewall.plan` (itself read off the port table)."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from nina import firewall
from nina.config import Host, StackConfig


class SecurityGroups(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:security:SecurityGroups", name, None, opts)
        self._cfg = cfg
        self.groups: dict[str, openstack.networking.SecGroup] = {}
        for key in firewall.all_groups(cfg):
            self.groups[key] = openstack.networking.SecGroup(
                f"{name}-{key}",
                name=f"nina-{cfg.environment}-{key}",
                description=f"NINA {cfg.environment}: {key} (generated from the port table)",
                # Keep OpenStack's default allow-all egress: hosts fetch packages and SuperNodes dial out.
                delete_default_rules=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
        for rule in firewall.plan(cfg):
            group = self.groups[rule.group]
            openstack.networking.SecGroupRule(
                f"{name}-{rule.key}",
                direction="ingress",
                ethertype="IPv4",
                protocol=rule.port.protocol,
                port_range_min=rule.port.port,
                port_range_max=rule.port.port_max,
                security_group_id=group.id,
                remote_group_id=self.groups[rule.remote_group].id if rule.remote_group else None,
                remote_ip_prefix=rule.remote_cidr,
                description=f"{rule.port.name}: {rule.port.manual}"[:255],
                opts=pulumi.ResourceOptions(parent=group),
            )
        self.register_outputs({"groups": {k: g.id for k, g in self.groups.items()}})

    def for_host(self, host: Host) -> list[pulumi.Output[str]]:
        return [self.groups[k].id for k in firewall.host_groups(self._cfg, host)]
