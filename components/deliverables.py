"""What each host receives over SSH after boot: the material that is secret or changes in operation.

One function per kind of material, each returning `Deliverable`s for a host; `for_host` concatenates them. The
paths, owners and units come from nina.layout, which the cloud-init templates read too. Nothing here goes into
user-data: components/delivery.py hands the list to /usr/local/sbin/nina-deliver on the host as a secret payload.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.database import Database
from components.pki import Pki
from components.secrets import Secrets
from nina import checklist, databases, layout, names, openvpn, scrape
from nina.alerts import SMTP_PASSWORD_PATH
from nina.config import NAMESPACE, Host, StackConfig
from nina.roles import SYSTEM_GROUP


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
    database: Database


def _key_mode(owner: str) -> str:
    # A key owned by its service user is private to it; a root-owned key is shared with the service's group, unless
    # that group is root too (OpenVPN reads its key as root and warns about any group or other access).
    return "0640" if owner.startswith("root:") and owner != "root:root" else "0600"


def trust(src: Sources, host: Host) -> Iterable[Deliverable]:
    """The local CA for the system trust store (update-ca-certificates also links it at layout.CA_PEM)."""
    units = tuple(u for role in host.roles if role in layout.SERVER_TLS for u in layout.SERVER_TLS[role].units)
    yield Deliverable(layout.CA_TRUST_PATH, src.pki.ca_cert_pem, "root:root", "0644", units)


def server_tls(src: Sources, host: Host) -> Iterable[Deliverable]:
    for role in host.roles:
        issued = src.pki.servers.get((host.name, role))
        if issued is None or issued.key_pem is None:
            continue
        paths = layout.SERVER_TLS[role]
        yield Deliverable(paths.cert, issued.cert_pem, paths.owner, "0644", paths.units)
        yield Deliverable(paths.key, issued.key_pem, paths.owner, _key_mode(paths.owner), paths.units)


def _env_file(values: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    keys = sorted(values)
    return pulumi.Output.all(*(values[k] for k in keys)).apply(
        lambda vs: "".join(f"{k}={v}\n" for k, v in zip(keys, vs))
    )


def service_env(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Passwords and tokens as EnvironmentFile= files (read by systemd as root, so root-only)."""
    db, s = src.database, src.secrets
    env: dict[str, tuple[dict[str, pulumi.Input[str]], str]] = {}
    if host.has("iam"):
        env["keycloak"] = (
            {
                "KC_DB_URL": db.address.apply(lambda a: f"jdbc:postgresql://{a}:{db.port}/keycloakdb_server"),
                "KC_DB_USERNAME": "keycloak",
                "KC_DB_PASSWORD": db.passwords["keycloak"],
                "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
                "KC_BOOTSTRAP_ADMIN_PASSWORD": s["keycloak-admin"],
                "NINA_JUPYTERHUB_CLIENT_SECRET": s["jupyterhub-oidc-client"],
                "NINA_GRAFANA_CLIENT_SECRET": s["grafana-oidc-client"],
            },
            "keycloak.service",
        )
    if host.has("notebook"):
        env["jupyterhub"] = (
            {
                "OAUTH_CLIENT_SECRET": s["jupyterhub-oidc-client"],
                "JUPYTERHUB_CRYPT_KEY": s["jupyterhub-crypt-key"],
                "CONFIGPROXY_AUTH_TOKEN": s["configproxy-auth-token"],
            },
            "jupyterhub.service",
        )
    if host.has("monitoring"):
        env["grafana"] = (
            {
                "GF_DATABASE_HOST": db.address.apply(lambda a: f"{a}:{db.port}"),
                "GF_DATABASE_PASSWORD": db.passwords["grafana"],
                "GF_SECURITY_ADMIN_PASSWORD": s["grafana-admin"],
                "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET": s["grafana-oidc-client"],
            },
            "grafana-server.service",
        )
    for service, (values, unit) in env.items():
        assert set(values) == set(layout.SERVICE_ENV_VARS[service]), f"{service}: env file drifted from layout"
        yield Deliverable(layout.SERVICE_ENV[service], pulumi.Output.secret(_env_file(values)), "root:root", "0600", (unit,))


def flower(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Generated SuperNode auth keys on the Nectar host that runs them; the SuperExec secret beside a SuperLink."""
    for fed, sn in src.cfg.supernodes_on(host.name):
        key = src.pki.supernode_keys.get((fed.name, sn.name))
        if key is not None:
            owner = f"supernode:{SYSTEM_GROUP}"
            unit = (layout.supernode_unit(sn.name),)
            yield Deliverable(layout.supernode_key(sn.name), pulumi.Output.secret(key.private_key_openssh), owner, "0600", unit)
            yield Deliverable(layout.supernode_key(sn.name) + ".pub", key.public_key_openssh, owner, "0644", ())
    fed_of = src.cfg.federation_of_superlink(host.name)
    if fed_of is not None and fed_of.name in src.pki.superexec_secrets:
        yield Deliverable(
            layout.SUPERLINK_SUPEREXEC_SECRET,
            src.pki.superexec_secrets[fed_of.name],
            f"superlink:{SYSTEM_GROUP}",
            "0600",
            (*layout.SUPERLINK_UNITS, layout.SUPEREXEC_UNIT),
        )


def vpn(src: Sources, host: Host) -> Iterable[Deliverable]:
    for fed in src.cfg.federations.values():
        if fed.vpn_host == host.name and fed.name in src.pki.tls_crypt:
            yield Deliverable(layout.OPENVPN_TLS_CRYPT, src.pki.tls_crypt[fed.name], "root:root", "0600", layout.OPENVPN_SERVER_UNITS)


def vpn_clients(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Who may connect to this host's OpenVPN server: a CCD file per organisation (its fixed address; ccd-exclusive
    refuses anyone without one) and a file per revoked serial (crl-verify dir). OpenVPN reads both on every
    connection, so no unit restarts; an organisation removed from the stack loses its CCD file (nina-deliver prunes
    it) and only its own certificate is refused."""
    for fed in src.cfg.federations.values():
        if fed.vpn_host != host.name:
            continue
        # user nobody reads these after OpenVPN dropped privileges
        for path, content in {**openvpn.ccd_files(src.cfg, fed), **openvpn.crl_files(fed)}.items():
            yield Deliverable(path, content, "root:root", "0644", ())


def federations(src: Sources, host: Host) -> Iterable[Deliverable]:
    """The SuperNode instances this host runs (supernode.conf, which also enables supernode@<name>) and, beside a
    SuperLink, its proxy's allow lists: both change with federation membership (components/federation.py)."""
    from components import federation  # it builds on Deliverable from this module

    yield from federation.deliverables(src.cfg, host)


def monitoring(src: Sources, host: Host) -> Iterable[Deliverable]:
    """Prometheus targets and alert rules, Alertmanager's routing and the alert dashboard (nina/scrape.py): they
    change with the stack, not the host, so they are delivered rather than in user-data. No secrets."""
    if host.has("monitoring"):
        for path, (content, units) in scrape.monitoring_files(src.cfg).items():
            yield Deliverable(path, content, "root:root", "0644", units)
        if src.cfg.monitoring.smtp_username:
            # Alertmanager (user prometheus on Ubuntu) reads it through smtp_auth_password_file.
            password = pulumi.Config(NAMESPACE).require_secret("smtp_password")
            yield Deliverable(SMTP_PASSWORD_PATH, password, "prometheus:prometheus", "0600", ("reload:prometheus-alertmanager.service",))


# The backup tooling of §4.3.1-§4.3.2, delivered (cloudinit/templates/backup): template -> (path, mode).
BACKUP_TOOLING = {
    "backup/nina-db-backup.sh.j2": (databases.BACKUP_COMMAND, "0755"),
    "backup/nina-db-restore.sh.j2": (databases.RESTORE_COMMAND, "0755"),
    "backup/nina-backup@.service.j2": ("/etc/systemd/system/nina-backup@.service", "0644"),
    "backup/nina-backup@.timer.j2": ("/etc/systemd/system/nina-backup@.timer", "0644"),
}


def backups(src: Sources, host: Host) -> Iterable[Deliverable]:
    """§4.3.1 on the host whose service uses each database: the backup and restore commands, a timer per database
    (enabled here), and the credentials: where the database lives and its owner's password as a libpq password
    file only the backup user reads. Delivered, so a new schedule or retention never replaces the VM; new
    credentials (the first delivery, right after the release, included) start a backup at once."""
    from cloudinit.render import render_file  # it renders user-data from the same context

    rows = databases.backed_up_on(src.cfg, host)
    if not rows:
        return
    timers = tuple(f"enable:{databases.backup_unit(r.name, 'timer')}" for r in rows)
    for template, (path, mode) in BACKUP_TOOLING.items():
        yield Deliverable(path, render_file(template, src.cfg, host), "root:root", mode, timers if path.endswith(".timer") else ())
    db = src.database
    for row in rows:
        start = (f"start:{databases.backup_unit(row.name)}",)
        env = db.address.apply(functools.partial(_backup_env, row.name, db.port))
        pgpass = pulumi.Output.all(db.address, db.passwords[row.owner]).apply(functools.partial(_backup_pgpass, row.name, db.port))
        yield Deliverable(databases.credentials_env(row.name), env, "root:root", "0644", start)
        yield Deliverable(databases.credentials_pgpass(row.name), pulumi.Output.secret(pgpass), f"{databases.BACKUP_USER}:{SYSTEM_GROUP}", "0600", start)


def _backup_env(name: str, port: int, address: str) -> str:
    return databases.credentials_text(name, address, port)


def _backup_pgpass(name: str, port: int, values: list[str]) -> str:
    address, password = values
    return databases.pgpass_text(name, address, port, password)


# nina-check, the host-side deployment validation (standard library only, like nina-deliver).
CHECKER_SOURCE = (Path(__file__).resolve().parent.parent / "nina" / "check.py").read_text()


def validation(src: Sources, host: Host) -> Iterable[Deliverable]:
    """§4.2: what this host should look like (nina/checklist.py) and the command that checks it (`sudo nina-check`).
    Delivered: both change with the stack, and a new check never replaces a VM."""
    yield Deliverable(checklist.CHECKLIST_PATH, checklist.checklist_json(src.cfg, host), "root:root", "0644")
    yield Deliverable(checklist.CHECK_COMMAND, CHECKER_SOURCE, "root:root", "0755")


# Order matters only for readability of the payload; each producer is independent.
PRODUCERS: tuple[Callable[[Sources, Host], Iterable[Deliverable]], ...] = (
    trust, server_tls, service_env, flower, vpn, vpn_clients, federations, monitoring, backups, validation,
)

# Directories the payload needs that no package creates (secrets stay out of world-readable places).
DIRECTORIES = ({"path": layout.SECRETS_DIR, "owner": f"root:{SYSTEM_GROUP}", "mode": "0750"},)


def for_host(src: Sources, host: Host) -> list[Deliverable]:
    files = [d for produce in PRODUCERS for d in produce(src, host)]
    paths = [d.path for d in files]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    assert not duplicates, f"{host.name}: two deliverables claim {duplicates}"
    return files


def hosts_block(cfg: StackConfig) -> str:
    return names.hosts_block(cfg)


def hosts_units(host: Host) -> tuple[str, ...]:
    """Units that read peers' addresses from /etc/hosts only when they start (nginx resolves upstreams at load)."""
    return ("reload:nginx.service",) if host.has("ingress") else ()
