"""The databases of manual §4.3.1 and how they are backed up (§4.3.1) and restored (§4.3.2): the row type, and the
paths, users and schedules of the backups.

Each database is a row of the role that owns it (nina/catalog/roles.py `databases`): the managed Postgres component
creates the databases and owner roles from those rows, the backup fragment (cloudinit/templates/backup) renders one
timer per database on the host that carries the role, and the SSH delivery hands that host the credentials.

Backups run on the host whose service already uses the database: its security group already reaches Postgres and it
already holds the owner's password, so backups open no port and spread no credential.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Database:
    name: str  # §4.3.1
    owner: str  # the Postgres role that owns it (§4.1.2.8); pg_dump connects as this role
    unit: str  # the service stopped while a backup is restored (§4.3.2)


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
# PostgreSQL majors with a pg_dump in PGDG's apt repository for Ubuntu 24.04 (what the backup hosts install).
PG_MAJORS = range(13, 19)


def backup_unit(name: str, kind: str = "service") -> str:
    """nina-backup@<database>.service runs one backup; the .timer of the same instance follows nina:database.backup.schedule."""
    return f"nina-backup@{name}.{kind}"


# The managed Postgres is probed every minute from each host that backs a database up (its only clients but the
# services themselves, so no port opens): pg_isready and a SELECT 1 with the backup's credentials, published as
# nina_postgres_up / nina_postgres_ready / nina_postgres_probe_timestamp_seconds (alerts PostgresDown, PostgresProbeStale).
PROBE_COMMAND = "/usr/local/sbin/nina-db-probe"


def probe_unit(name: str, kind: str = "service") -> str:
    """nina-db-probe@<database>.service probes one database; its .timer runs it every minute."""
    return f"nina-db-probe@{name}.{kind}"


def credentials_env(name: str) -> str:
    """PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE for one database's backup; delivered (the address is known only
    once Trove has created the instance)."""
    return f"/etc/nina/secrets/backup-{name}.env"


def credentials_pgpass(name: str) -> str:
    return f"/etc/nina/secrets/backup-{name}.pgpass"


# ------------------------------------------------------------------------------------------ off the host (§4.3.1)
# §4.3.1 wants backups "archived": after each local backup the host copies it into the stack's object-storage
# container (Nectar's Swift), with python3-swiftclient's `swift` and a per-host application credential that may
# write only that host's objects (components/offsite.py). Swift deletes each copy itself after its retention
# (X-Delete-After), so no host needs the right to delete.
OFFSITE_COMMAND = "/usr/local/sbin/nina-offsite-backup"  # upload | record | fetch
# keystoneauth: application credentials; age: each copy is encrypted on the host before it leaves (to the stack's
# nina:database.backup.recipients), so neither Swift nor another host's credential ever sees a readable backup.
OFFSITE_PACKAGES = ("python3-swiftclient", "python3-keystoneauth1", "age")
# Nectar's Keystone (the openrc files' OS_AUTH_URL); nina:cloud.auth_url changes it.
NECTAR_AUTH_URL = "https://identity.rc.nectar.org.au/v3/"
OFFSITE_DAYS = 400  # default: a year of monthly dumps, plus a month
SUPERLINK_OFFSITE_DAYS = 30  # default for the daily SuperLink snapshots
SUPERLINK_KEEP = 7  # default: a week of daily snapshots on the SuperLink's state volume


# Where root, restoring, keeps what it fetches (decrypted) and the pre-restore copies of what it replaces: its own
# directory (0700), never a directory a service user can write, where a planted symlink would steer root's writes.
RESTORE_DIR = "/var/lib/nina/restore"


def offsite_container(environment: str) -> str:
    """The stack's backup container: one per environment."""
    return f"nina-{environment}-backups"


def offsite_credentials(user: str) -> str:
    """The swift client's settings for the user that uploads (OS_AUTH_TYPE=v3applicationcredential, ...): a copy per
    user that uploads on the host (nina-backup for Postgres dumps, superlink for its state), readable by it alone."""
    return f"/etc/nina/secrets/offsite-{user}.env"


# The SuperLink's state database (runs, registered SuperNodes; §4.1.2.17.3) is copied with SQLite's online backup API
# by the SuperLink's own user (the database is in WAL mode: a reader needs write access to its -shm file), daily.
SUPERLINK_USER = "superlink"
SUPERLINK_STATE = "/var/lib/nina/superlink/state.db"
SUPERLINK_BACKUP_DIR = "/var/lib/nina/superlink/backups"  # readable by fl_system, on the state volume
SUPERLINK_BACKUP_COMMAND = "/usr/local/sbin/nina-superlink-backup"
SUPERLINK_RESTORE_COMMAND = "/usr/local/sbin/nina-superlink-restore"
SUPERLINK_BACKUP_UNIT = "nina-superlink-backup.service"
SUPERLINK_BACKUP_TIMER = "nina-superlink-backup.timer"
SUPERLINK_MAX_AGE_DAYS = 2  # daily, plus a day to notice and fix a failing one
# §4.1.2.17.3: the state file may need purging when it grows too large. Above this the SuperLinkStateLarge alert says
# so: the live file plus SUPERLINK_KEEP snapshots then take 8 GiB of the state volume and each daily upload 1 GiB,
# while a fresh federation's state is a few MiB (each run adds its messages and logs).
SUPERLINK_STATE_ALERT_BYTES = 1 << 30


def superlink_backup_name(federation: str) -> str:
    """How a SuperLink's snapshots are named (files superlink-<fed>_<time>.db, the metrics' `backup` label)."""
    return f"superlink-{federation}"
