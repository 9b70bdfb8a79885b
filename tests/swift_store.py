"""A real OpenStack Swift on 127.0.0.1 for tests: Debian's swift-proxy, -account, -container and -object servers in
one directory, a one-replica ring of one device each, and tempauth (the test's account `test:tester`).

What the backups talk to on Nectar is the same proxy, reached with a Keystone token instead of tempauth's: the
clients' object API (PUT with X-Delete-After, HEAD, GET, listings) is the same. Storage lives on the real disk, not
tmpfs: the object server keeps metadata in user xattrs. Every server listens on 127.0.0.1 only and is stopped at
exit; nothing outside the directory is written (swift.conf, the hash suffix, is the package's /etc/swift/swift.conf).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVERS = ("account", "container", "object")
USER, KEY = "test:tester", "testing"


def missing() -> str | None:
    """Why no Swift can run here (None when it can)."""
    for tool in ("swift-ring-builder", "swift-proxy-server", "swift-object-server", "swift", "memcached"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run scripts/install-system-deps.sh (Debian's swift packages)"
    if not Path("/etc/swift/swift.conf").exists():
        return "/etc/swift/swift.conf is missing (the swift package installs it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Swift:
    auth_url: str  # tempauth's v1 endpoint
    root: Path

    def env(self) -> dict[str, str]:
        """The swift client's v1 settings (ST_AUTH/ST_USER/ST_KEY), as a credentials file would give them."""
        return {"ST_AUTH": self.auth_url, "ST_USER": USER, "ST_KEY": KEY}

    def credentials_text(self) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.env().items())

    def swift(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], **self.env()}
        return subprocess.run(["swift", *args], capture_output=True, text=True, timeout=60, check=False, env=env)


def _conf(root: Path, kind: str, port: int, extra: str = "") -> Path:
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    path = root / f"{kind}-server.conf"
    path.write_text(
        f"[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 0\nuser = {user}\nswift_dir = {root}\n"
        f"devices = {root / 'srv'}\nmount_check = false\nlog_name = {kind}\nlog_facility = LOG_LOCAL0\n"
        f"{extra}"
    )
    return path


@contextmanager
def running_swift() -> Iterator[Swift]:
    root = Path(tempfile.mkdtemp(prefix="nina-swift-", dir="/var/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = {kind: _free_port() for kind in (*SERVERS, "proxy", "memcached")}
        (root / "srv" / "d1").mkdir(parents=True)
        for kind in SERVERS:
            builder = str(root / f"{kind}.builder")
            for args in (["create", "8", "1", "0"], ["add", f"r1z1-127.0.0.1:{ports[kind]}/d1", "1"], ["rebalance"]):
                done = subprocess.run(["swift-ring-builder", builder, *args], capture_output=True, text=True, timeout=60, check=False)
                # rebalance exits 1 with a warning on a one-device ring; the ring file is what matters
                if args[0] != "rebalance" and done.returncode != 0:
                    raise RuntimeError(done.stdout + done.stderr)
            if not (root / f"{kind}.ring.gz").exists():
                raise RuntimeError(f"swift-ring-builder wrote no {kind} ring")
        confs = {
            kind: _conf(root, kind, ports[kind], f"\n[pipeline:main]\npipeline = {kind}-server\n\n[app:{kind}-server]\nuse = egg:swift#{kind}\n")
            for kind in SERVERS
        }
        confs["proxy"] = _conf(
            root, "proxy", ports["proxy"],
            "\n[pipeline:main]\npipeline = catch_errors cache tempauth proxy-server\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = {KEY} .admin\n\n"
            f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:{ports['memcached']}\n\n"
            "[filter:catch_errors]\nuse = egg:swift#catch_errors\n",
        )
        log = (root / "servers.log").open("wb")
        # tempauth keeps its tokens in memcached
        user = ["-u", "root"] if os.geteuid() == 0 else []
        procs.append(subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0", *user], stdout=log, stderr=log))
        for kind in (*SERVERS, "proxy"):
            procs.append(subprocess.Popen([f"swift-{kind}-server", str(confs[kind])], stdout=log, stderr=log))
        auth = f"http://127.0.0.1:{ports['proxy']}/auth/v1.0"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(auth, headers={"X-Auth-User": USER, "X-Auth-Key": KEY})
                with urllib.request.urlopen(request, timeout=2):
                    break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"Swift did not start ({[p.poll() for p in procs]}):\n" + (root / "servers.log").read_text(errors="replace")) from None
                time.sleep(0.2)
        yield Swift(auth, root)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(root, ignore_errors=True)
