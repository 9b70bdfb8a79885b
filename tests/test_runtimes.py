"""Runtimes (runtimes/, nina/catalog/runtimes.py; README "Runtimes"): every lock is current, pins flwr at the
platform's pin, hashes every file and resolves with pip's own resolver for the hosts' platform; the GPU stack says
one CUDA major and the GPU locks, DCGM and the site's CUDA image agree with it; each host installs its federation's
lock (the CUDA variant on a GPU host), and changing a federation's runtime replaces no VM; the rendered builder,
run for real, builds, switches, keeps what a running app uses, and refuses a lock whose hashes do not match.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import (
    BOOTSTRAP,
    FLWR_VENV,
    Preview,
    delivered,
    encode,
    evaluate_configs,
    problems,
    raw_config,
    role_files,
)
from netprobe import CONNECT

import cloudinit
from nina.catalog import layout, runtimes, versions
from nina.config import parse
from nina.plan import apps

LOCKS = runtimes.all_locks()
REQUIREMENT = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==(\S+)", re.M)


def pins(lock: runtimes.Lock) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(3) for m in REQUIREMENT.finditer(lock.text())}


def test_the_runtimes_are_the_profiles_federations_may_name() -> None:
    assert set(runtimes.names()) >= {"numpy", "sklearn", "pytorch", "tensorflow"}
    assert runtimes.DEFAULT in runtimes.names()
    assert all(runtimes.NAME.fullmatch(n) for n in runtimes.names())


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lk: lk.path.name)
def test_every_lock_is_current_pins_flwr_and_hashes_every_file(lock: runtimes.Lock) -> None:
    assert runtimes.stale(lock) is None
    assert pins(lock)["flwr"] == versions.FLWR
    entries = re.split(r"\n(?=[A-Za-z0-9])", "\n".join(line for line in lock.text().splitlines() if not line.lstrip().startswith("#")))
    requirements = [e for e in entries if e.strip()]
    assert requirements and all("==" in e.split()[0] and "--hash=sha256:" in e for e in requirements)


def test_an_edited_runtime_or_a_new_flwr_pin_without_a_relock_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = runtimes.lock("sklearn", False)
    monkeypatch.setattr(versions, "FLWR", "1.99.0")
    problem = runtimes.stale(lock)
    assert problem and "out of date" in problem and runtimes.LOCK_COMMAND in problem


def _pip_resolve(lock: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """pip itself, as a host's pip would: a CPython 3.12's (scripts/flwr-venv.sh's), only PyPI (this machine's pip
    configuration stays out), the hosts' platform, wheels only, every hash required. --dry-run with --target:
    nothing is installed."""
    platforms = [a for p in runtimes.PIP_PLATFORMS for a in ("--platform", p)]
    report = target / "report.json"
    return subprocess.run(
        [
            str(FLWR_VENV / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target", str(target / "t"), "--report", str(report),
            "--index-url", "https://pypi.org/simple", "--python-version", runtimes.PYTHON, "--implementation", "cp",
            "--abi", "cp" + runtimes.PYTHON.replace(".", ""), *platforms, *runtimes.PIP_INSTALL_OPTIONS, "--quiet", "-r", str(lock),
        ],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "0"},
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Every lock through pip at once (network-bound: a few processes in parallel)."""
    work = {lk.path.name: tmp_path_factory.mktemp(lk.path.stem) for lk in LOCKS}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(LOCKS)) as pool:
        futures = {lk.path.name: pool.submit(_pip_resolve, lk.path, work[lk.path.name]) for lk in LOCKS}
        return {name: (f.result(), work[name]) for name, f in futures.items()}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lk: lk.path.name)
def test_pip_resolves_every_lock_for_the_hosts_platform(lock: runtimes.Lock, resolved: dict[str, tuple[subprocess.CompletedProcess[str], Path]]) -> None:
    done, work = resolved[lock.path.name]
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in json.loads((work / "report.json").read_text())["install"]}
    assert installed == pins(lock)  # exactly the lock: nothing missing (pip would fetch it), nothing extra
    wheels = [i["download_info"]["url"].rsplit("/", 1)[1] for i in json.loads((work / "report.json").read_text())["install"]]
    assert all(w.endswith(".whl") and ("cp312" in w or "py3" in w or "abi3" in w) for w in wheels), wheels


def test_the_resolver_check_can_fail(tmp_path: Path) -> None:
    """The same pip call refuses a lock that does not resolve: hashes that match none of a package's files."""
    text = runtimes.lock("numpy", False).text()
    block = re.search(r"^numpy==\S+ \\\n(?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", text, re.M)
    assert block
    broken = tmp_path / "broken.txt"
    broken.write_text(text.replace(block.group(0), re.sub(r"[0-9a-f]{64}", "0" * 64, block.group(0))))
    done = _pip_resolve(broken, tmp_path)
    assert done.returncode != 0 and "HASH" in done.stderr.upper(), done.stderr[-2000:]


# ------------------------------------------------------------------------------------------------- the GPU stack


def cuda_major(lock: runtimes.Lock) -> int | None:
    """The CUDA major the lock's CUDA runtime wheel brings (nvidia-cuda-runtime-cuNN, or nvidia-cuda-runtime NN.x)."""
    for name, version in pins(lock).items():
        if name.startswith("nvidia-cuda-runtime"):
            suffix = re.fullmatch(r"nvidia-cuda-runtime-cu(\d+)", name)
            return int(suffix.group(1)) if suffix else int(version.split(".")[0])
    return None


def test_the_gpu_stack_agrees_with_its_one_cuda_major() -> None:
    runs = versions.DRIVER_CUDA[versions.NVIDIA_DRIVER_BRANCH]
    assert runs == versions.CUDA_MAJOR, "the driver branch carries the platform's CUDA major"
    assert versions.DCGM_PACKAGE == f"datacenter-gpu-manager-4-cuda{versions.CUDA_MAJOR}"
    assert versions.CUDA_IMAGE.startswith(f"nvidia/cuda:{versions.CUDA_MAJOR}.") and versions.CUDA_IMAGE.endswith("-ubuntu24.04")
    # What a GPU host installs: CUDA libraries no newer than the driver runs, and those of the platform's own major
    # wherever the framework publishes it (TensorFlow builds for CUDA 12 only).
    gpu_locks = {name: runtimes.lock(name, True) for name in runtimes.names()}
    majors = {name: cuda_major(lk) for name, lk in gpu_locks.items()}
    assert all(m is None or m <= runs for m in majors.values()), majors
    assert majors["pytorch"] == versions.CUDA_MAJOR and majors["tensorflow"] == 12, majors
    assert all(cuda_major(runtimes.lock(name, False)) is None for name in runtimes.names() if runtimes.has_cuda_variant(name))


def test_the_gpu_bootstrap_installs_the_pinned_branch_and_dcgm(previews: dict[str, Preview]) -> None:
    script = role_files(previews["uat"], "gpu", "superlink")[BOOTSTRAP]
    assert f"branch={versions.NVIDIA_DRIVER_BRANCH}" in script and versions.DCGM_PACKAGE in script


# ------------------------------------------------------------------------------------------------ on the hosts


def test_each_host_installs_its_federations_lock_and_a_gpu_host_the_cuda_one(materialized: dict[str, Preview]) -> None:
    uat = materialized["uat"]
    fed = uat.cfg.federations["uat-cardiac"]
    superlink, supernode_host = fed.superlink_host, "org-b-sn1"
    assert uat.cfg.hosts[superlink].has("gpu") and not uat.cfg.hosts[supernode_host].has("gpu")
    assert delivered(uat, superlink)[layout.RUNTIME_LOCK]["content"] == runtimes.lock(fed.runtime, True).text()
    assert runtimes.lock(fed.runtime, True).cuda
    assert delivered(uat, supernode_host)[layout.RUNTIME_LOCK]["content"] == runtimes.lock(fed.runtime, False).text()
    for host in (superlink, supernode_host):
        files = delivered(uat, host)
        assert files[layout.RUNTIME_LOCK]["units"] == [f"ensure:{layout.RUNTIME_UNIT}"]  # at every delivery: a failed build is retried
        assert f"/etc/systemd/system/{layout.RUNTIME_UNIT}" in files and layout.RUNTIME_COMMAND in files
    # Hosts that run no apps get no runtime; the notebook image carries every federation's (CPU) lock.
    hub = uat.cfg.the_host_with("notebook").name
    assert layout.RUNTIME_LOCK not in delivered(uat, hub)
    image = delivered(uat, hub)
    assert image[f"{layout.NOTEBOOK_IMAGE_DIR}/runtime-{fed.runtime}.txt"]["content"] == runtimes.lock(fed.runtime, False).text()
    dockerfile = image[f"{layout.NOTEBOOK_IMAGE_DIR}/Dockerfile"]["content"]
    assert f'LABEL org.nina-fl.runtime.{fed.runtime}="{runtimes.lock(fed.runtime, False).digest()}"' in dockerfile
    assert runtimes.pip_install_line(f"/opt/nina/runtimes/{fed.runtime}/bin/pip", f"/tmp/runtimes/{fed.runtime}.txt") in dockerfile


def test_changing_a_federations_runtime_replaces_no_vm() -> None:
    """Two evaluations of uat, the federation's runtime changed: only the deliveries of its SuperLink and SuperNode
    hosts (the lock) and the hub's (the notebook image) change; no VM, no other resource."""
    base = raw_config("uat")
    changed = copy.deepcopy(base)
    changed["nina:federations"]["uat-cardiac"]["runtime"] = "pytorch"
    before, after = evaluate_configs("uat", [base, changed])
    changes = sorted(n for t, n in before.keys() | after.keys() if before.get((t, n)) != after.get((t, n)))
    assert changes == ["deliver-jupyterhub", "deliver-org-b-sn1", "deliver-superlink"], changes
    lock = json.loads(after[("command:remote:Command", "deliver-superlink")]["stdin"])["files"]
    assert {f["path"]: f["content"] for f in lock}[layout.RUNTIME_LOCK] == runtimes.lock("pytorch", True).text()


def test_unknown_runtimes_and_runtimes_for_a_simulation_are_refused_by_key() -> None:
    cfg = raw_config("test")
    cfg["nina:federations"]["test-fl"]["runtime"] = "cobol"
    assert any(p.startswith("nina:federations.test-fl.runtime: must be one of ") and "'cobol'" in p for p in problems(cfg))
    sim = raw_config("test")
    fed = sim["nina:federations"]["test-fl"]
    fed.update(type="simulation", runtime="sklearn", simulation={"supernodes": 2})
    assert any(p.startswith("nina:federations.test-fl.runtime: a simulation runs in the SuperLink's") for p in problems(sim)), problems(sim)


# ------------------------------------------------------------------------------------- the builder, for real


def _wheel(tmp: Path, name: str, version: str) -> Path:
    """A tiny pure-Python wheel written here (no index, no build backend needed)."""
    wheels = tmp / "wheels"
    wheels.mkdir(exist_ok=True)
    path = wheels / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    members = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: nina-fl-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as whl:
        for member, text in members.items():
            whl.writestr(member, text)
        whl.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in members) + f"{info}/RECORD,,\n")
    return path


def _lock(wheels: list[Path], bad: bool = False) -> str:
    lines = []
    for w in wheels:
        name, version = w.name.split("-")[:2]
        digest = "0" * 64 if bad else hashlib.sha256(w.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}\n")
    return "".join(lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace)")
def test_the_builder_builds_switches_keeps_what_runs_and_refuses_a_bad_lock(materialized: dict[str, Preview], tmp_path: Path) -> None:
    files = delivered(materialized["test"], "superlink")
    program = tmp_path / "nina-runtime"
    program.write_text(files[layout.RUNTIME_COMMAND]["content"])
    program.chmod(0o755)
    one, two = _wheel(tmp_path, "ninaprobe", "1.0"), _wheel(tmp_path, "ninaprobe", "2.0")
    # The program's own paths in a private mount namespace (a tmpfs on /opt, an overlay on /etc: nothing of this
    # machine changes); pip finds the wheels here instead of on PyPI.
    script = textwrap.dedent(f"""\
        set -euo pipefail
        mount -t tmpfs lab /opt
        mkdir -p {tmp_path}/etc-u {tmp_path}/etc-w
        mount -t overlay overlay -o lowerdir=/etc,upperdir={tmp_path}/etc-u,workdir={tmp_path}/etc-w /etc
        mkdir -p {Path(layout.RUNTIME_LOCK).parent}
        step() {{ cp "$1" {layout.RUNTIME_LOCK} && {program} && readlink {layout.RUNTIME_CURRENT}; }}
        step {tmp_path}/one.txt
        step {tmp_path}/one.txt
        old=$(readlink -f {layout.RUNTIME_CURRENT})
        # An app started from it, as run-app starts one: holding a shared lock on a descriptor it inherited.
        (exec 9<"$old/{layout.RUNTIME_IN_USE}"; flock --shared 9; exec sleep 60) &
        app=$!
        sleep 0.5
        step {tmp_path}/two.txt
        {layout.RUNTIME_CURRENT}/bin/python -c 'import ninaprobe; print("version", ninaprobe.VERSION)'
        kill $app; wait $app 2>/dev/null || true
        step {tmp_path}/two.txt
        ls {layout.RUNTIME_ROOT}
        if step {tmp_path}/bad.txt; then echo "bad lock accepted"; else echo "bad lock refused"; fi
        readlink {layout.RUNTIME_CURRENT}
        """)
    (tmp_path / "one.txt").write_text(_lock([one]))
    (tmp_path / "two.txt").write_text(_lock([two]))
    (tmp_path / "bad.txt").write_text(_lock([one], bad=True))
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(one.parent), "PIP_NO_CACHE_DIR": "1"}
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script], capture_output=True, text=True, env=env, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    d1 = hashlib.sha256((tmp_path / "one.txt").read_bytes()).hexdigest()[:12]
    d2 = hashlib.sha256((tmp_path / "two.txt").read_bytes()).hexdigest()[:12]
    assert out.count(f"built {layout.RUNTIME_ROOT}/{d1}") == 1, out  # the second run finds it built
    assert f"kept {layout.RUNTIME_ROOT}/{d1}: an app still runs from it" in out and "version 2.0" in out
    assert f"removed {layout.RUNTIME_ROOT}/{d1}" in out
    assert "bad lock refused" in out and "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
    assert out.strip().splitlines()[-1] == d2, "a refused lock leaves apps on the runtime they had"


# ------------------------------------------------------------------------- runtime dependency installation


def test_runtime_dependency_installation_is_off_unless_the_federation_asks(previews: dict[str, Preview]) -> None:
    """Off by default: the SuperNodes' SuperExec does not pass the flag and their apps guard opens nothing but the
    SuperNode. On: both sides install (the SuperLink's SuperExec too) and the guard opens DNS and HTTPS to the web."""
    test = previews["test"]
    unit = role_files(test, "supernode", "org-a-sn1")["/etc/systemd/system/supernode-superexec@.service"]
    assert "--allow-runtime-dependency-installation" not in unit and "-/run/systemd/resolve" in unit
    guard = role_files(test, "supernode", "org-a-sn1")[layout.APPS_GUARD]
    assert "dport 443" not in guard and "dport 53" not in guard
    cfg = raw_config("test")
    cfg["nina:federations"]["test-fl"]["runtime_dependency_installation"] = True
    parsed = parse(encode(cfg))
    host = parsed.hosts["org-a-sn1"]
    rendered = {f["path"]: f["content"] for f in cloudinit.cloud_config(parsed, host)["write_files"]}
    unit = rendered["/etc/systemd/system/supernode-superexec@.service"]
    assert unit.count("--allow-runtime-dependency-installation") == 1 and "-/run/systemd/resolve" not in unit
    assert "tcp dport 443 accept" in rendered[layout.APPS_GUARD]
    superlink = {f["path"]: f["content"] for f in cloudinit.cloud_config(parsed, parsed.hosts["superlink"])["write_files"]}
    assert "--allow-runtime-dependency-installation" in superlink[f"/etc/systemd/system/{layout.SUPEREXEC_UNIT}"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nftables")
def test_the_opened_guard_lets_apps_fetch_packages_and_nothing_private(tmp_path: Path) -> None:
    """The guard beside SuperNodes of a federation that allows runtime installs, loaded for real in a namespace of
    its own and attacked as the apps' user: HTTPS and DNS to a public address and the stub resolver pass (uv
    reaching PyPI); SSH to it, HTTPS or DNS to a private address (another host, instance metadata) and the host's
    other ports are refused."""
    from cloudinit import render_template

    guard = dataclasses.replace(apps.guard(("supernode",), package_index=True), users=("nobody",))
    rules = render_template("flower/apps-guard.nft.j2", parse(encode(raw_config("test"))), apps_guard=guard)
    public, private = "203.0.113.5", "10.9.9.9"
    listen = f"import socket, threading, time\nfor a, p in (('{public}', 443), ('{public}', 53), ('{public}', 22), ('{private}', 443), ('{private}', 53), ('127.0.0.53', 53), ('127.0.0.1', 9000)):\n" \
             "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((a, p)); s.listen()\n" \
             "    threading.Thread(target=lambda s=s: [s.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()\n" \
             "print('ready', flush=True)\ntime.sleep(60)\n"
    (tmp_path / "rules.nft").write_text(rules)
    (tmp_path / "listen.py").write_text(listen)
    (tmp_path / "connect.py").write_text(CONNECT)
    targets = [f"{public}:443", f"{public}:53", f"{public}:22", f"{private}:443", f"{private}:53", "127.0.0.53:53", "127.0.0.1:9000"]
    script = textwrap.dedent(f"""\
        set -euo pipefail
        ip link set lo up
        ip addr add {public}/32 dev lo
        ip addr add {private}/32 dev lo
        /usr/bin/python3 {tmp_path}/listen.py > {tmp_path}/ready 2>&1 &
        listener=$!
        for _ in $(seq 50); do grep -q ready {tmp_path}/ready && break; sleep 0.1; done
        nft -f {tmp_path}/rules.nft
        setpriv --reuid nobody --regid nogroup --clear-groups /usr/bin/python3 -c "$(cat {tmp_path}/connect.py)" {" ".join(targets)}
        kill $listener
        """)
    done = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    reached = json.loads(done.stdout.strip().splitlines()[-1])
    assert reached == {
        f"{public}:443": "open", f"{public}:53": "open", "127.0.0.53:53": "open",  # the host's stub resolver
        f"{public}:22": "ConnectionRefusedError", f"{private}:443": "ConnectionRefusedError", f"{private}:53": "ConnectionRefusedError",
        "127.0.0.1:9000": "ConnectionRefusedError",
    }
