"""Hosts of a stack as Linux namespaces on this machine, booted from what the program renders.

A `Machine` is one host of the stack: a mount namespace whose /etc, /opt, /usr/local, /var, /run and /root are
overlays (every write lands in the test's tmpfs; this machine's own files are never touched), a UTS namespace (for
the hostname cloud-init sets) and a network namespace with the host's own address on a lab bridge (10.40.0.0/16: the test stack's segments are one L2 here). On it the
test runs, in order, what runs on the real host:

1. `boot()`: the real cloud-init (Debian's package) on the host's rendered user-data, with the modules that do not
   need a cloud or the network: the users and groups, and every file with its owner and mode.
2. `bootstrap()`: the host's rendered bootstrap scripts themselves, base's included, with systemctl, apt-get and
   sshd recorded instead of run (the state volume's unit is one of those systemctl calls). The Flower venv is this machine's (scripts/flwr-venv.sh), mounted
   at the path the role table gives, so `ensure_venv` finds flwr already installed.
3. `deliver()`: nina-deliver with the host's payload (certificates, keys, secrets, /etc/hosts, confs).
4. `start()`: a systemd unit, emulated: its User=, Group=, SupplementaryGroups=, AmbientCapabilities=,
   CapabilityBoundingSet=, NoNewPrivileges=, Environment=, EnvironmentFile=, RuntimeDirectory= and the directories it
   declares, Requires= and InaccessiblePaths= (a mount namespace of the unit's own), with setpriv(1) and env(1)
   around its ExecStartPre=, ExecStart= and (oneshot) ExecStartPost= lines; `reload()` runs its ExecReload= lines.
   Other sandboxing (ProtectSystem=, PrivateTmp=, ProtectProc=, ...)
   is not emulated: what a test proves holds without it.

Needs root (namespaces, overlays, setpriv), like the VPN tunnel test. Every process started in a machine is killed
at `close()`, found by its network namespace.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

OVERLAID = ("/etc", "/opt", "/usr/local", "/var", "/run", "/root")
PREFIX = 16  # every lab address is in 10.40.0.0/16
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unavailable() -> str | None:
    """Why a lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces, overlays, setpriv)"
    for tool in ("unshare", "nsenter", "setpriv", "ip", "nft", "cloud-init", "nginx", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-system-deps.sh)"
    return None


def _run(argv: list[str], timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


class Namespace:
    """A process holding a mount and a network namespace open; commands enter both with nsenter."""

    def __init__(self, tmp: Path, name: str, setup: str = "") -> None:
        self.tmp = tmp
        self.name = name
        pidfile = tmp / f"{name}.pid"
        script = f"set -e\nmount --make-rprivate /\nip link set lo up\n{setup}\necho $$ > {pidfile}\nexec sleep infinity\n"
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--uts", "--propagation", "private", "bash", "-c", script],
            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.setup.log", "wb"), start_new_session=True,  # noqa: SIM115
        )
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text().strip():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the namespace did not come up: {(tmp / f'{name}.setup.log').read_text()}")
            time.sleep(0.05)
        self.pid = int(pidfile.read_text())

    def enter(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "-u", "--", *argv]

    def run(self, argv: list[str], timeout: float = 120, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = _run(self.enter(argv), timeout=timeout, **kwargs)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {shlex.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["bash", "-c", script], timeout=timeout, check=check)

    def processes(self) -> list[int]:
        """Every process in this network namespace."""
        mine = os.readlink(f"/proc/{self.pid}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns" / "net") == mine:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def close(self) -> None:
        for _ in range(3):
            victims = [p for p in self.processes() if p != self.pid]
            if not victims:
                break
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        try:
            os.killpg(self.holder.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.holder.wait(timeout=10)


class Machine(Namespace):
    def __init__(self, tmp: Path, name: str, ip: str, switch: Namespace, index: int, flwr_venv: Path) -> None:
        ovl = tmp / f"{name}-overlay"
        ovl.mkdir()
        mounts = [f"mount -t tmpfs lab {ovl}"]
        for path in OVERLAID:
            key = path.strip("/").replace("/", "-")
            mounts.append(f"mkdir -p {ovl}/{key}/u {ovl}/{key}/w")
            mounts.append(f"mount -t overlay overlay -o lowerdir={path},upperdir={ovl}/{key}/u,workdir={ovl}/{key}/w {path}")
        # The service users reach the Flower venv's interpreter (pyenv under /root on developer machines).
        mounts.append("chmod 0755 /root")
        # What Nectar's Ubuntu image has and this machine may not: OpenSSH's drop-in directory.
        mounts.append("mkdir -p /etc/ssh/sshd_config.d")
        super().__init__(tmp, name, "\n".join(mounts))
        self.ip = ip
        self.flwr_venv = flwr_venv
        self.logs = tmp / f"{name}-logs"
        self.logs.mkdir()
        self.stubs = tmp / f"{name}-stubs"
        self.stubs.mkdir()
        for tool in ("systemctl", "apt-get", "sshd"):
            (self.stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {self.logs}/{tool}.log\n')
            (self.stubs / tool).chmod(0o755)
        port = f"v{index}"
        made = _run(["ip", "link", "add", "eth0", "netns", str(self.pid), "type", "veth", "peer", "name", port, "netns", str(switch.pid)])
        assert made.returncode == 0, made.stderr
        switch.run(["ip", "link", "set", port, "master", "br0", "up"])
        self.run(["ip", "addr", "add", f"{ip}/{PREFIX}", "dev", "eth0"])
        self.run(["ip", "link", "set", "eth0", "up"])
        self.processes_started: list[subprocess.Popen[bytes]] = []
        self.active: set[str] = set()  # units started (systemd's Requires= starts what is required first)

    # ------------------------------------------------------------------------------------------------ files

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def write(self, path: str, content: str, mode: str = "0644") -> None:
        self.run(["install", "-D", "-m", mode, "/dev/stdin", path], input=content)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    # ---------------------------------------------------------------------------------------------- stages

    def boot(self, cloud_config: Mapping[str, Any], default_user: str = "ubuntu") -> None:
        """cloud-init's users_groups and write_files(_deferred) modules on the host's cloud-config; `default_user`
        is the image's (Nectar's Ubuntu: ubuntu), whom the base bootstrap adds to fl_system."""
        seed = self.tmp / f"{self.name}-seed"
        seed.mkdir()
        (seed / "meta-data").write_text(f"instance-id: lab-{self.name}\nlocal-hostname: {self.name}\n")
        (seed / "user-data").write_text("#cloud-config\n" + yaml.safe_dump(dict(cloud_config), sort_keys=False))
        cfg = textwrap.dedent(
            f"""\
            datasource_list: [NoCloud]
            datasource: {{NoCloud: {{seedfrom: "file://{seed}/"}}}}
            network: {{config: disabled}}
            cloud_init_modules: [write_files, users_groups]
            cloud_config_modules: []
            cloud_final_modules: [write_files_deferred]
            system_info: {{distro: debian, paths: {{cloud_dir: /var/lib/cloud/, templates_dir: /etc/cloud/templates/}}, default_user: {{name: {default_user}, shell: /bin/bash}}}}
            def_log_file: /var/log/cloud-init.log
            """
        )
        self.sh("rm -rf /etc/cloud/cloud.cfg.d && mkdir -p /etc/cloud && rm -rf /var/lib/cloud /run/cloud-init")
        self.write("/etc/cloud/cloud.cfg", cfg)
        for stage in (["init", "--local"], ["init"], ["modules", "--mode", "final"]):
            self.run(["cloud-init", *stage], timeout=240)
        status = self.run(["cloud-init", "status", "--long"], check=False).stdout
        assert "status: done" in status, f"{self.name}: cloud-init\n{status}\n{self.read('/var/log/cloud-init.log')[-4000:]}"

    def mount_venv(self, path: str) -> None:
        """The Flower venv at `path` (an overlay on this machine's venv: the bootstrap's chgrp stays in the lab). The
        venv is scripts/flwr-venv.sh's, installed from the test stack's runtime lock, so it also stands for the
        runtime nina-runtime would build from that lock (mounted at its digest's path, where nina-runtime finds it
        built and switches to it)."""
        upper = self.tmp / f"{self.name}-venv-{path.strip('/').replace('/', '-')}"
        self.sh(
            f"mkdir -p {path} {upper}-u {upper}-w && mount -t tmpfs lab {upper}-u && mkdir -p {upper}-u/u {upper}-u/w && "
            f"mount -t overlay overlay -o lowerdir={self.flwr_venv},upperdir={upper}-u/u,workdir={upper}-u/w {path}"
        )

    def package_accounts(self, users: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
        """The system users and groups the host's packages would have made (grafana, prometheus, docker...), which
        the lab does not install but the delivery gives files to."""
        for group in groups:
            self.sh(f"getent group {group} >/dev/null || groupadd --system {group}")
        for user in users:
            self.sh(f"id -u {user} >/dev/null 2>&1 || useradd --system --user-group --no-create-home {user}")

    def bootstrap(self, skip: Iterable[str] = (), only: Iterable[str] | None = None) -> None:
        """The host's bootstrap steps, in the runner's order (`only` those fragments, if given), with systemctl,
        apt-get and sshd recorded."""
        steps = self.run(["ls", "/usr/local/lib/nina/bootstrap"]).stdout.split()
        env = f"PATH={self.stubs}:{SYSTEMD_PATH}"
        wanted = None if only is None else set(only)
        for step in steps:
            fragment = re.sub(r"^\d+-|\.sh$", "", step)
            if fragment in skip or (wanted is not None and fragment not in wanted):
                continue
            done = self.run(["env", env, "bash", f"/usr/local/lib/nina/bootstrap/{step}"], check=False, timeout=300)
            assert done.returncode == 0, f"{self.name}: bootstrap {step} failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def deliver(self, payload: str, deliver_program: Path) -> dict[str, Any]:
        """nina-deliver, as pulumi-command runs it over SSH, at the machine's real paths."""
        import json

        done = self.run(
            ["env", f"PATH={self.stubs}:{SYSTEMD_PATH}", "/usr/bin/python3", str(deliver_program)], input=payload, check=False, timeout=120
        )
        assert done.returncode == 0, f"{self.name}: nina-deliver\n{done.stdout}\n{done.stderr}"
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        return report

    # ---------------------------------------------------------------------------------------------- units

    def unit(self, name: str) -> tuple[configparser.RawConfigParser, str]:
        """The unit file (a template's for an instance) as systemd would read it, and the instance name."""
        base, at, rest = name.partition("@")
        instance = rest.rsplit(".", 1)[0] if at else ""
        file = f"{base}@.{rest.rsplit('.', 1)[1]}" if at else name
        # Ours in /etc/systemd/system, a package's (nginx's, say) where the package put it.
        where = next(d for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system") if self.exists(f"{d}/{file}"))
        text = self.read(f"{where}/{file}")
        # Repeated keys (Environment=, ExecStartPre=) are kept as lines of one value, in order (_MultiDict).
        parser = configparser.RawConfigParser(
            dict_type=_MultiDict, strict=False, delimiters=("=",), comment_prefixes=("#", ";"), interpolation=None
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(text.replace("%i", instance))
        return parser, instance

    def command(self, name: str) -> tuple[list[str], dict[str, str], list[list[str]], str]:
        """The setpriv prefix, the environment, the Exec lines (ExecStartPre first) and the Type of unit `name`."""
        parser, _ = self.unit(name)
        svc = parser["Service"]
        for condition in _values(parser, "Unit", "ConditionPathExists"):
            negated = condition.startswith("!")
            present = self.exists(condition.lstrip("!"))
            assert present != negated, f"{self.name}: {name} would be skipped: {condition.lstrip('!')} {'exists' if negated else 'is missing'}"
        user = _last(svc, "User")
        # No systemd runs here: systemctl is the lab's recorder for every unit (first on PATH, where root finds it).
        env: dict[str, str] = {"PATH": f"{self.stubs}:{SYSTEMD_PATH}", "LANG": "C.UTF-8"}
        prefix: list[str] = []
        if user:
            group = _last(svc, "Group") or user
            home = self.run(["getent", "passwd", user]).stdout.split(":")[5]
            env.update(HOME=home, USER=user, LOGNAME=user, SHELL="/usr/sbin/nologin")
            groups = set(self.run(["id", "-Gn", user]).stdout.split()) | set(" ".join(_values(parser, "Service", "SupplementaryGroups")).split())
            prefix = ["setpriv", f"--reuid={user}", f"--regid={group}", f"--groups={','.join(sorted(groups))}"]
            caps = " ".join(_values(parser, "Service", "AmbientCapabilities")).split()
            names = ",".join("+" + c.removeprefix("CAP_").lower() for c in caps)
            if caps:
                prefix += [f"--inh-caps={names}", f"--ambient-caps={names}"]
            bounding = " ".join(_values(parser, "Service", "CapabilityBoundingSet")).split()
            if bounding:
                prefix.append("--bounding-set=-all," + ",".join("+" + c.removeprefix("CAP_").lower() for c in bounding))
            if _last(svc, "NoNewPrivileges") == "yes":
                prefix.append("--no-new-privs")
        owner = [user or "root", (_last(svc, "Group") or user) if user else "root"]
        for kind, root in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log")):
            for d in " ".join(_values(parser, "Service", kind)).split():
                mode = _last(svc, f"{kind}Mode") or "0755"
                self.run(["install", "-d", "-o", owner[0], "-g", owner[1], "-m", mode, f"{root}/{d}"])
        for line in _values(parser, "Service", "Environment"):
            env.update(dict(w.split("=", 1) for w in shlex.split(line)))
        for path in _values(parser, "Service", "EnvironmentFile"):
            for raw in self.read(path).splitlines():
                if raw.strip() and not raw.lstrip().startswith("#"):
                    key, _, value = raw.partition("=")
                    env[key.strip()] = " ".join(shlex.split(value))
        kind = _last(svc, "Type") or "simple"
        post = _values(parser, "Service", "ExecStartPost")
        # ExecStartPost= of a long-running service would run beside it: not emulated (no unit of ours has one).
        assert not post or kind == "oneshot", f"{name}: ExecStartPost= of a {kind} service is not emulated"
        execs = [self._expand(line, env) for line in [*_values(parser, "Service", "ExecStartPre"), *_values(parser, "Service", "ExecStart"), *post]]
        hidden = " ".join(_values(parser, "Service", "InaccessiblePaths")).split()
        if hidden:
            # systemd puts an inaccessible node over each path in the unit's own mount namespace ("-": if it exists).
            cover = "; ".join(
                f'if [ -d {p.lstrip("-")} ]; then mount -t tmpfs -o mode=000 none {p.lstrip("-")}; '
                f'elif [ -e {p.lstrip("-")} ]; then mount --bind /dev/null {p.lstrip("-")}; '
                f'else {"true" if p.startswith("-") else "exit 1"}; fi'
                for p in hidden
            )
            prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{cover}; exec "$@"', "sh", *prefix]
        return prefix, env, execs, kind

    @staticmethod
    def _expand(line: str, env: Mapping[str, str]) -> list[str]:
        """systemd's ${VAR} and $VAR expansion in Exec lines (a leading '-' ignores failure: kept as the first word)."""
        words = shlex.split(line)
        return [re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), w) for w in words]

    def start(self, name: str, *, workdir: str | None = None) -> subprocess.Popen[bytes] | None:
        """Start unit `name` as systemd would: the units it Requires= first (a failure there fails it), then its
        Exec lines; a oneshot runs to completion (and must succeed)."""
        parser, _ = self.unit(name)
        for required in " ".join(_values(parser, "Unit", "Requires")).split():
            if required not in self.active:
                self.start(required)
        prefix, env, execs, kind = self.command(name)
        cwd = _last(parser["Service"], "WorkingDirectory") or "/"
        started: subprocess.Popen[bytes] | None = None
        for i, argv in enumerate(execs):
            ignore = argv[0].startswith("-")
            argv = [argv[0].lstrip("-+"), *argv[1:]]
            full = self.enter([*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", "-c", 'cd "$0" && exec "$@"', workdir or cwd, *argv])
            if i < len(execs) - 1 or kind == "oneshot":
                done = _run(full, timeout=120)
                assert done.returncode == 0 or ignore, f"{self.name}: {name}: {shlex.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
                continue
            log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process holds it
            started = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.processes_started.append(started)
        self.active.add(name)
        return started

    def reload(self, name: str) -> None:
        """`systemctl reload` of a started unit: its ExecReload= lines in order, each as the unit's user (must succeed)."""
        assert name in self.active, f"{name} is not started"
        parser, _ = self.unit(name)
        prefix, env, _, _ = self.command(name)
        for line in _values(parser, "Service", "ExecReload"):
            argv = self._expand(line, env)
            done = _run(self.enter([*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]), timeout=120)
            assert done.returncode == 0, f"{self.name}: reload {name}: {shlex.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"

    def background(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """A process of the test's own (a listener, say) in this machine, as root; killed at close()."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process holds it
        started = subprocess.Popen(self.enter(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes_started.append(started)
        return started

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class _MultiDict(dict):  # type: ignore[type-arg]
    """configparser storage that keeps every value of a repeated key (systemd units repeat Environment= etc.)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list) and key in self:
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def _values(parser: configparser.RawConfigParser, section: str, key: str) -> list[str]:
    if not parser.has_section(section) or not parser.has_option(section, key):
        return []
    raw = parser.get(section, key)
    return [v for v in raw.split("\n") if v.strip()]


def _last(section: configparser.SectionProxy, key: str) -> str:
    raw = section.get(key)
    return raw.split("\n")[-1].strip() if raw else ""


class Lab:
    """Machines on one bridge (a namespace of its own); `close()` kills everything and leaves nothing behind."""

    def __init__(self, tmp: Path, flwr_venv: Path) -> None:
        self.hostname = socket.gethostname()
        self.tmp = tmp
        self.flwr_venv = flwr_venv
        self.switch = Namespace(tmp, "switch", "ip link add br0 type bridge\nip link set br0 up")
        self.machines: dict[str, Machine] = {}

    def machine(self, name: str, ip: str) -> Machine:
        made = Machine(self.tmp, name, ip, self.switch, len(self.machines), self.flwr_venv)
        self.machines[name] = made
        return made

    def close(self) -> None:
        for machine in self.machines.values():
            machine.close()
        self.switch.close()
        assert socket.gethostname() == self.hostname, "a lab machine changed this machine's hostname"
