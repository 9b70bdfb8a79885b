"""The stack's configuration as one typed model: frozen dataclasses, one per section of the `nina:` namespace, and the
topology questions every layer asks of it (which federations a host serves, which SuperNodes it runs).

Only nina/config/parse.py builds these, after validating every key; everything else receives them. Nothing here
reads raw config or reports problems.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from nina.catalog.databases import NECTAR_AUTH_URL, OFFSITE_DAYS, SCHEDULES, SUPERLINK_KEEP, SUPERLINK_OFFSITE_DAYS
from nina.catalog.roles import DATABASES, ROLES

IPNet = ipaddress.IPv4Network
IP = ipaddress.IPv4Address
GENERATE = "generate"  # a Nectar-hosted SuperNode's key pair is made by the stack


@dataclass(frozen=True)
class Cloud:
    availability_zone: str
    external_network: str  # the Nectar floating-IP pool / router gateway network
    image: str  # Ubuntu 24.04 LTS (§3.2.1), by Glance name
    dns_nameservers: tuple[str, ...]
    # Keystone, for the backup hosts' application credentials (the project's openrc OS_AUTH_URL) and the region of
    # the object store they upload to (None: the catalog's only one).
    auth_url: str = NECTAR_AUTH_URL
    object_store_region: str | None = None


@dataclass(frozen=True)
class Admin:
    ssh_cidrs: tuple[IPNet, ...]
    ssh_public_keys: tuple[str, ...]  # the operators' keys: delivered, so adding or removing one replaces no VM
    ssh_user: str
    jump_host: str  # host with a floating IP that pulumi-command and operators go through
    # The public half of nina:ssh_private_key, the one key in user-data: the delivery connects with it.
    delivery_public_key: str = ""


@dataclass(frozen=True)
class Dns:
    public_domain: str  # nginx serves <service>.<public_domain> (§4.1.2.6)
    internal_domain: str  # hosts are <host>.<internal_domain> inside Nectar
    public_zone: str | None = None  # a Designate zone of the project holding public_domain: the stack keeps its A records
    acme_email: str | None = None  # Let's Encrypt's contact for the public certificate (expiry notices)


@dataclass(frozen=True)
class Segment:
    name: str
    cidr: IPNet
    kind: str  # "public" | "internal" | "organisation"

    @property
    def gateway(self) -> IP:
        return next(self.cidr.hosts())


@dataclass(frozen=True)
class NetworkSettings:
    """nina:network: the segments of the Nectar network partition (§2.1, §3.3)."""

    segments: Mapping[str, Segment]


@dataclass(frozen=True)
class Host:
    name: str
    segment: str
    ip: IP
    flavor: str
    roles: tuple[str, ...]  # effective roles, `gpu` included when gpu: true
    volume_gb: int | None  # state volume that outlives the instance
    gpu: bool

    @property
    def public_facing(self) -> bool:
        return any(ROLES[r].public_facing for r in self.roles)

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class ShippedCertificate:
    """The VPN client certificate an operator handed to a site (recorded in the stack once the site installed it)."""

    serial: str  # upper-case hex, as openssl and `nina bundle --renewal` print it
    not_after: str  # RFC 3339 UTC, as pulumi-tls writes validity_end_time: 2027-11-30T12:00:00Z


@dataclass(frozen=True)
class Organisation:
    name: str
    display_name: str
    hosting: str  # "nectar" | "on_premises"
    segment: str | None  # Nectar-hosted organisations live in their own segment (§2.1 cloud-only topology)
    vpn_csr: str | None = None  # the site's own CSR for its VPN certificate (its private key stays at the site)
    # An on-premises site whose SuperNodes use NVIDIA GPUs: its bundle sets up the driver branch, the container
    # toolkit and the DCGM exporter, and monitoring scrapes that exporter through the tunnel (§3.2.5, §5.1.1).
    gpu: bool = False
    # federation -> the certificate the site has (README: Site certificates). A re-issued one stays in the preview's
    # warnings until it is recorded here, and the expiry alerts watch the recorded one.
    vpn_certificate_shipped: Mapping[str, ShippedCertificate] = field(default_factory=dict)


@dataclass(frozen=True)
class SuperNode:
    name: str  # unique within its federation
    organisation: str
    partition_id: int
    public_key: str | None  # OpenSSH public key; None = generate (Nectar-hosted only)
    host: str | None  # Nectar host running it; None for on-premises SuperNodes
    port: int  # local ClientAppIO port, unique per host
    node_config: Mapping[str, str]

    @property
    def generated(self) -> bool:
        return self.public_key is None


@dataclass(frozen=True)
class Revocation:
    """A VPN client certificate the tenancy's OpenVPN server must refuse (manual §3.2.4; README: VPN)."""

    organisation: str
    serial: int  # as `openssl x509 -noout -serial` prints it (hex) in the stack file
    reason: str


@dataclass(frozen=True)
class Federation:
    name: str
    type: str  # "deployment" | "simulation"
    superlink_host: str
    vpn_host: str | None
    vpn_client_range: IPNet | None  # the tenancy's OpenVPN address pool (§4.1.2.4)
    num_partitions: int
    runtime: str  # runtimes/<runtime>.in: what its apps can import, on the SuperLink, SuperNodes and in notebooks
    runtime_dependency_installation: bool
    archived: bool
    simulation_supernodes: int
    supernodes: tuple[SuperNode, ...]
    revoked: tuple[Revocation, ...] = ()  # VPN certificates refused by serial; the organisation may be gone

    @property
    def organisations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sn.organisation for sn in self.supernodes))


@dataclass(frozen=True)
class DatabaseSettings:
    """nina:database: the managed PostgreSQL (Trove, §4.1.2.8) and its backups (§4.3.1)."""

    flavor: str
    size_gb: int
    datastore_version: str  # Trove's PostgreSQL version; the backup hosts install the pg_dump of the same major
    backup_schedule: str = "monthly"  # §4.3.1: monthly, and once after each release (first delivery)
    backup_keep: int = 12  # dumps kept per database on the backup host, newest first
    offsite_days: int = OFFSITE_DAYS  # how long each dump's copy stays in the stack's container (X-Delete-After)
    superlink_keep: int = SUPERLINK_KEEP  # daily SuperLink state snapshots kept on its host
    superlink_offsite_days: int = SUPERLINK_OFFSITE_DAYS  # how long each snapshot's copy stays in the container
    # age X25519 public keys (age1...): every off-host copy is encrypted on its host to these before it is uploaded;
    # their private halves stay with the operators, never on the platform (README "Backups and restore").
    recipients: tuple[str, ...] = ()
    databases: tuple[str, ...] = tuple(DATABASES)  # §4.3.1

    @property
    def backup_max_age_seconds(self) -> int:
        return SCHEDULES[self.backup_schedule] * 86400

    @property
    def major_version(self) -> int:
        return int(self.datastore_version.split(".")[0])


@dataclass(frozen=True)
class Monitoring:
    """Where Alertmanager sends alerts (§5.3): mail to `alert_email` through nina:smtp, and/or the webhook in the
    secret nina:alert_webhook_url (a chat channel's bridge). A stack with neither is refused unless it says
    `test_stack: true`: then alerts reach nobody, on purpose."""

    alert_email: tuple[str, ...] = ()
    webhook: bool = False  # the secret nina:alert_webhook_url is set
    test_stack: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.alert_email) or self.webhook


@dataclass(frozen=True)
class Smtp:
    """nina:smtp: the institution's mail relay, for Alertmanager's alerts and Keycloak's mails to people (invitations,
    password resets). Absent: localhost:25, where no relay listens, so alerts fail loudly
    (AlertmanagerNotificationsFailing), nobody can be invited, and the preview warns."""

    host: str = "localhost"
    port: int = 25  # 587: STARTTLS; 465: TLS from the start
    sender: str = ""  # From: (default: nina@<public_domain>)
    username: str | None = None  # with the secret nina:smtp_password

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def configured(self) -> bool:
        return self.host != "localhost"


@dataclass(frozen=True)
class Person:
    """A person of nina:people: their Keycloak account, and what they may reach (README "People and federations")."""

    username: str
    name: str
    email: str
    admin: bool  # operators: every federation, Grafana, JupyterHub's admin
    federations: tuple[str, ...]  # a researcher's federations (an admin's are all)


@dataclass(frozen=True)
class NotebookLimits:
    """nina:notebook: what one researcher's container may use on the JupyterHub host (§4.1.2.14), so one notebook
    cannot starve the hub, Keycloak or the others on a consolidated host."""

    memory: str = "4G"  # Docker's format: a number of M or G
    cpus: float = 2.0
    pids: int = 1024


@dataclass(frozen=True)
class StackConfig:
    environment: str
    cloud: Cloud
    admin: Admin
    dns: Dns
    network: NetworkSettings
    hosts: Mapping[str, Host]
    organisations: Mapping[str, Organisation]
    federations: Mapping[str, Federation]
    database: DatabaseSettings
    secrets: Mapping[str, str] = field(default_factory=dict)  # names of `--secret` keys set in the stack
    monitoring: Monitoring = field(default_factory=Monitoring)
    notebook: NotebookLimits = field(default_factory=NotebookLimits)
    smtp: Smtp = field(default_factory=Smtp)
    people: Mapping[str, Person] = field(default_factory=dict)

    @property
    def acme_contact(self) -> str | None:
        """Who Let's Encrypt mails about the public certificate: nina:dns.acme_email, else the first alert address."""
        return self.dns.acme_email or next(iter(self.monitoring.alert_email), None)

    def hosts_with(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts.values() if h.has(role))

    def the_host_with(self, role: str) -> Host:
        (host,) = self.hosts_with(role)
        return host

    def fqdn(self, host: str) -> str:
        return f"{host}.{self.dns.internal_domain}"

    # ------------------------------------------------------------------------------------------------ topology

    @property
    def mail_sender(self) -> str:
        return self.smtp.sender or f"nina@{self.dns.public_domain}"

    @property
    def resolvers(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Where hosts send DNS: nina:cloud.dns_nameservers, or else the network partition's segments (Neutron's
        resolver answers inside each subnet)."""
        servers = tuple(ipaddress.ip_network(ns) for ns in self.cloud.dns_nameservers)
        return servers or tuple(s.cidr for s in self.network.segments.values())

    def federations_served_by(self, host: str, role: str) -> tuple[Federation, ...]:
        """The federations whose `role` runs on `host`, in stack order: the SuperLink or OpenVPN server of a
        federation, or its SuperNodes. Roles that are not per tenancy serve none."""
        return self._served.get((host, role), ())

    def supernodes_on(self, host: str) -> tuple[tuple[Federation, SuperNode], ...]:
        """The SuperNodes a Nectar host runs, with their federations."""
        return self._supernodes_on.get(host, ())

    def vpn_clients(self, fed: Federation) -> tuple[str, ...]:
        """Organisations of a federation that connect over its VPN: its on-premises members."""
        if not fed.vpn_host:
            return ()
        return tuple(o for o in fed.organisations if self.organisations[o].hosting == "on_premises")

    @cached_property
    def _supernodes_on(self) -> dict[str, tuple[tuple[Federation, SuperNode], ...]]:
        found: dict[str, list[tuple[Federation, SuperNode]]] = {}
        for fed in self.federations.values():
            for sn in fed.supernodes:
                if sn.host is not None:
                    found.setdefault(sn.host, []).append((fed, sn))
        return {host: tuple(pairs) for host, pairs in found.items()}

    @cached_property
    def _served(self) -> dict[tuple[str, str], tuple[Federation, ...]]:
        found: dict[tuple[str, str], list[Federation]] = {}
        for fed in self.federations.values():
            carriers = [("superlink", fed.superlink_host), ("vpn", fed.vpn_host)]
            carriers += [("supernode", host) for host in dict.fromkeys(sn.host for sn in fed.supernodes) if host]
            for role, host in carriers:
                if host:
                    found.setdefault((host, role), []).append(fed)
        return {key: tuple(feds) for key, feds in found.items()}
