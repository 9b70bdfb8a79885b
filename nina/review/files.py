"""File by file: what changes inside a VM's user-data (the cloud-config's files, decoded, by path) and inside a
host's delivery (the files nina-deliver installs, and the units it restarts). A file nobody but its owner may read
(mode without the world-read bit, or under the secrets directory) is shown as changed or unchanged, never its text.
"""

from __future__ import annotations

import base64
import difflib
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from nina.catalog import layout

USER_DATA_BUDGET = 16 * 1024  # cloudinit/render.py's SIZE_LIMIT: beyond it user-data is sent gzip'd
ADDED, CHANGED, REMOVED = "added", "changed", "removed"


@dataclass
class FileChange:
    path: str
    status: str  # ADDED, CHANGED, REMOVED
    secret: bool
    diff: list[str] = field(default_factory=list)  # unified diff lines; empty for a secret
    units: list[str] = field(default_factory=list)  # delivered files: what nina-deliver does to which unit
    note: str = ""  # e.g. a value only the apply knows (a re-issued certificate)


def decode_user_data(data: str) -> str:
    """The cloud-config text of an instance's userData (plain, or base64 of gzip)."""
    if data.startswith("#cloud-config"):
        return data
    return gzip.decompress(base64.b64decode(data)).decode()


def cloud_config_files(text: str) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(text) or {}
    files: dict[str, dict[str, Any]] = {}
    for f in document.get("write_files") or []:
        content = f.get("content", "")
        if f.get("encoding") in ("b64", "base64"):
            content = base64.b64decode(content).decode(errors="replace")
        elif f.get("encoding") in ("gz+b64", "gzip+base64", "gz+base64"):
            content = gzip.decompress(base64.b64decode(content)).decode(errors="replace")
        files[f["path"]] = {"content": content, "mode": str(f.get("permissions", "0644"))}
    rest = {k: v for k, v in document.items() if k != "write_files"}
    # The rest of the cloud-config (packages, users, runcmd...) as one pseudo-file, so a change there shows too.
    files["(cloud-config)"] = {"content": yaml.safe_dump(rest, sort_keys=True, width=2**30), "mode": "0644"}
    return files


def is_secret(path: str, mode: str) -> bool:
    return path.startswith(layout.SECRETS_DIR + "/") or not (int(mode, 8) & 0o004)


def _diff(path: str, before: str, after: str) -> list[str]:
    return list(difflib.unified_diff(before.splitlines(), after.splitlines(), f"a{path}", f"b{path}", lineterm="", n=2))


def compare_files(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[FileChange]:
    changes: list[FileChange] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        mode = (new or old or {}).get("mode", "0644")
        secret = is_secret(path, mode) or (old is not None and is_secret(path, old.get("mode", "0644")))
        status = ADDED if old is None else REMOVED if new is None else CHANGED
        diff = [] if secret else _diff(path, (old or {}).get("content", ""), (new or {}).get("content", ""))
        units = list((new or old or {}).get("units", []))
        changes.append(FileChange(path, status, secret, diff, units))
    return changes


def user_data_changes(before: str | None, after: str | None) -> tuple[list[FileChange], int, int]:
    """Changed files inside the user-data, and its size before and after (bytes as sent)."""
    old = cloud_config_files(decode_user_data(before)) if before else {}
    new = cloud_config_files(decode_user_data(after)) if after else {}
    return compare_files(old, new), len((before or "").encode()), len((after or "").encode())


HOSTS_BLOCK = "/etc/hosts (nina block)"


def delivery_files(stdin: str | None) -> dict[str, dict[str, Any]]:
    """The delivered files by path, and the /etc/hosts block nina-deliver maintains as one more (with the units
    that follow it)."""
    if not stdin:
        return {}
    try:
        payload = json.loads(stdin)
    except json.JSONDecodeError:  # masked ("[secret]"): nothing to compare
        return {}
    files = {f["path"]: {"content": f["content"], "mode": f["mode"], "units": f.get("units", [])} for f in payload.get("files", [])}
    if payload.get("hosts"):
        files[HOSTS_BLOCK] = {"content": payload["hosts"], "mode": "0644", "units": payload.get("hosts_units", [])}
    return files


def restarts(changes: list[FileChange], files: dict[str, dict[str, Any]]) -> list[str]:
    """What nina-deliver will do, "action:unit": for the delivered files that change, and the units it runs at every
    delivery ("ensure:")."""
    acted = {u for c in changes if c.status != REMOVED for u in c.units}
    acted |= {u for f in files.values() for u in f.get("units", []) if u.startswith("ensure:")}
    return sorted(acted)
