"""Parsing and validating the `nina:` namespace: `parse()` turns the raw keys Pulumi hands the program into the
typed model (nina/config/model.py) or raises `ConfigError` carrying one message per problem, each naming the key
path (`nina:hosts.hub.ip`) and what is wrong. Nothing is registered before this has passed.

The sections with most rules have their own modules: the topology (segments, hosts, organisations) and the
federations.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from nina.catalog.databases import (
    NECTAR_AUTH_URL,
    OFFSITE_DAYS,
    PG_MAJORS,
    SCHEDULES,
    SUPERLINK_KEEP,
    SUPERLINK_MAX_AGE_DAYS,
    SUPERLINK_OFFSITE_DAYS,
)
from nina.catalog.roles import CREDENTIALS
from nina.config.federations import parse_federations
from nina.config.model import (
    Admin,
    Cloud,
    DatabaseSettings,
    Dns,
    Federation,
    Host,
    Monitoring,
    NetworkSettings,
    NotebookLimits,
    Organisation,
    Person,
    Smtp,
    StackConfig,
)
from nina.config.reader import DOMAIN, EMAIL, LINUX_USER, NAMESPACE, TEXT, ConfigError, Reader, decode, show
from nina.config.topology import parse_hosts, parse_network, parse_organisations


ADMIN_PREFIX_MIN = 8
SMTP_USER = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


def _parse_cloud(r: Reader, raw: Any) -> Cloud:
    p = "nina:cloud"
    d = r.mapping(raw, p, ("availability_zone", "external_network", "image", "dns_nameservers", "auth_url", "object_store_region"))
    nameservers = r.strings(d, "dns_nameservers", p, required=False)
    for i, ns in enumerate(nameservers):
        try:
            ipaddress.ip_address(ns)
        except ValueError:
            r.problem(f"{p}.dns_nameservers[{i}]", f"{ns!r} is not an IP address")
    return Cloud(
        availability_zone=r.text(d, "availability_zone", p),
        external_network=r.text(d, "external_network", p),
        image=r.text(d, "image", p),
        dns_nameservers=tuple(nameservers),
        auth_url=_auth_url(r, d, p),
        object_store_region=_region(r, d, p),
    )


# Keystone's URL reaches the backup hosts' credentials files and the swift client: https, a host, a path; nothing
# a shell or an env file would read differently.
AUTH_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _auth_url(r: Reader, d: dict[str, Any], p: str) -> str:
    url = r.string(d, "auth_url", p, NECTAR_AUTH_URL)
    r.matches(url, AUTH_URL, f"{p}.auth_url", "an https:// URL of Keystone (the openrc file's OS_AUTH_URL)")
    return url


def _region(r: Reader, d: dict[str, Any], p: str) -> str | None:
    if "object_store_region" not in d:
        return None
    region = r.string(d, "object_store_region", p)
    r.matches(region, REGION, f"{p}.object_store_region", "an OpenStack region name")
    return region


def _parse_admin(r: Reader, raw: Any) -> Admin:
    p = "nina:admin"
    d = r.mapping(raw, p, ("ssh_cidrs", "ssh_public_keys", "ssh_user", "jump_host", "delivery_public_key"))
    cidrs = []
    for i, c in enumerate(r.strings(d, "ssh_cidrs", p)):
        net = r.network(c, f"{p}.ssh_cidrs[{i}]")
        if net is not None and net.prefixlen < ADMIN_PREFIX_MIN:
            # 0.0.0.0/1 + 128.0.0.0/1 is the whole internet too: an operators' network is an institution's, not a continent.
            r.problem(f"{p}.ssh_cidrs[{i}]", f"{net} is too wide for the operators' networks (a prefix of /{ADMIN_PREFIX_MIN} or longer)")
        if net is not None:
            cidrs.append(net)
    keys = r.strings(d, "ssh_public_keys", p)
    for i, k in enumerate(keys):
        r.ssh_public_key(k, f"{p}.ssh_public_keys[{i}]")
    user = r.string(d, "ssh_user", p, "ubuntu")
    if user:
        r.matches(user, LINUX_USER, f"{p}.ssh_user", "a Linux user name (lowercase letters, digits, '_' and '-', max 32)")
    # The key pulumi's delivery connects with (nina:ssh_private_key's public half), named on its own: the only key
    # in user-data, so adding, removing or reordering operators' keys never touches a VM.
    delivery = r.string(d, "delivery_public_key", p)
    if delivery:
        r.ssh_public_key(delivery, f"{p}.delivery_public_key")
    return Admin(tuple(cidrs), tuple(k.strip() for k in keys), user, r.string(d, "jump_host", p), delivery.strip())


def _check_delivery_key(r: Reader, admin: Admin, private_key: Any) -> None:
    """The delivery key in user-data must be the one pulumi connects with, or no delivery ever reaches the VMs. Only
    checkable where the secret is given in clear (pulumi up; offline previews hold a placeholder)."""
    if not isinstance(private_key, str) or "PRIVATE KEY" not in private_key or not admin.delivery_public_key:
        return
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_ssh_private_key(private_key.encode(), password=None)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(private_key.encode(), password=None)  # type: ignore[assignment]
        except (ValueError, TypeError):
            r.problem(f"{NAMESPACE}:ssh_private_key", "is not an unencrypted OpenSSH or PEM private key")
            return
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    if admin.delivery_public_key.split()[:2] != public.split()[:2]:
        r.problem(f"{NAMESPACE}:admin.delivery_public_key", "is not the public half of nina:ssh_private_key: the delivery could not log in to any VM")


def _parse_dns(r: Reader, raw: Any) -> Dns:
    p = "nina:dns"
    d = r.mapping(raw, p, ("public_domain", "internal_domain", "public_zone", "acme_email"))
    zone = r.string(d, "public_zone", p, "").rstrip(".") or None
    email = r.string(d, "acme_email", p, "") or None
    dns = Dns(r.string(d, "public_domain", p), r.string(d, "internal_domain", p), zone, email)
    for key, value in (("public_domain", dns.public_domain), ("internal_domain", dns.internal_domain), ("public_zone", zone)):
        if value:
            r.matches(value, DOMAIN, f"{p}.{key}", "a valid DNS domain")
    if zone and dns.public_domain and dns.public_domain != zone and not dns.public_domain.endswith(f".{zone}"):
        r.problem(f"{p}.public_zone", f"{zone!r} does not contain public_domain {dns.public_domain!r}, so it cannot hold its records")
    if email:
        r.matches(email, EMAIL, f"{p}.acme_email", "an email address")
    return dns



def _parse_database(r: Reader, raw: Any) -> DatabaseSettings:
    p = "nina:database"
    d = r.mapping(raw, p, ("flavor", "size_gb", "datastore_version", "backup"))
    version = r.string(d, "datastore_version", p, "17")
    if not re.fullmatch(r"\d+(\.\d+)?", version) or int(version.split(".")[0]) not in PG_MAJORS:
        r.problem(f"{p}.datastore_version", f"{version!r} is not a PostgreSQL version the backups can dump (a major from {PG_MAJORS[0]} to {PG_MAJORS[-1]}, e.g. \"17\")")
        version = "17"
    b = r.mapping(d.get("backup", {}), f"{p}.backup", ("schedule", "keep", "offsite_days", "superlink_keep", "superlink_offsite_days", "recipients"))
    schedule = r.choice(b, "schedule", f"{p}.backup", tuple(SCHEDULES), "monthly")
    offsite_days = r.integer(b, "offsite_days", f"{p}.backup", OFFSITE_DAYS, minimum=1)
    superlink_offsite_days = r.integer(b, "superlink_offsite_days", f"{p}.backup", SUPERLINK_OFFSITE_DAYS, minimum=1)
    # An off-host copy must outlive the interval to the next one, or the container holds none in between.
    for key, days, interval, what in (
        ("offsite_days", offsite_days, SCHEDULES.get(schedule, 35), f"the {schedule} schedule"),
        ("superlink_offsite_days", superlink_offsite_days, SUPERLINK_MAX_AGE_DAYS, "the daily SuperLink snapshots"),
    ):
        if not isinstance(b.get(key, days), int) or days < 1:
            continue  # already reported as not an integer, or below 1
        if days < interval:
            r.problem(f"{p}.backup.{key}", f"{days} days is shorter than {what} allows ({interval} days): the container would hold no copy between backups")
        if days > MAX_OFFSITE_DAYS:
            r.problem(f"{p}.backup.{key}", f"{days} days is more than {MAX_OFFSITE_DAYS} (ten years)")
    # Every stack has hosts that copy backups off (the Keycloak host's dumps at least), so the keys are required.
    recipients = r.strings(b, "recipients", f"{p}.backup")
    for i, key in enumerate(recipients):
        r.matches(key, AGE_RECIPIENT, f"{p}.backup.recipients[{i}]", "an age X25519 public key (age1..., from age-keygen; its private half stays off the platform)")
    if len(set(recipients)) != len(recipients):
        r.problem(f"{p}.backup.recipients", "lists a key twice")
    return DatabaseSettings(
        r.text(d, "flavor", p, maximum=64),
        r.integer(d, "size_gb", p, minimum=1),
        version,
        schedule,
        r.integer(b, "keep", f"{p}.backup", 12, minimum=1),
        offsite_days,
        r.integer(b, "superlink_keep", f"{p}.backup", SUPERLINK_KEEP, minimum=1),
        superlink_offsite_days,
        tuple(recipients),
    )


MAX_OFFSITE_DAYS = 3650
# age's X25519 recipient: "age1" and 58 characters of bech32's alphabet (no 1, b, i, o).
AGE_RECIPIENT = re.compile(r"age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}")



def _parse_monitoring(r: Reader, raw: Any, webhook: bool) -> Monitoring:
    p = "nina:monitoring"
    if raw is None:
        return Monitoring(webhook=webhook)
    d = r.mapping(raw, p, ("alert_email", "test_stack"))
    emails = r.strings(d, "alert_email", p, required=False)
    for i, address in enumerate(emails):
        r.matches(address, EMAIL, f"{p}.alert_email[{i}]", "an email address")
    return Monitoring(tuple(emails), webhook, r.boolean(d, "test_stack", p, False))


def _check_alert_route(r: Reader, monitoring: Monitoring, smtp: Smtp) -> None:
    """Alerts must reach a person (§5.3): mail through a relay, or a webhook; only a test stack may say none."""
    if monitoring.alert_email and not smtp.configured:
        r.problem(f"{NAMESPACE}:smtp.host", "is required to mail nina:monitoring.alert_email (no relay listens on localhost:25)")
    if not monitoring.configured and not monitoring.test_stack:
        r.problem(
            f"{NAMESPACE}:monitoring",
            "alerts would reach nobody: set alert_email (with nina:smtp), or the secret nina:alert_webhook_url "
            "(pulumi config set --secret); a test stack says test_stack: true",
        )


SMTP_HOST = re.compile(r"([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}")


def _parse_smtp(r: Reader, raw: Any, secret_given: bool) -> Smtp:
    p = "nina:smtp"
    if raw is None:
        if secret_given:
            r.problem(f"{NAMESPACE}:smtp_password", f"is set but {p}.username is not")
        return Smtp()
    d = r.mapping(raw, p, ("host", "port", "from", "username"))
    host = r.string(d, "host", p)
    if host and not SMTP_HOST.fullmatch(host):
        r.problem(f"{p}.host", f"{show(host)} must be a host name (e.g. smtp.example.edu.au)")
    port = r.integer(d, "port", p, default=587, minimum=1)
    if port > 65535:
        r.problem(f"{p}.port", f"{port} is not a port")
    sender = r.string(d, "from", p, default="")
    if sender:
        r.matches(sender, EMAIL, f"{p}.from", "an email address")
    user = d.get("username")
    if user is not None and not isinstance(user, str):
        r.problem(f"{p}.username", "must be a string")
    elif user:
        r.matches(user, SMTP_USER, f"{p}.username", "an SMTP user name (letters, digits and ._@+-, max 128)")
    if user and not secret_given:
        r.problem(f"{p}.username", f"needs its password: pulumi config set --secret {NAMESPACE}:smtp_password")
    if secret_given and not user:
        r.problem(f"{NAMESPACE}:smtp_password", f"is set but {p}.username is not")
    return Smtp(host or "localhost", port, sender, user if isinstance(user, str) and user else None)


# Keycloak and JupyterHub user names: Keycloak lowercases them; JupyterHub escapes anything outside [a-z0-9].
USERNAME = re.compile(r"[a-z][a-z0-9._-]{0,62}")
# A person's name as Keycloak shows it: letters of any script, spaces, apostrophes, hyphens and dots.
PERSON_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '.-]){0,126}")
ROLES_OF_PEOPLE = ("researcher", "admin")


def _parse_people(r: Reader, raw: Any, federations: Mapping[str, Federation]) -> dict[str, Person]:
    p = "nina:people"
    people: dict[str, Person] = {}
    emails: dict[str, str] = {}
    for username, path, body in r.each(r.mapping(raw, p), p):
        if not USERNAME.fullmatch(username):
            r.problem(path, "is not a valid user name (a lowercase letter, then up to 62 of a-z 0-9 . _ -)")
        d = r.mapping(body, path, ("name", "email", "role", "federations"))
        name = r.string(d, "name", path)
        if name and not PERSON_NAME.fullmatch(name):
            r.problem(f"{path}.name", f"{show(name)} must be letters, spaces, apostrophes, hyphens and dots (up to 127)")
        email = r.string(d, "email", path)
        if email:
            r.matches(email, EMAIL, f"{path}.email", "an email address")
            if email.lower() in emails:
                r.problem(f"{path}.email", f"{email} is already the address of {emails[email.lower()]} (Keycloak needs one person per address)")
            emails.setdefault(email.lower(), username)
        role = r.choice(d, "role", path, ROLES_OF_PEOPLE, "researcher")
        feds = r.strings(d, "federations", path, required=False)
        for i, fed in enumerate(feds):
            if fed not in federations:
                r.problem(f"{path}.federations[{i}]", f"{show(fed)} is not a federation in nina:federations")
        if role == "admin" and feds:
            r.problem(f"{path}.federations", "an admin reaches every federation: leave it out")
        people[username] = Person(username, name, email, role == "admin", tuple(dict.fromkeys(feds)))
    return people


MEMORY = re.compile(r"[1-9][0-9]{0,5}[MG]")


def _parse_notebook(r: Reader, raw: Any) -> NotebookLimits:
    p = "nina:notebook"
    if raw is None:
        return NotebookLimits()
    d = r.mapping(raw, p, ("memory", "cpus", "pids"))
    default = NotebookLimits()
    memory = r.string(d, "memory", p, default.memory)
    if memory and not MEMORY.fullmatch(memory):
        r.problem(f"{p}.memory", f"{show(memory)} must be a number of megabytes or gigabytes, like 512M or 4G")
    cpus = d.get("cpus", default.cpus)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not 0.1 <= cpus <= 256:
        r.problem(f"{p}.cpus", f"{show(cpus)} must be a number of CPUs from 0.1 to 256")
        cpus = default.cpus
    pids = r.integer(d, "pids", p, default=default.pids, minimum=64)
    if pids > 1_000_000:
        r.problem(f"{p}.pids", f"{pids} is more processes than a container should run (at most 1000000)")
    return NotebookLimits(memory or default.memory, float(cpus), pids)


def _check_cross(
    r: Reader,
    cfg_hosts: Mapping[str, Host],
    admin: Admin,
    orgs: Mapping[str, Organisation],
    network: NetworkSettings,
    federations: Mapping[str, Federation],
) -> None:
    ranges = [(f"nina:network.segments.{s.name}", s.cidr) for s in network.segments.values()]
    ranges += [(f"nina:federations.{f.name}.vpn_client_range", f.vpn_client_range) for f in federations.values() if f.vpn_client_range]
    for i, (path_a, a) in enumerate(ranges):
        for path_b, b in ranges[i + 1 :]:
            if a.overlaps(b):
                r.problem(path_b, f"{b} overlaps {path_a} ({a})")
    for i, cidr in enumerate(admin.ssh_cidrs):
        # The operators' networks are outside Nectar: inside, they would open SSH and the admin paths to a segment.
        for path, net in ranges:
            if cidr.overlaps(net):
                r.problem(f"nina:admin.ssh_cidrs[{i}]", f"{cidr} overlaps {path} ({net}): operators' networks lie outside the platform")
    if admin.jump_host:
        jump = cfg_hosts.get(admin.jump_host)
        if jump is None:
            r.problem("nina:admin.jump_host", f"{admin.jump_host!r} is not a host in nina:hosts")
        elif not jump.public_facing:
            r.problem("nina:admin.jump_host", f"host {admin.jump_host!r} has no floating IP (give it the ingress or vpn role)")
    for org in orgs.values():
        if org.segment and org.segment not in network.segments:
            r.problem(f"nina:organisations.{org.name}.segment", f"{org.segment!r} is not a segment in nina:network.segments")
        for fed_name in org.vpn_certificate_shipped:
            fed = federations.get(fed_name)
            if fed is None or not fed.vpn_host or org.name not in fed.organisations:
                r.problem(
                    f"nina:organisations.{org.name}.vpn_certificate_shipped.{fed_name}",
                    f"{org.name} has no VPN certificate for {fed_name!r} (not a federation with a VPN it is a member of)",
                )


# An operator-chosen password lands unquoted in a systemd EnvironmentFile= (and a Java properties lookup): these
# characters need no quoting in either. Generated ones are letters and digits.
PASSWORD = re.compile(r"[A-Za-z0-9!%*+,./:=?@^_~-]{12,128}")
PASSWORD_KEYS = tuple(c.config_key for c in CREDENTIALS if c.config_key)


def _check_secret_values(r: Reader, raw: Mapping[str, Any]) -> None:
    """The secrets an operator sets: checked by shape, never echoed."""
    for key in PASSWORD_KEYS:
        value = raw.get(f"{NAMESPACE}:{key}")
        if value is not None and not (isinstance(value, str) and PASSWORD.fullmatch(value)):
            r.problem(f"{NAMESPACE}:{key}", "must be 12 to 128 characters of A-Z a-z 0-9 and !%*+,./:=?@^_~- (it lands in an EnvironmentFile)")
    smtp = raw.get(f"{NAMESPACE}:smtp_password")
    if smtp is not None and not (isinstance(smtp, str) and 0 < len(smtp) <= 256 and TEXT.fullmatch(smtp)):
        r.problem(f"{NAMESPACE}:smtp_password", "must be one line of printable text, at most 256 characters")
    webhook = raw.get(f"{NAMESPACE}:alert_webhook_url")
    if webhook is not None and not (isinstance(webhook, str) and len(webhook) <= 2048 and WEBHOOK.fullmatch(webhook)):
        r.problem(f"{NAMESPACE}:alert_webhook_url", "must be an https:// URL of at most 2048 characters, without spaces or quotes")


KNOWN_KEYS = (
    "environment", "cloud", "admin", "dns", "network", "hosts", "organisations", "federations", "database", "monitoring", "notebook",
    "smtp", "people",
)
# Secrets the program reads (`pulumi config set --secret nina:<key>`). Required ones must be set before
# `pulumi up`; optional ones are generated (random) when absent: the role table's credentials an operator may set,
# the SMTP relay's password (with nina:smtp.username) and the alert webhook's URL (it carries the channel's token).
REQUIRED_SECRETS: tuple[str, ...] = ("ssh_private_key",)  # the operators' key pulumi-command connects with
OPTIONAL_SECRETS: tuple[str, ...] = PASSWORD_KEYS + ("smtp_password", "alert_webhook_url")
# The webhook's URL goes into alertmanager.yml: any https URL a chat bridge gives (escapes well formed, as
# Alertmanager parses them), nothing that breaks out of one YAML string.
WEBHOOK = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/([A-Za-z0-9._~!$&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?")
SECRET_KEYS: tuple[str, ...] = REQUIRED_SECRETS + OPTIONAL_SECRETS


def parse(raw: Mapping[str, Any], secret_keys: tuple[str, ...] = SECRET_KEYS) -> StackConfig:
    """Validate the whole `nina:` namespace; raise ConfigError listing every problem."""
    r = Reader()
    for full_key in raw:
        ns, _, key = full_key.partition(":")
        if ns == NAMESPACE and key not in KNOWN_KEYS and key not in secret_keys:
            r.problem(full_key, f"unknown key (expected one of: {', '.join(KNOWN_KEYS + secret_keys)})")
    environment = decode(raw, "environment")
    if not isinstance(environment, str) or not environment:
        r.problem("nina:environment", "is required (e.g. test, uat)")
        environment = ""
    else:
        r.name(environment, "nina:environment")
    cloud = _parse_cloud(r, decode(raw, "cloud"))
    admin = _parse_admin(r, decode(raw, "admin"))
    dns = _parse_dns(r, decode(raw, "dns"))
    orgs = parse_organisations(r, decode(raw, "organisations"))
    network = parse_network(r, decode(raw, "network"), orgs)
    hosts = parse_hosts(r, decode(raw, "hosts"), network)
    federations = parse_federations(r, decode(raw, "federations"), hosts, orgs)
    database = _parse_database(r, decode(raw, "database"))
    monitoring = _parse_monitoring(r, decode(raw, "monitoring"), f"{NAMESPACE}:alert_webhook_url" in raw)
    smtp = _parse_smtp(r, decode(raw, "smtp"), f"{NAMESPACE}:smtp_password" in raw)
    _check_alert_route(r, monitoring, smtp)
    people = _parse_people(r, decode(raw, "people"), federations)
    notebook = _parse_notebook(r, decode(raw, "notebook"))
    _check_cross(r, hosts, admin, orgs, network, federations)
    if r.problems:
        raise ConfigError(r.problems)
    for key in REQUIRED_SECRETS:
        if f"{NAMESPACE}:{key}" not in raw:
            r.problem(f"{NAMESPACE}:{key}", f"is required: pulumi config set --secret {NAMESPACE}:{key} ...")
    if r.problems:
        raise ConfigError(r.problems)
    _check_secret_values(r, raw)
    _check_delivery_key(r, admin, raw.get(f"{NAMESPACE}:ssh_private_key"))
    if r.problems:
        raise ConfigError(r.problems)
    present = tuple(k for k in secret_keys if f"{NAMESPACE}:{k}" in raw)
    return StackConfig(
        environment, cloud, admin, dns, network, hosts, orgs, federations, database, {k: k for k in present}, monitoring, notebook, smtp, people
    )
