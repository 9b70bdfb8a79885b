"""Public DNS records in the project's Designate zone (nina:dns.public_zone): each public name an A record of the
floating IP of the host that serves it (nina/plan/public.py `public_records`).

Browsers, certbot's HTTP challenge and hospitals' VPN clients depend on these names. Without a zone the stack
creates nothing and the `public_dns` output lists the records for whoever runs the domain.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_openstack as openstack

from components.host import Vm

TTL = 300  # seconds: a replaced floating IP propagates within minutes


class PublicDns(pulumi.ComponentResource):
    records: dict[str, pulumi.Output[str]]  # public name -> address

    def __init__(
        self,
        name: str,
        environment: str,
        zone: str | None,
        records: Mapping[str, str],  # public name -> the host serving it (nina/plan/public.py `public_records`)
        vms: Mapping[str, Vm],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nina:dns:PublicDns", name, None, opts)
        self.records = {}
        zone_id = None
        if zone:
            zone_id = openstack.dns.get_dns_zone_output(name=f"{zone}.", opts=pulumi.InvokeOutputOptions(parent=self)).id
        for fqdn, host in records.items():
            address = vms[host].public_ip
            assert address is not None, f"{fqdn}: host {host} has no floating IP"  # the config model keeps them public-facing
            self.records[fqdn] = address
            if zone_id is not None:
                openstack.dns.RecordSet(
                    fqdn,
                    zone_id=zone_id,
                    name=f"{fqdn}.",
                    type="A",
                    records=[address],
                    ttl=TTL,
                    description=f"NINA {environment}: {host}",
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({"records": self.records})
