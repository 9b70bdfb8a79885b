"""nina-apt-keys, run for real: between boots, each third-party APT repository's keyring is checked against the key
nina/catalog/apt.py pins, an extended key is fetched before the old one expires, anything else the vendor's URL offers
is refused, and the metrics the alerts read (AptKeyNotCurrent, AptKeyExpiringSoon) say what the keyring holds.

The delivered script runs in test_apt_repo.py's harness: a private mount namespace whose /etc/apt is a fresh tmpfs
(a directory bind mounted over it), keys made by gpg and served from file:// URLs, the textfile directory a temporary
one. The catalog's rows are replaced by rows pointing there, so nothing leaves the machine.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Preview, config_of, delivered, samples
from test_apt_repo import Vendor, keyring, run, vendor  # noqa: F401 (vendor: the fixture)
from test_apt_repo import pytestmark as needs_namespace  # root, unshare and gpg
from test_cloudinit import Target, shellcheck, verify_units

import cloudinit
from cloudinit import render
from nina.catalog import alerts, apt, databases, layout

NAME = "grafana"  # a catalog row's name; its URL and pin are the test's
DAY = 86400


def render_script(monkeypatch: pytest.MonkeyPatch, url: str, fingerprint: str) -> tuple[str, str]:
    """The delivered nina-apt-keys and user-data's lib.sh, rendered for the test stack's hub with the catalog's rows
    replaced by one repository at `url` pinned to `fingerprint` and one the host does not use."""
    rows = {
        NAME: apt.AptRepository(NAME, url, fingerprint, "https://apt.example.org/repo stable main"),
        "unused": apt.AptRepository("unused", "file:///nonexistent", "0" * 40, "https://apt.example.org/unused stable main"),
    }
    monkeypatch.setattr(apt, "APT_REPOSITORIES", rows)
    cfg = config_of("test")
    host = cfg.hosts["hub"]
    (script,) = [f.content for f in cloudinit.delivered_files(cfg, host, "base") if f.path == layout.APT_KEYS_COMMAND]
    return script, render.render_template("base/lib.sh.j2", cfg, host)


class Host:
    """/etc/apt (a tmpfs-like directory bind mounted in a private mount namespace) holding the repository's list file,
    and a textfile directory of its own."""

    def __init__(self, tmp: Path, script: str, lib: str) -> None:
        self.tmp = tmp
        self.etc_apt = tmp / "etc-apt"
        (self.etc_apt / "keyrings").mkdir(parents=True)
        (self.etc_apt / "sources.list.d").mkdir()
        (self.etc_apt / "sources.list.d" / f"{NAME}.list").write_text("deb [signed-by=...] https://apt.example.org/repo stable main\n")
        self.textfiles = tmp / "textfile"
        self.textfiles.mkdir()
        self.script = tmp / "nina-apt-keys"
        self.script.write_text(script)
        self.script.chmod(0o755)
        self.lib = tmp / "lib.sh"
        self.lib.write_text(lib)
        self.keyring = self.etc_apt / "keyrings" / f"{NAME}.gpg"

    def check(self) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NINA_LIB": str(self.lib), "NINA_TEXTFILE_DIR": str(self.textfiles),
               "GNUPGHOME": str(self.tmp / "no-such-home")}  # root's keyrings are neither needed nor touched
        script = f"set -e\nmount --bind {self.etc_apt} /etc/apt\nexec {self.script}\n"
        return run("unshare", "--mount", "--propagation", "private", "bash", "-c", script, env=env)

    def metrics(self) -> dict[str, float]:
        """The published samples, checked by promtool first."""
        text = (self.textfiles / "nina_apt_keys.prom").read_text()
        linted = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert linted.returncode == 0, linted.stdout + linted.stderr
        assert [p.name for p in self.textfiles.iterdir()] == ["nina_apt_keys.prom"]  # no temporary file left
        return samples(text)


def export(maker: Vendor, *fingerprints: str) -> bytes:
    """A binary keyring of these keys, as apt_repo installs one."""
    return subprocess.run(["gpg", "--batch", "--homedir", str(maker.home), "--export", *fingerprints], capture_output=True, check=True).stdout


def expiry_of(path: Path) -> int:
    shown = run("gpg", "--batch", "--show-keys", "--with-colons", str(path)).stdout
    return int(re.search(r"^pub(?::[^:]*){5}:(\d*):", shown, re.M).group(1) or 0)  # type: ignore[union-attr]


CURRENT = f'nina_apt_key_current{{repository="{NAME}"}}'
EXPIRY = f'nina_apt_key_expiry_timestamp_seconds{{repository="{NAME}"}}'
CHECKED = "nina_apt_key_check_timestamp_seconds"


@needs_namespace
def test_a_key_about_to_expire_is_replaced_by_the_vendors_extended_key(monkeypatch: pytest.MonkeyPatch, vendor: Vendor, tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    pinned = vendor.key("vendor", expires="10d")
    offered = tmp_path / "vendor.asc"
    host = Host(tmp_path, *render_script(monkeypatch, f"file://{offered}", pinned))
    host.keyring.write_bytes(export(vendor, pinned))
    soon = expiry_of(host.keyring)
    assert 9 * DAY < soon - time.time() <= 10 * DAY

    # The vendor extends the same key by a year and re-issues its file, with another key beside it.
    vendor.gpg("--quick-set-expire", pinned, "1y")
    other = vendor.key("vendor-other")
    offered.write_text(vendor.gpg("--armor", "--export", other, pinned).stdout)
    before = time.time()
    done = host.check()
    assert done.returncode == 0, done.stderr
    assert f"installed the key {pinned}" in done.stdout
    assert keyring(host.keyring) == [pinned]  # the pinned key alone, as apt_repo installs it
    extended = expiry_of(host.keyring)
    assert extended - soon > 300 * DAY
    metrics = host.metrics()
    assert before - 1 <= metrics.pop(CHECKED) <= time.time() + 1
    assert metrics == {CURRENT: 1, EXPIRY: extended}
    assert not any("unused" in m for m in metrics)  # a repository the host does not use is neither fetched nor published

    # Now far from expiry: not fetched again (the URL is gone), and the metrics are the same.
    offered.unlink()
    again = host.check()
    assert again.returncode == 0, again.stderr
    assert host.metrics()[EXPIRY] == extended and host.metrics()[CURRENT] == 1


@needs_namespace
def test_another_key_at_the_vendors_url_is_refused_and_the_keyring_kept(monkeypatch: pytest.MonkeyPatch, vendor: Vendor, tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    pinned = vendor.key("vendor", expires="10d")
    offered = tmp_path / "vendor.asc"
    host = Host(tmp_path, *render_script(monkeypatch, f"file://{offered}", pinned))
    host.keyring.write_bytes(export(vendor, pinned))
    held = host.keyring.read_bytes()
    soon = expiry_of(host.keyring)

    # The URL now serves another key (a vendor's new key, or an impostor's), which never expires.
    impostor = vendor.key("impostor")
    offered.write_text(vendor.gpg("--armor", "--export", impostor).stdout)
    done = host.check()
    assert done.returncode == 1  # PlatformJobFailed names the unit
    assert f"is not a current key with primary fingerprint {pinned}" in done.stderr
    assert host.keyring.read_bytes() == held  # untouched
    assert sorted(p.name for p in host.keyring.parent.iterdir()) == [f"{NAME}.gpg"]
    metrics = host.metrics()
    assert metrics[CURRENT] == 1 and metrics[EXPIRY] == soon  # still current, expiring: AptKeyExpiringSoon's case
    assert soon - metrics[CHECKED] < apt.KEY_WARNING_DAYS * DAY

    # The URL serves the pinned key again, not extended yet: nothing to install, nothing failed; the alert waits.
    offered.write_text(vendor.gpg("--armor", "--export", pinned).stdout)
    done = host.check()
    assert done.returncode == 0, done.stderr
    assert f"offers no key of {pinned} expiring later than the installed one ({soon})" in done.stderr
    assert host.keyring.read_bytes() == held
    assert host.metrics()[EXPIRY] == soon


@needs_namespace
def test_a_keyring_without_the_pinned_key_is_not_current_when_the_fetch_fails(monkeypatch: pytest.MonkeyPatch, vendor: Vendor, tmp_path: Path) -> None:  # noqa: F811  (the fixture)
    pinned, other = vendor.key("vendor"), vendor.key("vendor-2017")
    offered = tmp_path / "vendor.asc"  # never written: the fetch fails
    host = Host(tmp_path, *render_script(monkeypatch, f"file://{offered}", pinned))

    # No keyring at all.
    done = host.check()
    assert done.returncode == 1 and f"cannot fetch file://{offered}" in done.stderr
    assert not host.keyring.exists()
    metrics = host.metrics()
    assert metrics[CURRENT] == 0 and EXPIRY not in metrics  # AptKeyNotCurrent; no expiry of a key it does not hold

    # A keyring holding another key, or the pinned key beside another: not current either.
    for held in ([other], [pinned, other]):
        host.keyring.write_bytes(export(vendor, *held))
        done = host.check()
        assert done.returncode == 1, held
        assert host.metrics()[CURRENT] == 0 and EXPIRY not in host.metrics(), held

    # The vendor's file comes back: the pinned key alone is installed, current, never expiring.
    offered.write_text(vendor.gpg("--armor", "--export", other, pinned).stdout)
    done = host.check()
    assert done.returncode == 0, done.stderr
    assert keyring(host.keyring) == [pinned]
    assert {k: v for k, v in host.metrics().items() if k != CHECKED} == {CURRENT: 1, EXPIRY: 0}


def test_nina_apt_keys_is_delivered_to_every_host_and_passes_the_judges(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        for host in preview.cfg.hosts.values():
            files = delivered(preview, host.name)
            assert {layout.APT_KEYS_COMMAND, f"/etc/systemd/system/{layout.APT_KEYS_UNIT}"} <= set(files), host.name
            assert f"enable:{layout.APT_KEYS_TIMER}" in files[f"/etc/systemd/system/{layout.APT_KEYS_TIMER}"]["units"]
    files = delivered(materialized["test"], "hub")
    script = files[layout.APT_KEYS_COMMAND]["content"]
    assert shellcheck({layout.APT_KEYS_COMMAND: script, "/usr/local/lib/nina/lib.sh": materialized["test"].hosts["hub"].file("/usr/local/lib/nina/lib.sh")["content"]}) == ""
    for row in apt.APT_REPOSITORIES.values():  # every catalog row, each field one shell word
        assert f"repository {row.name} {row.key_url} {row.fingerprint}\n" in script
        assert re.fullmatch(r"[a-z0-9-]+", row.name)  # a file name and a label value as it is
    units = {Path(p).name: f["content"] for p, f in files.items() if p.startswith("/etc/systemd/system/nina-apt-keys")}
    assert set(units) == {layout.APT_KEYS_UNIT, layout.APT_KEYS_TIMER}
    assert verify_units(Target(units=units, drop_ins={}, expected_units=set(), written=set(files))) == []
    service = units[layout.APT_KEYS_UNIT]
    for line in ("ProtectSystem=strict", f"ReadWritePaths=/etc/apt/keyrings {databases.TEXTFILE_DIR}", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet="):
        assert f"\n{line}\n" in service
    assert layout.APT_KEYS_UNIT in alerts.PLATFORM_JOBS
    assert {"AptKeyNotCurrent", "AptKeyExpiringSoon"} <= {r.name for r in alerts.RULES}


