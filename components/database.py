"""Managed PostgreSQL on Nectar's Database service (Trove), as §4.1.2.8 asks, not a hand-built VM.

Databases follow §4.3.1 (the role table's `databases`, nina/catalog/roles.py). Each service gets its own owner role
with a generated password (a Pulumi secret); Keycloak and Grafana, and the backups beside them, receive it over SSH,
never in user-data.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack
import pulumi_random as random

from nina.catalog.ports import POSTGRES_PORT
from nina.catalog.roles import DATABASES
from nina.config import DatabaseSettings


class ManagedPostgres(pulumi.ComponentResource):
    passwords: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, environment: str, settings: DatabaseSettings, network_id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nina:database:Postgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.passwords = {}
        users = []
        for db in settings.databases:
            owner = DATABASES[db].owner
            password = random.RandomPassword(f"{name}-{owner}", length=32, special=False, opts=child)
            self.passwords[owner] = pulumi.Output.secret(password.result)
            users.append(openstack.database.InstanceUserArgs(name=owner, password=self.passwords[owner], databases=[db]))
        self.instance = openstack.database.Instance(
            name,
            name=f"nina-{environment}-postgres",
            flavor_id=settings.flavor,
            size=settings.size_gb,
            datastore=openstack.database.InstanceDatastoreArgs(type="postgresql", version=settings.datastore_version),
            networks=[openstack.database.InstanceNetworkArgs(uuid=network_id)],
            databases=[openstack.database.InstanceDatabaseArgs(name=db, charset="UTF8", collate="en_AU.UTF-8") for db in settings.databases],
            users=users,
            opts=pulumi.ResourceOptions(parent=self, protect=True, additional_secret_outputs=["users"]),
        )
        self.port = POSTGRES_PORT
        self.address = self.instance.addresses.apply(lambda a: a[0] if a else "")
        self.register_outputs({"address": self.address})

    def password(self, database: str) -> pulumi.Output[str]:
        """The password of the role that owns `database` (secret)."""
        return self.passwords[DATABASES[database].owner]
