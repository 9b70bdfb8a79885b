"""nina-deliver, the on-host half of the SSH delivery: run for real (under --root) on payloads like the program's."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.delivery import CREATE
from nina.catalog import layout

ROOT = Path(__file__).resolve().parent.parent
DELIVER = ROOT / "nina" / "onhost" / "nina_deliver.py"


def deliver(root: Path, payload: dict[str, Any]) -> dict[str, Any]:
    # The script must run on a bare host: the system interpreter, nothing from our venv on its path.
    result = subprocess.run(
        [sys.executable, "-I", str(DELIVER), "--root", str(root)], input=json.dumps(payload), capture_output=True, text=True, check=True
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:].zfill(4)


@pytest.fixture
def payload() -> dict[str, Any]:
    return {
        "dirs": [{"path": layout.SECRETS_DIR, "owner": "root:root", "mode": "0750"}],
        "files": [
            {"path": layout.CA_TRUST_PATH, "content": "CA\n", "owner": "root:root", "mode": "0644", "units": ["nginx.service"]},
            {"path": "/etc/flwr/superlink/certs/server.key", "content": "KEY\n", "owner": "root:root", "mode": "0600", "units": ["superlink.service"]},
            {"path": f"{layout.SECRETS_DIR}/grafana.env", "content": "A=1\n", "owner": "root:root", "mode": "0600", "units": ["reload:grafana-server.service"]},
        ],
        "hosts": "10.0.0.1 superlink.test.internal superlink\n",
    }


def test_installs_files_with_their_modes_and_reports_units(tmp_path: Path, payload: dict[str, Any]) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts").write_text("127.0.0.1 localhost\n")
    report = deliver(tmp_path, payload)
    assert sorted(report["changed"]) == sorted([f["path"] for f in payload["files"]] + ["/etc/hosts"])
    assert report["units"] == {"nginx.service": "restart", "superlink.service": "restart", "grafana-server.service": "reload"}
    assert report["trust_store"] is True
    key = tmp_path / "etc/flwr/superlink/certs/server.key"
    assert key.read_text() == "KEY\n" and mode(key) == "0600"
    assert mode(tmp_path / layout.SECRETS_DIR.lstrip("/")) == "0750"
    hosts = (tmp_path / "etc/hosts").read_text().splitlines()
    assert hosts[0] == "127.0.0.1 localhost" and "10.0.0.1 superlink.test.internal superlink" in hosts
    assert "KEY" not in json.dumps(report)  # it reports paths, never contents


def test_second_run_changes_nothing_and_restarts_nothing(tmp_path: Path, payload: dict[str, Any]) -> None:
    deliver(tmp_path, payload)
    report = deliver(tmp_path, payload)
    assert report["changed"] == [] and report["units"] == {} and report["trust_store"] is False
    assert (tmp_path / "etc/hosts").read_text().count("superlink.test.internal") == 1


def test_an_ensured_unit_runs_at_every_delivery(tmp_path: Path, payload: dict[str, Any]) -> None:
    """"ensure:" (the ML runtime's build): run again though nothing changed, so a build that failed last time is
    retried by the next `pulumi up`; the other units of unchanged files stay alone."""
    payload["files"].append({"path": layout.RUNTIME_LOCK, "content": "flwr==1\n", "owner": "root:root", "mode": "0644", "units": [f"ensure:{layout.RUNTIME_UNIT}"]})
    first = deliver(tmp_path, payload)
    assert first["units"][layout.RUNTIME_UNIT] == "restart"
    again = deliver(tmp_path, payload)
    assert again["changed"] == [] and again["units"] == {layout.RUNTIME_UNIT: "restart"}


def test_only_the_units_of_changed_files_restart(tmp_path: Path, payload: dict[str, Any]) -> None:
    deliver(tmp_path, payload)
    payload["files"][1]["content"] = "RENEWED KEY\n"
    report = deliver(tmp_path, payload)
    assert report["changed"] == ["/etc/flwr/superlink/certs/server.key"]
    assert report["units"] == {"superlink.service": "restart"}


def test_a_loosened_mode_is_repaired(tmp_path: Path, payload: dict[str, Any]) -> None:
    deliver(tmp_path, payload)
    key = tmp_path / "etc/flwr/superlink/certs/server.key"
    os.chmod(key, 0o644)
    report = deliver(tmp_path, payload)
    assert report["changed"] == ["/etc/flwr/superlink/certs/server.key"] and mode(key) == "0600"


def test_files_no_longer_delivered_are_removed_and_hosts_block_replaced(tmp_path: Path, payload: dict[str, Any]) -> None:
    deliver(tmp_path, payload)
    removed = payload["files"].pop(1)
    payload["hosts"] = "10.0.0.2 superlink.test.internal superlink\n"
    report = deliver(tmp_path, payload)
    assert removed["path"] in report["changed"]
    assert not (tmp_path / removed["path"].lstrip("/")).exists()
    hosts = (tmp_path / "etc/hosts").read_text()
    assert "10.0.0.2 superlink" in hosts and "10.0.0.1 superlink" not in hosts


def test_a_changed_hosts_block_reloads_the_units_that_resolve_names_at_start(tmp_path: Path, payload: dict[str, Any]) -> None:
    payload["hosts_units"] = ["reload:nginx.service"]
    deliver(tmp_path, payload)
    payload["files"][0]["units"] = []
    assert deliver(tmp_path, payload)["units"] == {}
    payload["hosts"] = "10.0.0.9 superlink.test.internal superlink\n"
    assert deliver(tmp_path, payload)["units"] == {"nginx.service": "reload"}


def test_unknown_owner_is_an_error_on_a_real_host(tmp_path: Path, payload: dict[str, Any]) -> None:
    payload["files"][0]["owner"] = "no-such-user-nina:fl_system"
    # Under --root an unknown owner is tolerated (test machines lack the service users) and reported.
    assert any("no-such-user-nina" in n for n in deliver(tmp_path, payload)["notes"])
    # On a host the installer refuses rather than leave a key owned by the wrong account.
    code = (
        "import sys, json; sys.argv=['nina-deliver']; import importlib.util as u;"
        f"s=u.spec_from_file_location('d', {str(DELIVER)!r}); m=u.module_from_spec(s); s.loader.exec_module(m);"
        f"i=m.Installer({str(tmp_path)!r}, dry=False); i.file('/x', 'y', 'no-such-user-nina:root', '0600')"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "does not exist on this host" in result.stderr


def test_create_command_installs_the_script_then_runs_it_once_cloud_init_is_done(tmp_path: Path) -> None:
    # The exact create command, with stand-ins for sudo and cloud-init (each exit status) and the install target
    # moved into the test's directory; the stand-in sudo records the final call instead of running it as root.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = tmp_path / "nina-deliver"
    ran = tmp_path / "deliver-ran"
    (bin_dir / "sudo").write_text(f'#!/bin/sh\nif [ "$1" = "{target}" ]; then touch {ran}; exit 0; fi\nexec "$@"\n')
    marker = tmp_path / "nina-bootstrapped"
    command = CREATE.replace(layout.DELIVER_COMMAND, str(target)).replace("-o root -g root ", "").replace(layout.BOOTSTRAP_MARKER, str(marker))
    # (cloud-init's exit status, whether nina-bootstrap left its marker) -> the delivery's exit status
    for status, bootstrapped, expected in ((0, True, 0), (2, True, 0), (1, True, 1), (0, False, 1)):
        (bin_dir / "cloud-init").write_text(f"#!/bin/sh\nexit {status}\n")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        ran.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        if bootstrapped:
            marker.write_text("2026-11-30T06:00:00Z\n")
        result = subprocess.run(["bash", "-c", command], env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        assert (result.returncode == 0) == (expected == 0), (status, bootstrapped)
        assert ran.exists() == (expected == 0), (status, bootstrapped)
        if expected == 0:
            assert target.read_bytes() == DELIVER.read_bytes() and mode(target) == "0755"


def test_the_installer_travels_in_the_command_not_in_user_data() -> None:
    from cloudinit import cloud_config_text
    from nina import config
    from nina.offline.stack_files import project_root, stack_config

    raw, _, _ = stack_config(project_root(ROOT), "test")
    cfg = config.parse(raw)
    marker = 'MANIFEST = "/var/lib/nina/delivered.json"'
    assert marker in DELIVER.read_text()
    assert all(marker not in cloud_config_text(cfg, h) for h in cfg.hosts.values())
