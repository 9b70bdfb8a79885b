"""lib.sh's `apt_repo`, run for real: a third-party APT repository (Grafana's, PGDG's, NVIDIA's) is trusted through
the one key nina/catalog/apt.py pins, and nothing else the download carries.

The rendered lib.sh runs in a private mount namespace whose /etc/apt is a fresh tmpfs, with the key served from a
file:// URL and apt-get replaced by a recorder, so the machine's own APT setup is never touched. Needs root (mount
namespaces), like the VPN tunnel test: skips without it, and fails instead when NINA_REQUIRE_NETNS=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Preview

from nina.catalog.apt import APT_REPOSITORIES

LIB = "/usr/local/lib/nina/lib.sh"
SOURCE = "https://apt.example.org/repo {codename} main"
KEYRING = "/etc/apt/keyrings/test.gpg"

_reason = None if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("gpg") else "needs root, unshare and gpg"
if _reason and os.environ.get("NINA_REQUIRE_NETNS") == "1":
    raise RuntimeError(f"NINA_REQUIRE_NETNS=1 but the apt_repo test cannot run: {_reason}")
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"apt_repo test: {_reason}")


def run(*cmd: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False, **kwargs)  # type: ignore[call-overload]


class Vendor:
    """A GnuPG home making keys as a vendor (or an impostor) would; `file` writes an armored public key file of
    the keys given, as a vendor's download."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "gnupg"
        self.home.mkdir(mode=0o700)

    def gpg(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        done = run("gpg", "--batch", "--homedir", str(self.home), "--pinentry-mode", "loopback", "--passphrase", "", *args, **kwargs)
        assert done.returncode == 0, done.stderr
        return done

    def key(self, name: str, *, made: str | None = None, expires: str = "never") -> str:
        """A new signing key's fingerprint; `made` fakes its creation time (a past key that has since expired)."""
        faked = ["--faked-system-time", f"{made}!"] if made else []
        self.gpg(*faked, "--quick-gen-key", f"{name} <{name}@example.org>", "ed25519", "sign", expires)
        listed = self.gpg("--with-colons", "--list-keys", f"{name}@example.org").stdout
        return re.findall(r"^fpr:{9}([0-9A-F]{40}):", listed, re.M)[0]

    def file(self, name: str, *fingerprints: str) -> Path:
        path = self.tmp / f"{name}.asc"
        path.write_text(self.gpg("--armor", "--export", *fingerprints).stdout)
        return path


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[Vendor]:
    made = Vendor(tmp_path)
    yield made
    run("gpgconf", "--homedir", str(made.home), "--kill", "gpg-agent")


def keyring(fingerprints_of: Path) -> list[str]:
    """The primary fingerprints a binary keyring holds."""
    listed = run("gpg", "--batch", "--show-keys", "--with-colons", str(fingerprints_of)).stdout
    return re.findall(r"^pub:.*\nfpr:{9}([0-9A-F]{40}):", listed, re.M)


class Apt:
    """/etc/apt as a fresh tmpfs in a private mount namespace that outlives each `apt_repo` call (a directory bind
    mounted over it), with apt-get replaced by a recorder: the machine's own APT setup is never touched."""

    def __init__(self, preview: Preview, tmp: Path) -> None:
        self.tmp = tmp
        self.etc_apt = tmp / "etc-apt"
        (self.etc_apt / "sources.list.d").mkdir(parents=True)
        self.lib = tmp / "lib.sh"
        self.lib.write_text(next(f["content"] for f in preview.hosts["hub"].write_files if f["path"] == LIB))
        fake = tmp / "bin"
        fake.mkdir()
        (fake / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {tmp}/apt-get.log\n')
        (fake / "apt-get").chmod(0o755)
        self.env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "GNUPGHOME": str(tmp / "no-such-home")}  # lib.sh must not need root's keyrings

    def repo(self, key: Path, fingerprint: str) -> subprocess.CompletedProcess[str]:
        script = f"""
set -euo pipefail
mount --bind {self.etc_apt} /etc/apt
. {self.lib}
apt_repo test file://{key} {fingerprint} '{SOURCE}'
"""
        return run("unshare", "--mount", "--propagation", "private", "bash", "-c", script, env=self.env)

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.etc_apt)) for p in self.etc_apt.rglob("*") if p.is_file())

    def fetches(self) -> int:
        log = self.tmp / "apt-get.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def apt(previews: dict[str, Preview], tmp_path: Path) -> Apt:
    return Apt(previews["test"], tmp_path)


def codename() -> str:
    return re.search(r"^VERSION_CODENAME=(.*)$", Path("/etc/os-release").read_text(), re.M).group(1).strip('"')  # type: ignore[union-attr]


def test_the_pinned_key_alone_is_trusted_even_when_the_vendors_file_carries_others(apt: Apt, vendor: Vendor) -> None:
    pinned, other = vendor.key("vendor"), vendor.key("vendor-2017")
    done = apt.repo(vendor.file("both", other, pinned), pinned)
    assert done.returncode == 0, done.stderr
    assert apt.files() == ["keyrings/test.gpg", "sources.list.d/test.list"]
    assert keyring(apt.etc_apt / "keyrings/test.gpg") == [pinned]  # not the other key in the download
    assert (apt.etc_apt / "sources.list.d/test.list").read_text() == (
        f"deb [signed-by={KEYRING}] https://apt.example.org/repo {codename()} main\n"
    )
    assert (apt.tmp / "apt-get.log").read_text() == "apt-get update -q\n"


def test_a_key_with_another_fingerprint_configures_nothing(apt: Apt, vendor: Vendor) -> None:
    pinned = vendor.key("vendor")
    impostor = vendor.key("impostor")
    done = apt.repo(vendor.file("impostor", impostor), pinned)
    assert done.returncode != 0
    assert f"is not a current key with primary fingerprint {pinned}" in done.stderr
    assert apt.files() == []  # no keyring, no source: apt never trusts the impostor
    assert apt.fetches() == 0


def test_a_key_carrying_the_pinned_key_as_a_subkey_is_refused(apt: Apt, vendor: Vendor) -> None:
    """gpg --export FINGERPRINT also matches a subkey: an impostor who binds the vendor's public key under their own
    primary key would otherwise be exported whole, and apt would trust the impostor's primary key."""
    pinned = vendor.key("vendor")
    impostor = vendor.key("impostor", made="20250101T000000")  # older than the subkey it will carry, as gpg requires
    listed = vendor.gpg("--with-colons", "--with-keygrip", "--list-keys", pinned).stdout
    grip = re.search(r"^grp:{9}([0-9A-F]{40}):", listed, re.M).group(1)  # type: ignore[union-attr]
    made = re.search(r"^pub(?::[^:]*){4}:(\d+):", listed, re.M).group(1)  # type: ignore[union-attr]
    # The vendor's key material as a subkey of the impostor's key, with the same creation time, hence fingerprint.
    vendor.gpg("--faked-system-time", f"{made}!", "--expert", "--command-fd", "0", "--edit-key", impostor,
               input=f"addkey\n13\n{grip}\nS\nQ\n0\nsave\n")
    carried = vendor.file("impostor", impostor)
    assert pinned in run("gpg", "--batch", "--show-keys", "--with-colons", str(carried)).stdout  # the trick is real
    done = apt.repo(carried, pinned)
    assert done.returncode != 0
    assert "is not a current key with primary fingerprint" in done.stderr
    assert apt.files() == []


def test_a_current_key_is_not_fetched_again_but_a_new_pin_or_an_expired_key_is(apt: Apt, vendor: Vendor) -> None:
    old = vendor.key("vendor-old", made="20200101T000000", expires="1y")  # expired in 2021
    current = vendor.key("vendor")
    renewed = vendor.key("vendor-2026")

    # An expired key is never installed.
    refused = apt.repo(vendor.file("old", old), old)
    assert refused.returncode != 0 and apt.files() == []

    assert apt.repo(vendor.file("current", current), current).returncode == 0
    # The host boots again (bootstrap is idempotent): the keyring is current, so the key URL is not even read.
    assert apt.repo(apt.tmp / "gone.asc", current).returncode == 0
    assert keyring(apt.etc_apt / "keyrings/test.gpg") == [current]

    # The pin moves to the vendor's re-issued key: fetched again, and only the new key is trusted.
    assert apt.repo(vendor.file("renewed", current, renewed), renewed).returncode == 0
    assert keyring(apt.etc_apt / "keyrings/test.gpg") == [renewed]

    # The keyring's key has expired since; the vendor extended that same key (same fingerprint) and re-issued the
    # file: it is fetched again, and the extended key replaces the expired one.
    (apt.etc_apt / "keyrings/test.gpg").write_text(vendor.gpg("--armor", "--export", old).stdout)
    vendor.gpg("--quick-set-expire", old, "0")
    assert apt.repo(vendor.file("extended", old), old).returncode == 0
    assert keyring(apt.etc_apt / "keyrings/test.gpg") == [old]
    shown = run("gpg", "--batch", "--show-keys", "--with-colons", str(apt.etc_apt / "keyrings/test.gpg")).stdout
    assert re.search(r"^pub(?::[^:]*){5}::", shown, re.M), shown  # no expiry date any more: the extended key
    assert apt.repo(apt.tmp / "gone.asc", old).returncode == 0  # and now it is current


def test_every_repository_the_templates_add_is_the_catalogs_and_shell_inert(previews: dict[str, Preview]) -> None:
    calls = set()
    for preview in previews.values():
        for rendered in preview.hosts.values():
            for f in rendered.write_files:
                calls |= set(re.findall(r"^apt_repo .*$", f["content"], re.M))
    assert len(calls) == len(APT_REPOSITORIES)
    for line in calls:
        # What bash passes apt_repo is exactly a catalog row's four fields.
        words = run("bash", "-c", line.replace("apt_repo", 'printf "%s\\n"', 1)).stdout.splitlines()
        row = APT_REPOSITORIES[words[0]]
        assert words == [row.name, row.key_url, row.fingerprint, row.source], line
        assert re.fullmatch(r"[0-9A-F]{40}", row.fingerprint), row.name
    assert "0E22EB88E39E12277A7760AE9E439B102CF3C0C6" not in str(APT_REPOSITORIES)  # Grafana's revoked 2017 key
