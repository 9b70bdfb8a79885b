"""A SuperLink host's rendered SuperLink and nginx proxy on 127.0.0.1, without root: the delivered payload installed
under a temp dir by nina-deliver, absolute paths and ports moved there, every flag from the rendered files. For the
path-ACL tests (tests/test_flower_acl.py); the whole platform across hosts, with its users, runs in the Flower lab
(tests/flower_lab.py). flwr runs from its own venv (scripts/flwr-venv.sh): its pins conflict with Pulumi's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FLWR_VENV, ROOT, Preview, free_port, payload_of, wait_for

from nina.catalog import layout
from nina.catalog.ports import SUPERLINK_LOOPBACK_PORT, SUPERLINK_PORT
from nina.catalog.roles import server_tls

PUBLIC_PORT = SUPERLINK_PORT
LOOPBACK_PORT = SUPERLINK_LOOPBACK_PORT


def files_of(preview: Preview, host: str) -> dict[str, str]:
    return {f["path"]: f["content"] for f in preview.hosts[host].cloud_config["write_files"]}



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
