"""Every host's user-data, judged by the real tools: cloud-init's JSON schema, shellcheck, systemd-analyze verify, nft.

The checks are generic over whatever the role fragments render (they find shell scripts, units and rulesets in each
host's write_files), so a new role template is checked the moment it exists. Each checker is also fed a broken
input once, to prove it can fail.
"""

from __future__ import annotations

import base64
import configparser
import copy
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import COMMAND, DATA, STACKS, HostRender, Preview, delivered

from cloudinit import render
from nina.catalog import databases, layout, versions
from nina.catalog.ports import NODE_EXPORTER_PORT
from nina.catalog.roles import APP_USERS, BASE_UNITS, ROLES, SYSTEM_GROUP
from nina.config import Host
from nina.plan.backups import backed_up_on

SCHEMA = DATA / "cloud-init-25.1-schema-cloud-config-v1.json"
METADATA_IP = "169.254.169.254"


def hosts(preview: Preview) -> Iterator[tuple[Host, HostRender]]:
    for name, rendered in preview.hosts.items():
        yield preview.cfg.hosts[name], rendered


# ------------------------------------------------------------------------------------------------ the schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)  # the schema declares draft-04
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_every_cloud_config_is_schema_valid(preview: Preview, validator: jsonschema.protocols.Validator) -> None:
    assert preview.hosts, "no Instance in the preview"
    for host, rendered in hosts(preview):
        assert rendered.cloud_config_text.startswith("#cloud-config\n")
        assert schema_errors(validator, rendered.cloud_config) == [], host.name


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(packagez=["nginx"]),
        lambda d: d["write_files"][0].update(permissions=644),
        lambda d: d["write_files"][0].update(defer="yes"),
        lambda d: d.update(runcmd="bash /x.sh"),
    ],
    ids=["unknown-key", "int-permissions", "string-defer", "runcmd-not-a-list"],
)
def test_schema_catches_a_broken_cloud_config(previews: dict[str, Preview], validator: jsonschema.protocols.Validator, breakage: Any) -> None:
    document = copy.deepcopy(next(iter(next(iter(previews.values())).hosts.values())).cloud_config)
    breakage(document)
    assert schema_errors(validator, document) != []


# ------------------------------------------------------------------------------------- size and the gzip path


def test_user_data_is_within_the_budget(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        size = len(rendered.user_data.encode())
        assert size <= render.SIZE_LIMIT, f"{host.name}: user-data is {size} bytes (limit {render.SIZE_LIMIT})"


def test_out_files_are_the_instance_user_data(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        assert rendered.user_data_file == rendered.user_data, host.name
        assert render.decode_user_data(rendered.user_data) == rendered.cloud_config_text, host.name
        # The preview renders through the same function the renderer exposes: no second code path.
        assert render.user_data(preview.cfg, host) == rendered.user_data, host.name


def test_user_data_does_not_depend_on_libyaml(preview: Preview) -> None:
    """The renderer uses libyaml's emitter when PyYAML has it; the pure-Python one must give the same bytes, or a
    machine without libyaml would replace every VM on its first `pulumi up`."""
    for host, rendered in hosts(preview):
        document = render.cloud_config(preview.cfg, host)
        assert "#cloud-config\n" + yaml.dump(document, Dumper=render.PureDumper, **render.DUMP_OPTIONS) == rendered.cloud_config_text, host.name
        assert yaml.safe_load(rendered.cloud_config_text) == document


def test_large_user_data_is_gzipped_and_round_trips(preview: Preview, monkeypatch: pytest.MonkeyPatch) -> None:
    host = next(iter(preview.cfg.hosts.values()))
    text = render.cloud_config_text(preview.cfg, host)
    monkeypatch.setattr(render, "SIZE_LIMIT", len(text.encode()) - 1)
    packed = render.user_data(preview.cfg, host)
    assert not packed.startswith("#cloud-config")
    raw = base64.b64decode(packed, validate=True)
    assert raw[:2] == b"\x1f\x8b", "not gzip: cloud-init would not recognise it"
    assert gzip.decompress(raw).decode() == text
    assert render.decode_user_data(packed) == text
    assert render.user_data(preview.cfg, host) == packed, "gzip output must be byte-stable (a change replaces the VM)"
    assert len(packed) < len(text)


# ------------------------------------------------------------------------------------------- secrets and base


def test_no_secret_in_user_data(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        assert rendered.user_data != "[secret]", f"{host.name}: a secret flowed into user-data (the preview masks it whole)"
        text = rendered.cloud_config_text
        for marker in ("PRIVATE KEY", "[secret", "[computed:"):
            assert marker not in text, f"{host.name}: {marker!r} in user-data"


def test_no_real_secret_in_materialized_user_data(materialized: dict[str, Preview]) -> None:
    """With real keys and passwords (secrets shown), anything secret in user-data would appear as itself."""
    for preview in materialized.values():
        for host, rendered in hosts(preview):
            text = render.decode_user_data(rendered.user_data)
            assert "PRIVATE KEY" not in text, host.name
            assert "[secret" not in text, host.name
            assert text == rendered.cloud_config_text


def test_service_users_are_system_users_without_shell(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        doc = rendered.cloud_config
        assert SYSTEM_GROUP in doc["groups"]
        users = [u for u in doc["users"] if u != "default"]
        expected = {u for r in host.roles for u in ROLES[r].service_users}
        if backed_up_on(preview.cfg, host):  # the second table that makes users: §4.3.1's backups
            expected.add(databases.BACKUP_USER)
        # Researchers' apps and their SuperExec run as users of their own, never in fl_system (README: Threat model).
        apps = set(APP_USERS) if any(ROLES[r].runs_apps for r in host.roles) else set()
        assert {u["name"] for u in users} == expected | apps, host.name
        for user in users:
            assert user["system"] is True and user["shell"] == "/usr/sbin/nologin", user
            assert (SYSTEM_GROUP in user.get("groups", ())) == (user["name"] not in apps), user
            assert user.get("lock_passwd", True) is True, user


def test_base_packages_and_directories(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        doc = rendered.cloud_config
        assert {"prometheus-node-exporter", "nftables"} <= set(doc["packages"]), host.name
        assert doc["ssh_pwauth"] is False and doc["disable_root"] is True
        assert doc["ssh_authorized_keys"] == [preview.cfg.admin.delivery_public_key]  # the delivery's; operators' are delivered
        scripts = "\n".join(f["content"] for f in shell_files(rendered))
        assert re.search(rf"ensure_dir /var/lib/nina root {SYSTEM_GROUP} 07[0-7]0", scripts), host.name


def test_node_exporter_listens_on_9900(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        (defaults,) = rendered.files(lambda p: p == "/etc/default/prometheus-node-exporter")
        assert f"--web.listen-address=:{NODE_EXPORTER_PORT}" in defaults["content"], host.name
        assert NODE_EXPORTER_PORT == 9900  # §3.3.1


def test_journald_size_is_limited(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        confs = rendered.files(lambda p: p.startswith("/etc/systemd/journald.conf.d/") and p.endswith(".conf"))
        assert confs, host.name
        parser = configparser.ConfigParser()
        for conf in confs:
            parser.read_string(conf["content"])
        assert parser["Journal"]["SystemMaxUse"], host.name


SSHD_CANDIDATE, SSHD_LIVE = "/usr/local/lib/nina/sshd_config", "/etc/ssh/sshd_config.d/10-nina.conf"


def test_sshd_is_hardened(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        # cloud-init writes a candidate; the base bootstrap installs it only once sshd accepts it (apply_sshd_config)
        confs = rendered.files(lambda p: p == SSHD_CANDIDATE)
        bootstrap = next(f["content"] for f in rendered.write_files if f["path"].endswith("-base.sh"))
        assert f"apply_sshd_config {SSHD_CANDIDATE} {SSHD_LIVE}\n" in bootstrap
        settings = {}
        for conf in confs:
            for line in conf["content"].splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.strip().partition(" ")
                    settings.setdefault(key.lower(), value.strip())  # sshd: the first value wins
        assert settings.get("passwordauthentication") == "no", host.name
        assert settings.get("permitrootlogin") == "no", host.name
        assert settings.get("kbdinteractiveauthentication") == "no", host.name
        # The operators' keys come from the delivered file, the delivery's own from user-data alone.
        assert settings.get("authorizedkeysfile") == f".ssh/authorized_keys {layout.OPERATOR_KEYS_DIR}/%u", host.name
        assert rendered.cloud_config["ssh_authorized_keys"] == [preview.cfg.admin.delivery_public_key], host.name


@pytest.mark.skipif(not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists(), reason="sshd (openssh-server) is installed by scripts/install-system-deps.sh")
def test_sshd_accepts_the_rendered_drop_in(preview: Preview, tmp_path: Path) -> None:
    """sshd -t itself: the drop-in as sshd reads it, with a throwaway host key (sshd refuses a config it cannot load)."""
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    for host, rendered in hosts(preview):
        (conf,) = rendered.files(lambda p: p == SSHD_CANDIDATE)
        path = tmp_path / f"{host.name}.conf"
        path.write_text(conf["content"])
        done = _sshd_check(path, key)
        assert done.returncode == 0, host.name + done.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(conf["content"] + "AuthorizedKeysFiles nowhere\n")
    assert _sshd_check(broken, key).returncode != 0


def _sshd_check(config: Path, host_key: Path) -> subprocess.CompletedProcess[str]:
    """sshd -t in a mount namespace of its own, with the privilege-separation directory it insists on (nothing of
    this machine's /run changes)."""
    script = f"mount -t tmpfs lab /run && mkdir -m 0755 /run/sshd && exec /usr/sbin/sshd -t -f {config} -o HostKey={host_key}"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True)


def metadata_guards(rendered: HostRender) -> list[dict[str, Any]]:
    """The nftables rulesets that reject non-root (skuid != 0) traffic to the metadata address."""
    return [
        f
        for f in rendered.files(lambda p: p.endswith(".nft"))
        if re.search(rf"ip daddr {re.escape(METADATA_IP)} meta skuid != 0 .*reject", f["content"])
    ]


def test_metadata_guard_is_installed_and_enabled(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        (ruleset,) = metadata_guards(rendered)
        loaders = [u for u in unit_files(rendered) if f"nft -f {ruleset['path']}" in u["content"]]
        assert len(loaders) == 1, host.name
        unit = Path(loaders[0]["path"]).name
        scripts = "\n".join(f["content"] for f in shell_files(rendered))
        assert re.search(rf"enable_unit .*{re.escape(unit)}", scripts), f"{host.name}: {unit} is never enabled"


FLOWER_ROLES = ("superlink", "supernode")


def test_flower_hosts_get_the_pinned_flower_venv(preview: Preview) -> None:
    """§4.1.2.11: Flower runs from a Python venv at /opt/python/flower_env, flwr pinned to the release we target."""
    checked = 0
    for host, rendered in hosts(preview):
        scripts = "\n".join(f["content"] for f in shell_files(rendered))
        for role in FLOWER_ROLES:
            if not host.has(role):
                continue
            venv = ROLES[role].python_venv
            assert venv == "/opt/python/flower_env"
            pattern = rf"ensure_venv {re.escape(venv)} .*flwr(\[[a-z,-]+\])?=={re.escape(versions.FLWR)}"
            assert re.search(pattern, scripts), f"{host.name}: no {venv} with flwr {versions.FLWR}"
            assert "python3-venv" in rendered.cloud_config["packages"], host.name
            checked += 1
    assert checked, "no Flower host in this stack"


def test_write_files_are_deferred_and_unique(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        paths = [f["path"] for f in rendered.write_files]
        assert len(paths) == len(set(paths)), f"{host.name}: two fragments write the same file"
        for f in rendered.write_files:
            assert f["defer"] is True, f["path"]
            assert re.fullmatch(r"0[0-7]{3}", f["permissions"]), f["path"]
            assert re.fullmatch(r"[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*", f["owner"]), f["path"]


def test_runcmd_runs_written_executable_scripts(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        written = {f["path"]: f for f in rendered.write_files}
        assert rendered.cloud_config["runcmd"], host.name
        for command in rendered.cloud_config["runcmd"]:
            script = command[0] if isinstance(command, list) else command.split()[0]
            assert script in written, f"{host.name}: runcmd runs {script}, which user-data does not write"
            assert int(written[script]["permissions"], 8) & 0o100, f"{host.name}: {script} is not executable"
            assert script in {f["path"] for f in shell_files(rendered)}


# ------------------------------------------------------------------------------------------------- shellcheck

SHELLS = {"sh", "bash", "dash"}


def shell_of(path: str, content: str) -> str | None:
    first = content.split("\n", 1)[0]
    if first.startswith("#!"):
        words = first[2:].split()
        interpreter = Path(words[0]).name if words else ""
        if interpreter == "env" and len(words) > 1:
            interpreter = words[1]
        return interpreter if interpreter in SHELLS else None
    directive = re.search(r"^# shellcheck shell=(\w+)", content, re.M)
    if directive:
        return directive.group(1)
    return "unknown" if path.endswith(".sh") else None  # a .sh without a shebang: shellcheck reports it


def shell_files(rendered: HostRender) -> list[dict[str, Any]]:
    return [f for f in rendered.write_files if shell_of(f["path"], f["content"])]


def shellcheck(files: dict[str, str]) -> str:
    """Run shellcheck on {path on the host: content}; returns its findings ('' when clean)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for path, content in files.items():
            local = Path(tmp) / path.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(content)
            args.append(str(local))
        proc = subprocess.run(["shellcheck", "--norc", "--format=gcc", *args], capture_output=True, text=True, check=False)
        return (proc.stdout + proc.stderr).replace(tmp, "")


def test_every_shell_script_passes_shellcheck(preview: Preview) -> None:
    for host, rendered in hosts(preview):
        scripts = shell_files(rendered)
        assert scripts, f"{host.name}: no shell script found (the bootstrap scripts at least)"
        assert shellcheck({f["path"]: f["content"] for f in scripts}) == "", host.name


@pytest.mark.parametrize("stack", STACKS)
def test_every_delivered_script_and_unit_passes_shellcheck_and_systemd_analyze_verify(materialized: dict[str, Preview], stack: str) -> None:
    """What hosts receive after boot (backup tooling, the realm's units, the notebook image's builder, SuperNode
    confs...) is judged like user-data: scripts by shellcheck, units by systemd-analyze verify on the host as it will
    be (user-data and delivery together)."""
    preview = materialized[stack]
    scripts_seen = units_seen = 0
    for host, rendered in hosts(preview):
        files = delivered(preview, host.name)
        scripts = {path: f["content"] for path, f in files.items() if shell_of(path, f["content"])}
        if scripts:
            assert shellcheck(scripts) == "", host.name
        target = target_of(host, rendered)
        target.units = {m.group(1): f["content"] for path, f in files.items() if (m := UNIT_FILE.match(path))}
        target.drop_ins = {}
        target.written |= set(files)
        if target.units:
            assert verify_units(target) == [], host.name
        scripts_seen += len(scripts)
        units_seen += len(target.units)
    assert scripts_seen and units_seen


def test_every_remote_command_passes_shellcheck(preview: Preview) -> None:
    """What pulumi-command runs over SSH (deliveries, registrations, the realm) is shell too (bash on Ubuntu)."""
    scripts = {
        f"/commands/{r['name']}.{phase}.sh": "#!/bin/bash\n" + r["inputs"][phase] + "\n"
        for r in preview.of_type(COMMAND)
        for phase in ("create", "update", "delete")
        if isinstance(r["inputs"].get(phase), str)
    }
    assert any("realm" in path for path in scripts) and any("deliver" in path for path in scripts)
    assert shellcheck(scripts) == ""


def test_shellcheck_catches_a_bad_script() -> None:
    findings = shellcheck({"/usr/local/lib/nina/bootstrap/99-bad.sh": "#!/bin/bash\nrm -rf $dir/*\n[ $x == 1 ] && echo\n"})
    assert "SC2086" in findings or "SC2115" in findings


def test_a_script_without_shebang_is_found_and_rejected() -> None:
    assert shell_of("/usr/local/bin/x.sh", "echo hi\n") == "unknown"
    assert "SC2148" in shellcheck({"/usr/local/bin/x.sh": "echo hi\n"})
    assert shell_of("/usr/local/sbin/nina-deliver", "#!/usr/bin/python3\n") is None


# ------------------------------------------------------------------------------------- systemd-analyze verify

UNIT_DIR = r"/(?:etc|usr/lib|lib)/systemd/system"
UNIT_SUFFIX = r"\.(?:service|timer|socket|path|mount|target)"
UNIT_FILE = re.compile(rf"^{UNIT_DIR}/([^/]+{UNIT_SUFFIX})$")
DROP_IN = re.compile(rf"^{UNIT_DIR}/([^/]+{UNIT_SUFFIX})\.d/[^/]+\.conf$")
SYSTEM_UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))
# Directories too general to prove that a bootstrap script installs something in them.
GENERIC_DIRS = {"/", "/opt", "/usr", "/usr/local", "/usr/local/bin", "/usr/local/sbin", "/usr/local/lib", "/usr/bin", "/usr/sbin", "/bin", "/sbin"}
MISSING_EXECUTABLE = re.compile(r"^\S+: Command (\S+) is not executable: No such file or directory$")


def unit_files(rendered: HostRender) -> list[dict[str, Any]]:
    return rendered.files(lambda p: bool(UNIT_FILE.match(p)))


@dataclass
class Target:
    """What a host will have that this CI machine may not: used to judge `systemd-analyze verify` findings."""

    units: dict[str, str]  # unit name -> content (rendered unit files)
    drop_ins: dict[str, dict[str, str]]  # unit name -> {drop-in file name: content}
    expected_units: set[str]  # units the host's roles run (role table), installed there by packages
    written: set[str] = field(default_factory=set)  # every path user-data writes
    scripts: str = ""  # all shell text of the host (bootstrap scripts install things)
    venvs: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)

    def provides(self, executable: str) -> bool:
        """An executable missing here is fine if the host gets it: written by user-data, inside one of its venvs,
        named like a package it installs, or under a specific directory its bootstrap scripts mention."""
        if executable in self.written or Path(executable).name in self.packages:
            return True
        if any(executable.startswith(f"{v}/") for v in self.venvs):
            return True
        candidates = [executable] + [str(p) for p in Path(executable).parents if str(p) not in GENERIC_DIRS]
        return any(re.search(rf"{re.escape(c)}(?![\w.-])", self.scripts) for c in candidates)


def target_of(host: Host, rendered: HostRender) -> Target:
    units: dict[str, str] = {}
    drop_ins: dict[str, dict[str, str]] = {}
    for f in rendered.write_files:
        if m := UNIT_FILE.match(f["path"]):
            units[m.group(1)] = f["content"]
        elif m := DROP_IN.match(f["path"]):
            drop_ins.setdefault(m.group(1), {})[Path(f["path"]).name] = f["content"]
    return Target(
        units=units,
        drop_ins=drop_ins,
        expected_units={u for r in host.roles for u in ROLES[r].units} | set(BASE_UNITS),
        written={f["path"] for f in rendered.write_files},
        scripts="\n".join(f["content"] for f in shell_files(rendered)),
        venvs={v for r in host.roles if (v := ROLES[r].python_venv)},
        packages=set(rendered.cloud_config.get("packages") or []),
    )


def _installed_here(unit: str) -> bool:
    template = re.sub(r"@[^.]+\.", "@.", unit)
    return any((d / name).exists() for d in SYSTEM_UNIT_DIRS for name in (unit, template))


def verify_units(target: Target) -> list[str]:
    """`systemd-analyze verify` every rendered unit and every unit a rendered drop-in extends. Unit files are
    judged in a private unit path; units the host gets from its packages but this machine lacks are stubbed (their
    drop-ins are still parsed). Returns the findings that would be real problems on the host."""
    if not target.units and not target.drop_ins:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        unit_dir, stub_dir = Path(tmp, "units"), Path(tmp, "stubs")
        unit_dir.mkdir()
        stub_dir.mkdir()
        for name, content in target.units.items():
            (unit_dir / name).write_text(content)
        for name, files in target.drop_ins.items():
            (unit_dir / f"{name}.d").mkdir()
            for file_name, content in files.items():
                (unit_dir / f"{name}.d" / file_name).write_text(content)
        for unit in (target.expected_units | set(target.drop_ins)) - set(target.units):
            if not _installed_here(unit):
                stub = re.sub(r"@[^.]+\.", "@.", unit)
                (stub_dir / stub).write_text(f"[Unit]\nDescription=stub of {unit}\n[Service]\nExecStart=/bin/true\n")
        env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:{stub_dir}:", "SYSTEMD_LOG_COLOR": "0"}
        names = [str(unit_dir / n) for n in sorted(target.units)] + sorted(set(target.drop_ins) - set(target.units))
        proc = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True, env=env, cwd=tmp, check=False
        )
        findings = []
        for line in (proc.stdout + proc.stderr).splitlines():
            missing = MISSING_EXECUTABLE.match(line)
            if missing and not Path(missing.group(1)).exists() and target.provides(missing.group(1)):
                continue
            findings.append(line.replace(tmp, ""))
        if proc.returncode != 0 and not findings:
            assert all(MISSING_EXECUTABLE.match(x) for x in proc.stderr.splitlines()), proc.stderr
        return findings


@pytest.mark.parametrize("stack", STACKS)
def test_every_unit_passes_systemd_analyze_verify(materialized: dict[str, Preview], stack: str) -> None:
    """User-data's units, on the host as it will be: what the delivery installs (nina-jupyter-access, say) counts."""
    preview = materialized[stack]
    checked = 0
    for host, rendered in hosts(preview):
        target = target_of(host, rendered)
        target.written |= set(delivered(preview, host.name))
        checked += len(target.units) + len(target.drop_ins)
        assert verify_units(target) == [], host.name
    assert checked, "no unit file found in any host's user-data"


GOOD_UNIT = "[Unit]\nDescription=ok\n[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def _target(units: dict[str, str], **kwargs: Any) -> Target:
    return Target(units=units, drop_ins=kwargs.pop("drop_ins", {}), expected_units=kwargs.pop("expected_units", set()), **kwargs)


def test_verify_passes_a_good_unit() -> None:
    assert verify_units(_target({"nina-good.service": GOOD_UNIT})) == []


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (GOOD_UNIT.replace("Type=oneshot", "Type=oneshot\nBogusDirective=1"), "Unknown key"),
        (GOOD_UNIT.replace("Type=oneshot", "Type=oneshot\nRestart=sometimes"), "restart"),
        (GOOD_UNIT.replace("/bin/true", "/usr/bin/nina-no-such-binary"), "is not executable"),
        (GOOD_UNIT.replace("[Service]", "Requires=nina-no-such.service\n[Service]"), "nina-no-such.service not found"),
    ],
    ids=["unknown-directive", "bad-value", "missing-binary", "missing-dependency"],
)
def test_verify_catches_a_bad_unit(unit: str, expected: str) -> None:
    findings = verify_units(_target({"nina-bad.service": unit}))
    assert findings and any(expected in f for f in findings), findings


def test_verify_checks_drop_ins_of_units_it_does_not_have() -> None:
    target = _target({}, drop_ins={"nina-packaged.service": {"10-nina.conf": "[Service]\nNoSuchKey=1\n"}}, expected_units={"nina-packaged.service"})
    assert any("Unknown key" in f for f in verify_units(target))


def test_verify_tolerates_only_executables_the_host_gets() -> None:
    unit = GOOD_UNIT.replace("/bin/true", "/opt/python/flower_env/bin/flower-superlink --help")
    assert verify_units(_target({"nina-x.service": unit}, venvs={"/opt/python/flower_env"})) == []
    assert verify_units(_target({"nina-x.service": unit}, venvs={"/opt/python/other_env"})) != []
    keycloak = GOOD_UNIT.replace("/bin/true", "/opt/keycloak/bin/kc.sh start")
    assert verify_units(_target({"nina-k.service": keycloak}, scripts="tar -C /opt/keycloak -xzf kc.tgz")) == []
    assert verify_units(_target({"nina-k.service": keycloak}, scripts="tar -C /opt/keycloak2 -xzf kc.tgz")) != []


# ---------------------------------------------------------------------------------------------------- nftables


def nft_check(content: str, users: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """nft -c on a ruleset; with `users`, in a private mount namespace whose /etc (an overlay) has those users too."""
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (scripts/install-system-deps.sh installs nftables)")
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f, tempfile.TemporaryDirectory() as tmp:
        f.write(content)
        f.flush()
        argv = ["nft", "-c", "-f", f.name]
        if users:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", with_users(users, tmp) + ' && exec "$@"', "sh", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if "Operation not permitted" in proc.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN (.ci/run runs as root)")
    return proc


def with_users(users: Sequence[str], tmp: str) -> str:
    """Shell that overlays /etc (changes land in TMP, the machine's /etc is untouched) and adds system users."""
    made = " && ".join(f"(id -u {u} >/dev/null 2>&1 || useradd --system --no-create-home {u})" for u in users)
    return f"mkdir -p {tmp}/u {tmp}/w && mount -t overlay overlay -o lowerdir=/etc,upperdir={tmp}/u,workdir={tmp}/w /etc && {made}"


def test_every_nft_ruleset_parses(preview: Preview) -> None:
    """nft -c resolves the user names `meta skuid` matches (the apps guard's): it runs where the host's users, which
    cloud-init creates before any guard loads, exist."""
    for host, rendered in hosts(preview):
        rulesets = rendered.files(lambda p: p.endswith(".nft"))
        assert rulesets, host.name
        users = [u["name"] for u in rendered.cloud_config["users"] if u != "default"]
        for ruleset in rulesets:
            proc = nft_check(ruleset["content"], users)
            assert proc.returncode == 0, f"{host.name} {ruleset['path']}: {proc.stderr}"


def test_nft_check_catches_a_bad_ruleset() -> None:
    proc = nft_check("table inet t {\n chain c {\n  type filter hook output priority filter;\n  ip daddr 1.2.3.4 frobnicate\n }\n}\n")
    assert proc.returncode != 0


METADATA_IP6 = "fe80::a9fe:a9fe"  # OpenStack's IPv6 metadata address (link-local: reached through an interface)


def _connects(ns: str, as_nobody: bool, port: int, address: str = METADATA_IP) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=3).close()"
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, *prefix, sys.executable, "-c", probe], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:  # a dropped (not rejected) SYN: not connected either
        return False
    return proc.returncode == 0


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_metadata_guard_blocks_non_root_only(previews: dict[str, Preview], family: str) -> None:
    """Load the real ruleset in a network namespace of our own with a listener on the metadata address (OpenStack
    serves IPv4 169.254.169.254 and IPv6 fe80::a9fe:a9fe): an unprivileged process is refused, root is not
    (cloud-init runs as root)."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None:
        pytest.skip("needs root, iproute2 and nftables (.ci/run runs as root)")
    rendered = next(iter(next(iter(previews.values())).hosts.values()))
    (ruleset,) = metadata_guards(rendered)
    ns = f"nina-test-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    server = None
    address, cidr = (METADATA_IP, f"{METADATA_IP}/32") if family == "ipv4" else (f"{METADATA_IP6}%lo", f"{METADATA_IP6}/128")
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", cidr, "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True)
        port = 8775
        listener = (
            f"import socket\nfamily, _, _, _, where = socket.getaddrinfo({address!r}, {port}, type=socket.SOCK_STREAM)[0]\n"
            "s = socket.socket(family)\ns.bind(where)\ns.listen(16)\nwhile True:\n    s.accept()[0].close()\n"
        )
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", listener])
        deadline = time.monotonic() + 10
        while not _connects(ns, False, port, address):
            assert time.monotonic() < deadline, "listener did not come up"
            time.sleep(0.1)
        assert _connects(ns, True, port, address), "control: without the guard an unprivileged process connects"
        with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
            f.write(ruleset["content"])
            f.flush()
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", f.name], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", f.name], check=True)  # re-loadable (restart)
        assert not _connects(ns, True, port, address), "an unprivileged process reached the metadata service"
        assert _connects(ns, False, port, address), "root (cloud-init) must still reach the metadata service"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_a_bad_ssh_configuration_keeps_the_previous_one_and_fails(tmp_path: Path, previews: dict[str, Preview]) -> None:
    """apply_sshd_config (lib.sh) with a stand-in sshd that refuses a drop-in holding "Bad": the previous drop-in
    stays, the step fails (so nina-bootstrap stops), and a good candidate is installed and ssh reloaded."""
    lib = previews["test"].hosts["hub"].file("/usr/local/lib/nina/lib.sh")["content"]
    (tmp_path / "lib.sh").write_text(lib)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    live = tmp_path / "sshd_config.d" / "10-nina.conf"
    live.parent.mkdir()
    (bin_dir / "sshd").write_text(f'#!/bin/sh\n! grep -q Bad {live}\n')
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.log\n')
    (bin_dir / "install").write_text('#!/bin/sh\nif [ "$1" = -d ]; then exit 0; fi\nexec /usr/bin/install "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def apply(content: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "candidate").write_text(content)
        script = f'. {tmp_path}/lib.sh; set -e; apply_sshd_config {tmp_path}/candidate {live}; echo applied'
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)

    good = apply("PasswordAuthentication no\n")
    assert good.returncode == 0 and live.read_text() == "PasswordAuthentication no\n", good.stderr
    bad = apply("Bad option\n")
    assert bad.returncode != 0 and "applied" not in bad.stdout and "the previous configuration stays" in bad.stderr
    assert live.read_text() == "PasswordAuthentication no\n" and not live.with_name("10-nina.conf.previous").exists()
    assert (tmp_path / "systemctl.log").read_text().splitlines() == ["try-reload-or-restart ssh.service"]
