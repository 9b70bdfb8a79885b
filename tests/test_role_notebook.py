"""The notebook fragment (manual §4.1.2.11-15, §4.1.2.17.2): JupyterHub with Keycloak login and DockerSpawner.

jupyterhub_config.py is compiled and executed against a recording `c` (the way JupyterHub's loader runs it), its
hooks are called, and the values are checked against the realm the iam fragment imports, the port table and
the role table (nina/catalog/roles.py). With a JupyterHub environment at hand (NINA_JUPYTERHUB_VENV or .venv-jupyterhub, built with the
bootstrap's pins) every setting is also checked to be a real trait. The container guard is loaded by nft in a
network namespace and probed from a second one; units go through `systemd-analyze verify`, the bootstrap through
shellcheck.
"""

from __future__ import annotations

import ast
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import netprobe
import pytest

import cloudinit
from nina.catalog import layout, runtimes
from nina.catalog.ports import PORTS
from nina.catalog.roles import ROLES, SYSTEM_GROUP, server_tls
from nina.plan import names, notebook
from tests.conftest import BOOTSTRAP, ROOT, Preview, env_path, env_var_names, realm_of, role_files

CONFIG = layout.JUPYTERHUB_CONFIG
DOCKERFILE = f"{layout.NOTEBOOK_IMAGE_DIR}/Dockerfile"
GUARD = layout.NOTEBOOK_GUARD_RULES
DAEMON = "/etc/docker/daemon.json"
UNIT = "/etc/systemd/system/jupyterhub.service"
VENV = ROLES["notebook"].python_venv
STATE = "/var/lib/nina/jupyterhub"
PORT = {p.name: p for p in PORTS}


def notebook_files(preview: Preview) -> dict[str, str]:
    """The notebook host's user-data files and bootstrap, and its delivered config and guard."""
    host = preview.cfg.the_host_with("notebook")
    return {**role_files(preview, "notebook"), **{f.path: f.content for f in cloudinit.delivered_files(preview.cfg, host, "notebook")}}


class Section(dict[str, Any]):
    """Attribute-style config like traitlets' Config: `c.JupyterHub.x = 1`, sections created on first access."""

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper():
            return self.setdefault(name, Section())
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def load_config(preview: Preview) -> tuple[Section, dict[str, Any]]:
    """Execute jupyterhub_config.py as JupyterHub would; return `c` and the file's namespace (its hooks)."""
    source = notebook_files(preview)[CONFIG]
    code = compile(source, CONFIG, "exec")  # what `python -m py_compile` does
    c = Section()
    namespace: dict[str, Any] = {"get_config": lambda: c, "__file__": CONFIG}
    exec(code, namespace)  # noqa: S102 (our own rendered config)
    return c, namespace


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def bootstrap_network(preview: Preview) -> tuple[str, ipaddress.IPv4Network, ipaddress.IPv4Address]:
    script = notebook_files(preview)[BOOTSTRAP]
    m = re.search(r"docker network create --subnet (\S+) --gateway (\S+) .*?-o com\.docker\.network\.bridge\.name=(\S+)", script, re.S)
    assert m, "the bootstrap creates the containers' network"
    return m.group(3), ipaddress.IPv4Network(m.group(1)), ipaddress.IPv4Address(m.group(2))


# ------------------------------------------------------------------------------------------------- the config


def test_config_is_python_that_only_imports_the_standard_library(preview: Preview) -> None:
    tree = ast.parse(notebook_files(preview)[CONFIG])
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"asyncio", "hashlib", "json", "os", "sys", "time"}, "classes are named by entry point, so the config loads without the packages"


def test_hub_listens_with_the_delivered_certificate(preview: Preview) -> None:
    c, _ = load_config(preview)
    hub = c.JupyterHub
    assert hub.bind_url == f"https://0.0.0.0:{PORT['jupyterhub'].port}"
    assert (hub.ssl_cert, hub.ssl_key) == (server_tls("notebook").cert, server_tls("notebook").key)
    assert hub.cookie_secret_file.startswith(STATE + "/") and hub.db_url == f"sqlite:///{STATE}/jupyterhub.sqlite"
    assert c.ConfigurableHTTPProxy.command == ["/usr/local/bin/configurable-http-proxy"]


def test_login_through_keycloak(preview: Preview) -> None:
    cfg = preview.cfg
    c, _ = load_config(preview)
    oauth = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert oauth.client_id == "jupyterhub"
    public = f"https://keycloak.{cfg.dns.public_domain}/realms/nina/protocol/openid-connect"
    internal = f"https://{names.fqdn(cfg, 'keycloak')}:{PORT['keycloak'].port}/realms/nina/protocol/openid-connect"
    assert oauth.authorize_url == public + "/auth"
    assert (oauth.token_url, oauth.userdata_url) == (internal + "/token", internal + "/userinfo")
    assert oauth.http_request_kwargs == {"ca_certs": layout.CA_PEM}
    # The port table lets the notebook host reach Keycloak directly: the backchannel is allowed.
    assert "notebook" in PORT["keycloak"].sources
    assert oauth.manage_groups is True and oauth.enable_auth_state is True
    # Groups (federations) are asked of Keycloak again before every spawn: README "People and federations".
    assert oauth.refresh_pre_spawn is True
    assert "client_secret" not in oauth, "the secret comes from $OAUTH_CLIENT_SECRET"
    assert "OAUTH_CLIENT_SECRET" in env_var_names("notebook")


def test_config_matches_the_realm(preview: Preview) -> None:
    """What the hub asks for is what the iam fragment's realm grants (they may sit on different hosts)."""
    c, _ = load_config(preview)
    oauth = c.GenericOAuthenticator
    realm = realm_of(preview)
    (client,) = [cl for cl in realm["clients"] if cl["clientId"] == oauth.client_id]
    assert client["redirectUris"] == [oauth.oauth_callback_url]
    assert oauth.oauth_callback_url == f"https://flhub.{preview.cfg.dns.public_domain}/hub/oauth_callback"
    groups = {g["name"] for g in realm["groups"]}
    assert oauth.allowed_groups <= groups and oauth.admin_groups <= groups and "nina-researchers" in oauth.allowed_groups
    assert client["protocolMappers"][0]["config"]["claim.name"] == "groups"
    logout = oauth.logout_redirect_url
    assert logout.startswith(oauth.authorize_url.removesuffix("/auth") + "/logout?client_id=jupyterhub&")
    allowed_after_logout = client["attributes"]["post.logout.redirect.uris"]
    assert re.fullmatch(re.escape(allowed_after_logout).replace(r"\*", ".*"), logout.split("post_logout_redirect_uri=")[1])


def test_spawner(preview: Preview) -> None:
    c, _ = load_config(preview)
    docker = c.DockerSpawner
    bridge, subnet, gateway = bootstrap_network(preview)
    assert c.JupyterHub.spawner_class == "docker"
    # The image: built on the host from the delivered Dockerfile (the pinned Jupyter image plus flwr at the pin), chosen
    # at each spawn by its digest, never pulled.
    assert "image" not in docker and docker.pull_policy == "never"
    dockerfile = notebook_files(preview)[DOCKERFILE]
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"quay\.io/jupyter/[a-z-]+-notebook:\d{4}-\d{2}-\d{2}", base), "a dated tag, never latest"
    # Every federation's runtime (and NumPy's) a venv on Ubuntu's Python 3.12, installed from its lock alone.
    installs = re.findall(r"&& (\S+/pip install .*)$", dockerfile, re.M)
    wanted = list(dict.fromkeys(["numpy", *(f.runtime for f in preview.cfg.federations.values())]))
    assert installs == [runtimes.pip_install_line(f"/opt/nina/runtimes/{n}/bin/pip", f"/tmp/runtimes/{n}.txt") for n in wanted]
    assert "ln -sfn /opt/nina/runtimes/numpy/bin/flwr /usr/local/bin/flwr" in dockerfile
    # the builder pulls the base; user-data names no image, so a new base pin replaces no VM
    assert base not in notebook_files(preview)[BOOTSTRAP] and "docker pull" not in notebook_files(preview)[BOOTSTRAP]
    assert docker.network_name == bridge and docker.use_internal_ip is True and docker.remove is True
    volumes = docker.volumes
    assert volumes[layout.CA_PEM] == {"bind": layout.CA_PEM, "mode": "ro"}
    assert volumes[STATE + "/users/{username}"] == docker.notebook_dir
    # The hub API listens on the bridge's gateway, where the containers find it.
    m = re.fullmatch(r"http://([\d.]+):(\d+)", c.JupyterHub.hub_bind_url)
    assert m and ipaddress.IPv4Address(m.group(1)) == gateway and gateway in subnet
    assert docker.environment["FLWR_TELEMETRY_ENABLED"] == "0"
    # Each container's share of the host, from nina:notebook (uat sets it; test has the defaults).
    limits = preview.cfg.notebook
    assert (docker.mem_limit, docker.cpu_limit) == (limits.memory, limits.cpus)
    assert (limits.memory, limits.cpus, limits.pids) == {"uat": ("8G", 4.0, 2048), "test": ("4G", 2.0, 1024)}[preview.stack]


def test_hooks(preview: Preview) -> None:
    """Internal names from /etc/hosts at each spawn, no capabilities (the spawn and stop hooks that set the image,
    the address and the federations: tests/test_notebook_access.py)."""
    cfg = preview.cfg
    c, namespace = load_config(preview)
    assert c.DockerSpawner.environment["FLWR_HOME"] == "/home/jovyan/work/.flwr"
    assert c.DockerSpawner.notebook_dir == "/home/jovyan/work"  # FLWR_HOME sits in the persistent work directory
    assert c.DockerSpawner.pre_spawn_hook is namespace["prepare"] and c.DockerSpawner.post_stop_hook is namespace["forget"]
    hosts = "127.0.0.1 localhost\n# BEGIN nina-fl (managed by pulumi, do not edit)\n" + names.hosts_block(cfg) + "# END nina-fl\n"
    namespace["open"] = lambda path, *a, **k: __import__("io").StringIO(hosts) if path == "/etc/hosts" else open(path, *a, **k)
    extra = c.DockerSpawner.extra_host_config(SimpleNamespace(escaped_name="alice"))
    for fed in cfg.federations.values():
        alias = names.fqdn(cfg, names.superlink_alias(fed))
        assert extra["extra_hosts"][alias] == str(cfg.hosts[fed.superlink_host].ip)
    assert "localhost" not in extra["extra_hosts"]
    assert extra["cap_drop"] == ["ALL"] and extra["security_opt"] == ["no-new-privileges"]
    assert extra["pids_limit"] == cfg.notebook.pids


def test_idle_culler_has_only_the_scopes_it_needs(preview: Preview) -> None:
    c, _ = load_config(preview)
    (service,) = c.JupyterHub.services
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == [service["name"]]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def _jupyterhub_python() -> Path | None:
    venv = os.environ.get("NINA_JUPYTERHUB_VENV") or str(ROOT / ".venv-jupyterhub")
    python = Path(venv) / "bin" / "python"
    return python if python.exists() else None


_TRAIT_CHECK = """
import json, sys
from types import SimpleNamespace
from traitlets.config.loader import PyFileConfigLoader
from jupyterhub.app import JupyterHub
from oauthenticator.generic import GenericOAuthenticator
from dockerspawner import DockerSpawner
import jupyterhub, oauthenticator, dockerspawner
cfg = PyFileConfigLoader(sys.argv[1]).load_config()
user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice")
objects = {"JupyterHub": JupyterHub(config=cfg), "GenericOAuthenticator": GenericOAuthenticator(config=cfg),
           "DockerSpawner": DockerSpawner(config=cfg, user=user)}
unknown = [f"{s}.{k}" for s, o in objects.items() for k in cfg[s] if k not in o.trait_names()]
versions = {m.__name__: m.__version__ for m in (jupyterhub, oauthenticator, dockerspawner)}
print(json.dumps({"unknown": unknown, "versions": versions, "binds": objects["DockerSpawner"].volume_binds}))
"""


def test_every_setting_is_a_real_trait(preview: Preview, tmp_path: Path) -> None:
    python = _jupyterhub_python()
    if python is None:
        pytest.skip("no JupyterHub environment: run scripts/jupyterhub-venv.sh (scripts/test.sh does)")
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(notebook_files(preview)[CONFIG])
    result = subprocess.run([str(python), "-c", _TRAIT_CHECK, str(config)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unknown"] == []
    pins = dict(re.findall(r"([a-z-]+)==([\d.]+)", notebook_files(preview)[BOOTSTRAP]))
    for package, version in report["versions"].items():
        assert pins[package] == version, f"{package}: the environment is not the pinned one"
    assert report["binds"][f"{STATE}/users/alice"] == {"bind": "/home/jovyan/work", "mode": "rw"}


_FAKE_DOCKER = """#!/bin/sh
echo "docker $*" >> "$LOG"
case "$1 $2" in
  "image inspect") grep -qxF "$3" "$IMAGES" ;;
  "build --tag") echo "$3" >> "$IMAGES" ;;
  "image ls") cat "$IMAGES" ;;
  "image rm") grep -vxF "$3" "$IMAGES" > "$IMAGES.new"; mv "$IMAGES.new" "$IMAGES" ;;
  *) exit 3 ;;
esac
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare (a mount namespace for the Dockerfile's path)")
def test_the_image_builder_builds_once_per_dockerfile_and_drops_old_builds(preview: Preview, tmp_path: Path) -> None:
    """nina-notebook-image, run as its unit does, against a docker that keeps a list of images: the tag is the one
    the hub asks for (the Dockerfile's digest), a second run builds nothing, older builds go."""
    files = notebook_files(preview)
    (tmp_path / "Dockerfile").write_text(files[DOCKERFILE])
    (tmp_path / "docker").write_text(_FAKE_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    (tmp_path / "images").write_text(f"{layout.NOTEBOOK_IMAGE_REPOSITORY}:0123456789ab\n")
    (tmp_path / "builder").write_text(files[layout.NOTEBOOK_IMAGE_COMMAND])
    tag = f"{layout.NOTEBOOK_IMAGE_REPOSITORY}:{hashlib.sha256(files[DOCKERFILE].encode()).hexdigest()[:12]}"
    script = (f"mount -t tmpfs none /etc && mkdir -p {layout.NOTEBOOK_IMAGE_DIR} && cp {tmp_path}/Dockerfile {layout.NOTEBOOK_IMAGE_DIR}/ && "
              f"PATH={tmp_path}:/usr/bin:/bin LOG={tmp_path}/log IMAGES={tmp_path}/images bash {tmp_path}/builder")

    def build() -> str:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert build().splitlines() == [f"{tag} built", f"removed {layout.NOTEBOOK_IMAGE_REPOSITORY}:0123456789ab"]
    assert f"docker build --tag {tag} {layout.NOTEBOOK_IMAGE_DIR}" in (tmp_path / "log").read_text()
    assert build().splitlines() == [f"{tag} is built"]
    assert (tmp_path / "images").read_text() == tag + "\n"


# ---------------------------------------------------------------------------------------------- host settings


def test_unit_reads_the_delivered_files_and_gets_the_socket(preview: Preview) -> None:
    unit = notebook_files(preview)[UNIT]
    tls = server_tls("notebook")
    assert set(unit_values(unit, "ConditionPathExists")) == {tls.cert, tls.key, layout.CA_PEM, env_path("notebook"), CONFIG, layout.NOTEBOOK_FEDERATIONS}
    # The only capability: setting which SuperLinks each container reaches (nina-jupyter-access), not the account's.
    assert unit_values(unit, "AmbientCapabilities") == unit_values(unit, "CapabilityBoundingSet") == ["CAP_NET_ADMIN"]
    assert unit_values(unit, "EnvironmentFile") == [env_path("notebook")]
    assert unit_values(unit, "User") == ["jupyterhub"] and unit_values(unit, "Group") == [SYSTEM_GROUP]
    assert tls.owner == f"jupyterhub:{SYSTEM_GROUP}" and "jupyterhub.service" in tls.units
    assert unit_values(unit, "SupplementaryGroups") == ["docker users"]
    assert unit_values(unit, "ExecStart") == [f"{VENV}/bin/jupyterhub -f {CONFIG}"]
    assert unit_values(unit, "ReadWritePaths") == [STATE] == unit_values(unit, "WorkingDirectory")
    # No containers without their guard, which its own unit loads from the delivered rules.
    assert set(unit_values(unit, "Requires")[0].split()) == {"docker.service", layout.NOTEBOOK_GUARD_UNIT}
    guard = notebook_files(preview)[f"/etc/systemd/system/{layout.NOTEBOOK_GUARD_UNIT}"]
    access = f"{layout.NOTEBOOK_ACCESS_COMMAND} --federations {layout.NOTEBOOK_FEDERATIONS} --access-dir {layout.NOTEBOOK_ACCESS_DIR} apply"
    assert unit_values(guard, "ExecStart") == [f"/usr/sbin/nft -f {GUARD}"] and unit_values(guard, "ExecStartPost") == [access]
    # A reload replaces the rules in one transaction (no moment without a guard) and puts the containers' pairs back.
    assert unit_values(guard, "ExecReload") == [f"/usr/sbin/nft -f {GUARD}", access]
    assert set(unit_values(guard, "ConditionPathExists")) == {GUARD, layout.NOTEBOOK_FEDERATIONS, layout.NOTEBOOK_ACCESS_COMMAND}


def test_docker_daemon_logs_to_the_journal(preview: Preview) -> None:
    daemon = json.loads(notebook_files(preview)[DAEMON])
    assert daemon == {"log-driver": "journald", "live-restore": True}  # manual 5.4: services log to the journal


def test_container_network_overlaps_nothing(preview: Preview) -> None:
    """The bridge must not shadow a segment, a VPN pool or Docker's own default bridge."""
    _, subnet, _ = bootstrap_network(preview)
    cfg = preview.cfg
    taken = [s.cidr for s in cfg.network.segments.values()]
    taken += [f.vpn_client_range for f in cfg.federations.values() if f.vpn_client_range]
    taken.append(ipaddress.IPv4Network("172.17.0.0/16"))
    assert not [t for t in taken if t.overlaps(subnet)]


def test_bootstrap_pins(preview: Preview) -> None:
    script = notebook_files(preview)[BOOTSTRAP]
    (venv_line,) = [line for line in script.splitlines() if line.startswith("ensure_venv ")]
    words = venv_line.split()
    assert words[1] == VENV
    assert all(re.fullmatch(r"[a-z-]+==\d+(\.\d+)+", w) for w in words[2:])
    assert {w.split("==")[0] for w in words[2:]} >= {"jupyterhub", "oauthenticator", "dockerspawner"}
    assert re.search(r"npm install -g .*configurable-http-proxy@\d+\.\d+\.\d+$", script, re.M)
    assert "com.docker.network.bridge.enable_icc=false" in script


# ------------------------------------------------------------------------------------- the container guard


def test_guard_and_config_agree(preview: Preview) -> None:
    c, _ = load_config(preview)
    bridge, _, gateway = bootstrap_network(preview)
    guard = notebook_files(preview)[GUARD]
    port = c.JupyterHub.hub_bind_url.rsplit(":", 1)[1]
    assert f'iifname "{bridge}" ip daddr {gateway} tcp dport {port} accept' in guard
    input_chain = guard.split("chain input", 1)[1].split("}", 1)[0].strip().splitlines()
    assert input_chain[-1].strip() == f'iifname "{bridge}" drop'
    assert f'iifname "{bridge}" jump containers' in guard and guard.split("chain containers", 1)[1].strip().splitlines()[-3].strip() == "counter reject"


def _root_with(*tools: str) -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in tools)


@pytest.mark.skipif(not _root_with("nft"), reason="nft -c needs root and nftables")
def test_guard_passes_nft_check(preview: Preview, tmp_path: Path) -> None:
    guard = tmp_path / "guard.nft"
    guard.write_text(notebook_files(preview)[GUARD])
    result = subprocess.run(["nft", "-c", "-f", str(guard)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    guard.write_text(guard.read_text().replace("ct state", "ct stat"))
    assert subprocess.run(["nft", "-c", "-f", str(guard)], capture_output=True, timeout=60).returncode != 0


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    """Two network namespaces: "host" and "container", joined by a veth pair."""
    tag = uuid.uuid4().hex[:6]
    host, container = f"nina-h-{tag}", f"nina-c-{tag}"
    for ns in (host, container):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield host, container
    finally:
        for ns in (host, container):
            subprocess.run(["ip", "netns", "del", ns], check=False)





@pytest.mark.skipif(not _root_with("nft", "ip"), reason="needs root, nftables and iproute2 (ip netns)")
def test_guard_lets_containers_reach_only_the_hub_api(preview: Preview, netns_pair: tuple[str, str]) -> None:
    """Loaded for real in a namespace standing for the host: a container-side peer reaches the hub API port and
    nothing else the host listens on (here: Keycloak's management port 9000 and SSH)."""
    host, container = netns_pair
    bridge, subnet, gateway = bootstrap_network(preview)
    c, _ = load_config(preview)
    hub_port = int(c.JupyterHub.hub_bind_url.rsplit(":", 1)[1])
    peer = str(next(ip for ip in subnet.hosts() if ip != gateway))

    def run(ns: str, *cmd: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, timeout=30)

    subprocess.run(["ip", "link", "add", bridge, "netns", host, "type", "veth", "peer", "name", "eth0", "netns", container], check=True)
    run(host, "ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
    run(container, "ip", "addr", "add", f"{peer}/{subnet.prefixlen}", "dev", "eth0")
    for ns, dev in ((host, bridge), (container, "eth0"), (host, "lo"), (container, "lo")):
        run(ns, "ip", "link", "set", dev, "up")
    guard = notebook_files(preview)[GUARD]
    subprocess.run(["ip", "netns", "exec", host, "nft", "-f", "-"], input=guard, text=True, check=True, timeout=30)
    listener = subprocess.Popen(
        ["ip", "netns", "exec", host, sys.executable, "-c", netprobe.LISTEN, str(hub_port), "9000", "22"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        probe = subprocess.run(
            ["ip", "netns", "exec", container, sys.executable, "-c", netprobe.CONNECT, *(f"{gateway}:{p}" for p in (hub_port, 9000, 22))],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        reached = json.loads(probe.stdout)
        assert reached == {f"{gateway}:{hub_port}": "open", f"{gateway}:9000": "TimeoutError", f"{gateway}:22": "TimeoutError"}
        # Without the guard both would answer: the probe can tell the difference.
        subprocess.run(["ip", "netns", "exec", host, "nft", "delete", "table", "inet", "nina_jupyter_guard"], check=True)
        again = subprocess.run(
            ["ip", "netns", "exec", container, sys.executable, "-c", netprobe.CONNECT, f"{gateway}:9000"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(again.stdout) == {f"{gateway}:9000": "open"}
    finally:
        listener.kill()
        listener.wait(timeout=10)





@pytest.mark.skipif(not _root_with("nft", "ip", "unshare", "nsenter"), reason="needs root, nftables, iproute2 and util-linux")
def test_containers_reach_superlinks_resolvers_and_the_web_only(previews: dict[str, Preview], tmp_path: Path) -> None:
    """Forwarded traffic, for real: a container namespace on the rendered bridge, the JupyterHub host's namespace
    with the rendered guard loaded and forwarding on, and a "world" namespace answering on every address a researcher
    might try: the SuperLink's proxy (allowed once the container's pair is in the access set), a resolver and a public web server (allowed), and the private
    services (Postgres, Keycloak's admin port, SSH, instance metadata) the guard must refuse."""
    from lab import Namespace

    preview = previews["test"]
    cfg = preview.cfg
    bridge, subnet, gateway = bootstrap_network(preview)
    container_ip = str(next(ip for ip in subnet.hosts() if ip != gateway))
    hub_ip, superlink_ip = str(cfg.hosts["hub"].ip), str(cfg.hosts["superlink"].ip)
    postgres, resolver, public = "10.40.1.30", cfg.cloud.dns_nameservers[0], "203.0.113.5"
    world = Namespace(tmp_path, "world")
    host = Namespace(tmp_path, "jupyterhub", f"ip link add {bridge} type bridge\nip addr add {gateway}/{subnet.prefixlen} dev {bridge}\nip link set {bridge} up")
    container = Namespace(tmp_path, "container")
    listener = None
    try:
        assert subprocess.run(["ip", "link", "add", "eth0", "netns", str(host.pid), "type", "veth", "peer", "name", "eth0", "netns", str(world.pid)]).returncode == 0
        assert subprocess.run(["ip", "link", "add", "eth0", "netns", str(container.pid), "type", "veth", "peer", "name", "c0", "netns", str(host.pid)]).returncode == 0
        host.sh(f"ip addr add {hub_ip}/16 dev eth0 && ip link set eth0 up && ip link set c0 master {bridge} up && "
                "ip route add default via 10.40.0.1 && sysctl -qw net.ipv4.ip_forward=1")
        container.sh(f"ip addr add {container_ip}/{subnet.prefixlen} dev eth0 && ip link set eth0 up && ip route add default via {gateway}")
        addresses = ["10.40.0.1/16", f"{superlink_ip}/32", f"{postgres}/32", "169.254.169.254/32", f"{resolver}/32", f"{public}/32"]
        world.sh(" && ".join(f"ip addr add {a} dev eth0" for a in addresses) + f" && ip link set eth0 up && ip route add {subnet} via {hub_ip}")
        listener = subprocess.Popen(world.enter([sys.executable, "-c", netprobe.LISTEN, "9092", "5432", "8443", "22", "80", "53", "443"]), stdout=subprocess.PIPE, text=True)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        targets = {
            f"{superlink_ip}:9092": "open",  # the federation's SuperLink proxy
            f"{resolver}:53": "open",
            f"{public}:443": "open",  # package indexes, datasets
            f"{public}:80": "open",
            f"{superlink_ip}:22": "ConnectionRefusedError",
            f"{postgres}:5432": "ConnectionRefusedError",  # another host's service (the managed database)
            f"{postgres}:8443": "ConnectionRefusedError",  # Keycloak's admin API on the IAM host
            "169.254.169.254:80": "ConnectionRefusedError",  # instance metadata
            f"{public}:22": "ConnectionRefusedError",  # the internet, but not the web
        }

        def probe(*wanted: str) -> dict[str, str]:
            done = container.run([sys.executable, "-c", netprobe.CONNECT, *wanted], timeout=120)
            return dict(json.loads(done.stdout))

        host.run(["nft", "-f", "-"], input=notebook_files(preview)[GUARD])
        # No SuperLink until the container's pair is in the access set (nina-jupyter-access: tests/test_notebook_access.py).
        assert probe(*targets) == {**targets, f"{superlink_ip}:9092": "ConnectionRefusedError"}
        host.run(["nft", "add", "element", *layout.NOTEBOOK_GUARD.split(), layout.NOTEBOOK_ACCESS_SET, f"{{ {container_ip} . {superlink_ip} }}"])
        assert probe(*targets) == targets
        # Without the guard the same private service answers: the guard, not the lab, refuses.
        host.run(["nft", "delete", "table", "inet", "nina_jupyter_guard"])
        assert probe(f"{postgres}:5432") == {f"{postgres}:5432": "open"}
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        for ns in (container, host, world):
            ns.close()


def test_a_new_federation_or_limit_changes_deliveries_not_the_hubs_user_data() -> None:
    """The federations file names the SuperLinks and the config the limits: both change in operation, so both are
    delivered (a reload, a restart), and the JupyterHub host's user-data (a change to it replaces the VM) stays the same."""
    from conftest import encode, problems, raw_config

    from nina.config import parse

    base = raw_config("test")
    grown = json.loads(json.dumps(base))
    grown["nina:hosts"]["superlink2"] = {"segment": "internal", "ip": "10.40.1.21", "flavor": "m3.medium", "roles": ["superlink"]}
    grown["nina:federations"]["sim-fl"] = {"type": "simulation", "superlink_host": "superlink2", "simulation": {"supernodes": 4}}
    grown["nina:notebook"] = {"memory": "16G", "cpus": 8, "pids": 4096}
    assert problems(grown) == []
    before, after = parse(encode(base)), parse(encode(grown))
    hub = before.the_host_with("notebook")
    assert cloudinit.user_data(before, hub) == cloudinit.user_data(after, after.hosts[hub.name])
    old = {f.path: f.content for f in cloudinit.delivered_files(before, hub, "notebook")}
    new = {f.path: f.content for f in cloudinit.delivered_files(after, after.hosts[hub.name], "notebook")}
    # The guard names no SuperLink (who reaches which is its set's, per container): the federations file does.
    assert new[GUARD] == old[GUARD]
    assert "10.40.1.21" in notebook.federations_json(after) and "10.40.1.21" not in notebook.federations_json(before)
    assert 'mem_limit = "16G"' in new[CONFIG] and 'mem_limit = "16G"' not in old[CONFIG]
