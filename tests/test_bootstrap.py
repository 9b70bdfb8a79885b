"""A failed bootstrap stops the host: the rendered runcmd, run by the real cloud-init (Debian's package) in a mount
namespace of its own, makes `cloud-init status` report an error when a step fails, stops at that step, and leaves no
marker, so the SSH delivery (which waits for both) installs no secret.

The bootstrap steps are stand-ins (the real ones would change this machine); the runcmd, the runner and cloud-init
are the real ones. cloud-init's paths are moved into the namespace: /etc/cloud, /var/lib/cloud, /run/cloud-init,
/var/log, /usr/local/sbin and /usr/local/lib/nina are private to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import Preview
from nina.catalog import layout

RUNNER = "/usr/local/sbin/nina-bootstrap"
REQUIRED = os.environ.get("NINA_REQUIRE_NETNS") == "1"  # CI: a missing capability fails instead of skipping


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mount namespaces)"
    if not shutil.which("cloud-init") or not shutil.which("unshare"):
        return "needs cloud-init and unshare: run scripts/install-system-deps.sh"
    return None


@pytest.fixture
def cloud_init() -> None:
    reason = _can_run()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)


def boot(tmp: Path, runcmd: list[list[str]], runner: str, steps: dict[str, str]) -> tuple[str, str, bool]:
    """cloud-init's four stages on a NoCloud seed holding `runcmd`; returns (status output, the final stage's log, marker)."""
    (tmp / "etc-cloud").mkdir()
    (tmp / "etc-cloud" / "cloud.cfg").write_text(
        textwrap.dedent(
            f"""\
            datasource_list: [NoCloud]
            datasource: {{NoCloud: {{seedfrom: "file://{tmp}/seed/"}}}}
            network: {{config: disabled}}
            cloud_init_modules: []
            cloud_config_modules: [runcmd]
            cloud_final_modules: [scripts_user, final_message]
            system_info: {{distro: debian, paths: {{cloud_dir: /var/lib/cloud/, templates_dir: /etc/cloud/templates/}}, default_user: {{name: nobody}}}}
            def_log_file: /var/log/cloud-init.log
            """
        )
    )
    (tmp / "seed").mkdir()
    (tmp / "seed" / "meta-data").write_text("instance-id: nina-bootstrap-test\nlocal-hostname: nina\n")
    (tmp / "seed" / "user-data").write_text("#cloud-config\n" + yaml.safe_dump({"runcmd": runcmd}))
    sbin, lib, log = tmp / "sbin", tmp / "lib", tmp / "log"
    for d in (sbin, lib / "bootstrap", log):
        d.mkdir(parents=True)
    (sbin / "nina-bootstrap").write_text(runner)
    for name, body in steps.items():
        (lib / "bootstrap" / name).write_text(f"#!/bin/sh\n{body}\n")
    for f in [sbin / "nina-bootstrap", *(lib / "bootstrap").iterdir()]:
        f.chmod(0o755)
    script = f"""
        set -u
        mount --make-rprivate /
        mount --bind {tmp}/etc-cloud /etc/cloud
        mkdir -p /var/lib/cloud /run/cloud-init /usr/local/lib/nina
        mount -t tmpfs none /var/lib/cloud
        mount -t tmpfs none /run/cloud-init
        mount --bind {log} /var/log
        mount --bind {sbin} /usr/local/sbin
        mount --bind {lib} /usr/local/lib/nina
        for stage in "init --local" init "modules --mode config" "modules --mode final"; do
          cloud-init $stage >>{tmp}/stages.out 2>&1 || true
        done
        cloud-init status --long
        if [ -e {layout.BOOTSTRAP_MARKER} ]; then echo MARKER; fi
    """
    done = subprocess.run(["unshare", "--mount", "--uts", "--fork", "bash", "-c", script], capture_output=True, text=True, timeout=240, check=False)
    return done.stdout, (tmp / "stages.out").read_text(), "MARKER" in done.stdout.splitlines()


def rendered(preview: Preview) -> tuple[list[list[str]], str]:
    cloud = preview.hosts["hub"].cloud_config
    return cloud["runcmd"], preview.hosts["hub"].file(RUNNER)["content"]


def test_the_runcmd_is_one_command_that_runs_every_step(previews: dict[str, Preview]) -> None:
    for preview in previews.values():
        for name, host in preview.hosts.items():
            assert host.cloud_config["runcmd"] == [[RUNNER]], name
            steps = sorted(f["path"] for f in host.write_files if f["path"].startswith("/usr/local/lib/nina/bootstrap/"))
            assert steps and steps[0].endswith("/00-base.sh"), name


def test_a_failing_base_bootstrap_makes_cloud_init_report_an_error(cloud_init: None, previews: dict[str, Preview], tmp_path: Path) -> None:
    runcmd, runner = rendered(previews["test"])
    later = tmp_path / "later-step-ran"
    status, log, marker = boot(tmp_path, runcmd, runner, {"00-base.sh": "echo no state volume >&2; exit 7", "10-ingress.sh": f"touch {later}"})
    assert "status: error" in status, status + log
    assert "scripts_user" in status, status
    assert not later.exists(), "the runner must stop at the first failing step"
    assert not marker, "no marker: the delivery must refuse this host"


def test_a_good_bootstrap_finishes_with_its_marker(cloud_init: None, previews: dict[str, Preview], tmp_path: Path) -> None:
    runcmd, runner = rendered(previews["test"])
    ran = tmp_path / "ran"
    status, log, marker = boot(tmp_path, runcmd, runner, {"00-base.sh": f"echo base >> {ran}", "10-ingress.sh": f"echo ingress >> {ran}"})
    assert "status: done" in status, status + log
    assert ran.read_text().splitlines() == ["base", "ingress"] and marker


def test_one_runcmd_entry_per_script_would_hide_the_failure(cloud_init: None, tmp_path: Path) -> None:
    """Why one command: cloud-init joins runcmd entries into one /bin/sh script whose status is its last line's."""
    steps = tmp_path / "lib" / "bootstrap"
    runcmd = [["/usr/local/lib/nina/bootstrap/00-base.sh"], ["/usr/local/lib/nina/bootstrap/10-ingress.sh"]]
    status, log, _ = boot(tmp_path, runcmd, "#!/bin/sh\n", {"00-base.sh": "exit 7", "10-ingress.sh": "true"})
    assert "status: done" in status, status + log
    assert steps.is_dir()
