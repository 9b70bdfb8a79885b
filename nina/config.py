"""The stack's configuration: one typed model, parsed and validated once, before any resource exists.

Pulumi hands us the `nina:` keys of `Pulumi.<stack>.yaml`. `parse()` turns them into frozen dataclasses or raises
`ConfigError` carrying one message per problem, each naming the key path (`nina:hosts.hub.ip`) and what is wrong.
Components receive these dataclasses, never raw dicts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from nina.databases import DATABASES, SCHEDULES
from nina.ports import SUPERNODE_PORTS, listeners
from nina.roles import ASSIGNABLE_ROLES, ROLES

NAMESPACE = "nina"
IPNet = ipaddress.IPv4Network
IP = ipaddress.IPv4Address

# Roles the platform cannot run without: exactly one host carries each (their DNS names are single).
SINGLETON_ROLES = ("ingress", "iam", "notebook", "monitoring")
SERVER_SEGMENTS = ("public", "internal")
GENERATE = "generate"
ISOLATION_MODES = ("subprocess", "process")
FEDERATION_TYPES = ("deployment", "simulation")
HOSTINGS = ("nectar", "on_premises")
# Flower refuses Ed25519/RSA SuperNode keys (shared/FLOWER.md): NIST curves only.
SUPERNODE_KEY_CURVES = {"ecdsa-sha2-nistp256": 256, "ecdsa-sha2-nistp384": 384, "ecdsa-sha2-nistp521": 521}
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^[a-z0-9-]+\.internal$")
_NODE_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


# ---------------------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Cloud:
    availability_zone: str
    external_network: str  # the Nectar floating-IP pool / router gateway network
    image: str  # Ubuntu 24.04 LTS (§3.2.1), by Glance name
    dns_nameservers: tuple[str, ...]


@dataclass(frozen=True)
class Admin:
    ssh_cidrs: tuple[IPNet, ...]
    ssh_public_keys: tuple[str, ...]
    ssh_user: str
    jump_host: str  # host with a floating IP that pulumi-command and operators go through


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
class Network:
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
class Organisation:
    name: str
    display_name: str
    hosting: str  # "nectar" | "on_premises"
    segment: str | None  # Nectar-hosted organisations live in their own segment (§2.1 cloud-only topology)
    vpn_csr: str | None = None  # the site's own CSR for its VPN certificate (its private key stays at the site)


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
    isolation: str
    num_partitions: int
    runtime_dependency_installation: bool
    archived: bool
    simulation_supernodes: int
    supernodes: tuple[SuperNode, ...]
    revoked: tuple[Revocation, ...] = ()  # VPN certificates refused by serial; the organisation may be gone

    @property
    def organisations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sn.organisation for sn in self.supernodes))


@dataclass(frozen=True)
class Database:
    flavor: str
    size_gb: int
    datastore_version: str  # Trove's PostgreSQL version; the backup hosts install the pg_dump of the same major
    backup_schedule: str = "monthly"  # §4.3.1: monthly, and once after each release (first delivery)
    backup_keep: int = 12  # dumps kept per database on the backup host, newest first
    databases: tuple[str, ...] = tuple(DATABASES)  # §4.3.1

    @property
    def backup_max_age_seconds(self) -> int:
        return SCHEDULES[self.backup_schedule] * 86400

    @property
    def major_version(self) -> int:
        return int(self.datastore_version.split(".")[0])


@dataclass(frozen=True)
class Monitoring:
    """Where Alertmanager mails alerts (§5.3). Absent from a stack: ops@<public_domain> through localhost:25, where no
    relay listens, so notifications fail loudly (AlertmanagerNotificationsFailing) and the preview warns."""

    alert_email: tuple[str, ...] = ()
    smarthost: str = "localhost:25"  # host:port of the institution's SMTP relay (STARTTLS on 587)
    email_from: str = ""
    smtp_username: str | None = None  # with the secret nina:smtp_password

    @property
    def configured(self) -> bool:
        return bool(self.alert_email)


@dataclass(frozen=True)
class StackConfig:
    environment: str
    cloud: Cloud
    admin: Admin
    dns: Dns
    network: Network
    hosts: Mapping[str, Host]
    organisations: Mapping[str, Organisation]
    federations: Mapping[str, Federation]
    database: Database
    secrets: Mapping[str, str] = field(default_factory=dict)  # names of `--secret` keys set in the stack
    monitoring: Monitoring = field(default_factory=Monitoring)

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

    def federation_of_superlink(self, host: str) -> Federation | None:
        return next((f for f in self.federations.values() if f.superlink_host == host), None)

    def supernodes_on(self, host: str) -> tuple[tuple[Federation, SuperNode], ...]:
        return tuple((f, sn) for f in self.federations.values() for sn in f.supernodes if sn.host == host)


# --------------------------------------------------------------------------------------------------------- the reader

T = TypeVar("T")


class _Reader:
    """Walks raw config values, recording one problem per bad key instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.problem(f"{path}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def required(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data or data[key] in (None, ""):
            self.problem(f"{path}.{key}", "is required")
            return None
        return data[key]

    def string(self, data: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default) if default is not None else self.required(data, key, path)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", f"must be a string, got {value!r}")
            return ""
        return value

    def integer(self, data: dict[str, Any], key: str, path: str, default: int | None = None, minimum: int = 0) -> int:
        value = data.get(key, default) if default is not None else self.required(data, key, path)
        if value is None:
            return minimum
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", f"must be an integer, got {value!r}")
            return minimum
        if value < minimum:
            self.problem(f"{path}.{key}", f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, data: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"must be true or false, got {value!r}")
            return default
        return value

    def choice(self, data: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(data, key, path, default)
        if value and value not in choices:
            self.problem(f"{path}.{key}", f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, data: dict[str, Any], key: str, path: str, required: bool = True) -> list[str]:
        value = data.get(key)
        if value in (None, []):
            if required:
                self.problem(f"{path}.{key}", "is required (a non-empty list)")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{path}.{key}", "must be a list of strings")
            return []
        return value

    def name(self, value: str, path: str) -> None:
        if not _NAME.match(value):
            self.problem(path, f"{value!r} is not a valid name (lowercase letters, digits and '-', max 32)")

    def network(self, value: Any, path: str) -> IPNet | None:
        try:
            return ipaddress.IPv4Network(value, strict=True)
        except (ValueError, TypeError) as exc:
            self.problem(path, f"{value!r} is not a valid IPv4 CIDR ({exc})")
            return None

    def each(self, data: dict[str, Any], path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Named sub-mappings (`hosts: {hub: {...}}`), names checked."""
        for name, body in data.items():
            self.name(name, f"{path}.{name}")
            yield name, f"{path}.{name}", body


def _decode(raw: Mapping[str, Any], key: str) -> Any:
    """Pulumi passes structured config as JSON strings; tests and the preview may pass objects."""
    value = raw.get(f"{NAMESPACE}:{key}")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _check_ssh_public_key(r: _Reader, key: str, path: str, curves: Mapping[str, int] | None = None) -> None:
    try:
        loaded = load_ssh_public_key(key.strip().encode())
    except (ValueError, TypeError, Exception) as exc:  # cryptography raises several types for garbage
        r.problem(path, f"is not a valid OpenSSH public key ({exc.__class__.__name__})")
        return
    if curves is not None:
        kind = key.split()[0]
        if kind not in curves or not isinstance(loaded, ec.EllipticCurvePublicKey):
            r.problem(path, f"must be an ECDSA key on a NIST curve ({', '.join(curves)}), got {kind!r}")


# ------------------------------------------------------------------------------------------------------------ parsing


def _parse_cloud(r: _Reader, raw: Any) -> Cloud:
    p = "nina:cloud"
    d = r.mapping(raw, p, ("availability_zone", "external_network", "image", "dns_nameservers"))
    nameservers = r.strings(d, "dns_nameservers", p, required=False)
    for i, ns in enumerate(nameservers):
        try:
            ipaddress.ip_address(ns)
        except ValueError:
            r.problem(f"{p}.dns_nameservers[{i}]", f"{ns!r} is not an IP address")
    return Cloud(
        availability_zone=r.string(d, "availability_zone", p),
        external_network=r.string(d, "external_network", p),
        image=r.string(d, "image", p),
        dns_nameservers=tuple(nameservers),
    )


def _parse_admin(r: _Reader, raw: Any) -> Admin:
    p = "nina:admin"
    d = r.mapping(raw, p, ("ssh_cidrs", "ssh_public_keys", "ssh_user", "jump_host"))
    cidrs = []
    for i, c in enumerate(r.strings(d, "ssh_cidrs", p)):
        net = r.network(c, f"{p}.ssh_cidrs[{i}]")
        if net is not None and net.prefixlen == 0:
            r.problem(f"{p}.ssh_cidrs[{i}]", "SSH must not be open to the whole internet")
        if net is not None:
            cidrs.append(net)
    keys = r.strings(d, "ssh_public_keys", p)
    for i, k in enumerate(keys):
        _check_ssh_public_key(r, k, f"{p}.ssh_public_keys[{i}]")
    return Admin(tuple(cidrs), tuple(k.strip() for k in keys), r.string(d, "ssh_user", p, "ubuntu"), r.string(d, "jump_host", p))


def _parse_dns(r: _Reader, raw: Any) -> Dns:
    p = "nina:dns"
    d = r.mapping(raw, p, ("public_domain", "internal_domain", "public_zone", "acme_email"))
    zone = r.string(d, "public_zone", p, "").rstrip(".") or None
    email = r.string(d, "acme_email", p, "") or None
    dns = Dns(r.string(d, "public_domain", p), r.string(d, "internal_domain", p), zone, email)
    for key, value in (("public_domain", dns.public_domain), ("internal_domain", dns.internal_domain), ("public_zone", zone)):
        if value and not _DOMAIN.match(value):
            r.problem(f"{p}.{key}", f"{value!r} is not a valid DNS domain")
    if zone and dns.public_domain and dns.public_domain != zone and not dns.public_domain.endswith(f".{zone}"):
        r.problem(f"{p}.public_zone", f"{zone!r} does not contain public_domain {dns.public_domain!r}, so it cannot hold its records")
    if email and not _EMAIL.match(email):
        r.problem(f"{p}.acme_email", f"{email!r} is not an email address")
    return dns


def _parse_network(r: _Reader, raw: Any, organisations: Mapping[str, Organisation]) -> Network:
    p = "nina:network"
    d = r.mapping(raw, p, ("segments",))
    segments: dict[str, Segment] = {}
    org_segments = {o.segment: o.name for o in organisations.values() if o.segment}
    for name, path, value in r.each(r.mapping(r.required(d, "segments", p), f"{p}.segments"), f"{p}.segments"):
        net = r.network(value, path)
        if net is None:
            continue
        if net.prefixlen > 28:
            r.problem(path, f"{net} is too small for a Nectar subnet (use /28 or larger)")
        kind = name if name in SERVER_SEGMENTS else "organisation"
        if kind == "organisation" and name not in org_segments:
            r.problem(path, "is neither public, internal nor the segment of an organisation in nina:organisations")
        segments[name] = Segment(name, net, kind)
    for required in SERVER_SEGMENTS:
        if required not in segments and f"{p}.segments.{required}: is required" not in r.problems:
            r.problem(f"{p}.segments.{required}", "is required")
    return Network(segments)


def _parse_hosts(r: _Reader, raw: Any, network: Network) -> dict[str, Host]:
    p = "nina:hosts"
    hosts: dict[str, Host] = {}
    seen_ips: dict[IP, str] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(body, path, ("segment", "ip", "flavor", "roles", "volume_gb", "gpu"))
        roles = r.strings(d, "roles", path)
        for i, role in enumerate(roles):
            if role not in ASSIGNABLE_ROLES:
                r.problem(f"{path}.roles[{i}]", f"unknown role {role!r} (known: {', '.join(ASSIGNABLE_ROLES)})")
            elif roles.index(role) != i:
                r.problem(f"{path}.roles[{i}]", f"role {role!r} is listed twice")
        gpu = r.boolean(d, "gpu", path, False)
        effective = tuple(dict.fromkeys(x for x in roles if x in ASSIGNABLE_ROLES)) + (("gpu",) if gpu else ())
        segment_name = r.string(d, "segment", path)
        segment = network.segments.get(segment_name)
        if segment_name and segment is None:
            r.problem(f"{path}.segment", f"{segment_name!r} is not a segment in nina:network.segments")
        ip: IP | None = None
        try:
            ip = ipaddress.IPv4Address(r.string(d, "ip", path))
        except ValueError as exc:
            if "ip" in d:
                r.problem(f"{path}.ip", str(exc))
        if ip is not None and segment is not None:
            if ip not in segment.cidr or ip in (segment.cidr.network_address, segment.cidr.broadcast_address):
                r.problem(f"{path}.ip", f"{ip} is not a host address in segment {segment.name} ({segment.cidr})")
            elif ip == segment.gateway:
                r.problem(f"{path}.ip", f"{ip} is the gateway of segment {segment.name}")
        if ip is not None:
            if ip in seen_ips:
                r.problem(f"{path}.ip", f"{ip} is already used by host {seen_ips[ip]}")
            seen_ips[ip] = name
        if segment is not None:
            _check_placement(r, path, effective, segment)
        volume = d.get("volume_gb")
        if volume is not None:
            r.integer(d, "volume_gb", path, minimum=1)
        hosts[name] = Host(
            name=name,
            segment=segment_name,
            ip=ip or ipaddress.IPv4Address("0.0.0.0"),
            flavor=r.string(d, "flavor", path),
            roles=effective,
            volume_gb=volume if isinstance(volume, int) and not isinstance(volume, bool) else None,
            gpu=gpu,
        )
        _check_port_collisions(r, path, effective)
    if not hosts:
        r.problem(p, "is required (at least one host)")
    for role in SINGLETON_ROLES:
        carriers = [h.name for h in hosts.values() if h.has(role)]
        if not carriers:
            r.problem(p, f"role {role!r} is on no host (exactly one host must carry it)")
        elif len(carriers) > 1:
            r.problem(p, f"role {role!r} is on several hosts ({', '.join(carriers)}); exactly one must carry it")
    return hosts


def _check_placement(r: _Reader, path: str, roles: tuple[str, ...], segment: Segment) -> None:
    """§3.3: public-facing roles sit in the public segment; organisation segments hold only SuperNodes."""
    for role in roles:
        if ROLES[role].public_facing and segment.kind != "public":
            r.problem(f"{path}.segment", f"role {role!r} faces the internet and must be in segment 'public'")
        if segment.kind == "organisation" and role not in ("supernode", "gpu"):
            r.problem(f"{path}.segment", f"organisation segment {segment.name!r} may hold only supernode hosts, not {role!r}")
        if role == "supernode" and segment.kind != "organisation":
            r.problem(f"{path}.segment", "a supernode host belongs in its organisation's segment")


def _check_port_collisions(r: _Reader, path: str, roles: tuple[str, ...]) -> None:
    taken: dict[tuple[str, int], str] = {}
    for port in listeners(roles):
        for number in range(port.port, port.port_max + 1):
            key = (port.protocol, number)
            if key in taken and taken[key] != port.name:
                r.problem(f"{path}.roles", f"{port.name} and {taken[key]} both need {number}/{port.protocol} on this host")
            taken.setdefault(key, port.name)


def _check_csr(r: _Reader, csr: Any, path: str, org: str) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        request = x509.load_pem_x509_csr(str(csr).encode())
    except ValueError as exc:
        r.problem(path, f"is not a PEM certificate signing request ({exc})")
        return
    if not request.is_signature_valid:
        r.problem(path, "the CSR's signature does not verify")
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [org]:
        # The OpenVPN server gives each organisation its fixed address by certificate CN.
        r.problem(path, f"the CSR's common name must be the organisation's name {org!r}, got {common_names or 'none'}")


def _parse_organisations(r: _Reader, raw: Any) -> dict[str, Organisation]:
    p = "nina:organisations"
    orgs: dict[str, Organisation] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(body, path, ("display_name", "hosting", "segment", "vpn_csr"))
        hosting = r.choice(d, "hosting", path, HOSTINGS)
        segment = d.get("segment")
        if hosting == "nectar" and not segment:
            r.problem(f"{path}.segment", "is required for a Nectar-hosted organisation (its own network segment)")
        if hosting == "on_premises" and segment:
            r.problem(f"{path}.segment", "an on-premises organisation has no Nectar segment (it connects over the VPN)")
        csr = d.get("vpn_csr")
        if csr is not None:
            _check_csr(r, csr, f"{path}.vpn_csr", name)
            if hosting != "on_premises":
                r.problem(f"{path}.vpn_csr", "only an on-premises organisation connects over the VPN")
        orgs[name] = Organisation(name, r.string(d, "display_name", path, name), hosting, segment or None, csr or None)
    return orgs


def _parse_federations(r: _Reader, raw: Any, hosts: Mapping[str, Host], orgs: Mapping[str, Organisation]) -> dict[str, Federation]:
    p = "nina:federations"
    feds: dict[str, Federation] = {}
    keys_seen: dict[str, str] = {}
    superlinks_taken: dict[str, str] = {}
    vpns_taken: dict[str, str] = {}
    host_ports: dict[tuple[str, int], str] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(
            body,
            path,
            ("type", "superlink_host", "vpn_host", "vpn_client_range", "isolation", "num_partitions", "runtime_dependency_installation", "archived", "archived_membership", "simulation", "members", "revoked"),
        )
        ftype = r.choice(d, "type", path, FEDERATION_TYPES)
        superlink = _host_with_role(r, d, "superlink_host", path, hosts, "superlink")
        if superlink:
            if superlink in superlinks_taken:
                r.problem(f"{path}.superlink_host", f"{superlink} already serves federation {superlinks_taken[superlink]} (one SuperLink per tenancy)")
            superlinks_taken[superlink] = name
        vpn = _host_with_role(r, d, "vpn_host", path, hosts, "vpn") if "vpn_host" in d else None
        if vpn:
            if vpn in vpns_taken:
                r.problem(f"{path}.vpn_host", f"{vpn} already serves federation {vpns_taken[vpn]} (one OpenVPN server per tenancy)")
            vpns_taken[vpn] = name
        vpn_range = None
        if vpn:
            vpn_range = r.network(r.required(d, "vpn_client_range", path), f"{path}.vpn_client_range") if "vpn_client_range" in d else None
            if "vpn_client_range" not in d:
                r.problem(f"{path}.vpn_client_range", "is required with vpn_host (the tenancy's VPN address pool)")
            elif vpn_range is not None and vpn_range.prefixlen > 28:
                # Split into UDP and TCP halves, each with the server's address and one per organisation.
                r.problem(f"{path}.vpn_client_range", f"{vpn_range} is too small (use /28 or larger)")
        elif "vpn_client_range" in d:
            r.problem(f"{path}.vpn_client_range", "is set but the federation has no vpn_host")
        revoked = _parse_revoked(r, d.get("revoked"), f"{path}.revoked")
        if revoked and not vpn:
            r.problem(f"{path}.revoked", "lists VPN certificates but the federation has no vpn_host")
        members = r.mapping(d.get("members"), f"{path}.members")
        sim = r.mapping(d.get("simulation"), f"{path}.simulation", ("supernodes",))
        supernodes: list[SuperNode] = []
        sn_paths: list[str] = []  # key path of each SuperNode, parallel to `supernodes`
        if ftype == "simulation":
            if members:
                r.problem(f"{path}.members", "a simulation federation has no real SuperNodes")
            if vpn:
                r.problem(f"{path}.vpn_host", "a simulation federation needs no VPN")
            sim_nodes = r.integer(sim, "supernodes", f"{path}.simulation", minimum=1)
        else:
            sim_nodes = 0
            if sim:
                r.problem(f"{path}.simulation", "only a simulation federation has simulated SuperNodes")
            if not members:
                r.problem(f"{path}.members", "is required (at least one member organisation with SuperNodes)")
            for org, org_path, mbody in r.each(members, f"{path}.members"):
                organisation = orgs.get(org)
                if organisation is None:
                    r.problem(org_path, f"{org!r} is not an organisation in nina:organisations")
                md = r.mapping(mbody, org_path, ("supernodes",))
                raw_nodes = md.get("supernodes")
                if not isinstance(raw_nodes, list) or not raw_nodes:
                    r.problem(f"{org_path}.supernodes", "is required (a non-empty list)")
                    continue
                for i, nbody in enumerate(raw_nodes):
                    sn_path = f"{org_path}.supernodes[{i}]"
                    supernodes.append(_parse_supernode(r, nbody, sn_path, org, organisation, hosts, keys_seen, host_ports))
                    sn_paths.append(sn_path)
            if vpn is None and any(orgs[o].hosting == "on_premises" for o in members if o in orgs):
                r.problem(f"{path}.vpn_host", "is required: an on-premises member reaches the SuperLink only through the tenancy's VPN")
        for sn in supernodes:
            if any(o.name == sn.name for o in supernodes if o is not sn):
                r.problem(f"{path}.members", f"SuperNode name {sn.name!r} is used twice in this federation")
                break
        num = r.integer(d, "num_partitions", path, default=max(len(supernodes), sim_nodes, 1), minimum=1)
        if ftype == "deployment" and num < len(supernodes):
            r.problem(f"{path}.num_partitions", f"{num} is less than the {len(supernodes)} SuperNodes of this federation")
        seen_partitions: dict[int, str] = {}
        for sn, sn_path in zip(supernodes, sn_paths):
            where = f"{sn_path}.partition_id"
            if sn.partition_id >= num:
                r.problem(where, f"{sn.partition_id} must be less than num_partitions ({num})")
            if sn.partition_id in seen_partitions:
                r.problem(where, f"{sn.partition_id} is already used by SuperNode {seen_partitions[sn.partition_id]}")
            seen_partitions.setdefault(sn.partition_id, sn.name)
        _check_archived(r, d, path, name, supernodes)
        feds[name] = Federation(
            name=name,
            type=ftype,
            superlink_host=superlink or "",
            vpn_host=vpn,
            vpn_client_range=vpn_range,
            isolation=r.choice(d, "isolation", path, ISOLATION_MODES, "subprocess"),
            num_partitions=num,
            runtime_dependency_installation=r.boolean(d, "runtime_dependency_installation", path, False),
            archived=r.boolean(d, "archived", path, False),
            simulation_supernodes=sim_nodes,
            supernodes=tuple(supernodes),
            revoked=revoked,
        )
    for host in hosts.values():
        if host.has("superlink") and host.name not in superlinks_taken:
            r.problem(f"nina:hosts.{host.name}.roles", "carries superlink but no federation in nina:federations uses it")
        if host.has("supernode") and not any(h == host.name for h, _ in host_ports):
            r.problem(f"nina:hosts.{host.name}.roles", "carries supernode but no SuperNode in nina:federations runs on it")
    return feds


def _parse_revoked(r: _Reader, raw: Any, path: str) -> tuple[Revocation, ...]:
    """`revoked: [{organisation, serial, reason}]`: serials stay listed after the organisation leaves the stack."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.problem(path, "must be a list of {organisation, serial, reason}")
        return ()
    out: list[Revocation] = []
    for i, body in enumerate(raw):
        p = f"{path}[{i}]"
        d = r.mapping(body, p, ("organisation", "serial", "reason"))
        org = r.string(d, "organisation", p)
        if org:
            r.name(org, f"{p}.organisation")
        text = d.get("serial")
        serial = 0
        try:
            digits = str(text).strip().lower().removeprefix("0x").replace(":", "")
            serial = int(digits, 16) if isinstance(text, str) and digits else -1
        except ValueError:
            serial = -1
        if serial <= 0:
            r.problem(f"{p}.serial", f"{text!r} must be the certificate serial in hex, as `openssl x509 -noout -serial` prints it (quoted)")
        elif any(x.serial == serial for x in out):
            r.problem(f"{p}.serial", "is listed twice")
        out.append(Revocation(org, serial, r.string(d, "reason", p, "unspecified")))
    return tuple(out)


def membership_fingerprint(supernodes: Iterable[SuperNode]) -> str:
    """What an archived federation freezes: its members, their SuperNodes, partitions, keys and hosts."""
    rows = sorted(f"{sn.organisation}/{sn.name}/{sn.partition_id}/{sn.public_key or GENERATE}/{sn.host or ''}" for sn in supernodes)
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _check_archived(r: _Reader, d: dict[str, Any], path: str, name: str, supernodes: list[SuperNode]) -> None:
    """`archived: true` freezes membership. The config has no history, so the stack file records what was frozen
    (`archived_membership`, a fingerprint of the lists) and any later change to the lists is an error."""
    now = membership_fingerprint(supernodes)
    recorded = d.get("archived_membership")
    if d.get("archived") is True:
        if recorded is None:
            r.problem(f"{path}.archived_membership", f"is required with archived: true: it freezes the member and SuperNode lists; set it to {now!r} (the lists as they are now)")
        elif recorded != now:
            r.problem(
                f"{path}.members",
                f"federation {name} is archived: its member and SuperNode lists may no longer change (they now give {now}, "
                f"archived_membership records {recorded}); set archived: false first to change them",
            )
    elif recorded is not None:
        r.problem(f"{path}.archived_membership", "is only meaningful with archived: true")


def _host_with_role(r: _Reader, d: dict[str, Any], key: str, path: str, hosts: Mapping[str, Host], role: str) -> str | None:
    name = r.string(d, key, path)
    if not name:
        return None
    if name not in hosts:
        r.problem(f"{path}.{key}", f"{name!r} is not a host in nina:hosts")
        return None
    if not hosts[name].has(role):
        r.problem(f"{path}.{key}", f"host {name!r} does not carry the {role!r} role")
        return None
    return name


def _parse_supernode(
    r: _Reader,
    body: Any,
    path: str,
    org: str,
    organisation: Organisation | None,
    hosts: Mapping[str, Host],
    keys_seen: dict[str, str],
    host_ports: dict[tuple[str, int], str],
) -> SuperNode:
    d = r.mapping(body, path, ("name", "partition_id", "public_key", "host", "port", "node_config"))
    name = r.string(d, "name", path)
    if name:
        r.name(name, f"{path}.name")
    key = r.string(d, "public_key", path)
    public_key: str | None = None
    if key == GENERATE:
        if organisation is not None and organisation.hosting != "nectar":
            r.problem(f"{path}.public_key", "'generate' is only for Nectar-hosted SuperNodes: an on-premises site creates its own key pair and sends the public key")
    elif key:
        public_key = " ".join(key.split()[:2])  # drop the comment: it is not part of the identity
        _check_ssh_public_key(r, key, f"{path}.public_key", SUPERNODE_KEY_CURVES)
        if public_key in keys_seen:
            r.problem(f"{path}.public_key", f"the same key is already registered for {keys_seen[public_key]}")
        keys_seen[public_key] = path
    host = d.get("host")
    if organisation is not None and organisation.hosting == "nectar":
        if not host:
            r.problem(f"{path}.host", "is required for a Nectar-hosted SuperNode (the host in the organisation's segment)")
        elif host not in hosts:
            r.problem(f"{path}.host", f"{host!r} is not a host in nina:hosts")
        elif not hosts[host].has("supernode"):
            r.problem(f"{path}.host", f"host {host!r} does not carry the 'supernode' role")
        elif hosts[host].segment != organisation.segment:
            r.problem(f"{path}.host", f"host {host!r} is not in {org}'s segment {organisation.segment!r}")
    elif host:
        r.problem(f"{path}.host", "an on-premises SuperNode runs at the site, not on a Nectar host")
    port = r.integer(d, "port", path, default=SUPERNODE_PORTS[0], minimum=0)
    if not SUPERNODE_PORTS[0] <= port <= SUPERNODE_PORTS[1]:
        r.problem(f"{path}.port", f"{port} is outside the SuperNode range {SUPERNODE_PORTS[0]}-{SUPERNODE_PORTS[1]} (§3.3.1)")
    if isinstance(host, str) and host:
        if (host, port) in host_ports:
            r.problem(f"{path}.port", f"{port} on host {host} is already used by SuperNode {host_ports[(host, port)]}; give each SuperNode on a host its own port")
        host_ports.setdefault((host, port), name)
    node_config = r.mapping(d.get("node_config"), f"{path}.node_config")
    clean: dict[str, str] = {}
    for k, v in node_config.items():
        if k in ("partition-id", "num-partitions") or not _NODE_CONFIG_KEY.match(k):
            r.problem(f"{path}.node_config.{k}", "is reserved or not a valid node-config key")
        elif isinstance(v, bool) or not isinstance(v, (str, int, float)) or (isinstance(v, str) and (" " in v or "=" in v or '"' in v)):
            r.problem(f"{path}.node_config.{k}", f"{v!r} must be a number or a string without spaces, '=' or quotes")
        else:
            clean[k] = str(v)
    return SuperNode(
        name=name,
        organisation=org,
        partition_id=r.integer(d, "partition_id", path),
        public_key=public_key,
        host=host if isinstance(host, str) and host else None,
        port=port,
        node_config=clean,
    )


# PostgreSQL majors with a pg_dump in PGDG's apt repository for Ubuntu 24.04 (what the backup hosts install).
PG_MAJORS = range(13, 19)


def _parse_database(r: _Reader, raw: Any) -> Database:
    p = "nina:database"
    d = r.mapping(raw, p, ("flavor", "size_gb", "datastore_version", "backup"))
    version = r.string(d, "datastore_version", p, "17")
    if not re.fullmatch(r"\d+(\.\d+)?", version) or int(version.split(".")[0]) not in PG_MAJORS:
        r.problem(f"{p}.datastore_version", f"{version!r} is not a PostgreSQL version the backups can dump (a major from {PG_MAJORS[0]} to {PG_MAJORS[-1]}, e.g. \"17\")")
        version = "17"
    b = r.mapping(d.get("backup", {}), f"{p}.backup", ("schedule", "keep"))
    return Database(
        r.string(d, "flavor", p),
        r.integer(d, "size_gb", p, minimum=1),
        version,
        r.choice(b, "schedule", f"{p}.backup", tuple(SCHEDULES), "monthly"),
        r.integer(b, "keep", f"{p}.backup", 12, minimum=1),
    )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


def _parse_monitoring(r: _Reader, raw: Any, secret_given: bool) -> Monitoring:
    p = "nina:monitoring"
    if raw is None:
        if secret_given:
            r.problem(f"{NAMESPACE}:smtp_password", f"is set but {p}.smtp_username is not")
        return Monitoring()
    d = r.mapping(raw, p, ("alert_email", "smarthost", "email_from", "smtp_username"))
    emails = r.strings(d, "alert_email", p)
    for i, address in enumerate(emails):
        if not _EMAIL.match(address):
            r.problem(f"{p}.alert_email[{i}]", f"{address!r} is not an email address")
    smarthost = r.string(d, "smarthost", p)
    host, _, port = smarthost.rpartition(":")
    if smarthost and (not host or not port.isdigit()):
        r.problem(f"{p}.smarthost", f"{smarthost!r} must be host:port (e.g. smtp.example.edu.au:587)")
    sender = r.string(d, "email_from", p, default="")  # default: alertmanager@<public_domain>
    if sender and not _EMAIL.match(sender):
        r.problem(f"{p}.email_from", f"{sender!r} is not an email address")
    user = d.get("smtp_username")
    if user is not None and not isinstance(user, str):
        r.problem(f"{p}.smtp_username", "must be a string")
    if user and not secret_given:
        r.problem(f"{p}.smtp_username", f"needs its password: pulumi config set --secret {NAMESPACE}:smtp_password")
    if secret_given and not user:
        r.problem(f"{NAMESPACE}:smtp_password", f"is set but {p}.smtp_username is not")
    return Monitoring(tuple(emails), smarthost, sender, user or None)


def _check_cross(
    r: _Reader,
    cfg_hosts: Mapping[str, Host],
    admin: Admin,
    orgs: Mapping[str, Organisation],
    network: Network,
    federations: Mapping[str, Federation],
) -> None:
    ranges = [(f"nina:network.segments.{s.name}", s.cidr) for s in network.segments.values()]
    ranges += [(f"nina:federations.{f.name}.vpn_client_range", f.vpn_client_range) for f in federations.values() if f.vpn_client_range]
    for i, (path_a, a) in enumerate(ranges):
        for path_b, b in ranges[i + 1 :]:
            if a.overlaps(b):
                r.problem(path_b, f"{b} overlaps {path_a} ({a})")
    if admin.jump_host:
        jump = cfg_hosts.get(admin.jump_host)
        if jump is None:
            r.problem("nina:admin.jump_host", f"{admin.jump_host!r} is not a host in nina:hosts")
        elif not jump.public_facing:
            r.problem("nina:admin.jump_host", f"host {admin.jump_host!r} has no floating IP (give it the ingress or vpn role)")
    for org in orgs.values():
        if org.segment and org.segment not in network.segments:
            r.problem(f"nina:organisations.{org.name}.segment", f"{org.segment!r} is not a segment in nina:network.segments")


KNOWN_KEYS = ("environment", "cloud", "admin", "dns", "network", "hosts", "organisations", "federations", "database", "monitoring")
# Secrets the program reads (`pulumi config set --secret nina:<key>`). Required ones must be set before
# `pulumi up`; optional ones are generated (random) when absent.
REQUIRED_SECRETS: tuple[str, ...] = ("ssh_private_key",)  # the operators' key pulumi-command connects with
OPTIONAL_SECRETS: tuple[str, ...] = ("keycloak_admin_password", "grafana_admin_password", "smtp_password")
SECRET_KEYS: tuple[str, ...] = REQUIRED_SECRETS + OPTIONAL_SECRETS


def parse(raw: Mapping[str, Any], secret_keys: tuple[str, ...] = SECRET_KEYS) -> StackConfig:
    """Validate the whole `nina:` namespace; raise ConfigError listing every problem."""
    r = _Reader()
    for full_key in raw:
        ns, _, key = full_key.partition(":")
        if ns == NAMESPACE and key not in KNOWN_KEYS and key not in secret_keys:
            r.problem(full_key, f"unknown key (expected one of: {', '.join(KNOWN_KEYS + secret_keys)})")
    environment = _decode(raw, "environment")
    if not isinstance(environment, str) or not environment:
        r.problem("nina:environment", "is required (e.g. test, uat)")
        environment = ""
    else:
        r.name(environment, "nina:environment")
    cloud = _parse_cloud(r, _decode(raw, "cloud"))
    admin = _parse_admin(r, _decode(raw, "admin"))
    dns = _parse_dns(r, _decode(raw, "dns"))
    orgs = _parse_organisations(r, _decode(raw, "organisations"))
    network = _parse_network(r, _decode(raw, "network"), orgs)
    hosts = _parse_hosts(r, _decode(raw, "hosts"), network)
    federations = _parse_federations(r, _decode(raw, "federations"), hosts, orgs)
    database = _parse_database(r, _decode(raw, "database"))
    monitoring = _parse_monitoring(r, _decode(raw, "monitoring"), f"{NAMESPACE}:smtp_password" in raw)
    _check_cross(r, hosts, admin, orgs, network, federations)
    if r.problems:
        raise ConfigError(r.problems)
    for key in REQUIRED_SECRETS:
        if f"{NAMESPACE}:{key}" not in raw:
            r.problem(f"{NAMESPACE}:{key}", f"is required: pulumi config set --secret {NAMESPACE}:{key} ...")
    if r.problems:
        raise ConfigError(r.problems)
    present = tuple(k for k in secret_keys if f"{NAMESPACE}:{k}" in raw)
    return StackConfig(environment, cloud, admin, dns, network, hosts, orgs, federations, database, {k: k for k in present}, monitoring)


def load() -> StackConfig:
    """Read every `nina:` key the running Pulumi program was given (unknown keys are errors too)."""
    from pulumi.runtime.config import CONFIG, get_config_env

    # The language host passes config in PULUMI_CONFIG; set_all_config (mocks) fills CONFIG.
    given = {**get_config_env(), **CONFIG.get()}
    raw = {k: v for k, v in given.items() if k.startswith(f"{NAMESPACE}:")}
    return parse(raw)
