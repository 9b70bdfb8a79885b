"""Shared fixtures: every stack previewed once per session, the way an operator would run it.

Pulumi's runtime keeps global state, so the real program is evaluated in subprocesses (`python -m nina.cli preview`),
all stacks at once to use both cores. Tests then read the preview's JSON (what would be registered) and the files
`--out` wrote (each host's exact user-data and its decoded cloud-config). Config validation is pure and is tested
in-process with `nina.config.parse` on a raw dict built exactly like `nina.offline.stack_files.stack_config` builds it.

Stacks are discovered from the `Pulumi.*.yaml` files, so a new stack is tested as soon as it exists.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from nina.catalog.roles import ROLES, env_variables
from nina.config import ConfigError, StackConfig, parse
from nina.offline import mocks
from nina.offline.stack_files import stack_config

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
STACKS = tuple(sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")))
TIMEOUT = 300

# flwr runs from a venv of its own (scripts/flwr-venv.sh): its pins conflict with Pulumi's.
FLWR_VENV = Path(os.environ.get("NINA_FLWR_VENV", ROOT / ".venv-flwr"))

INSTANCE = "openstack:compute/instance:Instance"
COMMAND = "command:remote:Command"
PORT = "openstack:networking/port:Port"
SECGROUP = "openstack:networking/secGroup:SecGroup"
SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"


def nina_command(*args: str) -> list[str]:
    """The `nina` console script of this interpreter's environment (no PATH lookup: the venv may not be active)."""
    return [sys.executable, "-m", "nina.cli", *args]


def run_nina(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nina_command(*args), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def run_nina_concurrently(*commands: tuple[str, ...], cwd: Path = ROOT) -> list[subprocess.CompletedProcess[str]]:
    """Several `nina` runs at once (the machine has more than one core; each run is one Pulumi evaluation)."""
    procs = [
        (args, subprocess.Popen(nina_command(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for args in commands
    ]
    results = []
    for args, proc in procs:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        results.append(subprocess.CompletedProcess(list(args), proc.returncode, stdout, stderr))
    return results


def payload_of(preview: "Preview", host: str) -> str:
    """What the deliver-<host> command pipes to nina-deliver."""
    stdin: str = preview.named(COMMAND, f"deliver-{host}")["inputs"]["stdin"]
    return stdin


def samples(exposition: str) -> dict[str, float]:
    """'name{labels}' -> value of every sample in a Prometheus text exposition (a textfile the collectors write)."""
    found = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, evidence: Callable[[], str] = lambda: "", timeout: float = 90) -> None:
    """Poll until `predicate()` is true; fail with `what` and `evidence()` after `timeout` seconds (an upper bound
    for a server to reach a state, never asserted as a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}\n{evidence()}")


def resource_id(type_token: str, name: str) -> str:
    """The id the mocks give a resource: how other resources' inputs refer to it (e.g. a rule's remoteGroupId)."""
    return mocks.resource_id(type_token, name)


# ----------------------------------------------------------------------------------------------------- previews


@dataclass
class HostRender:
    name: str
    user_data: str  # the exact userData input of the host's Instance
    user_data_file: str  # what `--out` wrote to hosts/<host>/user-data
    cloud_config_text: str  # hosts/<host>/cloud-config.yaml (decoded)
    cloud_config: dict[str, Any]

    @property
    def write_files(self) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = self.cloud_config.get("write_files") or []
        return files

    def files(self, predicate: Callable[[str], bool]) -> list[dict[str, Any]]:
        return [f for f in self.write_files if predicate(f["path"])]

    def file(self, path: str) -> dict[str, Any]:
        (found,) = self.files(lambda p: p == path)
        return found


@dataclass
class Preview:
    stack: str
    stdout: str
    stderr: str
    data: dict[str, Any]  # the --json document
    out: Path
    cfg: StackConfig
    hosts: dict[str, HostRender] = field(default_factory=dict)

    @property
    def resources(self) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = self.data["resources"]
        return resources

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_token]

    def named(self, type_token: str, name: str) -> dict[str, Any]:
        matches = [r for r in self.of_type(type_token) if r["name"] == name]
        assert len(matches) == 1, f"{type_token} {name}: {len(matches)} registrations"
        return matches[0]

    def key(self, resource: Mapping[str, Any]) -> str:
        """How children name their parent: "<type>::<name>"."""
        return f"{resource['type']}::{resource['name']}"


BOOTSTRAP = "<bootstrap>"  # key of a role's bootstrap script in role_files (its NN- prefix depends on the host's roles)


def role_files(preview: Preview, role: str, host: str | None = None) -> dict[str, str]:
    """{path: content} of the user-data files of `host` (default: the one host carrying `role`), plus that role's
    bootstrap script under BOOTSTRAP when the host runs one."""
    name = host or preview.cfg.the_host_with(role).name
    files = {f["path"]: f["content"] for f in preview.hosts[name].write_files}
    scripts = [p for p in files if re.fullmatch(rf"/usr/local/lib/nina/bootstrap/\d\d-{role}\.sh", p)]
    assert len(scripts) <= 1, scripts
    if scripts:
        files[BOOTSTRAP] = files[scripts[0]]
    return files


def delivered(preview: Preview, host: str) -> dict[str, dict[str, Any]]:
    """The files the SSH delivery hands `host` (path -> {content, owner, mode, units}); needs --show-secrets."""
    stdin = preview.named(COMMAND, f"deliver-{host}")["inputs"]["stdin"]
    return {f["path"]: f for f in json.loads(stdin)["files"]}


def realm_of(preview: Preview) -> dict[str, Any]:
    """Keycloak's realm as nina-realm applies it: the stdin of the Realm component's command (components/realm.py)."""
    realm: dict[str, Any] = json.loads(preview.named(COMMAND, "realm-nina")["inputs"]["stdin"])
    return realm


def config_of(stack: str, root: Path = ROOT) -> StackConfig:
    config, _, _ = stack_config(root, stack)
    return parse(config)


def _start_preview(stack: str, out: Path, extra: tuple[str, ...], cwd: Path, env: Mapping[str, str] | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        nina_command("preview", "--stack", stack, "--json", "--out", str(out), "--cwd", str(ROOT), *extra),
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish_preview(stack: str, out: Path, proc: subprocess.Popen[str]) -> Preview:
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"nina preview --stack {stack} exited {proc.returncode}:\n{stderr}"
    data = json.loads(stdout)
    preview = Preview(stack, stdout, stderr, data, out, config_of(stack))
    for instance in preview.of_type(INSTANCE):
        host_dir = out / "hosts" / instance["name"]
        text = (host_dir / "cloud-config.yaml").read_text()
        preview.hosts[instance["name"]] = HostRender(
            name=instance["name"],
            user_data=instance["inputs"]["userData"],
            user_data_file=(host_dir / "user-data").read_text(),
            cloud_config_text=text,
            cloud_config=yaml.safe_load(text),
        )
    return preview


def run_previews(base: Path, *extra: str, cwd: Path = ROOT, env: Mapping[str, str] | None = None) -> dict[str, Preview]:
    """Preview every stack concurrently (one process each: one Pulumi evaluation per process)."""
    procs = {}
    for stack in STACKS:
        out = base / stack
        out.mkdir(parents=True)
        procs[stack] = (out, _start_preview(stack, out, extra, cwd, env))
    return {stack: _finish_preview(stack, out, proc) for stack, (out, proc) in procs.items()}


@pytest.fixture(scope="session")
def previews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Preview]:
    return run_previews(tmp_path_factory.mktemp("previews"))


@pytest.fixture(scope="session", params=STACKS)
def preview(request: pytest.FixtureRequest, previews: dict[str, Preview]) -> Preview:
    result: Preview = previews[request.param]
    return result


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Preview]:
    """Previews with real keys, certificates and passwords, secrets shown: anything secret that leaked into
    user-data would appear there as real PEM text, not as a placeholder."""
    return run_previews(tmp_path_factory.mktemp("materialized"), "--materialize", "--show-secrets")


@pytest.fixture(scope="session")
def flower_lab(materialized: dict[str, Preview], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test stack's SuperLink, SuperNode and JupyterHub hosts booted in namespaces (tests/flower_lab.py), shared by
    the tests that run Flower across them. Needs root: skips without it, fails instead when NINA_REQUIRE_NETNS=1."""
    from lab import unavailable

    reason = unavailable()
    if reason:
        if os.environ.get("NINA_REQUIRE_NETNS") == "1":
            pytest.fail(f"NINA_REQUIRE_NETNS=1 but the Flower lab cannot run: {reason}")
        pytest.skip(f"Flower lab: {reason}")
    from flower_lab import FlowerLab

    lab = FlowerLab(materialized["test"], tmp_path_factory.mktemp("flower-lab"))
    try:
        yield lab
    finally:
        lab.close()


# ----------------------------------------------------------------------------------------- raw configuration


def decode(value: str) -> Any:
    """A config value as `nina.config` reads it: structured values arrive as JSON strings."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def encode(objects: Mapping[str, Any]) -> dict[str, str]:
    """Back to what Pulumi hands the program: strings, structured values as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in objects.items()}


def raw_config(stack: str = "test") -> dict[str, Any]:
    """`Pulumi.<stack>.yaml` as the program receives it (incl. the ssh_private_key preview placeholder), each
    value decoded so a test can mutate it. A deep copy: tests may change anything."""
    config, _, _ = stack_config(ROOT, stack)
    config.setdefault("nina:ssh_private_key", "[secret nina:ssh_private_key not set]")
    return copy.deepcopy({k: decode(v) for k, v in config.items()})


def problems(objects: Mapping[str, Any]) -> list[str]:
    """Every problem `parse` reports for this config ([] when it is valid)."""
    try:
        parse(encode(objects))
    except ConfigError as exc:
        return exc.problems
    return []


# The program evaluated with a given raw config in a fresh interpreter, counting every registration the
# program attempts (the root Stack aside), so a test can prove a bad config registers nothing.
_EVALUATE_RAW = """
import json, sys
from pathlib import Path
import nina.offline.mocks
from nina.config import ConfigError
from nina.offline.evaluate import evaluate

registered = []
original = nina.offline.mocks.RecordingMonitor.RegisterResource
def recording(self, request):
    if request.type != "pulumi:pulumi:Stack":
        registered.append(request.type + "::" + request.name)
    return original(self, request)
nina.offline.mocks.RecordingMonitor.RegisterResource = recording

root, stack = Path(sys.argv[1]), sys.argv[2]
config = json.load(sys.stdin)
try:
    ev = evaluate(stack, root, config=config)
except ConfigError as exc:
    print(json.dumps({"problems": exc.problems, "registered": registered}))
else:
    protected = sorted(f"{r.type}::{r.name}" for r in ev.resources if r.protect)
    print(json.dumps({"problems": [], "registered": registered, "resources": len(ev.resources), "protected": protected}))
"""


def evaluate_raw(objects: Mapping[str, Any], stack: str = "test") -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _EVALUATE_RAW, str(ROOT), stack],
        input=json.dumps(encode(objects)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture
def project_copy() -> Iterator[Callable[[str, Mapping[str, Any]], Path]]:
    """A throwaway project directory that runs the real program: Pulumi.yaml and __main__.py (linked) plus the
    stack files a test writes. `nina preview --cwd DIR` reads stacks from there like Pulumi would."""
    with tempfile.TemporaryDirectory(prefix="nina-project-") as tmp:
        root = Path(tmp)
        (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        (root / "__main__.py").symlink_to(ROOT / "__main__.py")

        def write_stack(stack: str, config: Mapping[str, Any]) -> Path:
            (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": dict(config)}, sort_keys=False))
            return root

        yield write_stack


def evaluate_configs(stack: str, configs: Sequence[Mapping[str, Any]]) -> list[dict[tuple[str, str], Any]]:
    """Each config as Pulumi.<stack>.yaml of a project directory of its own, evaluated at once by
    `nina preview --json --show-secrets` (one evaluation per process: Pulumi's runtime is global state):
    (type, name) -> inputs per config. Secrets shown so delivery payloads can be compared; placeholders are
    deterministic without --materialize."""
    with tempfile.TemporaryDirectory(prefix="nina-projects-") as tmp:
        roots = []
        for i, config in enumerate(configs):
            root = Path(tmp) / str(i)
            root.mkdir()
            (root / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
            (root / "__main__.py").symlink_to(ROOT / "__main__.py")
            (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": dict(config)}, sort_keys=False))
            roots.append(root)
        procs = [
            subprocess.Popen(nina_command("preview", "--stack", stack, "--json", "--show-secrets", "--cwd", str(r)), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in roots
        ]
        out = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            out.append({(r["type"], r["name"]): r["inputs"] for r in json.loads(stdout)["resources"]})
        return out


def env_path(role: str) -> str:
    """Where the role's secrets file lands (the role table's `env`)."""
    env = ROLES[role].env
    assert env is not None, role
    return env.path


def env_var_names(role: str) -> tuple[str, ...]:
    """The variables the role's secrets file holds."""
    env = ROLES[role].env
    assert env is not None, role
    return tuple(v.name for v in env_variables(env))
