"""Database backups (manual §4.3.1) and restores (§4.3.2).

What the program delivers to the hosts that use each database is installed with the real nina-deliver, and the
delivered backup and restore commands then run for real against a real PostgreSQL on 127.0.0.1, with the
credentials the program generated: the dump is a pg_restore-readable archive, the newest `keep` are kept, the
success is published in a form promtool accepts, a failure leaves no partial file, and a restore brings the data
back while the service that uses the database is stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    COMMAND,
    ROOT,
    Preview,
    delivered,
    free_port,
    problems,
    raw_config,
    run_nina,
)
from test_cloudinit import Target, shellcheck, verify_units

from nina.catalog import databases
from nina.catalog.roles import DATABASES, SYSTEM_GROUP
from nina.plan.backups import backed_up_on, owning_role

DB = DATABASES["keycloakdb_server"]
# What a backup host is handed besides credentials: the commands, the unit and its timer.
TOOLING = (databases.BACKUP_COMMAND, databases.RESTORE_COMMAND, "/etc/systemd/system/nina-backup@.service", "/etc/systemd/system/nina-backup@.timer")


def pgpass_fields(line: str) -> list[str]:
    """libpq's password-file fields: split at unescaped ':', then unescape."""
    return [re.sub(r"\\(.)", r"\1", f) for f in re.split(r"(?<!\\):", line.rstrip("\n"))]


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False, **kwargs)


# ------------------------------------------------------------------------------------------- what is delivered


def test_each_database_is_backed_up_by_the_host_that_uses_it(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        cfg = preview.cfg
        backed_up = {}
        for host in cfg.hosts.values():
            files = delivered(preview, host.name)
            rows = backed_up_on(cfg, host)
            backed_up.update({r.name: host.name for r in rows})
            assert (set(TOOLING) <= set(files)) == bool(rows), host.name
            if not rows:
                continue
            # the backup user exists there, and pg_dump of Trove's major version is installed
            cloud = preview.hosts[host.name].cloud_config
            assert databases.BACKUP_USER in {u["name"] for u in cloud["users"] if u != "default"}
            bootstrap = next(f["content"] for f in cloud["write_files"] if f["path"].endswith("-backup.sh"))
            assert f"postgresql-client-{cfg.database.major_version}" in bootstrap
            timer = files["/etc/systemd/system/nina-backup@.timer"]
            assert f"OnCalendar={cfg.database.backup_schedule}\n" in timer["content"]
            assert sorted(timer["units"]) == sorted(f"enable:nina-backup@{r.name}.timer" for r in rows)
            for row in rows:
                env = dict(line.split("=", 1) for line in files[databases.credentials_env(row.name)]["content"].splitlines())
                assert env["PGUSER"] == row.owner and env["PGPASSFILE"] == databases.credentials_pgpass(row.name)
                assert env["PGPORT"] == "5432" and env["PGHOST"] == preview.data["outputs"]["postgres_address"]
                pgpass = files[databases.credentials_pgpass(row.name)]
                assert (pgpass["owner"], pgpass["mode"]) == (f"{databases.BACKUP_USER}:{SYSTEM_GROUP}", "0600")
                host_, port, name, user, password = pgpass_fields(pgpass["content"])
                assert (host_, port, name, user) == (env["PGHOST"], "5432", row.name, row.owner) and len(password) == 32
                # new credentials start a backup at once: the first delivery is the backup "after the initial release"
                assert pgpass["units"] == [f"start:nina-backup@{row.name}.service"]
        assert backed_up.keys() == set(cfg.database.databases), preview.stack
        assert all(owning_role(db) in cfg.hosts[h].roles for db, h in backed_up.items())


def test_backup_tooling_passes_shellcheck_and_systemd_analyze_verify(materialized: dict[str, Preview]) -> None:
    files = delivered(materialized["test"], "hub")
    scripts = {path: files[path]["content"] for path in (databases.BACKUP_COMMAND, databases.RESTORE_COMMAND)}
    assert shellcheck(scripts) == ""
    units = {Path(p).name: files[p]["content"] for p in TOOLING if p.startswith("/etc/systemd/")}
    assert set(units) == {"nina-backup@.service", "nina-backup@.timer"}
    assert verify_units(Target(units=units, drop_ins={}, expected_units=set(), written=set(files))) == []


def test_the_schedule_and_retention_change_delivery_not_user_data(project_copy: Any) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]

    def preview(backup: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
        if backup is not None:
            config["nina:database"]["backup"] = {**config["nina:database"]["backup"], **backup}
        project = project_copy("test", config)
        done = run_nina("preview", "--stack", "test", "--json", "--show-secrets", "--cwd", str(project))
        assert done.returncode == 0, done.stderr
        return {(r["type"], r["name"]): r["inputs"] for r in json.loads(done.stdout)["resources"]}

    before, after = preview(None), preview({"schedule": "weekly", "keep": 4})
    assert before.keys() == after.keys()
    changed = sorted(name for key, name in ((k, k[1]) for k in before) if before[key] != after[key])
    assert changed == ["deliver-hub"]  # the one host that backs up the test stack's databases; no VM replaced
    hub = {f["path"]: f["content"] for f in json.loads(after[(COMMAND, "deliver-hub")]["stdin"])["files"]}
    assert "OnCalendar=weekly\n" in hub["/etc/systemd/system/nina-backup@.timer"]
    assert "keep=4\n" in hub[databases.BACKUP_COMMAND]
    assert f"nina_backup_max_age_seconds{{backup=\"$db\"}} {databases.SCHEDULES['weekly'] * 86400}\n" in hub[databases.BACKUP_COMMAND]


# ------------------------------------------------------------------------------------------ a real PostgreSQL


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(f"PostgreSQL's {name} is missing: run scripts/install-system-deps.sh (it installs postgresql)")
    return str(found[-1])


@dataclass
class Postgres:
    port: int
    superuser: list[str]  # prefix that runs a command as the cluster's owner
    cluster: Path
    options: str

    def pg_ctl(self, action: str) -> None:
        """Stop or start the cluster (the database probe's test sees both)."""
        done = run(*self.superuser, pg_bin("pg_ctl"), "-D", str(self.cluster), "-o", self.options, "-l", str(self.cluster.parent / "log"),
                   "-w", "-t", "60", *(["-m", "fast"] if action == "stop" else []), action)
        assert done.returncode == 0, done.stderr

    def psql(self, sql: str, database: str = DB.name) -> str:
        done = run(*self.superuser, pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-Atc", sql)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster on 127.0.0.1 (as the `postgres` user when the tests run as root: PostgreSQL refuses root,
    and that user cannot enter root's pytest directories, hence a directory of its own)."""
    data = Path(tempfile.mkdtemp(prefix="nina-pg-"))
    superuser = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if superuser:
        shutil.chown(data, "postgres")
    port = free_port()
    initdb = run(*superuser, pg_bin("initdb"), "-D", str(data / "cluster"), "-U", "postgres", "--auth=trust", "--auth-host=scram-sha-256",
                 "--no-sync", "-E", "UTF8")
    assert initdb.returncode == 0, initdb.stderr
    # trust only for the superuser over the socket-less loopback setup below; the owner role must use its password
    (data / "cluster" / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    if superuser:
        shutil.chown(data / "cluster" / "pg_hba.conf", "postgres")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k '' -c fsync=off"
    start = run(*superuser, pg_bin("pg_ctl"), "-D", str(data / "cluster"), "-o", options, "-l", str(data / "log"), "-w", "-t", "60", "start")
    assert start.returncode == 0, start.stderr + (data / "log").read_text()
    try:
        yield Postgres(port, superuser, data / "cluster", options)
    finally:
        run(*superuser, pg_bin("pg_ctl"), "-D", str(data / "cluster"), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Site:
    """The hub of the test stack after nina-deliver installed its payload under `root`, pointed at the test cluster."""

    root: Path
    env: dict[str, str]  # what nina-backup@keycloakdb_server.service would run with, plus the test's paths
    pg: Postgres

    @property
    def backups(self) -> Path:
        return self.root / "backups" / DB.name

    def script(self, path: str) -> str:
        return str(self.root / path.lstrip("/"))

    def backup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run("bash", self.script(databases.BACKUP_COMMAND), *args, DB.name, env=self.env)


def _loopback(line: str, port: int) -> str:
    """The delivered pgpass line, for the test cluster: same database, user and password; host and port of the test."""
    _, _, name, user, password = pgpass_fields(line)
    return f"127.0.0.1:{port}:{name}:{user}:{password}\n"


@pytest.fixture
def site(materialized: dict[str, Preview], postgres: Postgres, tmp_path: Path) -> Site:
    preview = materialized["test"]
    stdin = preview.named(COMMAND, "deliver-hub")["inputs"]["stdin"]
    installed = run(sys.executable, str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(tmp_path), input=stdin)
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["units"][f"nina-backup@{DB.name}.service"] == "start"
    secrets = tmp_path / databases.credentials_env(DB.name).lstrip("/")
    delivered = dict(line.split("=", 1) for line in secrets.read_text().splitlines())
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(_loopback((tmp_path / delivered["PGPASSFILE"].lstrip("/")).read_text(), postgres.port))
    pgpass.chmod(0o600)
    password = pgpass.read_text().rstrip("\n").split(":")[4]
    # Trove creates the owner role and its database from the stack (components/database.py); so does the test
    postgres.psql(f"DROP DATABASE IF EXISTS {DB.name}", "postgres")
    postgres.psql(f"DROP ROLE IF EXISTS {DB.owner}", "postgres")
    postgres.psql(f"CREATE ROLE {DB.owner} LOGIN PASSWORD '{password}'", "postgres")
    postgres.psql(f"CREATE DATABASE {DB.name} OWNER {DB.owner} ENCODING 'UTF8'", "postgres")
    postgres.psql(f"SET ROLE {DB.owner}; CREATE TABLE realm (id int PRIMARY KEY, name text); INSERT INTO realm VALUES (1, 'nina'), (2, 'master')")
    (tmp_path / "textfile").mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": delivered["PGUSER"],
        "PGPASSFILE": str(pgpass),
        "NINA_BACKUP_ROOT": str(tmp_path / "backups"),
        "NINA_TEXTFILE_DIR": str(tmp_path / "textfile"),
        "NINA_RESTORE_DIR": str(tmp_path / "restore"),  # root's own directory for what a restore saves and fetches
    }
    return Site(tmp_path, env, postgres)


def test_backup_writes_a_restorable_dump_publishes_it_and_keeps_the_newest(site: Site) -> None:
    site.backups.mkdir(parents=True)
    old = [f"{DB.name}_2025{m:02d}01.pgdump" for m in range(1, 13)]  # a year of monthly dumps
    for name in old:
        (site.backups / name).write_text("older backup\n")
    (site.backups / f"pre-restore-{DB.name}_20250102T030405.pgdump").write_text("kept: not a scheduled backup\n")

    done = site.backup()
    assert done.returncode == 0, done.stderr
    today = site.backups / f"{DB.name}_{date.today():%Y%m%d}.pgdump"
    listing = run(pg_bin("pg_restore"), "--list", str(today))
    assert listing.returncode == 0 and re.search(r"TABLE DATA public realm", listing.stdout), listing.stdout + listing.stderr
    # keep = 12 in the test stack: today's and the 11 newest of the year; the pre-restore copy is never pruned
    kept = sorted(p.name for p in site.backups.iterdir())
    assert kept == sorted([today.name, *old[1:], f"pre-restore-{DB.name}_20250102T030405.pgdump"])
    assert not [p for p in site.backups.iterdir() if p.name.startswith(".")]

    recorded = site.backup("--record")
    assert recorded.returncode == 0, recorded.stderr
    metrics = (site.root / "textfile" / f"nina_backup_{DB.name}.prom").read_text()
    check = run(shutil.which("promtool") or "promtool", "check", "metrics", input=metrics)
    assert check.returncode == 0, check.stdout + check.stderr
    values = dict(re.findall(r'^(\w+)\{backup="' + DB.name + r'"\} (\S+)$', metrics, re.M))
    assert int(values["nina_backup_last_success_timestamp_seconds"]) == int(today.stat().st_mtime)
    assert abs(int(values["nina_backup_last_success_timestamp_seconds"]) - time.time()) < 120
    assert int(values["nina_backup_last_size_bytes"]) == today.stat().st_size
    assert int(values["nina_backup_max_age_seconds"]) == databases.SCHEDULES["monthly"] * 86400


def test_a_failed_backup_keeps_the_previous_ones_and_leaves_nothing_half_written(site: Site) -> None:
    assert site.backup().returncode == 0
    assert site.backup("--record").returncode == 0
    before = {p.name: p.read_bytes() for p in site.backups.iterdir()}
    metrics = (site.root / "textfile" / f"nina_backup_{DB.name}.prom").read_bytes()
    pgpass = Path(site.env["PGPASSFILE"])
    pgpass.write_text(re.sub(r":[^:]+\n$", ":wrong-password\n", pgpass.read_text()))

    failed = site.backup()
    assert failed.returncode != 0 and "password authentication failed" in failed.stderr
    assert {p.name: p.read_bytes() for p in site.backups.iterdir()} == before
    assert (site.root / "textfile" / f"nina_backup_{DB.name}.prom").read_bytes() == metrics


@pytest.fixture
def systemctl(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in systemctl that logs its arguments (and reports the unit active), first on PATH."""
    bin_dir, log = tmp_path / "fake-bin", tmp_path / "systemctl.log"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 0\n')
    (bin_dir / "systemctl").chmod(0o755)
    return bin_dir, log


def restore(site: Site, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    credentials = site.root / "restore.env"
    credentials.write_text("".join(f"{k}={site.env[k]}\n" for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSFILE")))
    env = {**site.env, "PATH": f"{bin_dir}:{site.env['PATH']}", "NINA_BACKUP_CREDENTIALS": str(credentials)}
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSFILE"):
        env.pop(key)  # as root from a shell: only the delivered credentials say where the database is
    return run("bash", site.script(databases.RESTORE_COMMAND), DB.name, *args, env=env)


def test_restore_brings_back_the_newest_backup_with_the_service_stopped(site: Site, systemctl: tuple[Path, Path]) -> None:
    bin_dir, log = systemctl
    assert site.backup().returncode == 0
    site.pg.psql("DELETE FROM realm WHERE id = 2; UPDATE realm SET name = 'changed' WHERE id = 1")

    done = restore(site, bin_dir)
    assert done.returncode == 0, done.stderr
    assert site.pg.psql("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM realm") == "1=nina,2=master"
    assert log.read_text().splitlines() == [f"is-active --quiet {DB.unit}", f"stop {DB.unit}", f"start {DB.unit}"]
    # what the restore replaced was saved first, in root's own directory, and is itself restorable
    (saved,) = (site.root / "restore").glob(f"pre-restore-{DB.name}_*.pgdump")
    assert run(pg_bin("pg_restore"), "--list", str(saved)).returncode == 0
    assert (site.root / "restore").stat().st_mode & 0o777 == 0o700


def test_restore_writes_nothing_through_a_symlink_the_backup_user_planted(site: Site, systemctl: tuple[Path, Path]) -> None:
    """The backup directory is nina-backup's: had root saved the pre-restore copy there under its predictable name,
    nina-backup could point that name at any file (/etc/sudoers.d/zz) and have root overwrite it with the dump."""
    bin_dir, _ = systemctl
    assert site.backup().returncode == 0
    victim = site.root / "etc-sudoers.d-zz"
    victim.write_text("root's file\n")
    now = time.time()
    for second in range(-2, 120):  # the names root would pick in the next two minutes
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now + second))
        (site.backups / f"pre-restore-{DB.name}_{stamp}.pgdump").symlink_to(victim)
    done = restore(site, bin_dir)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "root's file\n"
    assert len(list((site.root / "restore").glob(f"pre-restore-{DB.name}_*.pgdump"))) == 1


def test_restore_refuses_a_file_that_is_not_a_backup_before_touching_anything(site: Site, systemctl: tuple[Path, Path]) -> None:
    bin_dir, log = systemctl
    bogus = site.root / "bogus.pgdump"
    bogus.write_text("not an archive\n")
    done = restore(site, bin_dir, str(bogus))
    assert done.returncode != 0 and "is not a pg_dump archive" in done.stderr
    assert not log.exists()  # the service was never stopped
    assert site.pg.psql("SELECT count(*) FROM realm") == "2"


# ------------------------------------------------------------------------------------------------------ config


def test_config_names_the_key_of_a_bad_backup_setting() -> None:
    config = raw_config()
    config["nina:database"]["backup"] = {**config["nina:database"]["backup"], "schedule": "hourly", "keep": 0}
    config["nina:database"]["datastore_version"] = "9.6"
    found = problems(config)
    assert any(p.startswith("nina:database.backup.schedule:") and "daily, weekly, monthly" in p for p in found), found
    assert any(p.startswith("nina:database.backup.keep:") and "at least 1" in p for p in found), found
    assert any(p.startswith("nina:database.datastore_version:") and "'9.6'" in p for p in found), found
    assert len(found) == 3, found


def test_a_backup_host_without_a_state_volume_is_warned_about(project_copy: Any, previews: dict[str, Preview]) -> None:
    for preview in previews.values():  # the shipped stacks keep their backups on state volumes
        assert all(h.volume_gb for h in preview.cfg.hosts.values() if backed_up_on(preview.cfg, h))
        assert "backups of" not in preview.stderr
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    del config["nina:hosts"]["hub"]["volume_gb"]
    done = run_nina("preview", "--stack", "test", "--cwd", str(project_copy("test", config)))
    assert done.returncode == 0, done.stderr
    assert "warning: nina:hosts.hub has no volume_gb: the backups of keycloakdb_server, grafanadb_server are kept on its root disk" in done.stderr
