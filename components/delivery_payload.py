"""What each host receives over SSH after boot: the material that is secret or changes in operation.

One producer per kind of material, each yielding `Deliverable`s for a host; `for_host` concatenates them in a fixed
order (the payload's bytes, and so the plan, depend on it). Paths, owners and units come from the role table and
nina/catalog/layout.py, which the cloud-init templates read too; pure text comes from nina/plan and the templated
files from the fragments' `delivered` lists. Nothing here goes into user-data: components/delivery.py hands the list
to nina-deliver on the host as a secret payload.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pulumi

import cloudinit
from components.database import ManagedPostgres
from components.offsite import OffsiteBackups
from components.pki import Pki
from components.secrets import Secrets
from components.site_certificates import site_certificates_of
from nina.catalog import layout
from nina.catalog.databases import (
    BACKUP_USER,
    SUPERLINK_BACKUP_UNIT,
    SUPERLINK_USER,
    backup_unit,
    credentials_env,
    credentials_pgpass,
    offsite_credentials,
)
from nina.catalog.roles import (
    ROLES,
    SYSTEM_GROUP,
    DatabaseAddress,
    DatabasePassword,
    FromCredential,
    Literal,
    Source,
    env_variables,
)
from nina.config import NAMESPACE, Federation, Host, StackConfig, SuperNode
from nina.onhost import CHECK, JUPYTER_ACCESS, REALM, program_source
from nina.plan import alerts, backups, checklist, flower, notebook, openvpn, scrape


@dataclass(frozen=True)
class Deliverable:
    path: str
    content: pulumi.Input[str]
    owner: str  # user:group
    mode: str  # octal string
    units: tuple[str, ...] = ()  # restarted when this file changes ("reload:<unit>" to reload)


@dataclass(frozen=True)
class Sources:
    """Everything deliverables are made from."""

    cfg: StackConfig
    pki: Pki
    secrets: Secrets
    database: ManagedPostgres
    offsite: OffsiteBackups


def _key_mode(owner: str) -> str:
    # A key owned by its service user is private to it; a root-owned key is shared with the service's group, unless
    # that group is root too (OpenVPN reads its key as root and warns about any group or other access).
    return "0640" if owner.startswith("root:") and owner != "root:root" else "0600"


def operators(src: Sources, host: Host) -> Iterable[Deliverable]:
    """The operators' SSH keys (nina:admin.ssh_public_keys), read by sshd at each login: delivered, so adding or
    removing an operator changes this file alone (README "Deploying for real")."""
    keys = "".join(f"{k}\n" for k in src.cfg.admin.ssh_public_keys)
    yield Deliverable(f"{layout.OPERATOR_KEYS_DIR}/{src.cfg.admin.ssh_user}", keys, "root:root", "0644", ())


def base(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Every host: what follows the tables rather than the host (the base fragment's `delivered`): the log patterns'
    mtail program and its units, and the weekly re-check of the APT repositories' keys."""
    for f in cloudinit.delivered_files(src.cfg, host, "base"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)


def trust(src: Sources, host: Host) -> Iterable[Deliverable]:
    """The local CA for the system trust store (update-ca-certificates also links it at layout.CA_PEM)."""
    units = tuple(u for role in host.roles if (tls := ROLES[role].tls) for u in tls.units)
    yield Deliverable(layout.CA_TRUST_PATH, src.pki.ca_cert_pem, "root:root", "0644", units)


def server_tls(src: Sources, host: Host) -> Iterable[Deliverable]:
    for role in host.roles:
        issued = src.pki.servers.get((host.name, role))
        tls = ROLES[role].tls
        if issued is None or issued.key_pem is None or tls is None:
            continue
        yield Deliverable(tls.cert, issued.cert_pem, tls.owner, "0644", tls.units)
        yield Deliverable(tls.key, issued.key_pem, tls.owner, _key_mode(tls.owner), tls.units)


def _value(src: Sources, source: Source) -> pulumi.Input[str]:
    """Where one variable of a secrets file comes from (the role table's `env`)."""
    db = src.database
    if isinstance(source, Literal):
        return source.value
    if isinstance(source, FromCredential):
        return src.secrets[source.name]
    if isinstance(source, DatabaseAddress):
        return db.address.apply(functools.partial(_format_address, source.template, db.port, source.database))
    assert isinstance(source, DatabasePassword)
    return db.password(source.database)


def _format_address(template: str, port: int, database: str, address: str) -> str:
    return template.format(address=address, port=port, database=database)


def _env_file(values: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    keys = sorted(values)
    return pulumi.Output.all(*(values[k] for k in keys)).apply(lambda vs: "".join(f"{k}={v}\n" for k, v in zip(keys, vs)))


def service_env(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Passwords and tokens as EnvironmentFile= files (read by systemd as root, so root-only), in table order."""
    for role in ROLES.values():
        if host.has(role.name) and role.env is not None:
            values = {var.name: _value(src, var.source) for var in env_variables(role.env)}
            yield Deliverable(role.env.path, pulumi.Output.secret(_env_file(values)), "root:root", "0600", (role.env.unit,))


def flower_keys(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Generated SuperNode auth keys on the Nectar host that runs them, and the SuperExec secrets: each shared by a
    SuperLink or SuperNode (user superlink/supernode, group superexec by its unit) and its SuperExec (user
    superexec), never by the apps (layout.APP_USER)."""
    shared = f"root:{layout.SUPEREXEC_USER}"
    for fed, sn in src.cfg.supernodes_on(host.name):
        key = src.pki.supernode_keys.get((fed.name, sn.name))
        if key is not None:
            owner = f"supernode:{SYSTEM_GROUP}"
            unit = (layout.supernode_unit(sn.name),)
            yield Deliverable(layout.supernode_key(sn.name), pulumi.Output.secret(key.private_key_openssh), owner, "0600", unit)
            yield Deliverable(layout.supernode_key(sn.name) + ".pub", key.public_key_openssh, owner, "0644", ())
        units = (layout.supernode_unit(sn.name), layout.supernode_superexec_unit(sn.name))
        secret = src.pki.superexec_secrets[(fed.name, sn.name)]
        yield Deliverable(layout.supernode_superexec_secret(sn.name), secret, shared, "0640", () if fed.archived else units)
    for fed in src.cfg.federations_served_by(host.name, "superlink"):
        units = (*layout.SUPERLINK_UNITS, layout.SUPEREXEC_UNIT)
        yield Deliverable(layout.SUPERLINK_SUPEREXEC_SECRET, src.pki.superexec_secrets[(fed.name, None)], shared, "0640", units)


def vpn_keys(src: Sources, host: Host) -> Iterable[Deliverable]:
    for fed in src.cfg.federations_served_by(host.name, "vpn"):
        if fed.name in src.pki.tls_crypt:
            yield Deliverable(layout.OPENVPN_TLS_CRYPT, src.pki.tls_crypt[fed.name], "root:root", "0600", layout.OPENVPN_SERVER_UNITS)


def vpn_clients(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Who may connect to this host's OpenVPN server: a CCD file per organisation (its fixed address; ccd-exclusive
    refuses anyone without one) and a file per revoked serial (crl-verify dir). OpenVPN reads both on every
    connection, so no unit restarts; an organisation removed from the stack loses its CCD file (nina-deliver prunes
    it) and only its own certificate is refused."""
    for fed in src.cfg.federations_served_by(host.name, "vpn"):
        # user nobody reads these after OpenVPN dropped privileges
        for path, content in {**openvpn.ccd_files(src.cfg, fed), **openvpn.crl_files(fed)}.items():
            yield Deliverable(path, content, "root:root", "0644", ())


def vpn_sites(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Beside an OpenVPN server: the sites expected on its tunnels (addresses, the certificate each holds) and the
    collector with its units (the vpn fragment's `delivered`) reporting each site's tunnel and certificate to
    monitoring (alerts SiteVpnDown, SiteCertificateExpiring)."""
    for fed in src.cfg.federations_served_by(host.name, "vpn"):
        for f in cloudinit.delivered_files(src.cfg, host, "vpn"):
            yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
        certs = {org: c for (f, org), c in site_certificates_of(src.cfg, src.pki).items() if f == fed.name}
        orgs = sorted(certs)

        def document(values: list[openvpn.SiteCertificate | None], fed: Federation = fed, orgs: list[str] = orgs) -> str:
            return openvpn.sites_document(src.cfg, fed, {o: c for o, c in zip(orgs, values) if c is not None})

        doc = pulumi.Output.all(*(certs[o] for o in orgs)).apply(document) if orgs else pulumi.Output.from_input(document([]))
        yield Deliverable(layout.VPN_SITES_EXPECTED, doc, "root:root", "0644", ())


def federations(src: Sources, host: Host) -> Iterable[Deliverable]:
    """What changes with federation membership: the SuperNode instances this host runs (their supernode.conf, which
    also enables supernode@<name>), the federations' groups, SuperLinks and flwr connections on the JupyterHub
    host and, beside a SuperLink, its proxy's allow lists."""
    for f in cloudinit.delivered_files(src.cfg, host, "supernode"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
    if host.has("notebook"):
        # Who reaches which federation from a notebook: read at each spawn and by the guard's reload (nina-jupyter-access).
        guard = (f"reload-or-restart:{layout.NOTEBOOK_GUARD_UNIT}",)
        yield Deliverable(layout.NOTEBOOK_FEDERATIONS, notebook.federations_json(src.cfg), "root:root", "0644", guard)
    for fed in src.cfg.federations_served_by(host.name, "superlink"):
        for path, content in flower.acl_files(src.cfg, fed).items():
            # reload-or-restart: a proxy that is down (first boot, a crash) is started rather than failing the delivery.
            yield Deliverable(path, content, "root:root", "0644", (f"reload-or-restart:{layout.SUPERLINK_PROXY_UNIT}",))


def supernode_liveness(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Beside a SuperLink: the SuperNodes the stack registered there (federation, name, public key), and the
    collector with its units (the superlink fragment's `delivered`) that reports when the SuperLink last heard from
    each (alerts SuperNodeNotSeen, SuperNodeNotRegistered)."""
    for fed in src.cfg.federations_served_by(host.name, "superlink"):
        for f in cloudinit.delivered_files(src.cfg, host, "superlink"):
            yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
        # An archived federation's SuperNodes are switched off on purpose (its Fleet API refuses them): none expected.
        watched = () if fed.archived else fed.supernodes
        keys = [
            pulumi.Output.from_input(sn.public_key if sn.public_key is not None else src.pki.supernode_keys[(fed.name, sn.name)].public_key_openssh)
            for sn in watched
        ]

        def document(values: list[str], fed: Federation = fed, watched: tuple[SuperNode, ...] = watched) -> str:
            rows = [{"federation": fed.name, "name": sn.name, "public_key": k.strip()} for sn, k in zip(watched, values)]
            return json.dumps({"federation": fed.name, "supernodes": rows}, indent=1, sort_keys=True) + "\n"

        expected = pulumi.Output.all(*keys).apply(document) if keys else pulumi.Output.from_input(document([]))
        yield Deliverable(layout.SUPERNODES_EXPECTED, expected, "root:root", "0644", ())


def runtime(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Beside a SuperLink or SuperNodes: the federation's runtime lock and the program and unit that build a venv
    from it (the runtime fragment's `delivered`); a new runtime rebuilds it in place."""
    for f in cloudinit.delivered_files(src.cfg, host, "runtime"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)


JUPYTER_ACCESS_SOURCE = program_source(JUPYTER_ACCESS).decode()  # nina-jupyter-access (standard library only)


def notebooks(src: Sources, host: Host) -> Iterable[Deliverable]:
    """The JupyterHub host's config (per-container limits), its containers' guard, the researchers' image and its
    builder (the notebook fragment's `delivered`), and nina-jupyter-access, which fills the guard's set per
    container: they change in operation, so a new federation, limit or pin restarts a service, never the VM."""
    for f in cloudinit.delivered_files(src.cfg, host, "notebook"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
    if host.has("notebook"):
        yield Deliverable(layout.NOTEBOOK_ACCESS_COMMAND, JUPYTER_ACCESS_SOURCE, "root:root", "0755", (f"reload-or-restart:{layout.NOTEBOOK_GUARD_UNIT}",))


def monitoring(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Prometheus targets and alert rules, Alertmanager's routing and the alert dashboard (nina/plan/scrape.py): they
    change with the stack, not the host, so they are delivered rather than in user-data; and the secrets
    Alertmanager's routes use (the relay's password; the webhook's URL, inside its config)."""
    if host.has("monitoring"):
        for path, (content, units) in scrape.monitoring_files(src.cfg).items():
            if path == layout.ALERTMANAGER_PATH and src.cfg.monitoring.webhook:
                # The webhook's URL carries its channel's token: the file holds it, for Alertmanager's group only.
                url = pulumi.Config(NAMESPACE).require_secret("alert_webhook_url")
                routed = url.apply(lambda u: alerts.alertmanager_yaml(src.cfg, u))
                yield Deliverable(path, routed, "root:prometheus", "0640", units)
                continue
            yield Deliverable(path, content, "root:root", "0644", units)
        if src.cfg.smtp.username:
            # Alertmanager (user prometheus on Ubuntu) reads it through smtp_auth_password_file.
            password = pulumi.Config(NAMESPACE).require_secret("smtp_password")
            yield Deliverable(layout.SMTP_PASSWORD_PATH, password, "prometheus:prometheus", "0600", ("reload:prometheus-alertmanager.service",))


def backup_credentials(src: Sources, host: Host) -> Iterable[Deliverable]:
    """§4.3.1 on the host whose service uses each database: the backup and restore commands and a timer per database
    (the backup fragment's `delivered`), and the credentials: where the database lives and its owner's password as a
    libpq password file only the backup user reads. Delivered, so a new schedule or retention never replaces the VM;
    new credentials (the first delivery, right after the release, included) start a backup at once."""
    for f in cloudinit.delivered_files(src.cfg, host, "backup"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
    db = src.database
    for row in backups.backed_up_on(src.cfg, host):
        start = (f"start:{backup_unit(row.name)}",)
        env = db.address.apply(functools.partial(backups.credentials_text, row.name, port=db.port))
        pgpass = pulumi.Output.all(db.address, db.password(row.name)).apply(functools.partial(_backup_pgpass, row.name, db.port))
        yield Deliverable(credentials_env(row.name), env, "root:root", "0644", start)
        yield Deliverable(credentials_pgpass(row.name), pulumi.Output.secret(pgpass), f"{BACKUP_USER}:{SYSTEM_GROUP}", "0600", start)


def offsite_backups(src: Sources, host: Host) -> Iterable[Deliverable]:
    """§4.3.1 "archived": the host's application credential for the stack's container, a copy for each user that
    uploads here (nina-backup its dumps, superlink its state snapshots), readable by that user alone; the SuperLink
    state backup's commands, unit and timer (the offsite fragment's `delivered`). New credentials start a SuperLink
    snapshot at once (the Postgres backups start with their own credentials)."""
    for f in cloudinit.delivered_files(src.cfg, host, "offsite"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
    uploaders = backups.uploaders_on(src.cfg, host)
    if not uploaders:
        return
    text = pulumi.Output.all(src.offsite.credential_ids[host.name], src.offsite.credential_secrets[host.name]).apply(
        functools.partial(_offsite_text, src.cfg)
    )
    for user in uploaders:
        units = (f"start:{SUPERLINK_BACKUP_UNIT}",) if user == SUPERLINK_USER else ()
        yield Deliverable(offsite_credentials(user), pulumi.Output.secret(text), f"{user}:{SYSTEM_GROUP}", "0600", units)


def _offsite_text(cfg: StackConfig, values: list[str]) -> str:
    credential_id, secret = values
    return backups.offsite_credentials_text(cfg, credential_id, secret)


def _backup_pgpass(name: str, port: int, values: list[str]) -> str:
    address, password = values
    return backups.pgpass_text(name, address, port, password)


# nina-check, the host-side deployment validation, and nina-realm, Keycloak's realm applied in place (standard
# library only, like nina-deliver).
CHECKER_SOURCE = program_source(CHECK).decode()
REALM_SOURCE = program_source(REALM).decode()


def validation(src: Sources, host: Host) -> Iterable[Deliverable]:
    """§4.2: what this host should look like (nina/plan/checklist.py) and the command that checks it
    (`sudo nina-check`). Delivered: both change with the stack, and a new check never replaces a VM."""
    yield Deliverable(layout.CHECKLIST_PATH, checklist.checklist_json(src.cfg, host), "root:root", "0644")
    yield Deliverable(layout.CHECK_COMMAND, CHECKER_SOURCE, "root:root", "0755")


def realm(src: Sources, host: Host) -> Iterable[Deliverable]:
    """On the Keycloak host: nina-realm (the Realm component runs it with the stack's description), its service and
    hourly timer (the iam fragment's `delivered`), and the mail relay's password it gives Keycloak."""
    if not host.has("iam"):
        return
    for f in cloudinit.delivered_files(src.cfg, host, "iam"):
        yield Deliverable(f.path, f.content, f.owner, f.mode, f.units)
    yield Deliverable(layout.REALM_COMMAND, REALM_SOURCE, "root:root", "0755")
    if src.cfg.smtp.username:
        password = pulumi.Config(NAMESPACE).require_secret("smtp_password")
        yield Deliverable(layout.KEYCLOAK_SMTP_PASSWORD, password, "root:root", "0600", (f"start:{layout.REALM_UNIT}",))


# The payload's order; each producer is independent.
PRODUCERS: tuple[Callable[[Sources, Host], Iterable[Deliverable]], ...] = (
    operators, base, trust, server_tls, service_env, flower_keys, vpn_keys, vpn_clients, vpn_sites, federations, supernode_liveness, runtime,
    notebooks, monitoring, backup_credentials, offsite_backups, validation, realm,
)

# Directories the payload needs that no package creates (secrets stay out of world-readable places).
DIRECTORIES = ({"path": layout.SECRETS_DIR, "owner": f"root:{SYSTEM_GROUP}", "mode": "0750"},)


def for_host(src: Sources, host: Host) -> list[Deliverable]:
    files = [d for produce in PRODUCERS for d in produce(src, host)]
    paths = [d.path for d in files]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    assert not duplicates, f"{host.name}: two deliverables claim {duplicates}"
    return files


def hosts_units(host: Host) -> tuple[str, ...]:
    """Units that read peers' addresses from /etc/hosts only when they start (the role table's reload_on_hosts_change)."""
    return tuple(u for role in host.roles for u in ROLES[role].reload_on_hosts_change)
