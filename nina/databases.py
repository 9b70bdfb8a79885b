"""The databases of manual §4.3.1, who owns and uses each, and how they are backed up (§4.3.1) and restored (§4.3.2).

One row per database. The managed Postgres component creates the databases and owner roles from it, the backup
fragment (cloudinit/templates/backup) renders one timer per row on the host that uses the database, the SSH delivery
hands that host the credentials, and the tests read it too.

Backups run on the host whose service already uses the database: its security group already reaches Postgres and it
already holds the owner's password, so backups open no port and spread no credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nina.config reads this table for its defaults
    from nina.config import Host, StackConfig


@dataclass(frozen=True)
class Database:
    name: str  # §4.3.1
    owner: str  # the Postgres role that owns it (§4.1.2.8); pg_dump connects as this role
    role: str  # the host role whose service uses it: that host runs the backups
    unit: str  # the service stopped while a backup is restored (§4.3.2)


DATABASES: dict[str, Database] = {
    d.name: d
    for d in (
        Database("keycloakdb_server", "keycloak", "iam", "keycloak.service"),
        Database("grafanadb_server", "grafana", "monitoring", "grafana-server.service"),
    )
}

BACKUP_USER = "nina-backup"  # runs pg_dump: reads only its credentials, writes only BACKUP_DIR
BACKUP_DIR = "/var/lib/nina/backups"  # on the host's state volume when it has one (it outlives the VM)
BACKUP_COMMAND = "/usr/local/sbin/nina-db-backup"
RESTORE_COMMAND = "/usr/local/sbin/nina-db-restore"
# node exporter's textfile collector (set explicitly in the base fragment): each backup publishes there the time of
# its last success and how old that may grow (nina_backup_max_age_seconds), which the BackupStale alert compares.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# nina:database.backup.schedule (systemd OnCalendar shorthands; the manual asks for monthly) -> the age, in days, after
# which the newest backup is stale: the longest interval plus a few days to notice and fix a failing one.
SCHEDULES = {"daily": 2, "weekly": 9, "monthly": 35}


def backup_unit(name: str, kind: str = "service") -> str:
    """nina-backup@<database>.service runs one backup; the .timer of the same instance follows nina:database.backup.schedule."""
    return f"nina-backup@{name}.{kind}"


def credentials_env(name: str) -> str:
    """PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE for one database's backup; delivered (the address is known only
    once Trove has created the instance)."""
    return f"/etc/nina/secrets/backup-{name}.env"


def credentials_pgpass(name: str) -> str:
    return f"/etc/nina/secrets/backup-{name}.pgpass"


def backed_up_on(cfg: StackConfig, host: Host) -> tuple[Database, ...]:
    """The databases this host backs up: those of the stack whose service this host runs."""
    return tuple(DATABASES[n] for n in cfg.database.databases if host.has(DATABASES[n].role))


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
