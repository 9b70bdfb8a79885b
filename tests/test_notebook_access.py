"""Who reaches which federation from a notebook (README "People and federations").

First nina-jupyter-access (nina/onhost/nina_jupyter_access.py) and the hub's spawn hooks (the delivered
jupyterhub_config.py) on their own, with an nft that records what it is given. Then the journey in the Flower lab
(tests/flower_lab.py): the JupyterHub host with its delivered guard, federations and program; the hooks run as
JupyterHub runs them, the program as the hub's unit runs it (user jupyterhub, CAP_NET_ADMIN); each "container" a
network namespace on the hub's bridge at the address the hook chose, with the /etc/hosts, CA and FLWR_HOME Docker
would give it; Docker's masquerade stood in by one nft rule. Two researchers of two federations each reach only
their own SuperLink, and a real `flwr run` through the rendered proxy succeeds from the member and fails from the
other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import netprobe
import pytest
from conftest import FLWR_VENV, ROOT, Preview, delivered, encode, raw_config
from test_role_notebook import load_config, notebook_files

from nina.catalog import layout
from nina.config import StackConfig, parse
from nina.plan import flower, notebook, realm

PROGRAM = ROOT / "nina" / "onhost" / "nina_jupyter_access.py"
FED, OTHER = "test-fl", "other-fl"
OTHER_SUPERLINK = "10.40.1.21"


def two_federations() -> StackConfig:
    """The test stack plus a second federation with a SuperLink of its own (both on the lab's addresses)."""
    raw = raw_config("test")
    raw["nina:hosts"]["superlink2"] = {"segment": "internal", "ip": OTHER_SUPERLINK, "flavor": "m3.medium", "roles": ["superlink"]}
    raw["nina:federations"][OTHER] = {"type": "simulation", "superlink_host": "superlink2", "simulation": {"supernodes": 2}}
    return parse(encode(raw))


def groups(*federations: str, admin: bool = False) -> list[str]:
    return [realm.ADMINS if admin else realm.RESEARCHERS, *(realm.federation_group(f) for f in federations)]


# ------------------------------------------------------------------------------------------------ the program


class Program:
    """nina-jupyter-access on a description of `cfg`, with an nft that records each script (or refuses)."""

    def __init__(self, tmp: Path, cfg: StackConfig) -> None:
        self.federations = tmp / "federations.json"
        self.federations.write_text(notebook.federations_json(cfg))
        self.dir = tmp / "access"
        self.dir.mkdir()
        self.scripts = tmp / "nft-scripts"
        self.nft = tmp / "nft"
        self.nft.write_text(f'#!/bin/sh\n[ -e {tmp}/nft-refuses ] && {{ echo "Error: No such file or directory" >&2; exit 1; }}\n'
                            f'[ "$1 $2" = "-f -" ] || exit 2\ncat >> {self.scripts}\necho "---" >> {self.scripts}\n')
        self.nft.chmod(0o755)
        self.tmp = tmp

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(PROGRAM), "--federations", str(self.federations), "--access-dir", str(self.dir), "--nft", str(self.nft), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode == 0) == ok, done.stderr
        return done

    def grant(self, name: str, *groups_: str, in_use: tuple[str, ...] = ()) -> dict[str, Any]:
        done = self("grant", *(f"--group={g}" for g in groups_), *(f"--in-use={ip}" for ip in in_use), "--", name)
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def last_set(self) -> list[str]:
        """The pairs the last script put in the set (after its flush)."""
        script = self.scripts.read_text().split("---\n")[-2]
        lines = script.splitlines()
        assert lines[0] == f"flush set {layout.NOTEBOOK_GUARD} {layout.NOTEBOOK_ACCESS_SET}", script
        if len(lines) == 1:
            return []
        (add,) = lines[1:]
        assert add.startswith(f"add element {layout.NOTEBOOK_GUARD} {layout.NOTEBOOK_ACCESS_SET} {{ ")
        return add.split("{ ", 1)[1].rstrip(" }").split(", ")


@pytest.fixture
def program(tmp_path: Path) -> Program:
    return Program(tmp_path, two_federations())


def test_a_researcher_gets_an_address_and_only_their_federations(program: Program) -> None:
    cfg = two_federations()
    alice = program.grant("alice", *groups(FED))
    assert alice["ip"] == "172.31.255.2" and alice["federations"] == [FED]
    assert program.last_set() == [f"172.31.255.2 . {cfg.hosts['superlink'].ip}"]
    # Their flwr config names their federation only, as the stack's own TOML renders it.
    assert alice["config_toml"] == flower.config_toml(cfg, [cfg.federations[FED]])
    bob = program.grant("bob", *groups(OTHER))
    assert bob["ip"] == "172.31.255.3" and program.last_set() == [f"172.31.255.2 . {cfg.hosts['superlink'].ip}", f"172.31.255.3 . {OTHER_SUPERLINK}"]
    assert f"[superlink.{OTHER}]" in bob["config_toml"] and FED not in bob["config_toml"]


def test_admins_reach_every_federation_and_strangers_none(program: Program) -> None:
    cfg = two_federations()
    ops = program.grant("ops", *groups(admin=True))
    assert ops["federations"] == list(cfg.federations) and ops["config_toml"] == flower.config_toml(cfg)
    # Unknown groups (a Keycloak group the stack does not describe) give nothing; so does no group.
    nobody = program.grant("nobody", realm.RESEARCHERS, "federation-made-up", "nina-admins-not")
    assert nobody["federations"] == [] and nobody["config_toml"] == "[superlink]\n"
    assert all(not pair.startswith(nobody["ip"] + " ") for pair in program.last_set())


def test_addresses_are_kept_per_researcher_and_never_shared(program: Program) -> None:
    first = program.grant("alice", *groups(FED))["ip"]
    assert program.grant("alice", *groups(FED))["ip"] == first  # a respawn keeps the address
    # An address Docker reports in use (a container this program does not know of) is skipped.
    assert program.grant("bob", *groups(FED), in_use=("172.31.255.3",))["ip"] == "172.31.255.4"
    program("revoke", "--", "alice")
    assert not (program.dir / "alice.json").exists()
    assert all(not pair.startswith(f"{first} ") for pair in program.last_set())
    # A freed address goes to the next researcher, with that researcher's federations only.
    carol = program.grant("carol", *groups(OTHER))
    assert carol["ip"] == first and program.last_set() == [f"{first} . {OTHER_SUPERLINK}", f"172.31.255.4 . {two_federations().hosts['superlink'].ip}"]


def test_leaving_a_federation_takes_effect_at_the_next_spawn(program: Program) -> None:
    program.grant("alice", *groups(FED))
    again = program.grant("alice", realm.RESEARCHERS)  # Keycloak's groups at this spawn: the federation is gone
    assert again["federations"] == [] and program.last_set() == []


def test_records_that_do_not_hold_up_grant_nothing(program: Program) -> None:
    program.grant("alice", *groups(FED))
    alice = json.loads((program.dir / "alice.json").read_text())
    planted = {
        "outsider.json": {"ip": "10.40.1.20", "federations": [FED]},  # not an address of the containers' network
        "gateway.json": {"ip": "172.31.255.1", "federations": [FED]},  # the hub's own
        "twin.json": {"ip": alice["ip"], "federations": [OTHER]},  # alice's address claimed again: neither gets it
        "unknown.json": {"ip": "172.31.255.9", "federations": ["nope"]},
        "UPPER.json": {"ip": "172.31.255.10", "federations": [FED]},  # not a JupyterHub name
    }
    for name, record in planted.items():
        (program.dir / name).write_text(json.dumps(record))
    (program.dir / "link.json").symlink_to(program.dir / "alice.json")
    done = program("apply")
    assert json.loads(done.stdout) == {"pairs": []}
    for name in ("outsider", "gateway", "twin", "alice", "unknown", "link"):
        assert name in done.stderr


def test_bad_names_and_a_missing_guard_fail_clearly(program: Program) -> None:
    done = program("grant", "--", "../etc", ok=False)
    assert "'../etc' is not a JupyterHub user name" in done.stderr and not list(program.dir.glob("*.json"))
    (program.tmp / "nft-refuses").touch()
    done = program("grant", f"--group={realm.federation_group(FED)}", "--", "alice", ok=False)
    assert "the container guard (inet nina_jupyter_guard) refused the access set" in done.stderr and "nina-jupyter-guard" in done.stderr


def test_a_full_network_is_refused_not_overcommitted(program: Program) -> None:
    in_use = tuple(f"172.31.255.{i}" for i in range(2, 255))
    done = program("grant", "--in-use=" + in_use[0], *(f"--in-use={ip}" for ip in in_use[1:]), "--", "late", ok=False)
    assert "no free address left in 172.31.255.0/24" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nftables")
def test_the_script_is_what_nft_accepts_against_the_rendered_guard(previews: dict[str, Preview], tmp_path: Path) -> None:
    """The set the program fills is the one the rendered guard declares, in a namespace of the test's own."""
    from lab import Namespace

    ns = Namespace(tmp_path, "guard")
    try:
        ns.run(["nft", "-f", "-"], input=notebook_files(previews["test"])[layout.NOTEBOOK_GUARD_RULES])
        (tmp_path / "real").mkdir()
        real = Program(tmp_path / "real", two_federations())
        wrapper = tmp_path / "nft-in-ns"
        wrapper.write_text(f'#!/bin/sh\nexec nsenter -t {ns.pid} -n -- nft "$@"\n')
        wrapper.chmod(0o755)
        real.nft = wrapper
        real.grant("alice", *groups(FED))
        real.grant("bob", *groups(OTHER))
        listed = ns.run(["nft", "list", "set", *layout.NOTEBOOK_GUARD.split(), layout.NOTEBOOK_ACCESS_SET]).stdout
        assert "172.31.255.2 . 10.40.1.20" in listed and f"172.31.255.3 . {OTHER_SUPERLINK}" in listed
        real("revoke", "--", "alice")
        listed = ns.run(["nft", "list", "set", *layout.NOTEBOOK_GUARD.split(), layout.NOTEBOOK_ACCESS_SET]).stdout
        assert "172.31.255.2" not in listed and f"172.31.255.3 . {OTHER_SUPERLINK}" in listed
    finally:
        ns.close()


# --------------------------------------------------------------------------------------------- the hub's hooks


class FakeDocker:
    """What the hooks ask Docker: whether the image is there, and which addresses the bridge's containers hold."""

    def __init__(self, images: set[str], containers: dict[str, str]) -> None:
        self.images, self.containers = images, containers

    async def __call__(self, method: str, *args: Any) -> Any:
        if method == "inspect_image":
            if args[0] not in self.images:
                raise type("NotFound", (Exception,), {"status_code": 404})(f"No such image: {args[0]}")
            return {"Id": "sha256:..."}
        if method == "inspect_network":
            assert args == (layout.NOTEBOOK_BRIDGE,)
            return {"Containers": {f"id-{n}": {"Name": n, "IPv4Address": f"{ip}/24"} for n, ip in self.containers.items()}}
        raise AssertionError(method)


def spawner(name: str, groups_: list[str], docker: FakeDocker) -> SimpleNamespace:
    return SimpleNamespace(
        escaped_name=name, container_name=f"jupyter-{name}", user=SimpleNamespace(groups=[SimpleNamespace(name=g) for g in groups_]),
        docker=docker, log=logging.getLogger("test-spawner"),
    )


@pytest.fixture
def hub(previews: dict[str, Preview], program: Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any], str]:
    """The delivered jupyterhub_config.py, loaded; its state and Dockerfile in tmp, nina-jupyter-access the program's."""
    c, namespace = load_config(previews["test"])
    (tmp_path / "state" / "users").mkdir(parents=True)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(notebook_files(previews["test"])[f"{layout.NOTEBOOK_IMAGE_DIR}/Dockerfile"])
    namespace.update(STATE=str(tmp_path / "state"), DOCKERFILE=str(dockerfile))
    namespace["ACCESS"] = [sys.executable, str(PROGRAM), "--federations", str(program.federations), "--access-dir", str(program.dir), "--nft", str(program.nft)]
    import hashlib

    image = f"{layout.NOTEBOOK_IMAGE_REPOSITORY}:{hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]}"
    return c, namespace, image


@pytest.mark.parametrize("stack", ["test", "uat"])
def test_the_hub_receives_the_federations_and_the_program(materialized: dict[str, Preview], stack: str) -> None:
    """Delivered, so a new federation or a member changes no VM: the description (reloading the guard, which
    re-applies the set) and the program, exactly as in the repository."""
    preview = materialized[stack]
    files = delivered(preview, preview.cfg.the_host_with("notebook").name)
    described = files[layout.NOTEBOOK_FEDERATIONS]
    assert described["content"] == notebook.federations_json(preview.cfg) and described["mode"] == "0644"
    assert described["units"] == [f"reload-or-restart:{layout.NOTEBOOK_GUARD_UNIT}"]
    assert [f["name"] for f in json.loads(described["content"])["federations"]] == list(preview.cfg.federations)
    program_file = files[layout.NOTEBOOK_ACCESS_COMMAND]
    assert program_file["content"] == PROGRAM.read_text() and program_file["mode"] == "0755" and program_file["owner"] == "root:root"


def test_the_delivered_access_command_is_the_programs(previews: dict[str, Preview]) -> None:
    _, namespace = load_config(previews["test"])
    assert namespace["ACCESS"] == [layout.NOTEBOOK_ACCESS_COMMAND, "--federations", layout.NOTEBOOK_FEDERATIONS, "--access-dir", layout.NOTEBOOK_ACCESS_DIR]


def test_a_spawn_gets_its_image_address_and_federations(hub: tuple[Any, dict[str, Any], str], program: Program, tmp_path: Path) -> None:
    c, _, image = hub
    docker = FakeDocker({image}, {"jupyter-alice": "172.31.255.7", "jupyter-other": "172.31.255.2"})
    alice = spawner("alice", groups(FED), docker)
    asyncio.run(c.DockerSpawner.pre_spawn_hook(alice))
    assert alice.image == image
    # Its own old container's address does not count as taken; another container's does.
    ip = alice.extra_create_kwargs["networking_config"]["EndpointsConfig"][layout.NOTEBOOK_BRIDGE]["IPAMConfig"]["IPv4Address"]
    assert ip == "172.31.255.3" and program.last_set() == ["172.31.255.3 . 10.40.1.20"]
    config = (tmp_path / "state" / "users" / "alice" / ".flwr" / "config.toml").read_text()
    assert config == flower.config_toml(two_federations(), [two_federations().federations[FED]])
    asyncio.run(c.DockerSpawner.post_stop_hook(alice))
    assert program.last_set() == [] and not (program.dir / "alice.json").exists()


def test_a_spawn_before_the_image_is_built_says_so(hub: tuple[Any, dict[str, Any], str], program: Program) -> None:
    c, _, _ = hub
    alice = spawner("alice", groups(FED), FakeDocker(set(), {}))
    with pytest.raises(RuntimeError, match=r"is still being built on this host: try again in a few minutes.*nina-notebook-image.service"):
        asyncio.run(c.DockerSpawner.pre_spawn_hook(alice))
    assert not list(program.dir.glob("*.json")), "no access granted to a container that will not start"


def test_a_spawn_the_guard_refuses_fails_and_a_failed_revoke_is_logged(hub: tuple[Any, dict[str, Any], str], program: Program,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    c, _, image = hub
    (program.tmp / "nft-refuses").touch()
    alice = spawner("alice", groups(FED), FakeDocker({image}, {}))
    with pytest.raises(RuntimeError, match="access to its federations could not be set"):
        asyncio.run(c.DockerSpawner.pre_spawn_hook(alice))
    with caplog.at_level(logging.ERROR, logger="test-spawner"):
        asyncio.run(c.DockerSpawner.post_stop_hook(alice))  # a stop never fails on it
    assert "could not be set (revoke)" in caplog.text


def test_a_researchers_symlinks_never_redirect_the_hubs_writes(hub: tuple[Any, dict[str, Any], str], tmp_path: Path) -> None:
    """A researcher controls their work directory from inside the container: a symlink planted as .flwr/config.toml
    (to the hub's database) or as .flwr itself (to another researcher's directory) is replaced, never written through."""
    _, namespace, _ = hub
    users = tmp_path / "state" / "users"
    mallory, alice = users / "mallory", users / "alice"
    (alice / ".flwr").mkdir(parents=True)
    (alice / ".flwr" / "config.toml").write_text("alice's\n")
    (mallory / ".flwr").mkdir(parents=True)
    database = tmp_path / "jupyterhub.sqlite"
    database.write_text("the hub's\n")
    database.chmod(0o600)
    (mallory / ".flwr" / "config.toml").symlink_to(database)
    namespace["_work_directory"]("mallory", b"[superlink]\n")
    assert database.read_text() == "the hub's\n" and (database.stat().st_mode & 0o777) == 0o600
    assert not (mallory / ".flwr" / "config.toml").is_symlink() and (mallory / ".flwr" / "config.toml").read_text() == "[superlink]\n"

    shutil.rmtree(mallory / ".flwr")
    (mallory / ".flwr").symlink_to(alice / ".flwr")
    namespace["_work_directory"]("mallory", b"[superlink]\n")
    assert (alice / ".flwr" / "config.toml").read_text() == "alice's\n"
    assert (mallory / ".flwr").is_dir() and not (mallory / ".flwr").is_symlink()


# ------------------------------------------------------------------------------------------ the journey, for real




class Hub:
    """The lab's JupyterHub host with what its bootstrap makes (the containers' bridge, the access directory), a
    second federation's description, Docker's masquerade, and the delivered guard started; researchers' spawns and
    stops through the delivered hooks; each container a namespace on the bridge."""

    def __init__(self, lab: Any, tmp: Path) -> None:
        from lab import Namespace

        self.Namespace = Namespace
        self.lab, self.tmp, self.machine = lab, tmp, lab.hub
        hub = self.machine
        hub.sh(f"ip link add {layout.NOTEBOOK_BRIDGE} type bridge && ip addr add {layout.NOTEBOOK_GATEWAY}/24 dev {layout.NOTEBOOK_BRIDGE} && "
               f"ip link set {layout.NOTEBOOK_BRIDGE} up && sysctl -qw net.ipv4.ip_forward=1")
        hub.run(["install", "-d", "-o", "jupyterhub", "-g", "fl_system", "-m", "0750", layout.NOTEBOOK_ACCESS_DIR])
        hub.run(["nft", "-f", "-"], input=f'table ip lab_docker_nat {{\n chain postrouting {{\n  type nat hook postrouting priority srcnat;\n'
                                         f'  ip saddr {layout.NOTEBOOK_SUBNET} oifname != "{layout.NOTEBOOK_BRIDGE}" masquerade\n }}\n}}\n')
        self.cfg = two_federations()
        hub.write(layout.NOTEBOOK_FEDERATIONS, notebook.federations_json(self.cfg))
        self.other = lab.lab.machine("superlink2", OTHER_SUPERLINK)
        self.other.background("superlink2-stand-in", ["/usr/bin/python3", "-c", netprobe.ECHO, "9092"])
        hub.start(layout.NOTEBOOK_GUARD_UNIT)
        # The hub's delivered config; the hooks run here, nina-jupyter-access in the hub as jupyterhub.service runs it.
        self.c, self.namespace = load_config(lab.preview)
        prefix, env, _, _ = hub.command("jupyterhub.service")
        self.namespace["ACCESS"] = hub.enter([*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *self.namespace["ACCESS"]])
        (tmp / "state" / "users").mkdir(parents=True)
        self.namespace["STATE"] = str(tmp / "state")
        dockerfile = tmp / "Dockerfile"
        dockerfile.write_text(hub.read(self.namespace["DOCKERFILE"]))
        self.namespace["DOCKERFILE"] = str(dockerfile)
        import hashlib

        self.image = f"{layout.NOTEBOOK_IMAGE_REPOSITORY}:{hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]}"
        hosts = hub.read("/etc/hosts")
        self.namespace["open"] = lambda path, *a, **k: __import__("io").StringIO(hosts) if path == "/etc/hosts" else open(path, *a, **k)
        self.containers: dict[str, tuple[Any, str]] = {}
        self.spawns = 0

    def spawn(self, name: str, groups_: list[str]) -> Any:
        """A spawn as DockerSpawner does it: the pre-spawn hook, then a container at the address the hook chose."""
        self.stop(name)
        docker = FakeDocker({self.image}, {f"jupyter-{n}": ip for n, (_, ip) in self.containers.items()})
        spawner_ = spawner(name, groups_, docker)
        asyncio.run(self.c.DockerSpawner.pre_spawn_hook(spawner_))
        ip = spawner_.extra_create_kwargs["networking_config"]["EndpointsConfig"][layout.NOTEBOOK_BRIDGE]["IPAMConfig"]["IPv4Address"]
        hosts = self.tmp / f"hosts-{name}"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in self.c.DockerSpawner.extra_host_config(spawner_)["extra_hosts"].items()))
        ca = self.tmp / "ca.pem"
        ca.write_text(self.machine.read(layout.CA_PEM))
        setup = f"mount --bind {hosts} /etc/hosts\nmount -t tmpfs none {Path(layout.CA_PEM).parent}\ncp {ca} {layout.CA_PEM}"
        self.spawns += 1  # a namespace's files are per name: each container is a new one, as Docker's are
        container = self.Namespace(self.tmp, f"container-{name}-{self.spawns}", setup)
        port = f"c-{name}"[:15]
        made = subprocess.run(["ip", "link", "add", "eth0", "netns", str(container.pid), "type", "veth", "peer", "name", port, "netns", str(self.machine.pid)],
                              capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        self.machine.run(["ip", "link", "set", port, "master", layout.NOTEBOOK_BRIDGE, "up"])
        container.sh(f"ip addr add {ip}/24 dev eth0 && ip link set eth0 up && ip route add default via {layout.NOTEBOOK_GATEWAY}")
        self.containers[name] = (container, ip)
        return container

    def stop(self, name: str) -> None:
        """A stop: the container goes, then the post-stop hook."""
        if name not in self.containers:
            return
        container, _ = self.containers.pop(name)
        container.close()
        asyncio.run(self.c.DockerSpawner.post_stop_hook(spawner(name, [], FakeDocker(set(), {}))))

    def probe(self, name: str, *targets: str) -> dict[str, str]:
        container, _ = self.containers[name]
        done = container.run([sys.executable, "-c", netprobe.CONNECT, *targets], timeout=60)
        return dict(json.loads(done.stdout))

    def flwr(self, name: str, *args: str, config_of: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`flwr ARGS` in `name`'s container with their FLWR_HOME as the hub wrote it (or `config_of` another's)."""
        container, _ = self.containers[name]
        flwr_home = self.tmp / "state" / "users" / (config_of or name) / ".flwr"
        app = self.tmp / "flower_app"
        if not app.exists():
            shutil.copytree(ROOT / "tests" / "flower_app", app, ignore=shutil.ignore_patterns("__pycache__"))
        home = self.tmp / f"home-{name}"
        home.mkdir(exist_ok=True)
        env = {"PATH": f"{FLWR_VENV / 'bin'}:/usr/bin:/bin", "HOME": str(home), "FLWR_HOME": str(flwr_home), "LANG": "C.UTF-8",
               "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(FLWR_VENV / "bin" / "flwr"), *args]
        return container.run(argv, check=False, timeout=timeout, cwd=str(self.tmp))

    def close(self) -> None:
        for name in list(self.containers):
            self.stop(name)


@pytest.fixture(scope="module")
def hub_lab(flower_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    made = Hub(flower_lab, tmp_path_factory.mktemp("hub"))
    try:
        yield made
    finally:
        made.close()


def superlink(cfg: StackConfig, fed: str) -> str:
    return f"{cfg.hosts[cfg.federations[fed].superlink_host].ip}:9092"


def test_two_researchers_reach_only_their_own_federations(hub_lab: Hub) -> None:
    cfg = hub_lab.cfg
    hub_lab.spawn("alice", groups(FED))
    hub_lab.spawn("bob", groups(OTHER))
    both = (superlink(cfg, FED), superlink(cfg, OTHER))
    assert hub_lab.probe("alice", *both) == {superlink(cfg, FED): "open", superlink(cfg, OTHER): "ConnectionRefusedError"}
    assert hub_lab.probe("bob", *both) == {superlink(cfg, FED): "ConnectionRefusedError", superlink(cfg, OTHER): "open"}


def test_a_real_run_succeeds_from_the_member_and_fails_from_the_other(hub_lab: Hub, flower_lab: Any) -> None:
    hub_lab.spawn("alice", groups(FED))
    hub_lab.spawn("bob", groups(OTHER))
    run = hub_lab.flwr("alice", "run", str(hub_lab.tmp / "flower_app"), FED, "--stream")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + flower_lab.logs()[-4000:]
    assert "nina-numpy-app final model: [0.75, 0.75, 0.75, 0.75]" in run.stdout + run.stderr
    # Bob's config does not name the federation; with alice's connection in hand, the network still refuses him.
    assert f"[superlink.{FED}]" not in (hub_lab.tmp / "state" / "users" / "bob" / ".flwr" / "config.toml").read_text()
    stolen = hub_lab.flwr("bob", "run", str(hub_lab.tmp / "flower_app"), FED, "--stream", config_of="alice", timeout=180)
    assert stolen.returncode != 0 and "Connection to the SuperLink is unavailable" in stolen.stdout + stolen.stderr, stolen.stdout[-2000:]
    # Nor may he list the federation's runs (or read their logs).
    listed = hub_lab.flwr("bob", "ls", FED, config_of="alice", timeout=180)
    assert listed.returncode != 0 and "Connection to the SuperLink is unavailable" in listed.stdout + listed.stderr, listed.stdout[-2000:]
    # Alice sees her run.
    mine = hub_lab.flwr("alice", "ls", FED, "--format", "json", timeout=120)
    assert mine.returncode == 0 and "finished:completed" in mine.stdout, mine.stdout[-2000:]


def test_a_stopped_container_and_a_lost_membership_reach_nothing(hub_lab: Hub) -> None:
    cfg = hub_lab.cfg
    hub_lab.spawn("alice", groups(FED))
    _, ip = hub_lab.containers["alice"]
    hub_lab.stop("alice")
    listed = hub_lab.machine.run(["nft", "list", "set", *layout.NOTEBOOK_GUARD.split(), layout.NOTEBOOK_ACCESS_SET]).stdout
    assert ip not in listed
    # Removed from the federation in the stack: Keycloak's groups at the next spawn no longer carry it.
    hub_lab.spawn("alice", [realm.RESEARCHERS])
    assert hub_lab.probe("alice", superlink(cfg, FED)) == {superlink(cfg, FED): "ConnectionRefusedError"}
    assert (hub_lab.tmp / "state" / "users" / "alice" / ".flwr" / "config.toml").read_text() == "[superlink]\n"


def test_a_revoke_cuts_a_connection_already_open(hub_lab: Hub) -> None:
    """Access is judged per packet, not per connection: a connection bob opened while a member (a keep-alive to the
    SuperLink proxy, say) dies at its next packet once his pair leaves the set."""
    target = superlink(hub_lab.cfg, OTHER)
    container = hub_lab.spawn("bob", groups(OTHER))
    held = subprocess.Popen(container.enter([sys.executable, "-c", netprobe.HOLD, target]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdin is not None and held.stdout is not None
        assert held.stdout.readline().strip() == "open"
        held.stdin.write("\n")
        held.stdin.flush()
        assert held.stdout.readline().strip() == "alive"
        subprocess.run([*hub_lab.namespace["ACCESS"], "revoke", "--", "bob"], check=True, capture_output=True, timeout=60)
        held.stdin.write("\n")
        held.stdin.flush()
        assert held.stdout.readline().strip() in {"ConnectionResetError", "BrokenPipeError", "closed"}
    finally:
        held.kill()
        held.wait()
        hub_lab.stop("bob")


def test_a_researchers_own_flwr_directory_is_set_aside_not_fatal(hub: tuple[Any, dict[str, Any], str], tmp_path: Path) -> None:
    """From the container a researcher may delete the hub's .flwr and make their own (or a directory as config.toml):
    the hub cannot take those over, so it sets them aside and the spawn goes on, instead of failing every spawn."""
    _, namespace, _ = hub
    work = tmp_path / "state" / "users" / "carol"
    (work / ".flwr").mkdir(parents=True)
    os.chown(work / ".flwr", 1000, 100)
    namespace["_work_directory"]("carol", b"[superlink]\n")
    assert (work / ".flwr").stat().st_uid == os.geteuid() and (work / ".flwr" / "config.toml").read_text() == "[superlink]\n"
    assert [p.name.split("-")[0] for p in work.glob(".flwr.set-aside-*")] == [".flwr.set"]
    (work / ".flwr" / "config.toml").unlink()
    (work / ".flwr" / "config.toml").mkdir()
    namespace["_work_directory"]("carol", b"[superlink]\n")
    assert (work / ".flwr" / "config.toml").read_text() == "[superlink]\n"


def test_admins_reach_every_federation_and_a_guard_reload_keeps_everyone(hub_lab: Hub) -> None:
    cfg = hub_lab.cfg
    hub_lab.spawn("ops", groups(admin=True))
    hub_lab.spawn("bob", groups(OTHER))
    every = (superlink(cfg, FED), superlink(cfg, OTHER))
    assert hub_lab.probe("ops", *every) == dict.fromkeys(every, "open")
    # A delivery reloads the guard (new rules, an empty set in one transaction), which puts the pairs back.
    hub_lab.machine.reload(layout.NOTEBOOK_GUARD_UNIT)
    assert hub_lab.probe("ops", *every) == dict.fromkeys(every, "open")
    assert hub_lab.probe("bob", *every) == {superlink(cfg, FED): "ConnectionRefusedError", superlink(cfg, OTHER): "open"}
