"""Database backups for one stack (§4.3.1): which host backs up which database, and the credentials it is handed.

A database is backed up on the host that carries the role owning it (the role table's `databases`): that host's
security group already reaches Postgres and it already holds the owner's password.
"""

from __future__ import annotations

from nina.catalog.databases import BACKUP_USER, SUPERLINK_USER, Database, credentials_pgpass, superlink_backup_name
from nina.catalog.roles import DATABASES, ROLES
from nina.config import Host, StackConfig
from nina.plan.quoting import shell


def owning_role(database: str) -> str:
    """The role whose service uses the database."""
    return next(role.name for role in ROLES.values() if any(db.name == database for db in role.databases))


def backed_up_on(cfg: StackConfig, host: Host) -> tuple[Database, ...]:
    """The databases this host backs up: those of the stack whose service this host runs."""
    return tuple(DATABASES[n] for n in cfg.database.databases if host.has(owning_role(n)))


def credentials_text(name: str, address: str, port: int) -> str:
    """The backup's libpq environment for one database (not secret: the password is in the PGPASSFILE)."""
    db = DATABASES[name]
    return f"PGHOST={address}\nPGPORT={port}\nPGUSER={db.owner}\nPGPASSFILE={credentials_pgpass(name)}\n"


def pgpass_text(name: str, address: str, port: int, password: str) -> str:
    """libpq's password file (hostname:port:database:username:password; ':' and '\\' escaped)."""

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    db = DATABASES[name]
    return ":".join(esc(v) for v in (address, str(port), name, db.owner, password)) + "\n"


# ------------------------------------------------------------------------------------------ off the host (§4.3.1)


def superlink_backups_on(cfg: StackConfig, host: Host) -> tuple[str, ...]:
    """The SuperLink state backups this host makes (superlink-<fed>): one per federation whose SuperLink it runs."""
    return tuple(superlink_backup_name(fed.name) for fed in cfg.federations_served_by(host.name, "superlink"))


def uploaders_on(cfg: StackConfig, host: Host) -> dict[str, tuple[str, ...]]:
    """user -> the backups it copies off this host: nina-backup its database dumps, the SuperLink's user its state.
    Each user gets its own copy of the host's credentials (offsite_credentials), readable by it alone."""
    uploads = {BACKUP_USER: tuple(db.name for db in backed_up_on(cfg, host)), SUPERLINK_USER: superlink_backups_on(cfg, host)}
    return {user: names for user, names in uploads.items() if names}


def offsite_hosts(cfg: StackConfig) -> tuple[Host, ...]:
    """Hosts that copy backups into the stack's container (each gets a credential of its own)."""
    return tuple(h for h in cfg.hosts.values() if uploaders_on(cfg, h))


def object_prefix(host: Host) -> str:
    """Each host writes under <host>/ in the container, and its credential reaches nothing else."""
    return host.name


def access_rules(container: str, host: Host) -> tuple[dict[str, str], ...]:
    """Keystone access rules of a host's application credential: on the object store only, create, check and read
    back (restore) its own objects, and list the container (names and sizes) to find the newest. No DELETE: Swift
    expires copies itself (X-Delete-After). `*` is the project's account (AUTH_<project id>), which the token's
    project scope fixes anyway."""
    own = f"/v1/*/{container}/{object_prefix(host)}/**"
    return (
        {"service": "object-store", "method": "PUT", "path": own},
        {"service": "object-store", "method": "HEAD", "path": own},
        {"service": "object-store", "method": "GET", "path": own},
        {"service": "object-store", "method": "GET", "path": f"/v1/*/{container}"},
    )


def offsite_credentials_text(cfg: StackConfig, credential_id: str, secret: str) -> str:
    """The swift client's environment (python3-swiftclient reads OS_* itself): Keystone v3 with an application
    credential. Not shell: read by `set -a; . file` in nina-offsite-backup, so every value is a fullmatch-validated
    token or Keystone's (hex id, url-safe secret), quoted for the shell anyway."""
    values = {
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_AUTH_URL": cfg.cloud.auth_url,
        "OS_APPLICATION_CREDENTIAL_ID": credential_id,
        "OS_APPLICATION_CREDENTIAL_SECRET": secret,
        **({"OS_REGION_NAME": cfg.cloud.object_store_region} if cfg.cloud.object_store_region else {}),
    }
    return "".join(f"{k}={shell(v)}\n" for k, v in values.items())
