"""The test stack's Flower hosts as a lab (tests/lab.py): the SuperLink host, the Nectar SuperNode host org-a-sn1
(SuperNodes sn1 and sn2) and the JupyterHub host researchers run `flwr` from, each at its own address from
Pulumi.test.yaml, booted from its rendered user-data, bootstrapped by its rendered scripts, given its delivered
payload, and its units started as systemd would start them. The SuperNodes are registered by the very command
strings of the register-* resources.

Nothing is rewritten: paths, ports, names, users and flags are the ones the program renders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from conftest import COMMAND, FLWR_VENV, ROOT, Preview, payload_of, wait_for
from lab import Lab, Machine

from nina.catalog import layout, runtimes
from nina.catalog.ports import SUPERLINK_LOOPBACK_PORT, SUPERLINK_PORT, SUPERLINK_RUNTIME_PORT
from nina.catalog.roles import ROLES

FED = "test-fl"
SUPERNODES = ("sn1", "sn2")
PUBLIC_PORT = SUPERLINK_PORT
LOOPBACK_PORT = SUPERLINK_LOOPBACK_PORT
RUNTIME_PORT = SUPERLINK_RUNTIME_PORT
VENV = ROLES["superlink"].python_venv or ""  # the SuperNodes' is the same


UNIX_SOCKETS = ("/run/systemd/resolve/io.systemd.Resolve", "/run/dbus/system_bus_socket")
_UNIX_LISTEN = """
import os, socket, sys
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen()
while True:
    s.accept()[0].close()
"""



class FlowerLab:
    def __init__(self, preview: Preview, tmp: Path) -> None:
        if not (FLWR_VENV / "bin" / "flwr").exists():
            raise RuntimeError(f"{FLWR_VENV} has no flwr: run scripts/flwr-venv.sh (or set NINA_FLWR_VENV)")
        self.preview = preview
        self.cfg = preview.cfg
        self.tmp = tmp
        self.lab = Lab(tmp, FLWR_VENV)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _machine(self, name: str) -> Machine:
        return self.lab.machine(name, str(self.cfg.hosts[name].ip))

    def _build(self) -> None:
        preview, deliver = self.preview, ROOT / "nina" / "onhost" / "nina_deliver.py"
        self.superlink = self._machine("superlink")
        self.node_host = self._machine("org-a-sn1")
        self.hub = self._machine("hub")
        for machine in (self.superlink, self.node_host):
            machine.mount_venv(VENV)
            # The runtime the host's delivery names, already built from that very lock (scripts/flwr-venv.sh).
            lock = self.cfg.federations[FED].runtime
            machine.mount_venv(f"{layout.RUNTIME_ROOT}/{runtimes.lock(lock, False).digest()[:12]}")
        for machine in (self.superlink, self.node_host):
            machine.boot(preview.hosts[machine.name].cloud_config, self.cfg.admin.ssh_user)
            machine.bootstrap()
            machine.deliver(payload_of(preview, machine.name), deliver)
            # The way out of the lab leads nowhere: a public address is routed (to the hub, which drops it).
            machine.run(["ip", "route", "add", "default", "via", str(self.cfg.hosts["hub"].ip)])
        # The JupyterHub host: booted and given its whole delivery (the accounts its packages would make first). Its
        # bootstrap needs Docker, npm and the hub's venv and is not run: tests/test_notebook_access.py makes what the
        # notebook bootstrap would (the containers' bridge, the access directory).
        self.hub.boot(preview.hosts["hub"].cloud_config, self.cfg.admin.ssh_user)
        self.hub.package_accounts(groups=("grafana", "docker"))
        self.hub.deliver(payload_of(preview, "hub"), deliver)

        # What Ubuntu runs from boot on and the lab does not: systemd-resolved's and D-Bus's sockets (stand-ins that
        # accept any user, as those do), there before any unit that hides them from itself starts.
        for machine in (self.superlink, self.node_host):
            for path in UNIX_SOCKETS:
                machine.background(f"socket-{path.rsplit('/', 1)[1]}", ["/usr/bin/python3", "-c", _UNIX_LISTEN, path])
            wait_for(lambda m=machine: all(m.exists(p) for p in UNIX_SOCKETS), "the stand-in sockets")
        # What the delivery restarted: the runtime, switched to the venv built from the delivered lock.
        for machine in (self.superlink, self.node_host):
            machine.start(layout.RUNTIME_UNIT)
        # In the order systemd would (After=); each unit's Requires= are started by the emulation itself.
        for unit in ("superlink.service", layout.SUPERLINK_PROXY_UNIT, layout.SUPEREXEC_UNIT):
            self.superlink.start(unit)
        wait_for(lambda: self.superlink_healthy(), "the SuperLink's /health through its proxy", self._evidence, timeout=90)
        for sn in SUPERNODES:
            create = preview.named(COMMAND, f"register-{FED}-{sn}")["inputs"]["create"]
            done = self.superlink.run(["bash", "-c", create], check=False, timeout=180)
            assert done.returncode == 0 and "registered" in done.stdout, done.stdout + done.stderr
        for sn in SUPERNODES:
            self.node_host.start(layout.supernode_unit(sn))
            self.node_host.start(layout.supernode_superexec_unit(sn))

    # -------------------------------------------------------------------------------------------- queries

    def superlink_healthy(self) -> bool:
        done = self.superlink.run(
            ["curl", "-fsS", "-o", "/dev/null", "--cacert", layout.CA_PEM, f"https://127.0.0.1:{PUBLIC_PORT}/health"], check=False
        )
        return done.returncode == 0

    def _evidence(self) -> str:
        return "\n".join(f"--- {m.name} {p.name}\n{p.read_text(errors='replace')[-3000:]}" for m in self.lab.machines.values() for p in m.logs.glob("*.log"))

    def researcher(self, app: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`flwr ARGS` on the JupyterHub host itself, with the connections of every federation (the stack's output
        flwr_config_toml, an admin's); tests/test_notebook_access.py runs researchers in containers."""
        home = self.tmp / "researcher"
        if not home.exists():
            home.mkdir()
            (home / "config.toml").write_text(self.preview.data["outputs"]["flwr_config_toml"])
        env = {"PATH": f"{FLWR_VENV / 'bin'}:/usr/bin:/bin", "HOME": str(home), "FLWR_HOME": str(home), "LANG": "C.UTF-8",
               "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(FLWR_VENV / "bin" / "flwr"), *args]
        return self.hub.run(argv, check=False, timeout=timeout, cwd=str(app.parent))

    def run_app(self, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        app = self.tmp / source.name
        if app.exists():
            shutil.rmtree(app)
        shutil.copytree(source, app, ignore=shutil.ignore_patterns("__pycache__"))
        started = time.monotonic()
        done = self.researcher(app, "run", str(app), FED, "--stream", *extra)
        print(f"flwr run {source.name} took {time.monotonic() - started:.1f}s")
        return done

    def runs(self) -> list[dict[str, object]]:
        listed = self.researcher(self.tmp, "ls", FED, "--format", "json", timeout=60)
        runs: list[dict[str, object]] = json.loads(listed.stdout)["runs"]
        return runs

    def logs(self) -> str:
        return self._evidence()

    def close(self) -> None:
        self.lab.close()
