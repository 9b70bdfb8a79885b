"""The managed PostgreSQL probe (alerts PostgresDown, PostgresProbeStale): the hosts that back a database up probe it
every minute with the same delivered credentials, so no port opens and no credential spreads.

The delivered probe runs for real against the real PostgreSQL of tests/test_backup.py: up, with a wrong password,
and stopped; what it publishes is what promtool accepts and what the alert rules read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Preview, delivered
from test_backup import Postgres, Site, postgres, run, site  # noqa: F401  (fixtures)
from test_cloudinit import Target, shellcheck, verify_units

from nina.catalog import alerts, databases
from nina.plan.backups import backed_up_on
from nina.plan.checklist import units

PROBE_UNITS = ("/etc/systemd/system/nina-db-probe@.service", "/etc/systemd/system/nina-db-probe@.timer")


def test_every_backup_host_probes_its_databases_and_nina_check_expects_the_timers(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        for host in preview.cfg.hosts.values():
            files = delivered(preview, host.name)
            rows = backed_up_on(preview.cfg, host)
            assert ({databases.PROBE_COMMAND, *PROBE_UNITS} <= set(files)) == bool(rows), host.name
            if rows:
                timer = files["/etc/systemd/system/nina-db-probe@.timer"]
                assert sorted(timer["units"]) == sorted(f"enable:{databases.probe_unit(r.name, 'timer')}" for r in rows)
                assert {databases.probe_unit(r.name, "timer") for r in rows} <= set(units(preview.cfg, host))


def test_the_probe_passes_shellcheck_and_systemd_analyze_verify(materialized: dict[str, Preview]) -> None:
    files = delivered(materialized["test"], "hub")
    assert shellcheck({databases.PROBE_COMMAND: files[databases.PROBE_COMMAND]["content"]}) == ""
    unit_files = {Path(p).name: files[p]["content"] for p in PROBE_UNITS}
    assert verify_units(Target(units=unit_files, drop_ins={}, expected_units=set(), written=set(files))) == []
    service = unit_files["nina-db-probe@.service"]
    assert f"User={databases.BACKUP_USER}\n" in service and f"EnvironmentFile={databases.credentials_env('%i')}\n" in service


def probe(site: Site) -> dict[str, str]:  # noqa: F811  (the fixture's value, passed on)
    """Run the delivered probe as its unit does (the probe, then --publish) and return what node exporter would read."""
    db = "keycloakdb_server"
    env = {**site.env, "NINA_PROBE_DIR": str(site.root / "probe")}
    (site.root / "probe").mkdir(exist_ok=True)
    done = run("bash", site.script(databases.PROBE_COMMAND), db, env=env)
    assert done.returncode == 0, done.stderr  # a down database is a metric, not a failed probe
    published = run("bash", site.script(databases.PROBE_COMMAND), "--publish", db, env=env)
    assert published.returncode == 0, published.stderr
    metrics = (site.root / "textfile" / f"nina_postgres_{db}.prom").read_text()
    check = run(shutil.which("promtool") or "promtool", "check", "metrics", input=metrics)
    assert check.returncode == 0, check.stdout + check.stderr
    values = dict(re.findall(r'^(\w+)\{database="' + db + r'"\} (\S+)$', metrics, re.M))
    assert abs(int(values.pop("nina_postgres_probe_timestamp_seconds")) - time.time()) < 120
    assert not [p for p in (site.root / "textfile").iterdir() if p.name.startswith(".")]
    return {**values, "stderr": done.stderr}


def test_the_probe_reports_postgres_up_refusing_and_stopped(site: Site, postgres: Postgres) -> None:  # noqa: F811  (fixtures)
    up = probe(site)
    assert (up["nina_postgres_up"], up["nina_postgres_ready"], up["stderr"]) == ("1", "1", "")

    pgpass = Path(site.env["PGPASSFILE"])
    good = pgpass.read_text()
    pgpass.write_text(re.sub(r":[^:]+\n$", ":wrong-password\n", good))
    refused = probe(site)
    assert (refused["nina_postgres_up"], refused["nina_postgres_ready"]) == ("0", "1")
    assert "password authentication failed" in refused["stderr"]
    pgpass.write_text(good)

    postgres.pg_ctl("stop")
    try:
        down = probe(site)
    finally:
        postgres.pg_ctl("start")
    assert (down["nina_postgres_up"], down["nina_postgres_ready"]) == ("0", "0")
    assert "does not accept connections" in down["stderr"]
    assert probe(site)["nina_postgres_up"] == "1"


def test_the_alerts_read_what_the_probe_publishes() -> None:
    exprs = {r.name: r.expr for r in alerts.RULES}
    assert exprs["PostgresDown"] == "nina_postgres_up == 0"
    assert "nina_postgres_probe_timestamp_seconds" in exprs["PostgresProbeStale"]


def publish(site: Site, prepare: Callable[[Path], None]) -> tuple[subprocess.CompletedProcess[str], str]:  # noqa: F811
    """A good probe published, then the probe directory (nina-backup's) prepared by `prepare` as a hostile
    nina-backup would, and root's --publish run again; returns that run and the textfile node exporter then reads."""
    db = "keycloakdb_server"
    env = {**site.env, "NINA_PROBE_DIR": str(site.root / "probe")}
    (site.root / "probe").mkdir(exist_ok=True)
    result = site.root / "probe" / f"{db}.prom"
    result.write_text("".join(f"# HELP {m} the probe's\n# TYPE {m} gauge\n{m}{{database=\"{db}\"}} {v}\n" for m, v in (
        ("nina_postgres_up", 1), ("nina_postgres_ready", 1), ("nina_postgres_probe_timestamp_seconds", int(time.time())))))
    assert run("bash", site.script(databases.PROBE_COMMAND), "--publish", db, env=env).returncode == 0
    result.unlink()
    prepare(result)
    # a FIFO must not hold root's ExecStartPost: the answer comes at once, not at this timeout
    done = subprocess.run(["bash", site.script(databases.PROBE_COMMAND), "--publish", db], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    metrics = (site.root / "textfile" / f"nina_postgres_{db}.prom").read_text()
    check = run(shutil.which("promtool") or "promtool", "check", "metrics", input=metrics)
    assert check.returncode == 0, check.stdout + check.stderr
    assert not [p for p in (site.root / "textfile").iterdir() if p.name.startswith(".")]
    return done, metrics


def test_publish_never_follows_a_symlink_nina_backup_planted(site: Site) -> None:  # noqa: F811
    secret = site.root / "shadow"
    secret.write_text('root:$6$SECRET-HASH:19000:0:99999:7:::\nnina_postgres_up{database="keycloakdb_server"} 0\n')
    secret.chmod(0o600)
    done, metrics = publish(site, lambda result: result.symlink_to(secret))
    assert done.returncode != 0 and "not a regular file" in done.stderr
    assert "SECRET" not in metrics and 'nina_postgres_up{database="keycloakdb_server"} 1\n' in metrics  # the last good result stays


def test_publish_does_not_wait_on_a_fifo(site: Site) -> None:  # noqa: F811
    done, metrics = publish(site, lambda result: os.mkfifo(result))
    assert done.returncode != 0
    assert 'nina_postgres_up{database="keycloakdb_server"} 1\n' in metrics


def test_publish_writes_only_the_checked_values_not_forged_lines(site: Site) -> None:  # noqa: F811
    db = "keycloakdb_server"
    forged = (f'# TYPE nina_postgres_up counter\nnina_postgres_up{{database="{db}"}} 0\nnina_postgres_ready{{database="{db}"}} 0\n'
              f'nina_postgres_probe_timestamp_seconds{{database="{db}"}} 1700000000\nnina_backup_last_success_timestamp_seconds{{backup="{db}"}} 9e99\n'
              f'nina_postgres_up{{database="{db}"}} 1 junk\nnot a metric at all\n')
    done, metrics = publish(site, lambda result: result.write_text(forged))
    assert done.returncode == 0, done.stderr
    assert "junk" not in metrics and "counter" not in metrics and "nina_backup_" not in metrics and "not a metric" not in metrics
    assert f'nina_postgres_up{{database="{db}"}} 0\n' in metrics and f'nina_postgres_probe_timestamp_seconds{{database="{db}"}} 1700000000\n' in metrics
