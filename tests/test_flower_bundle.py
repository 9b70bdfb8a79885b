"""`nina bundle` for an on-premises site (issue 4): everything to run its SuperNodes, and no private key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_nina, wait_for

from nina import bundle
from nina.catalog import layout, runtimes, versions
from nina.catalog.roles import ROLES

# PEM private keys of any flavour (PKCS#8, EC, RSA, OpenSSH), and the base64 start of an OpenSSH private key.
PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|b3BlbnNzaC1rZXktdjE")


@pytest.fixture(scope="module")
def metro_north(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    run = run_nina("bundle", "--stack", "uat", "--org", "metro-north", "--out", str(out), "--materialize")
    assert run.returncode == 0, run.stderr
    return out


def test_bundle_holds_what_the_site_needs(metro_north: Path) -> None:
    files = {str(p.relative_to(metro_north)) for p in metro_north.rglob("*") if p.is_file()}
    sn = layout.supernode_dir("mn-sn1").lstrip("/")
    for needed in (
        f"{sn}/supernode.conf", f"{sn}/certs/ca.pem", "opt/flwr/supernode/run_supernode.sh", "etc/systemd/system/supernode@.service",
        "docker/Dockerfile.cpu", "docker/Dockerfile.cuda", "docker/run-docker.sh", "docker/run-podman.sh", "README.md",
    ):
        assert needed in files, needed
    conf = (metro_north / sn / "supernode.conf").read_text()
    assert f"ROOT_CERTIFICATES=/{sn}/certs/ca.pem\n" in conf  # inside the one directory the container mounts
    assert "SUPERLINK=superlink-uat-cardiac.uat.nina.internal:9092\n" in conf
    ca = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", str(metro_north / sn / "certs/ca.pem")], capture_output=True, text=True, check=False)
    assert ca.returncode == 0 and "NINA uat local CA" in ca.stdout, ca.stderr
    readme = (metro_north / "README.md").read_text()
    assert f"ssh-keygen -t ecdsa -b 384 -N \"\" -C \"\" -f {sn}/certs/client_credentials" in readme
    assert "Send only the `.pub` file" in readme
    for dockerfile in ("docker/Dockerfile.cpu", "docker/Dockerfile.cuda"):
        text = (metro_north / dockerfile).read_text()
        assert "opt/flwr/supernode/run_supernode.sh" in text and "install.sh --image" in text


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_the_dockerfiles_install_only_the_federations_lock(metro_north: Path, variant: str) -> None:
    """The image's Python packages come from the runtime's lock and nothing else: one pip command, exactly the lock
    install every host runs, reading the bundle's copy of runtimes/locks/ (the CUDA variant for the CUDA image)."""
    runtime = "tensorflow"  # uat-cardiac's runtime
    text = (metro_north / f"docker/Dockerfile.{variant}").read_text()
    steps = [line for line in re.sub(r"\\\n\s*", " ", text).splitlines() if not line.startswith("#")]
    pip_commands = [m.group(0).strip() for step in steps for m in re.finditer(r"\S*pip3? install[^&]*", step)]
    lock_file = f"/tmp/requirements/${{RUNTIME}}.{variant}.txt"
    assert pip_commands == [runtimes.pip_install_line(f"{ROLES['supernode'].python_venv}/bin/pip", lock_file)]
    assert f"ARG RUNTIME={runtime}" in steps
    assert (metro_north / f"requirements/{runtime}.{variant}.txt").read_text() == runtimes.lock(runtime, variant == "cuda").text()
    if variant == "cuda":
        assert f"FROM {versions.CUDA_IMAGE} AS supernode" in steps
    install = (metro_north / "install.sh").read_text()
    assert runtimes.pip_install_line('"$venv/bin/pip"', '"$lock"') in install and "flwr==" not in install


def test_bundle_has_no_private_key(metro_north: Path) -> None:
    leaks = [str(p) for p in metro_north.rglob("*") if p.is_file() and PRIVATE.search(p.read_text(errors="replace"))]
    assert leaks == []
    assert not list(metro_north.rglob("client_credentials"))  # the site makes its own
    # The check itself can fail: a key dropped into the bundle is found.
    probe = metro_north / "probe"
    probe.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n")
    try:
        assert PRIVATE.search(probe.read_text())
    finally:
        probe.unlink()


def test_bundle_scripts_pass_shellcheck(metro_north: Path) -> None:
    scripts = sorted(metro_north.rglob("*.sh"))
    assert len(scripts) >= 4
    check = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
    broken = metro_north / "broken.sh"
    broken.write_text("#!/bin/bash\necho $undefined_quote\n")
    try:
        assert subprocess.run(["shellcheck", str(broken)], capture_output=True, check=False).returncode != 0
    finally:
        broken.unlink()


def test_bundle_unit_passes_systemd_analyze_verify(metro_north: Path, tmp_path: Path) -> None:
    unit = (metro_north / "etc/systemd/system/supernode@.service").read_text()
    # The wrapper is installed at /opt/flwr/supernode on the site; verify against the bundle's copy.
    script = metro_north / "opt/flwr/supernode/run_supernode.sh"
    assert "ExecStart=/opt/flwr/supernode/run_supernode.sh %i" in unit
    (tmp_path / "supernode@.service").write_text(unit.replace("/opt/flwr/supernode/run_supernode.sh", str(script)))
    (tmp_path / "supernode@mn-sn1.service").symlink_to("supernode@.service")
    check = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "supernode@mn-sn1.service")], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and not check.stderr.strip(), check.stderr
    (tmp_path / "supernode@.service").write_text(unit.replace("Type=simple", "Type=bogus"))
    bad = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "supernode@mn-sn1.service")], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 or "bogus" in bad.stderr


def test_bundle_refuses_nectar_organisations_and_offline_ca(tmp_path: Path) -> None:
    nectar = run_nina("bundle", "--stack", "uat", "--org", "org-b", "--out", str(tmp_path / "b"))
    assert nectar.returncode == 2 and "Nectar-hosted" in nectar.stderr
    offline = run_nina("bundle", "--stack", "uat", "--org", "metro-north", "--out", str(tmp_path / "c"))
    assert offline.returncode == 2 and "--ca-file" in offline.stderr
    assert not (tmp_path / "c").exists()


def test_the_bundle_is_built_by_every_builder() -> None:
    from nina.bundle import check, monitoring, runtime, supernode, vpn

    assert bundle.BUILDERS == (supernode.files, runtime.files, vpn.files, monitoring.files, check.files)


# ------------------------------------------------------------------------------------ the kit, run for real
# A site's machine as a lab namespace (tests/lab.py): the bundle's install.sh for the systemd path, and the
# Dockerfile's own steps plus the entrypoint for the container path. No SuperLink answers here (the site reaches it
# through the VPN, tests/test_vpn_tunnel.py): what is checked is who runs what, who reads the key, and the guard.

SITE_IP = "192.168.50.10"


@pytest.fixture
def site(metro_north: Path, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    from conftest import FLWR_VENV
    from flower_lab import VENV
    from lab import Lab, unavailable

    reason = unavailable()
    if reason:
        if os.environ.get("NINA_REQUIRE_NETNS") == "1":
            pytest.fail(f"NINA_REQUIRE_NETNS=1 but the site lab cannot run: {reason}")
        pytest.skip(f"site lab: {reason}")
    lab = Lab(tmp_path, FLWR_VENV)
    try:
        machine = lab.machine("site", SITE_IP)
        machine.mount_venv(VENV)
        kit = tmp_path / "kit"
        shutil.copytree(metro_north, kit)
        # README step 1: the site makes its key pair in the bundle (as its IT team's own account would).
        key = kit / layout.supernode_key("mn-sn1").lstrip("/")
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "", "-f", str(key)], check=True)
        yield machine, kit
    finally:
        lab.close()


def running_as(machine: Any) -> dict[str, str]:
    """program -> user name, for the Flower processes of this machine (its network namespace: not the Flower lab's)."""
    found = {}
    for pid in machine.processes():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
        except (OSError, IndexError):
            continue
        for program in ("flower-supernode", "flower-superexec"):
            if program in args and "setpriv" not in args:
                found[program] = machine.run(["id", "-nu", uid]).stdout.strip()
    return found


def test_install_sh_runs_the_supernode_as_on_a_nectar_host(site: tuple[Any, Path]) -> None:
    machine, kit = site
    # The lab's venv is the test stack's runtime (sklearn, scripts/flwr-venv.sh) installed from its lock: the bundle
    # of a federation with that runtime carries the same lock, so install.sh finds its venv already installed from
    # it (uat's metro-north federation names tensorflow, whose download the lab spares).
    (kit / "requirements/sklearn.cpu.txt").write_text(runtimes.lock("sklearn", False).text())
    env = ["env", f"PATH={machine.stubs}:/usr/sbin:/usr/bin:/sbin:/bin", "NINA_RUNTIME=sklearn"]
    done = machine.run([*env, "bash", str(kit / "install.sh")], check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing runtime" not in done.stdout, "the venv was installed from this very lock"
    again = machine.run([*env, "bash", str(kit / "install.sh")], check=False, timeout=300)
    assert again.returncode == 0, again.stderr  # idempotent
    wrong = machine.run([*env[:-1], "NINA_RUNTIME=cobol", "bash", str(kit / "install.sh")], check=False, timeout=300)
    assert wrong.returncode == 1 and "no runtime cobol in this bundle" in wrong.stderr
    key, secret = layout.supernode_key("mn-sn1"), layout.supernode_superexec_secret("mn-sn1")
    assert machine.run(["stat", "-c", "%U:%G %a", key, secret]).stdout.split("\n")[:2] == ["supernode:fl_system 600", f"root:{layout.SUPEREXEC_USER} 640"]
    for unit in (layout.APPS_GUARD_UNIT, layout.supernode_unit("mn-sn1"), layout.supernode_superexec_unit("mn-sn1")):
        machine.start(unit)
    logs = lambda: machine.log(layout.supernode_unit("mn-sn1")) + machine.log(layout.supernode_superexec_unit("mn-sn1"))  # noqa: E731
    wait_for(lambda: len(running_as(machine)) == 2, "the SuperNode and its SuperExec", logs)
    assert running_as(machine) == {"flower-supernode": "supernode", "flower-superexec": layout.SUPEREXEC_USER}
    assert "meta skuid" in machine.run(["nft", "list", "table", "inet", "nina_apps"]).stdout
    systemctl = (machine.logs / "systemctl.log").read_text()
    assert f"systemctl enable --now {layout.supernode_unit('mn-sn1')} {layout.supernode_superexec_unit('mn-sn1')}" in systemctl


def test_the_container_runs_the_supernode_and_clientapps_as_their_own_users(site: tuple[Any, Path]) -> None:
    """The Dockerfile's steps that matter (its COPY lines and the RUN lines that use them), then the entrypoint as
    `docker run` would start it: the site's configuration directory mounted read-only, the key owned by the site's
    own account (uid 4242 here, mode 0600)."""
    machine, kit = site
    dockerfile = (kit / "docker/Dockerfile.cpu").read_text()
    steps = re.findall(r"^(COPY|RUN) (.+)$", dockerfile, re.M)
    copies = [args.split() for kind, args in steps if kind == "COPY"]
    runs = [args for kind, args in steps if kind == "RUN" and ("install.sh" in args or "chmod" in args)]
    assert len(runs) == 2, runs  # install.sh --image, and the entrypoint's mode
    for src, dst in copies:
        if src.endswith("/"):  # a directory (the runtimes' locks)
            machine.run(["cp", "-r", str(kit / src), dst])
        else:
            machine.run(["install", "-D", "-m", "0644", str(kit / src), dst])
    for command in runs:
        machine.run(["bash", "-c", command.replace("/tmp/bundle/install.sh", "bash /tmp/bundle/install.sh")], timeout=120)
    assert machine.run(["id", "-u", layout.APP_USER]).stdout.strip() == str(layout.IMAGE_IDS[layout.APP_USER])  # what README tells sites to grant
    assert f"setfacl -R -m u:{layout.IMAGE_IDS[layout.APP_USER]}:rX" in (kit / "README.md").read_text()

    conf = kit / "etc/flwr/supernode"
    key = conf / "mn-sn1/certs/client_credentials"
    os.chown(key, 4242, 4242)
    key.chmod(0o600)
    machine.run(["mount", "--bind", "-o", "ro", str(conf), "/etc/flwr/supernode"])
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', dockerfile, re.M)
    assert entry is not None
    machine.background("container", [entry.group(1), "mn-sn1"])
    wait_for(lambda: len(running_as(machine)) == 2, "the container's SuperNode and SuperExec", lambda: machine.log("container"))
    assert running_as(machine) == {"flower-supernode": "supernode", "flower-superexec": layout.SUPEREXEC_USER}
    assert machine.run(["stat", "-c", "%U %a", "/run/nina/mn-sn1/supernode/key"]).stdout.strip() == "supernode 600"
    time.sleep(5)  # still both, a while later: neither stopped at start (the SuperExec reads its secret, say)
    assert running_as(machine) == {"flower-supernode": "supernode", "flower-superexec": layout.SUPEREXEC_USER}, machine.log("container")
    assert "meta skuid" in machine.run(["nft", "list", "table", "inet", "nina_apps"]).stdout
    # The apps' user may not read the key, in the mount or in the copy.
    probe = ["setpriv", f"--reuid={layout.APP_USER}", f"--regid={layout.APP_USER}", "--clear-groups", "cat"]
    assert machine.run([*probe, "/run/nina/mn-sn1/supernode/key"], check=False).returncode != 0
    assert machine.run([*probe, layout.supernode_key("mn-sn1")], check=False).returncode != 0
