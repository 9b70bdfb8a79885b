"""Public DNS records in the project's Designate zone (nina:dns.public_zone): each public name an A record of the
floating IP of the host that serves it (nina/services.py `public_records`).

Browsers, certbot's HTTP challenge and hospitals' VPN clients depend on these names. Without a zone the stack
creates nothing and the `public_dns` output lists the records for whoever runs the domain.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from components.host import Host
from nina import services
from nina.config import StackConfig

TTL = 300  # seconds: a replaced floating IP propagates within minutes


class PublicDns(pulumi.ComponentResource):
    records: dict[str, pulumi.Output[str]]  # public name -> address

    def __init__(self, name: str, cfg: StackConfig, hosts: dict[str, Host], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:dns:PublicDns", name, None, opts)
        self.records = {}
        zone_id = None
        if cfg.dns.public_zone:
            zone_id = openstack.dns.get_dns_zone_output(name=f"{cfg.dns.public_zone}.", opts=pulumi.InvokeOutputOptions(parent=self)).id
        for fqdn, host in services.public_records(cfg).items():
            address = hosts[host].public_ip
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
                    description=f"NINA {cfg.environment}: {host}",
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({"records": self.records})
