#!/usr/bin/python3
"""nina-deliver: install the material `pulumi up` hands a host over SSH (components/delivery.py).

Installed on every host as /usr/local/sbin/nina-deliver by cloud-init; run as root with a JSON payload on stdin:

    {"dirs":  [{"path": "/etc/nina/secrets", "owner": "root:fl_system", "mode": "0750"}],
     "files": [{"path": "...", "content": "...", "owner": "user:group", "mode": "0640", "units": ["x.service"]}],
     "hosts": "<lines for /etc/hosts>", "hosts_units": ["reload:nginx.service"],
     "stop":  ["supernode@old.service"]}

Idempotent: a file whose bytes, owner and mode already match is left alone, and only the units of files that changed
are restarted ("reload:<unit>" reloads instead; "start:<unit>" starts a oneshot job without waiting for it, e.g. a
backup with new credentials; "enable:<unit>" also enables and starts the unit: a SuperNode instance that now runs on
this host; "ensure:<unit>" restarts it at every delivery, changed or not, for an idempotent oneshot whose failure
must be retried by the next `pulumi up`: the ML runtime build). A unit that fails does not stop the others; the
delivery then exits 1 naming each. Units enabled that way and no longer named in any file's units are disabled and stopped. Files delivered before but absent from this payload (a removed
SuperNode's key, say) are deleted, and units listed under "stop" are disabled and stopped. Standard library only, Python >= 3.10: it runs on a bare Ubuntu 24.04 host.
Prints what it changed, never file contents. `--root DIR` installs under DIR and runs no systemctl (for tests).
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "/var/lib/nina/delivered.json"
ENABLED = "/var/lib/nina/enabled-units.json"  # units nina-deliver enabled ("enable:<unit>"), to disable when dropped
HOSTS_FILE = "/etc/hosts"
BEGIN, END = "# BEGIN nina-fl (managed by pulumi, do not edit)", "# END nina-fl"
CA_TRUST_DIR = "/usr/local/share/ca-certificates/"


class Installer:
    def __init__(self, root: str, dry: bool) -> None:
        self.root = root
        self.dry = dry  # --root: no systemctl, unknown owners tolerated
        self.changed: list[str] = []
        self.notes: list[str] = []

    def at(self, path: str) -> Path:
        return Path(self.root + path) if self.root else Path(path)

    def ids(self, owner: str) -> tuple[int, int] | None:
        user, _, group = owner.partition(":")
        try:
            return pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid
        except KeyError:
            if self.dry:
                self.notes.append(f"owner {owner} unknown here; not changed")
                return None
            raise SystemExit(f"nina-deliver: owner {owner!r} does not exist on this host (has cloud-init finished?)")

    def directory(self, path: str, owner: str, mode: str) -> None:
        target = self.at(path)
        target.mkdir(parents=True, exist_ok=True)
        self._attributes(target, owner, int(mode, 8))

    def file(self, path: str, content: str, owner: str, mode: str) -> bool:
        target = self.at(path)
        data = content.encode()
        wanted = int(mode, 8)
        ids = self.ids(owner)
        if target.is_file() and target.read_bytes() == data and self._matches(target, ids, wanted):
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target with its final owner and mode, then renamed: a reader never sees a partial file
        # or a key with loose permissions.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, wanted)
            if ids is not None and (os.geteuid() == 0):
                os.fchown(fd, *ids)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.changed.append(path)
        return True

    def _matches(self, target: Path, ids: tuple[int, int] | None, mode: int) -> bool:
        st = target.stat()
        owned = ids is None or os.geteuid() != 0 or (st.st_uid, st.st_gid) == ids
        return owned and (st.st_mode & 0o7777) == mode

    def _attributes(self, target: Path, owner: str, mode: int) -> None:
        ids = self.ids(owner)
        if ids is not None and os.geteuid() == 0:
            os.chown(target, *ids)
        os.chmod(target, mode)

    def hosts(self, block: str) -> bool:
        target = self.at(HOSTS_FILE)
        current = target.read_text() if target.exists() else ""
        lines = current.splitlines()
        if BEGIN in lines and END in lines:
            lines = lines[: lines.index(BEGIN)] + lines[lines.index(END) + 1 :]
        wanted = "\n".join(lines + [BEGIN, *block.strip().splitlines(), END]) + "\n"
        if wanted == current:
            return False
        return self.file(HOSTS_FILE, wanted, "root:root", "0644")

    def prune(self, delivered: set[str]) -> None:
        manifest = self.at(MANIFEST)
        before = set(json.loads(manifest.read_text())) if manifest.exists() else set()
        for path in sorted(before - delivered):
            if self.at(path).exists():
                self.at(path).unlink()
                self.changed.append(path)
                self.notes.append(f"removed {path} (no longer delivered)")
        manifest.parent.mkdir(parents=True, exist_ok=True)
        self.file(MANIFEST, json.dumps(sorted(delivered), indent=1) + "\n", "root:root", "0600")
        if MANIFEST in self.changed:
            self.changed.remove(MANIFEST)


def systemctl(*args: str) -> int:
    return subprocess.run(["systemctl", *args], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina-deliver", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="", help="install under this directory and touch no service (tests)")
    args = parser.parse_args(argv)
    payload: dict[str, Any] = json.load(sys.stdin)
    inst = Installer(args.root.rstrip("/"), dry=bool(args.root))
    for d in payload.get("dirs", []):
        inst.directory(d["path"], d["owner"], d["mode"])
    units: dict[str, str] = {}
    wanted_enabled = sorted({u.partition(":")[2] for f in payload.get("files", []) for u in f.get("units", []) if u.startswith("enable:")})
    for f in payload.get("files", []):
        changed = inst.file(f["path"], f["content"], f["owner"], f["mode"])
        for unit in f.get("units", []):
            action, _, name = unit.rpartition(":")
            if not changed and action != "ensure":
                continue
            # A restart wins over a reload of the same unit; "enable:" and "ensure:" restart.
            if units.get(name) != "restart":
                units[name] = "restart" if action in ("", "enable", "ensure") else action
    if payload.get("hosts") and inst.hosts(payload["hosts"]):
        # Services that resolve peers' names only at start (nginx upstreams) follow a changed /etc/hosts.
        for unit in payload.get("hosts_units", []):
            action, _, name = unit.rpartition(":")
            units.setdefault(name, action or "restart")
    inst.prune({f["path"] for f in payload.get("files", [])})
    enabled_file = inst.at(ENABLED)
    enabled_before = json.loads(enabled_file.read_text()) if enabled_file.exists() else []
    to_disable = sorted(set(enabled_before) - set(wanted_enabled))
    inst.file(ENABLED, json.dumps(wanted_enabled) + "\n", "root:root", "0600")
    if ENABLED in inst.changed:
        inst.changed.remove(ENABLED)
    trust_changed = any(p.startswith(CA_TRUST_DIR) for p in inst.changed)
    if not inst.dry:
        if trust_changed:
            subprocess.run(["update-ca-certificates"], check=True, stdout=subprocess.DEVNULL)
        systemctl("daemon-reload")
        for name in [*payload.get("stop", []), *to_disable]:
            if systemctl("is-enabled", "--quiet", name) == 0 or systemctl("is-active", "--quiet", name) == 0:
                systemctl("disable", "--now", name)
        for name in wanted_enabled:
            if systemctl("is-enabled", "--quiet", name) != 0:
                systemctl("enable", name)
            if systemctl("is-active", "--quiet", name) != 0:
                units[name] = "restart"  # starts it; a unit waiting on a ConditionPathExists= starts now
        failed = []
        for name, action in sorted(units.items()):
            # Only units the role enabled: a unit waiting on its files (ConditionPathExists) starts now.
            if systemctl("is-enabled", "--quiet", name) == 0:
                # A job started without waiting reports through its own unit (and the alerts), not through pulumi up.
                if systemctl(*(["start", "--no-block"] if action == "start" else [action]), name) != 0:
                    print(f"nina-deliver: {action} {name} failed (journalctl -u {name})", file=sys.stderr)
                    failed.append(name)
        if failed:
            return 1
    report = {"changed": inst.changed, "units": units, "trust_store": trust_changed, "notes": inst.notes}
    report.update(enabled=wanted_enabled, disabled=to_disable)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
