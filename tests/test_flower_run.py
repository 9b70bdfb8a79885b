"""A real federated run on the material the program produces (issue 4): flower-superlink, its nginx ACL proxy and two
flower-supernodes on 127.0.0.1, started by the rendered wrapper scripts with the rendered confs, SuperNodes registered
by the very command string of the register-* resources, a NumPy FedAvg app run to completion through the proxy with
the researchers' rendered ~/.flwr/config.toml, and a SuperNode with an unregistered key refused.

Only absolute paths (into a temp dir) and ports (free loopback ports) are rewritten; every flag comes from the
rendered files. flwr runs from its own venv (scripts/flwr-venv.sh): its pins conflict with the project's Pulumi ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import COMMAND, ROOT, Preview, free_port, wait_for

from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import server_tls

FLWR_VENV = Path(os.environ.get("NINA_FLWR_VENV", ROOT / ".venv-flwr"))
PUBLIC_PORT = next(p.port for p in PORTS if p.name == "superlink")
LOOPBACK_PORT = next(p.port for p in PORTS if p.name == "superlink-loopback")


def flwr_bin(name: str) -> str:
    path = FLWR_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} missing: run scripts/flwr-venv.sh (or set NINA_FLWR_VENV) before the Flower tests")
    return str(path)


def files_of(preview: Preview, host: str) -> dict[str, str]:
    return {f["path"]: f["content"] for f in preview.hosts[host].cloud_config["write_files"]}


def payload_of(preview: Preview, host: str) -> str:
    stdin: str = preview.named(COMMAND, f"deliver-{host}")["inputs"]["stdin"]
    return stdin


def install(preview: Preview, host: str, root: Path) -> None:
    """nina-deliver exactly as on the host, under ROOT."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(root)],
        input=payload_of(preview, host), capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr


def read_conf(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an env-style conf (values may be single-quoted)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value[1:-1] if value.startswith("'") else value
    return out


def write_conf(values: dict[str, str], path: Path) -> Path:
    path.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()))
    return path


class Processes:
    """Background processes of one test, each in its own session so teardown kills their children too."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp)
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


def base_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{FLWR_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "LANG": "C.UTF-8",
    }


def https_ok(port: int, ca: Path, path: str = "/health", source: str | None = None) -> bool:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca), "--max-time", "5"]
    if source:
        argv += ["--interface", source]
    code = subprocess.run([*argv, f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=False).stdout
    return code == "200"


class SuperLinkSite:
    """The superlink host's rendered files and delivered material under TMP, ready to start."""

    def __init__(self, preview: Preview, host: str, tmp: Path) -> None:
        self.root = tmp / host
        install(preview, host, self.root)
        self.files = files_of(preview, host)
        self.ca = self.root / layout.CA_TRUST_PATH.lstrip("/")  # update-ca-certificates links it at CA_PEM
        self.scripts = tmp / "opt"
        self.scripts.mkdir()
        for path in ("/opt/flwr/superlink/run_superlink.sh", "/opt/flwr/superlink/supernode_id.py"):
            target = self.scripts / Path(path).name
            target.write_text(self.files[path])
            target.chmod(0o755)
        self.loopback = free_port()
        self.public = free_port()

    def path(self, value: str) -> str:
        """Where an absolute host path lives in this test."""
        if value == layout.CA_PEM:
            return str(self.ca)
        return str(self.root) + value

    def conf(self) -> Path:
        values = read_conf(self.files["/etc/flwr/superlink/superlink.conf"])
        assert values["HOST"] == "127.0.0.1" and values["PORT"] == str(LOOPBACK_PORT), "the SuperLink must stay on loopback"
        for key, value in values.items():
            if key == "FLOWER_ENV":
                values[key] = str(FLWR_VENV)
            elif value.startswith("/"):
                values[key] = self.path(value)
        values["PORT"] = str(self.loopback)
        return write_conf(values, self.root / "superlink.conf")

    def start(self, procs: Processes) -> None:
        env = base_env(self.root / "home")
        env["SUPERLINK_CONF"] = str(self.conf())
        procs.start("superlink", ["bash", str(self.scripts / "run_superlink.sh")], env)
        wait_for(lambda: https_ok(self.loopback, self.ca), "the SuperLink's /health on loopback", timeout=60)

    def write_acl(self, acl: dict[str, list[str]], delivered_dir: Path | None = None) -> None:
        """The delivered allow lists with each file's sources replaced by `acl[stem]` (a file that only denies, or
        whose stem is not in `acl`, is kept as delivered)."""
        acl_dir = self.root / "acl"
        acl_dir.mkdir(exist_ok=True)
        for delivered in (delivered_dir or self.root / layout.SUPERLINK_ACL_DIR.lstrip("/")).iterdir():
            content = delivered.read_text()
            if delivered.stem in acl and "allow " in content:
                content = "".join(f"allow {s};\n" for s in acl[delivered.stem]) + "deny all;\n"
            (acl_dir / delivered.name).write_text(content)

    def proxy_conf(self, acl: dict[str, list[str]]) -> Path:
        """The rendered nginx conf with paths and ports moved into the test, allow lists as in `write_acl`."""
        text = self.files["/etc/nginx/superlink-proxy.conf"]
        run = self.root / "run"
        run.mkdir(exist_ok=True)
        acl_dir = self.root / "acl"
        self.write_acl(acl)
        assert f"listen {PUBLIC_PORT} ssl;" in text
        text = text.replace(f"listen {PUBLIC_PORT} ssl;", f"listen 127.0.0.1:{self.public} ssl;")
        text = text.replace(f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{self.loopback}")
        text = text.replace(layout.SUPERLINK_ACL_DIR, str(acl_dir)).replace("/run/superlink-proxy", str(run))
        for p in (server_tls("superlink").cert, server_tls("superlink").key, layout.CA_PEM):
            text = text.replace(p, self.path(p))
        assert not re.search(r"\s/(etc|run|var)/", text), "an absolute host path was not moved into the test"
        conf = self.root / "superlink-proxy.conf"
        conf.write_text(text)
        return conf

    def start_proxy(self, procs: Processes, acl: dict[str, list[str]], probe_from: str = "127.0.0.1") -> None:
        conf = self.proxy_conf(acl)
        self.nginx = ["nginx", "-e", "stderr", "-p", str(self.root), "-c", str(conf)]
        check = subprocess.run([*self.nginx, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        procs.start("proxy", [*self.nginx, "-g", "daemon off;"], {"PATH": "/usr/sbin:/usr/bin:/bin"})
        wait_for(lambda: https_ok(self.public, self.ca, source=probe_from), "the proxy", timeout=60)

    def reload_proxy(self) -> None:
        """What nina-deliver's reload:superlink-proxy.service does after new allow lists."""
        subprocess.run([*self.nginx, "-s", "reload"], check=True, capture_output=True)
        time.sleep(1.5)  # nginx swaps workers asynchronously

    def run_command(self, command: str, home: Path) -> subprocess.CompletedProcess[str]:
        """A register-*/unregister command string exactly as pulumi runs it on the SuperLink host, paths and port moved."""
        for old, new in (
            (layout.CA_PEM, str(self.ca)),
            (f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{self.loopback}"),
            ("/opt/flwr/superlink/supernode_id.py", str(self.scripts / "supernode_id.py")),
        ):
            assert old in command
            command = command.replace(old, new)
        env = base_env(home)
        return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120, check=False)


def start_supernode(procs: Processes, files: dict[str, str], sn_root: Path, name: str, superlink: str, ca: Path, key: Path | None = None) -> subprocess.Popen[bytes]:
    values = read_conf((sn_root / layout.supernode_dir(name).lstrip("/") / "supernode.conf").read_text())
    values.update(
        FLOWER_ENV=str(FLWR_VENV),
        SUPERLINK=superlink,
        ROOT_CERTIFICATES=str(ca),
        AUTH_SUPERNODE_PRIVATE_KEY=str(key or (str(sn_root) + values["AUTH_SUPERNODE_PRIVATE_KEY"])),
        PORT=str(free_port()),
    )
    conf = write_conf(values, sn_root / f"{name}-{'other' if key else 'own'}.conf")
    script = sn_root / "run_supernode.sh"
    script.write_text(files["/opt/flwr/supernode/run_supernode.sh"])
    env = base_env(sn_root / f"home-{name}-{bool(key)}")
    env["SUPERNODE_CONF"] = str(conf)
    return procs.start(f"supernode-{name}{'-unregistered' if key else ''}", ["bash", str(script), name], env)


def researcher_home(preview: Preview, tmp: Path, fed: str, port: int, ca: Path) -> Path:
    """The stack's rendered ~/.flwr/config.toml, pointed at the test's proxy."""
    toml = preview.data["outputs"]["flwr_config_toml"]
    parsed = tomllib.loads(toml)
    entry = parsed["superlink"][fed]
    assert entry["root-certificates"] == layout.CA_PEM
    assert entry["address"].endswith(f":{PUBLIC_PORT}")
    toml = toml.replace(entry["address"], f"127.0.0.1:{port}").replace(layout.CA_PEM, str(ca))
    home = tmp / "researcher"
    home.mkdir()
    (home / "config.toml").write_text(toml)
    return home


def test_federated_run_on_rendered_material(materialized: dict[str, Preview], processes: Processes, tmp_path: Path) -> None:
    preview = materialized["test"]
    fed = "test-fl"
    site = SuperLinkSite(preview, "superlink", tmp_path)
    site.start(processes)
    # SuperNodes and the flwr CLI connect from 127.0.0.1 here: allow it where the stack allows their networks.
    site.start_proxy(processes, {"fleet": ["127.0.0.1"], "control": ["127.0.0.1"]})

    for sn in ("sn1", "sn2"):
        create = preview.named(COMMAND, f"register-{fed}-{sn}")["inputs"]["create"]
        first = site.run_command(create, tmp_path / f"ops-{sn}")
        assert first.returncode == 0, first.stderr + first.stdout
        assert "registered successfully" in first.stdout
    # Idempotent: pulumi re-running the command (a retry, a refresh) is not an error.
    again = site.run_command(preview.named(COMMAND, f"register-{fed}-sn1")["inputs"]["create"], tmp_path / "ops-again")
    assert again.returncode == 0 and "already registered" in again.stdout, again.stderr + again.stdout

    sn_root = tmp_path / "org-a-sn1"
    install(preview, "org-a-sn1", sn_root)
    sn_files = files_of(preview, "org-a-sn1")
    sn_ca = sn_root / layout.CA_TRUST_PATH.lstrip("/")
    address = f"127.0.0.1:{site.public}"
    for sn in ("sn1", "sn2"):
        start_supernode(processes, sn_files, sn_root, sn, address, sn_ca)

    home = researcher_home(preview, tmp_path, fed, site.public, site.ca)
    app = tmp_path / "app"
    shutil.copytree(ROOT / "tests" / "flower_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    env = base_env(home)
    started = time.monotonic()
    run = subprocess.run([flwr_bin("flwr"), "run", str(app), fed, "--stream"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False)
    logs = "\n".join(f"--- {n}\n{processes.log(n)[-3000:]}" for n, _ in processes.procs)
    assert run.returncode == 0, run.stdout + run.stderr + logs
    print(f"flwr run took {time.monotonic() - started:.1f}s", file=sys.stderr)
    assert "nina-numpy-app final model" in run.stdout + run.stderr, run.stdout + logs

    listed = subprocess.run([flwr_bin("flwr"), "ls", fed, "--format", "json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    runs = json.loads(listed.stdout)["runs"]
    assert [r["status"] for r in runs] == ["finished:completed"], listed.stdout

    # A SuperNode whose key nobody registered is refused by the SuperLink.
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-f", str(stranger)], check=True)
    refused = start_supernode(processes, sn_files, sn_root, "sn1", address, sn_ca, key=stranger)
    try:
        code = refused.wait(timeout=90)
    except subprocess.TimeoutExpired:
        code = None
    log = processes.log("supernode-sn1-unregistered")
    assert code == 305 or "Failed to activate" in log, log[-3000:]

    # Removing a SuperNode from the stack runs the delete command: it is unregistered, and only it.
    delete = preview.named(COMMAND, f"register-{fed}-sn2")["inputs"]["delete"]
    gone = site.run_command(delete, tmp_path / "ops-delete")
    assert gone.returncode == 0 and "unregistered successfully" in gone.stdout, gone.stdout + gone.stderr
    again = site.run_command(delete, tmp_path / "ops-delete-again")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    nodes = subprocess.run([flwr_bin("flwr"), "supernode", "list", fed, "--format", "json"], env=env, capture_output=True, text=True, timeout=60, check=False)
    statuses = sorted(n["status"] for n in json.loads(nodes.stdout)["nodes"])
    assert "unregistered" in statuses and len(statuses) == 2, nodes.stdout
