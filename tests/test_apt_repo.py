"""lib.sh's `apt_repo`, run for real: a third-party APT repository (Grafana's, PGDG's) is configured only when the key
it downloads carries one of the fingerprints the template names.

The rendered lib.sh runs in a private mount namespace whose /etc/apt is a fresh tmpfs, with the key served from a
file:// URL and apt-get replaced by a recorder, so the machine's own APT setup is never touched. Needs root (mount
namespaces), like the VPN tunnel test: skips without it, and fails instead when NINA_REQUIRE_NETNS=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Preview

LIB = "/usr/local/lib/nina/lib.sh"
SOURCE = "https://apt.example.org/repo stable main"

_reason = None if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("gpg") else "needs root, unshare and gpg"
if _reason and os.environ.get("NINA_REQUIRE_NETNS") == "1":
    raise RuntimeError(f"NINA_REQUIRE_NETNS=1 but the apt_repo test cannot run: {_reason}")
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"apt_repo test: {_reason}")


def run(*cmd: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False, **kwargs)  # type: ignore[call-overload]


def signing_key(tmp: Path, name: str) -> tuple[str, Path]:
    """A fresh OpenPGP signing key: (fingerprint, armored public key file)."""
    home = tmp / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    made = run(*gpg, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.org>", "ed25519", "sign", "never")
    assert made.returncode == 0, made.stderr
    listed = run(*gpg, "--with-colons", "--list-keys")
    (fingerprint,) = re.findall(r"^fpr:{9}([0-9A-F]{40}):", listed.stdout, re.M)[:1]
    armored = tmp / f"{name}.asc"
    armored.write_text(run(*gpg, "--armor", "--export", fingerprint).stdout)
    run("gpgconf", "--homedir", str(home), "--kill", "gpg-agent")
    return fingerprint, armored


def apt_repo(preview: Preview, tmp: Path, key: Path, fingerprints: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `apt_repo test file://KEY FINGERPRINTS SOURCE`; returns the run and what /etc/apt then held."""
    lib = tmp / "lib.sh"
    lib.write_text(next(f["content"] for f in preview.hosts["hub"].write_files if f["path"] == LIB))
    fake = tmp / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {tmp}/apt-get.log\n')
    (fake / "apt-get").chmod(0o755)
    script = f"""
set -euo pipefail
mount -t tmpfs tmpfs /etc/apt
mkdir -p /etc/apt/sources.list.d
. {lib}
status=0
apt_repo test file://{key} '{fingerprints}' '{SOURCE}' || status=$?
find /etc/apt -type f -printf '%p\\n' | sort
for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && cat "$f"; done
cmp -s {key} /etc/apt/keyrings/test.asc && echo "keyring: the served key"
exit $status
"""
    done = run("unshare", "--mount", "--propagation", "private", "bash", "-c", script, env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    return done, done.stdout


def test_a_repository_whose_key_has_an_expected_fingerprint_is_configured(previews: dict[str, Preview], tmp_path: Path) -> None:
    fingerprint, key = signing_key(tmp_path, "good")
    done, apt = apt_repo(previews["test"], tmp_path, key, f"{'0' * 40}|{fingerprint}")
    assert done.returncode == 0, done.stderr
    assert apt.splitlines() == [
        "/etc/apt/keyrings/test.asc",
        "/etc/apt/sources.list.d/test.list",
        f"deb [signed-by=/etc/apt/keyrings/test.asc] {SOURCE}",
        "keyring: the served key",
    ]
    assert (tmp_path / "apt-get.log").read_text() == "apt-get update -q\n"


def test_a_key_with_another_fingerprint_configures_nothing(previews: dict[str, Preview], tmp_path: Path) -> None:
    expected, _ = signing_key(tmp_path, "expected")
    _, impostor = signing_key(tmp_path, "impostor")
    done, apt = apt_repo(previews["test"], tmp_path, impostor, expected)
    assert done.returncode != 0
    assert "has none of the expected fingerprints" in done.stderr
    assert apt == ""  # no keyring, no source: apt never trusts the impostor
    assert not (tmp_path / "apt-get.log").exists()


def test_every_repository_the_templates_add_names_full_fingerprints(previews: dict[str, Preview]) -> None:
    calls = set()
    for preview in previews.values():
        for rendered in preview.hosts.values():
            for f in rendered.write_files:
                calls |= set(re.findall(r"^apt_repo (\S+) \S+ '?([^' ]+)'? ", f["content"].replace("\\\n", ""), re.M))
    assert {name for name, _ in calls} == {"grafana", "pgdg", "cuda"}
    for name, fingerprints in calls:
        assert all(re.fullmatch(r"[0-9A-F]{40}", f) for f in fingerprints.split("|")), (name, fingerprints)
