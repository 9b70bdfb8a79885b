"""Federations as Flower sees them (shared/FLOWER.md): what SuperNodes are told, who may reach which SuperLink API,
how a SuperNode's key is registered, and the researchers' flwr connections. Pure text and data.

A federation is a tenancy with its own SuperLink host (open-source Flower serves one federation per SuperLink).
Everything here changes in operation, so none of it is user-data: components/registrations.py runs the register
commands on the SuperLink host, the SSH delivery installs the allow lists and SuperNode settings, and the
researchers' connections are stack outputs and a delivered file on the JupyterHub host.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable

from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import ROLES
from nina.config import Federation, StackConfig, SuperNode
from nina.plan import names, quoting

FLWR_BIN = f"{ROLES['superlink'].python_venv}/bin"
SUPERNODE_ID_HELPER = "/opt/flwr/superlink/supernode_id.py"  # cloudinit/templates/superlink/supernode_id.py.j2
PUBLIC_PORT = next(p.port for p in PORTS if p.name == "superlink")
LOOPBACK_PORT = next(p.port for p in PORTS if p.name == "superlink-loopback")
LOCAL_CONNECTION = "local"  # the flwr connection name the registration commands use on the SuperLink host


# ------------------------------------------------------------------------------------------ what SuperNodes are told


def superlink_address(cfg: StackConfig, fed: Federation) -> str:
    return f"{names.fqdn(cfg, names.superlink_alias(fed))}:{PUBLIC_PORT}"


def node_config(fed: Federation, sn: SuperNode) -> str:
    """`--node-config`: Flower parses each value as TOML, so a value stays bare only if TOML reads it as a number
    (Python's float() also takes "Infinity", "08" or ".5", which TOML refuses); anything else is a TOML string."""
    items = [f"partition-id={sn.partition_id}", f"num-partitions={fed.num_partitions}"]
    items += [f"{key}={value if _toml_number(value) else quoting.toml(value)}" for key, value in sn.node_config.items()]
    return " ".join(items)


def _toml_number(text: str) -> bool:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------------ the SuperLink ACL

# The runtime API calls a SuperExec, a ServerApp and a simulation make in flwr 1.41 (RuntimeHttpClient as the Grid,
# the SuperExec, the heartbeat and the log pusher use it): superlink-proxy's runtime server passes these and no
# other. Task creation and automations (agent apps, not offered here) would let an app start runs the Control API's
# rules (an archived federation's runs.conf) never see.
APP_RUNTIME_CALLS = (
    "acquire-task", "send-task-heartbeat", "pull-task-input", "push-task-output", "push-object", "pull-object",
    "confirm-message-received", "push-messages", "pull-messages", "push-logs", "get-nodes",
)


def _allow(nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv4Address | str]) -> str:
    lines = [f"allow {quoting.nginx(n)};" for n in dict.fromkeys(str(n) for n in nets)]
    return "\n".join(lines + ["deny all;"]) + "\n"


def fleet_sources(cfg: StackConfig, fed: Federation) -> list[str]:
    """SuperNode networks: the member organisations' Nectar segments and the tenancy's VPN (pool and server)."""
    nets = [str(cfg.network.segments[o.segment].cidr) for o in (cfg.organisations[n] for n in fed.organisations) if o.segment]
    if fed.vpn_client_range is not None:
        nets.append(str(fed.vpn_client_range))
    if fed.vpn_host:
        nets.append(str(cfg.hosts[fed.vpn_host].ip))  # traffic the VPN server forwards with its own address
    return nets


def control_sources(cfg: StackConfig) -> list[str]:
    """Where authenticated researchers work (the JupyterHub host) and the operators' networks."""
    return [str(cfg.the_host_with("notebook").ip)] + [str(c) for c in cfg.admin.ssh_cidrs]


def health_sources(cfg: StackConfig) -> list[str]:
    return [str(h.ip) for h in cfg.hosts_with("monitoring")] + ["127.0.0.1"]


def acl_files(cfg: StackConfig, fed: Federation) -> dict[str, str]:
    """The proxy's allow lists. An archived federation keeps its history readable (Control API reads) but takes no
    runs and no SuperNode connections."""
    acl = layout.SUPERLINK_ACL_DIR
    return {
        f"{acl}/fleet.conf": "deny all;\n" if fed.archived or fed.type == "simulation" else _allow(fleet_sources(cfg, fed)),
        f"{acl}/control.conf": _allow(control_sources(cfg)),
        f"{acl}/runs.conf": "# archived: no new runs\ndeny all;\n" if fed.archived else "# runs allowed (not archived)\n",
        f"{acl}/health.conf": _allow(health_sources(cfg)),
    }


# ---------------------------------------------------------------------------------------- run-time registration


def local_connection_toml() -> str:
    """A flwr config with one connection, LOCAL_CONNECTION: the loopback SuperLink, trusting the local CA."""
    return (
        f'[superlink]\ndefault = "{LOCAL_CONNECTION}"\n\n[superlink.{LOCAL_CONNECTION}]\n'
        f'address = "127.0.0.1:{LOOPBACK_PORT}"\nroot-certificates = "{layout.CA_PEM}"\n'
    )


def _setup(public_key: str) -> str:
    """Shell prelude: flwr from the SuperLink's venv, a throw-away FLWR_HOME with a connection to the loopback
    SuperLink (trusting the local CA), the SuperNode's public key in a file, and the SuperLink up."""
    return "\n".join(
        [
            "set -eu",
            f'export PATH="{FLWR_BIN}:$PATH" FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1',
            'FLWR_HOME=$(mktemp -d); export FLWR_HOME; trap \'rm -rf "$FLWR_HOME"\' EXIT',
            f"printf '%s' {quoting.shell(local_connection_toml())} > \"$FLWR_HOME/config.toml\"",
            f"printf '%s\\n' {quoting.shell(public_key)} > \"$FLWR_HOME/supernode.pub\"",
            # After a (re)boot the SuperLink may still be starting; give it five minutes.
            "i=0",
            f'until curl -fsS -o /dev/null --cacert {layout.CA_PEM} https://127.0.0.1:{LOOPBACK_PORT}/health; do',
            '  i=$((i + 1)); [ "$i" -lt 60 ] || { echo "SuperLink not answering on loopback" >&2; exit 1; }; sleep 5',
            "done",
        ]
    )


def register_command(public_key: str) -> str:
    """Idempotent: a key that is already registered (and active) counts as success. Flower never re-registers a key
    that was unregistered: that needs a new key pair, and the error says so."""
    return "\n".join(
        [
            _setup(public_key),
            f'if out=$(flwr supernode register "$FLWR_HOME/supernode.pub" {LOCAL_CONNECTION} 2>&1); then echo "$out"; exit 0; fi',
            'case $out in *"already in use"*) ;; *) echo "$out" >&2; exit 1 ;; esac',
            f'if id=$(python {SUPERNODE_ID_HELPER} {LOCAL_CONNECTION} "$FLWR_HOME/supernode.pub"); then',
            '  echo "SuperNode $id already registered"; exit 0',
            "fi",
            'echo "this public key was unregistered before and Flower does not reuse keys: give the SuperNode a new key pair" >&2',
            "exit 1",
        ]
    )


def unregister_command(public_key: str) -> str:
    return "\n".join(
        [
            _setup(public_key),
            f'rc=0; id=$(python {SUPERNODE_ID_HELPER} {LOCAL_CONNECTION} "$FLWR_HOME/supernode.pub") || rc=$?',
            'if [ "$rc" -eq 3 ]; then echo "not registered: nothing to do"; exit 0; fi',
            '[ "$rc" -eq 0 ] || exit "$rc"',
            f'flwr supernode unregister "$id" {LOCAL_CONNECTION}',
        ]
    )


def identity(public_key: str) -> str:
    """A SuperNode's key as it is registered: type and key, without the comment."""
    return " ".join(public_key.split()[:2])


# -------------------------------------------------------------------------------------------- researchers' flwr


def connections(cfg: StackConfig) -> dict[str, dict[str, object]]:
    """`[superlink.<fed>]` entries of a researcher's ~/.flwr/config.toml (on the JupyterHub host)."""
    out: dict[str, dict[str, object]] = {}
    for fed in cfg.federations.values():
        entry: dict[str, object] = {"address": superlink_address(cfg, fed), "root-certificates": layout.CA_PEM}
        if fed.type == "simulation":
            # flwr 1.41 still reads this (with a deprecation warning) as the number of simulated SuperNodes.
            entry["options"] = {"num-supernodes": fed.simulation_supernodes}
        out[fed.name] = entry
    return out


def connection_toml(cfg: StackConfig, fed: Federation) -> str:
    """One federation's `[superlink.<fed>]` table of ~/.flwr/config.toml."""
    lines = [f"[superlink.{fed.name}]"]  # federation names are bare TOML keys ([a-z0-9-])
    for key, value in connections(cfg)[fed.name].items():
        if isinstance(value, dict):
            lines += [f"{key}.{k} = {v}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {quoting.toml(value)}")
    return "\n".join(lines) + "\n"


def default_toml(fed: Federation | None) -> str:
    """The `[superlink]` table: which federation `flwr` uses when none is named (none: a researcher of none)."""
    return "[superlink]\n" + (f"default = {quoting.toml(fed.name)}\n" if fed else "")


def config_toml(cfg: StackConfig, federations: list[Federation] | None = None) -> str:
    """~/.flwr/config.toml for `federations` (default: every federation of the stack); the first that is not archived
    is the default."""
    chosen = list(cfg.federations.values()) if federations is None else federations
    usable = [f for f in chosen if not f.archived]
    return "\n".join([default_toml(usable[0] if usable else None), *(connection_toml(cfg, f) for f in chosen)])