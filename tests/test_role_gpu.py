"""The gpu fragment (manual §3.2.2, §5.1.1) of `gpu: true` hosts: Ubuntu's NVIDIA datacenter driver, DCGM and its
exporter from NVIDIA's CUDA repository, nvidia-persistenced, and the container toolkit where Docker runs.

No GPU and no NVIDIA repository here: the unit is judged by `systemd-analyze verify`, the bootstrap by shellcheck and
by running its Docker branch against stub commands, the apt pin by apt itself. Files come from `nina preview --out`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nina.catalog import versions
from nina.catalog.ports import PORTS
from nina.catalog.roles import ROLES
from nina.plan import scrape
from tests.conftest import BOOTSTRAP, Preview, role_files

PORT = {p.name: p for p in PORTS}
UNIT = "/etc/systemd/system/dcgm-exporter.service"
PIN = "/etc/apt/preferences.d/nina-cuda"
EXPORTER = "/usr/bin/dcgm-exporter"  # from datacenter-gpu-manager-exporter: a stub stands in for it
CUDA_FINGERPRINT = "EB693B3035CD5710E231E123A4B469963BF863CC"  # NVIDIA's CUDA repository key (3bf863cc)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (scripts/install-system-deps.sh)")
    return path


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False)


def gpu_files(preview: Preview, host: str) -> dict[str, str]:
    return role_files(preview, "gpu", host)


@pytest.fixture(scope="module")
def uat(previews: dict[str, Preview]) -> Preview:
    return previews["uat"]


@pytest.fixture(scope="module")
def gpu(uat: Preview) -> dict[str, str]:
    (host,) = uat.cfg.hosts_with("gpu")
    return gpu_files(uat, host.name)


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_only_gpu_hosts_carry_the_fragment(previews: dict[str, Preview]) -> None:
    gpu_hosts = []
    for preview in previews.values():
        for name, rendered in preview.hosts.items():
            has_gpu = preview.cfg.hosts[name].gpu
            files = gpu_files(preview, name)
            assert (UNIT in files) == has_gpu == (BOOTSTRAP in files), f"{preview.stack} {name}"
            if has_gpu:
                gpu_hosts.append(name)
                assert "ubuntu-drivers-common" in rendered.cloud_config["packages"]
    assert gpu_hosts == ["superlink"], "the UAT SuperLink (g3.xlarge) is the stacks' GPU host"


def test_exporter_listens_on_its_port_through_the_dcgm_host_engine(gpu: dict[str, str]) -> None:
    unit = gpu[UNIT]
    (exec_start,) = unit_values(unit, "ExecStart")
    argv = exec_start.split()
    assert argv[0] == EXPORTER
    assert f"--address=:{PORT['dcgm-exporter'].port}" in argv
    assert PORT["dcgm-exporter"].sources == ("monitoring",)  # only Prometheus reaches it
    # the standalone nvidia-dcgm host engine, not a second one embedded in the exporter
    assert "--remote-hostengine-info=127.0.0.1:5555" in argv
    assert unit_values(unit, "Requires") == ["nvidia-dcgm.service"] and unit_values(unit, "After") == ["nvidia-dcgm.service"]
    assert unit_values(unit, "ConditionPathExists") == ["/proc/driver/nvidia/version"]
    assert unit_values(unit, "Restart") == ["always"]


def test_units_of_the_role_table_are_enabled(gpu: dict[str, str]) -> None:
    script = gpu[BOOTSTRAP]
    (enable,) = [line for line in script.splitlines() if line.startswith("enable_unit ")]
    assert set(ROLES["gpu"].units) | {"nvidia-persistenced.service"} == set(enable.split()[1:])
    # the package's own exporter unit would take the same port and log outside the journal
    assert "systemctl mask --now nvidia-dcgm-exporter.service" in script


def test_driver_and_dcgm_packages(gpu: dict[str, str]) -> None:
    script = gpu[BOOTSTRAP]
    (branch,) = re.findall(r"^branch=(\S+)$", script, re.M)
    assert re.fullmatch(r"\d{3}-server", branch)
    assert 'ubuntu-drivers install --gpgpu "nvidia:$branch"' in script
    assert '"nvidia-utils-$branch" "nvidia-compute-utils-$branch"' in script  # nvidia-smi, nvidia-persistenced
    assert f"datacenter-gpu-manager-4-cuda{versions.CUDA_MAJOR} datacenter-gpu-manager-exporter" in script  # the driver's CUDA
    # the driver comes first: DCGM's repository must not be there to offer its own driver build
    assert script.index("ubuntu-drivers install") < script.index("apt_repo cuda")


def test_cuda_repository_is_signed_and_checked(gpu: dict[str, str]) -> None:
    script = gpu[BOOTSTRAP]
    # lib.sh's apt_repo accepts the key only with this fingerprint (tests/test_apt_repo.py runs it for real)
    repo = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64"
    (call,) = [line for line in script.splitlines() if line.startswith("apt_repo cuda ")]
    assert shlex.split(call)[1:] == ["cuda", f"{repo}/3bf863cc.pub", CUDA_FINGERPRINT, f"{repo}/ /"]


def test_cuda_repository_ranks_below_ubuntu(gpu: dict[str, str]) -> None:
    """apt_preferences: a generic record for every package from NVIDIA's host, below the archive's 500."""
    records = dict(line.split(": ", 1) for line in gpu[PIN].splitlines() if line)
    assert records == {"Package": "*", "Pin": "origin developer.download.nvidia.com", "Pin-Priority": "100"}
    assert "https://developer.download.nvidia.com/" in gpu[BOOTSTRAP]


def _run_bootstrap(script: str, tmp_path: Path, docker: bool, driver_loads: bool) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the real bootstrap with every system command replaced by a stub that logs its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    log.write_text("")
    stubs = ["ubuntu-drivers", "apt-get", "systemctl", "nvidia-ctk", "modprobe", "curl", "install", "touch"]
    if docker:
        stubs.append("docker")
    for name in stubs:
        status = 1 if name == "modprobe" and not driver_loads else 0
        (bindir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {status}\n')
        (bindir / name).chmod(0o755)
    lib = tmp_path / "lib.sh"
    lib.write_text("".join(f'{fn}() {{ echo "{fn} $*" >> "{log}"; }}\n' for fn in ("enable_unit", "apt_repo")))
    body = script.replace("/usr/local/lib/nina/lib.sh", str(lib))
    # the exporter binary present: the branches under test are Docker's and the driver's
    body = body.replace("test -x /usr/bin/dcgm-exporter", "true")
    (tmp_path / "gpu.sh").write_text(body)
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
    result = run("bash", str(tmp_path / "gpu.sh"), env=env)
    return result, log.read_text()


def test_container_toolkit_only_where_docker_runs(gpu: dict[str, str], tmp_path: Path) -> None:
    result, calls = _run_bootstrap(gpu[BOOTSTRAP], tmp_path, docker=False, driver_loads=True)
    assert result.returncode == 0, result.stderr
    assert "nvidia-container-toolkit" not in calls and "nvidia-ctk" not in calls
    assert "systemctl restart nvidia-persistenced.service nvidia-dcgm.service dcgm-exporter.service" in calls
    result, calls = _run_bootstrap(gpu[BOOTSTRAP], tmp_path, docker=True, driver_loads=True)
    assert result.returncode == 0, result.stderr
    assert "apt-get install -y -q nvidia-container-toolkit" in calls
    assert "nvidia-ctk runtime configure --runtime=docker" in calls
    assert "systemctl restart docker.service" in calls


def test_a_driver_for_the_next_kernel_waits_for_the_reboot(gpu: dict[str, str], tmp_path: Path) -> None:
    result, calls = _run_bootstrap(gpu[BOOTSTRAP], tmp_path, docker=False, driver_loads=False)
    assert result.returncode == 0, result.stderr
    assert "reboot" in result.stderr and "touch /var/run/reboot-required" in calls
    assert "systemctl restart nvidia" not in calls
    assert "enable_unit nvidia-persistenced.service nvidia-dcgm.service dcgm-exporter.service" in calls


def test_prometheus_scrapes_the_gpu_host(uat: Preview) -> None:
    (host,) = uat.cfg.hosts_with("gpu")
    assert f'"{host.ip}:{PORT["dcgm-exporter"].port}"' in scrape.target_files(uat.cfg)[scrape.JOB_FILES["dcgm"]]
