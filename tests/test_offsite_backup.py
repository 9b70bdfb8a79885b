"""Backups off the host (manual §4.3.1 "archived") and the SuperLink's state database (§4.1.2.17.3).

What the program delivers is installed with the real nina-deliver and run for real: database dumps against the real
PostgreSQL of tests/test_backup.py, the SuperLink's SQLite state while a writer keeps writing to it, each uploaded
by the delivered nina-offsite-backup with python3-swiftclient's `swift` into a real OpenStack Swift on 127.0.0.1
(tests/swift_store.py, tempauth standing in for Keystone), the local copies then lost, fetched back from the store and
restored with the delivered restore commands: the data must come back. What the store holds is age ciphertext (any
backup host's credential can read it through Swift's copy middleware), opened only by the operators' key at restore
time; root restores only into a directory of its own, and what the service users leave where root reads or once
wrote (symlinks, FIFOs) changes nothing. The stack side: one protected container, per-host credentials limited to
the host's objects, delivered over SSH only to the users that upload.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import swift_store
import yaml
from conftest import COMMAND, ROOT, Preview, delivered, problems, raw_config, run_nina
from test_backup import DB, Site, pg_bin, postgres, restore, run, site, systemctl  # noqa: F401
from test_cloudinit import Target, shellcheck, verify_units

from nina.catalog import databases
from nina.catalog.roles import SYSTEM_GROUP
from nina.plan import backups

CONTAINER = databases.offsite_container("test")
TOOLING = (
    databases.OFFSITE_COMMAND, databases.SUPERLINK_BACKUP_COMMAND, databases.SUPERLINK_RESTORE_COMMAND,
    f"/etc/systemd/system/{databases.SUPERLINK_BACKUP_UNIT}", f"/etc/systemd/system/{databases.SUPERLINK_BACKUP_TIMER}",
)
CONTAINER_TYPE = "openstack:objectstorage/container:Container"
CREDENTIAL_TYPE = "openstack:identity/applicationCredential:ApplicationCredential"


# ------------------------------------------------------------------------------------------- what the stack makes


def test_one_protected_container_and_a_credential_per_backup_host_reaching_only_its_objects(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        cfg = preview.cfg
        container = databases.offsite_container(cfg.environment)
        (made,) = [r for r in preview.data["resources"] if r["type"] == CONTAINER_TYPE]
        assert made["protect"] and made["inputs"]["name"] == container
        credentials = {r["name"]: r for r in preview.data["resources"] if r["type"] == CREDENTIAL_TYPE}
        uploading = {h.name for h in backups.offsite_hosts(cfg)}
        assert set(credentials) == {f"backups-{h}" for h in uploading}, preview.stack
        # the shipped stacks' database-backup hosts and SuperLink hosts all copy off the host
        assert uploading == {h.name for h in cfg.hosts.values() if backups.backed_up_on(cfg, h) or h.has("superlink")}
        for host in uploading:
            inputs = credentials[f"backups-{host}"]["inputs"]
            assert inputs.get("unrestricted") is False
            rules = inputs["accessRules"]
            assert {r["service"] for r in rules} == {"object-store"}
            assert "DELETE" not in {r["method"] for r in rules}
            # every rule but the listing is confined to the host's own prefix
            assert all(r["path"] == f"/v1/*/{container}/{host}/**" for r in rules if r["path"] != f"/v1/*/{container}")
            assert [r["method"] for r in rules if r["path"] == f"/v1/*/{container}"] == ["GET"]


def test_each_uploading_user_gets_its_own_copy_of_the_host_credential_and_user_data_none(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        cfg = preview.cfg
        for host in cfg.hosts.values():
            files = delivered(preview, host.name)
            uploaders = backups.uploaders_on(cfg, host)
            offered = {p for p in files if p.startswith("/etc/nina/secrets/offsite-")}
            assert offered == {databases.offsite_credentials(u) for u in uploaders}, host.name
            assert (databases.OFFSITE_COMMAND in files) == bool(uploaders)
            assert (databases.SUPERLINK_BACKUP_COMMAND in files) == host.has("superlink")
            cloud = preview.hosts[host.name].cloud_config
            assert ("python3-swiftclient" in cloud["packages"]) == bool(uploaders)
            for user in uploaders:
                f = files[databases.offsite_credentials(user)]
                assert (f["owner"], f["mode"]) == (f"{user}:{SYSTEM_GROUP}", "0600")
                env = dict(line.split("=", 1) for line in f["content"].splitlines())
                assert env["OS_AUTH_TYPE"] == "v3applicationcredential" and env["OS_AUTH_URL"] == cfg.cloud.auth_url
                secret = env["OS_APPLICATION_CREDENTIAL_SECRET"].strip("'")
                assert secret and secret not in preview.hosts[host.name].user_data
            if host.has("superlink"):
                assert files[f"/etc/systemd/system/{databases.SUPERLINK_BACKUP_TIMER}"]["units"] == [f"enable:{databases.SUPERLINK_BACKUP_TIMER}"]
                assert files[databases.offsite_credentials("superlink")]["units"] == [f"start:{databases.SUPERLINK_BACKUP_UNIT}"]


def test_offsite_tooling_passes_shellcheck_and_systemd_analyze_verify(materialized: dict[str, Preview]) -> None:
    files = {**delivered(materialized["test"], "hub"), **delivered(materialized["test"], "superlink")}
    scripts = {p: files[p]["content"] for p in TOOLING if "/sbin/" in p}
    assert shellcheck(scripts) == ""
    units = {Path(p).name: files[p]["content"] for p in (*TOOLING, "/etc/systemd/system/nina-backup@.service") if p.startswith("/etc/systemd/")}
    assert verify_units(Target(units=units, drop_ins={}, expected_units=set(), written=set(files))) == []


def test_retention_changes_delivery_not_user_data(project_copy: Any) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]

    def preview(backup: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
        if backup is not None:
            config["nina:database"]["backup"] = {**config["nina:database"]["backup"], **backup}
        done = run_nina("preview", "--stack", "test", "--json", "--show-secrets", "--cwd", str(project_copy("test", config)))
        assert done.returncode == 0, done.stderr
        return {(r["type"], r["name"]): r["inputs"] for r in json.loads(done.stdout)["resources"]}

    before, after = preview(None), preview({"offsite_days": 60, "superlink_offsite_days": 10, "superlink_keep": 3})
    assert before.keys() == after.keys()
    assert sorted(k[1] for k in before if before[k] != after[k]) == ["deliver-hub", "deliver-superlink"]
    sl = {f["path"]: f["content"] for f in json.loads(after[(COMMAND, "deliver-superlink")]["stdin"])["files"]}
    assert "days=10 user=superlink" in sl[databases.OFFSITE_COMMAND] and "keep=3\n" in sl[databases.SUPERLINK_BACKUP_COMMAND]


def test_config_names_the_key_of_a_bad_offsite_setting() -> None:
    config = raw_config()
    config["nina:database"]["backup"] = {"schedule": "monthly", "offsite_days": 20, "superlink_offsite_days": 0, "superlink_keep": "x",
                                         "recipients": ["age1notakey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA operator"]}
    config["nina:cloud"] = {**config.get("nina:cloud", {}), "auth_url": "http://keystone.example/v3; rm -rf /", "object_store_region": "a b"}
    found = problems(config)
    assert any(p.startswith("nina:database.backup.offsite_days:") and "shorter than the monthly schedule" in p for p in found), found
    assert any(p.startswith("nina:database.backup.superlink_offsite_days:") and "at least 1" in p for p in found), found
    assert any(p.startswith("nina:database.backup.superlink_keep:") and "integer" in p for p in found), found
    assert any(p.startswith("nina:cloud.auth_url:") and "https://" in p for p in found), found
    assert any(p.startswith("nina:cloud.object_store_region:") for p in found), found
    assert any(p.startswith("nina:database.backup.recipients[0]:") and "'age1notakey' is not an age X25519 public key" in p for p in found), found
    assert any(p.startswith("nina:database.backup.recipients[1]:") for p in found), found
    assert len(found) == 7, found


def test_off_host_copies_need_the_operators_public_keys() -> None:
    config = raw_config()
    del config["nina:database"]["backup"]["recipients"]
    assert problems(config) == ["nina:database.backup.recipients: is required (a non-empty list)"]
    (key,) = raw_config()["nina:database"]["backup"]["recipients"]
    config["nina:database"]["backup"]["recipients"] = [key, key]
    assert problems(config) == ["nina:database.backup.recipients: lists a key twice"]


# --------------------------------------------------------------------------------------- a real Swift on loopback


@pytest.fixture(scope="module")
def swift() -> Iterator[swift_store.Swift]:
    why = swift_store.missing()
    if why:
        pytest.fail(why)
    with swift_store.running_swift() as store:
        assert store.swift("post", CONTAINER).returncode == 0  # the stack creates it (components/offsite.py)
        yield store


def offsite_env(root: Path, swift: swift_store.Swift, **extra: str) -> dict[str, str]:
    credentials = root / "offsite.env"
    credentials.write_text(swift.credentials_text())
    credentials.chmod(0o600)
    (root / "textfile").mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "NINA_OFFSITE_CREDENTIALS": str(credentials), "NINA_TEXTFILE_DIR": str(root / "textfile"), **extra}


def offsite(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run("bash", str(root / databases.OFFSITE_COMMAND.lstrip("/")), *args, env=env)


def promtool_ok(metrics: str) -> None:
    check = run(shutil.which("promtool") or "promtool", "check", "metrics", input=metrics)
    assert check.returncode == 0, check.stdout + check.stderr


def operator_key(root: Path) -> Path:
    """The operators' age identity, made for this test (the test stack's own private half was kept nowhere), and the
    installed nina-offsite-backup pointed at its public half instead of the stack's recipient."""
    key = root / "operator.key"
    assert run("age-keygen", "-o", str(key)).returncode == 0
    public = run("age-keygen", "-y", str(key)).stdout.strip()
    script = root / databases.OFFSITE_COMMAND.lstrip("/")
    (stack_key,) = raw_config()["nina:database"]["backup"]["recipients"]
    assert script.read_text().count(f"--recipient {stack_key}") == 1
    script.write_text(script.read_text().replace(stack_key, public))
    return key


def stored(swift: swift_store.Swift, object_name: str, into: Path) -> bytes:
    """The object as the store holds it (what any credential that reaches it could read)."""
    done = swift.swift("download", CONTAINER, object_name, "--output", str(into))
    assert done.returncode == 0, done.stderr
    return into.read_bytes()


def decrypt(key: Path, sealed: bytes) -> bytes:
    done = subprocess.run(["age", "--decrypt", "--identity", str(key)], input=sealed, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_dump_goes_off_the_host_and_comes_back_into_postgres(site: Site, swift: swift_store.Swift, systemctl: tuple[Path, Path]) -> None:  # noqa: F811
    env = offsite_env(site.root, swift, NINA_BACKUP_ROOT=site.env["NINA_BACKUP_ROOT"], NINA_RESTORE_DIR=site.env["NINA_RESTORE_DIR"])
    key = operator_key(site.root)
    assert site.backup().returncode == 0
    (dump,) = site.backups.glob(f"{DB.name}_*.pgdump")
    plain = dump.read_bytes()
    done = offsite(site.root, env, "upload", DB.name)
    assert done.returncode == 0, done.stderr
    object_name = f"hub/{DB.name}/{dump.name}.age"
    assert f"{CONTAINER}/{object_name}" in done.stdout
    assert not [p for p in site.backups.iterdir() if p.name.startswith(".sealed")]
    stat = swift.swift("stat", CONTAINER, object_name)
    assert stat.returncode == 0, stat.stderr
    # Swift itself deletes the copy after nina:database.backup.offsite_days (400 in the test stack)
    delete_at = int(re.search(r"X-Delete-At: (\d+)", stat.stdout).group(1))  # type: ignore[union-attr]
    assert abs(delete_at - (time.time() + 400 * 86400)) < 600
    # What the store holds is age's ciphertext, not the dump: a credential that reaches it (another host's, through
    # Swift's copy middleware; the store's operators) reads nothing. The operators' key opens it, byte for byte.
    sealed = stored(swift, object_name, site.root / "as-stored")
    assert sealed.startswith(b"age-encryption.org/v1\n-> X25519 ") and b"PGDMP" not in sealed and b"realm" not in sealed
    assert decrypt(key, sealed) == plain

    recorded = offsite(site.root, env, "record", DB.name)
    assert recorded.returncode == 0, recorded.stderr
    metrics = (site.root / "textfile" / f"nina_offsite_{DB.name}.prom").read_text()
    promtool_ok(metrics)
    when = int(re.search(r'^nina_offsite_backup_last_success_timestamp_seconds\{backup="' + DB.name + r'"\} (\d+)$', metrics, re.M).group(1))  # type: ignore[union-attr]
    assert abs(when - time.time()) < 600

    # the host is lost: no local dump; the data changes; then the copy comes back from the store and is restored
    shutil.rmtree(site.backups)
    site.pg.psql("DELETE FROM realm; INSERT INTO realm VALUES (3, 'after the loss')")
    restore_dir = Path(env["NINA_RESTORE_DIR"])
    # without the key the copy stays encrypted, for the operator to open off the host
    kept = offsite(site.root, env, "fetch", DB.name)
    assert kept.returncode == 0, kept.stderr
    assert Path(kept.stdout.strip()).name == f"{dump.name}.age" and Path(kept.stdout.strip()).read_bytes() == sealed
    assert "age --decrypt" in kept.stderr
    fetched = offsite(site.root, env, "fetch", DB.name, "--identity", str(key))
    assert fetched.returncode == 0, fetched.stderr
    path = Path(fetched.stdout.strip())
    # into a directory of root's own, never the backup user's
    assert path.parent.parent == restore_dir and path.name == dump.name and path.read_bytes() == plain
    assert restore_dir.stat().st_mode & 0o777 == 0o700 and path.parent.stat().st_mode & 0o777 == 0o700
    assert not site.backups.exists()
    done = restore(site, systemctl[0], str(path))
    assert done.returncode == 0, done.stderr
    assert site.pg.psql("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM realm") == "1=nina,2=master"


def test_fetch_writes_nothing_through_a_symlink_the_backup_user_planted(site: Site, swift: swift_store.Swift) -> None:  # noqa: F811
    """Root fetched into the backup user's directory as offsite-<file>: that user could point the name at
    /etc/sudoers.d/zz and have root write a copy of its choosing there."""
    env = offsite_env(site.root, swift, NINA_BACKUP_ROOT=site.env["NINA_BACKUP_ROOT"], NINA_RESTORE_DIR=site.env["NINA_RESTORE_DIR"])
    source = site.root / "copy"
    source.write_text("Defaults !authenticate\n")
    name = f"{DB.name}_29991231.pgdump"
    for object_name in (f"hub/{DB.name}/{name}", f"hub/{DB.name}/{name}.age"):
        assert swift.swift("upload", "--object-name", object_name, CONTAINER, str(source)).returncode == 0
    victim = site.root / "etc-sudoers.d-zz"
    victim.write_text("root's file\n")
    site.backups.mkdir(parents=True)
    for planted in (f"offsite-{name}", f"offsite-{name}.age"):
        (site.backups / planted).symlink_to(victim)
    for args in ((), (f"hub/{DB.name}/{name}",)):
        fetched = offsite(site.root, env, "fetch", DB.name, *args)
        assert fetched.returncode == 0, fetched.stderr
        assert victim.read_text() == "root's file\n"
        assert Path(fetched.stdout.strip()).parent.parent == Path(env["NINA_RESTORE_DIR"])


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_record_reads_only_the_backup_users_regular_marker(site: Site, swift: swift_store.Swift, planted: str) -> None:  # noqa: F811
    """record runs as root after the backup user's steps and reads that user's marker: a symlink must not make it
    publish another file's contents, a FIFO must not hold it (and the unit) forever."""
    env = offsite_env(site.root, swift, NINA_BACKUP_ROOT=site.env["NINA_BACKUP_ROOT"])
    site.backups.mkdir(parents=True)
    marker = site.backups / f".offsite-{DB.name}"
    marker.write_text(f"{int(time.time())} hub/{DB.name}/x\n")
    assert offsite(site.root, env, "record", DB.name).returncode == 0
    published = site.root / "textfile" / f"nina_offsite_{DB.name}.prom"
    good = published.read_text()
    marker.unlink()
    if planted == "symlink":
        secret = site.root / "secret"
        secret.write_text("1234567890 root's secret\n")
        secret.chmod(0o600)
        marker.symlink_to(secret)
    else:
        os.mkfifo(marker)
    done = subprocess.run(["bash", str(site.root / databases.OFFSITE_COMMAND.lstrip("/")), "record", DB.name], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 and "not a regular file" in done.stderr
    assert published.read_text() == good
    promtool_ok(good)
    # and whatever else might wait, the unit that runs it is bounded
    assert "\nTimeoutStartSec=" in (site.root / "etc/systemd/system/nina-backup@.service").read_text()


def test_a_failed_upload_fails_and_records_nothing(site: Site, swift: swift_store.Swift) -> None:  # noqa: F811
    env = offsite_env(site.root, swift, NINA_BACKUP_ROOT=site.env["NINA_BACKUP_ROOT"])
    assert site.backup().returncode == 0
    Path(env["NINA_OFFSITE_CREDENTIALS"]).write_text(swift.credentials_text().replace("ST_KEY=testing", "ST_KEY=wrong"))
    failed = offsite(site.root, env, "upload", DB.name)
    assert failed.returncode != 0 and "could not copy" in failed.stderr
    assert not (site.backups / f".offsite-{DB.name}").exists()
    assert offsite(site.root, env, "record", DB.name).returncode != 0
    assert not (site.root / "textfile" / f"nina_offsite_{DB.name}.prom").exists()
    # and a fetch cannot be pointed at another backup's or host's objects
    wrong = offsite(site.root, offsite_env(site.root, swift), "fetch", DB.name, "superlink/superlink-fl/superlink-fl_x.db")
    assert wrong.returncode != 0 and "is not a copy of" in wrong.stderr


# ------------------------------------------------------------------------------------ the SuperLink's state database


class Writer:
    """Writes to a WAL-mode SQLite database as the SuperLink does (flwr's pragmas), one committed row at a time."""

    def __init__(self, path: Path) -> None:
        self.path, self.written, self.stop = path, 0, threading.Event()
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE run (id INTEGER PRIMARY KEY, status TEXT, payload BLOB)")
        db.commit()
        db.close()
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        db = sqlite3.connect(self.path, timeout=5)
        db.execute("PRAGMA busy_timeout=5000")
        while not self.stop.is_set():
            db.execute("INSERT INTO run (status, payload) VALUES ('finished:completed', randomblob(4096))")
            db.commit()
            self.written += 1
        db.close()

    def __enter__(self) -> Writer:
        self.thread.start()
        while self.written < 200:  # a database with some history, still being written
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def superlink_host(materialized: dict[str, Preview], tmp_path: Path) -> tuple[Path, str]:
    preview = materialized["test"]
    stdin = preview.named(COMMAND, "deliver-superlink")["inputs"]["stdin"]
    installed = run(sys.executable, str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(tmp_path), input=stdin)
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["units"][databases.SUPERLINK_BACKUP_UNIT] == "start"
    (name,) = backups.superlink_backups_on(preview.cfg, preview.cfg.hosts["superlink"])
    return tmp_path, name


def test_the_superlink_state_is_copied_live_uploaded_and_restored(superlink_host: tuple[Path, str], swift: swift_store.Swift,
                                                                  systemctl: tuple[Path, Path]) -> None:  # noqa: F811
    root, name = superlink_host
    state = root / "state" / "state.db"
    state.parent.mkdir()
    backup_dir = root / "state" / "backups"
    user = f"{os.getuid()}:{os.getgid()}"
    restore_dir = root / "restore"
    env = offsite_env(root, swift, NINA_SUPERLINK_STATE=str(state), NINA_SUPERLINK_BACKUP_DIR=str(backup_dir), NINA_SUPERLINK_OWNER=user,
                      NINA_RESTORE_DIR=str(restore_dir))
    key = operator_key(root)

    def command(path: str, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run("bash", str(root / path.lstrip("/")), *args, env={**env, **(extra or {})})

    with Writer(state) as writer:
        before = writer.written
        done = command(databases.SUPERLINK_BACKUP_COMMAND)
        after_copy = writer.written
        assert done.returncode == 0, done.stderr
        assert command(databases.SUPERLINK_BACKUP_COMMAND, "--record").returncode == 0
        uploaded = offsite(root, env, "upload", name)
        assert uploaded.returncode == 0, uploaded.stderr
        assert offsite(root, env, "record", name).returncode == 0
    (copy,) = backup_dir.glob(f"{name}_*.db")
    assert f"{CONTAINER}/superlink/{name}/{copy.name}.age" in uploaded.stdout
    sealed = stored(swift, f"superlink/{name}/{copy.name}.age", root / "as-stored")
    assert not sealed.startswith(b"SQLite format 3") and decrypt(key, sealed) == copy.read_bytes()

    metrics = (root / "textfile" / f"nina_backup_{name}.prom").read_text() + (root / "textfile" / f"nina_offsite_{name}.prom").read_text()
    promtool_ok(metrics)
    federation = name.removeprefix("superlink-")
    size = int(re.search(r'^nina_superlink_state_size_bytes\{federation="' + federation + r'"\} (\d+)$', metrics, re.M).group(1))  # type: ignore[union-attr]
    assert size >= 200 * 4096
    assert re.search(rf'^nina_backup_max_age_seconds{{backup="{name}"}} {databases.SUPERLINK_MAX_AGE_DAYS * 86400}$', metrics, re.M)

    # the host and its local copies are lost; the copy comes back from the store, the SuperLink is stopped, it is put
    # back, the SuperLink started
    shutil.rmtree(backup_dir)
    state.write_bytes(b"a database lost in an accident")
    fetched = command(databases.OFFSITE_COMMAND, "fetch", name, "--identity", str(key))
    assert fetched.returncode == 0, fetched.stderr
    assert Path(fetched.stdout.strip()).parent.parent == restore_dir
    # the SuperLink's user plants symlinks where root would once have saved the current state
    backup_dir.mkdir()
    victim = root / "etc-sudoers.d-zz"
    victim.write_text("root's file\n")
    now = time.time()
    for second in range(-2, 120):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now + second))
        (backup_dir / f"pre-restore-{name}_{stamp}.db").symlink_to(victim)
    bin_dir, log = systemctl
    done = command(databases.SUPERLINK_RESTORE_COMMAND, fetched.stdout.strip(), extra={"PATH": f"{bin_dir}:{env['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["is-active --quiet superlink.service", "stop superlink.service", "start superlink.service"]
    restored = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [row[0] for row in restored.execute("SELECT id FROM run ORDER BY id")]
    # one consistent moment of the live database: every row committed up to it, nothing torn
    assert before <= len(ids) <= after_copy + 1 and ids == list(range(1, len(ids) + 1))
    restored.close()
    (saved,) = restore_dir.glob(f"pre-restore-{name}_*.db")  # what was there is kept, in root's own directory
    assert saved.read_bytes() == b"a database lost in an accident"
    assert victim.read_text() == "root's file\n"
    assert "\nTimeoutStartSec=" in (root / "etc/systemd/system" / databases.SUPERLINK_BACKUP_UNIT).read_text()


def test_the_superlink_restore_refuses_a_file_that_is_not_a_database(superlink_host: tuple[Path, str], systemctl: tuple[Path, Path]) -> None:  # noqa: F811
    root, _ = superlink_host
    bogus = root / "bogus.db"
    bogus.write_text("not a database\n")
    bin_dir, log = systemctl
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NINA_SUPERLINK_STATE": str(root / "state.db"), "NINA_RESTORE_DIR": str(root / "r")}
    done = run("bash", str(root / databases.SUPERLINK_RESTORE_COMMAND.lstrip("/")), str(bogus), env=env)
    assert done.returncode != 0 and "is not a SQLite database" in done.stderr
    assert not log.exists()  # the SuperLink was never stopped
