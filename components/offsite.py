"""Backups off the host (§4.3.1 "archived"): the stack's object-storage container on Nectar's Swift, and one
Keystone application credential per backup host that may write only that host's objects.

The container holds every copy the stack's hosts upload (database dumps, SuperLink state snapshots), each expiring
on its own (X-Delete-After), so it is `protect`ed like the database and the state volumes: deleting it would delete
the archive. The credentials are restricted (they cannot create credentials), limited by access rules to the
object store and the host's own prefix (nina/plan/backups.py `access_rules`), and their secrets are Pulumi secrets,
delivered over SSH (components/delivery_payload.py), never in user-data.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from nina.catalog.databases import offsite_container
from nina.config import StackConfig
from nina.plan import backups


class OffsiteBackups(pulumi.ComponentResource):
    container_name: str
    credential_ids: dict[str, pulumi.Output[str]]
    credential_secrets: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:backup:Offsite", name, None, opts)
        self.container_name = offsite_container(cfg.environment)
        region = cfg.cloud.object_store_region
        self.container = openstack.objectstorage.Container(
            f"{name}-container",
            name=self.container_name,
            region=region,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.credential_ids = {}
        self.credential_secrets = {}
        for host in backups.offsite_hosts(cfg):
            rules = [openstack.identity.ApplicationCredentialAccessRuleArgs(**rule) for rule in backups.access_rules(self.container_name, host)]
            credential = openstack.identity.ApplicationCredential(
                f"{name}-{host.name}",
                name=f"nina-{cfg.environment}-backup-{host.name}",
                description=f"nina {cfg.environment}: {host.name} copies its backups into {self.container_name}",
                access_rules=rules,
                unrestricted=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.container], additional_secret_outputs=["secret"]),
            )
            self.credential_ids[host.name] = credential.id
            self.credential_secrets[host.name] = pulumi.Output.secret(credential.secret)
        self.register_outputs({"container": self.container_name})
