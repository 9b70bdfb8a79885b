"""Database backups for one stack (§4.3.1): which host backs up which database, and the credentials it is handed.

A database is backed up on the host that carries the role owning it (the role table's `databases`): that host's
security group already reaches Postgres and it already holds the owner's password.
"""

from __future__ import annotations

from nina.catalog.databases import Database, credentials_pgpass
from nina.catalog.roles import DATABASES, ROLES
from nina.config import Host, StackConfig


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
