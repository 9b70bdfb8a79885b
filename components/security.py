"""Security groups and their rules, materialised from the firewall plan (nina/plan/firewall.py, itself read off the
port and egress tables): the groups by key, one ingress rule per plan row, one egress rule per egress plan row."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_openstack as openstack

from nina.plan.firewall import EgressRule, Rule


class SecurityGroups(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        environment: str,
        groups: Sequence[str],
        rules: Sequence[Rule],
        egress: Sequence[EgressRule],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nina:security:SecurityGroups", name, None, opts)
        self.groups: dict[str, openstack.networking.SecGroup] = {}
        for key in groups:
            self.groups[key] = openstack.networking.SecGroup(
                f"{name}-{key}",
                name=f"nina-{environment}-{key}",
                description=f"NINA {environment}: {key} (generated from the port table)",
                # No default allow-all egress: the egress plan says what each group may open (SuperNode hosts little).
                delete_default_rules=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
        for rule in rules:
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
        for out in egress:
            group = self.groups[out.group]
            openstack.networking.SecGroupRule(
                f"{name}-{out.key}",
                direction="egress",
                ethertype=out.ethertype,
                protocol=out.row.protocol if out.row else None,
                port_range_min=out.row.port if out.row else None,
                port_range_max=out.row.port if out.row else None,
                security_group_id=group.id,
                remote_group_id=self.groups[out.remote_group].id if out.remote_group else None,
                remote_ip_prefix=out.remote_cidr,
                description=out.description[:255],
                opts=pulumi.ResourceOptions(parent=group),
            )
        self.register_outputs({"groups": {k: g.id for k, g in self.groups.items()}})

    def ids(self, keys: Sequence[str]) -> list[pulumi.Output[str]]:
        """The ids of the groups a port carries, in the plan's order."""
        return [self.groups[k].id for k in keys]
