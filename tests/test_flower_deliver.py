"""nina-deliver's "enable:<unit>" (issue 4): SuperNode instances are enabled when their supernode.conf arrives and
disabled when it is no longer delivered, without touching user-data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def deliver(root: Path, files: list[dict[str, object]]) -> dict[str, object]:
    payload = json.dumps({"dirs": [], "files": files, "hosts": ""})
    run = subprocess.run([sys.executable, str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(root)], input=payload, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    report: dict[str, object] = json.loads(run.stdout)
    return report


def conf(name: str, text: str = "PORT=9094\n") -> dict[str, object]:
    return {"path": f"/etc/flwr/supernode/{name}/supernode.conf", "content": text, "owner": "root:root", "mode": "0640", "units": [f"enable:supernode@{name}.service"]}


def test_instances_follow_the_delivered_confs(tmp_path: Path) -> None:
    first = deliver(tmp_path, [conf("sn1"), conf("sn2")])
    assert first["enabled"] == ["supernode@sn1.service", "supernode@sn2.service"] and first["disabled"] == []
    assert first["units"] == {"supernode@sn1.service": "restart", "supernode@sn2.service": "restart"}
    same = deliver(tmp_path, [conf("sn1"), conf("sn2")])
    assert same["units"] == {} and same["disabled"] == []  # nothing changed: nothing restarted
    changed = deliver(tmp_path, [conf("sn1", "PORT=9095\n")])
    assert changed["units"] == {"supernode@sn1.service": "restart"}
    assert changed["disabled"] == ["supernode@sn2.service"]
    assert not (tmp_path / "etc/flwr/supernode/sn2/supernode.conf").exists()
    assert json.loads((tmp_path / "var/lib/nina/enabled-units.json").read_text()) == ["supernode@sn1.service"]
