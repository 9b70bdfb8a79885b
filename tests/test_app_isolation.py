"""Researchers' code cannot touch the platform (README: Threat model), proven by attacking it from inside a run.

On the test stack's hosts booted in namespaces (tests/flower_lab.py), a researcher on the JupyterHub host runs
tests/flower_app_rogue: its ServerApp, beside the SuperLink, and its ClientApps, beside the SuperNodes, try to read
the keys, secrets and state of the processes they run next to, to open the platform's ports, to reach the other
hosts' services, and (the ServerApp) to register a SuperNode of their own at every address the SuperLink answers on.
Each attempt must fail, and the run must still complete. For every refusal the test first shows that the target is
there (root on the same host reaches it), so what refuses is the defence, not an absent service.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from conftest import ROOT, wait_for
from flower_lab import FED, LOOPBACK_PORT, PUBLIC_PORT, RUNTIME_PORT, SUPERNODES, FlowerLab

from nina.catalog import layout
from nina.catalog.roles import server_tls
from nina.plan import flower, names

LISTENER = 8080  # a port no row of the port table holds: the apps' own kind of listener (Ray's, say)
KEYCLOAK = 8443  # on the JupyterHub host's address, as Keycloak's admin API would be on the IAM host
PUBLIC = "203.0.113.1:443"  # TEST-NET-3: routed out of the lab, answered by nobody


def reachable(machine: Any, address: str) -> bool:
    host, _, port = address.rpartition(":")
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=3).close()"
    return machine.run(["/usr/bin/python3", "-c", probe], check=False).returncode == 0


@pytest.fixture(scope="module")
def attacked(flower_lab: FlowerLab) -> dict[str, Any]:
    """The rogue app's run and what its ServerApp and ClientApps reported."""
    lab, cfg = flower_lab, flower_lab.cfg
    superlink_ip, hub_ip = str(cfg.hosts["superlink"].ip), str(cfg.hosts["hub"].ip)
    public_name = names.fqdn(cfg, names.superlink_alias(cfg.federations[FED]))
    for machine in (lab.superlink, lab.node_host):
        machine.background("listener", ["/usr/bin/python3", "-m", "http.server", str(LISTENER), "--bind", "127.0.0.1"])
    lab.hub.background("keycloak-stand-in", ["/usr/bin/python3", "-m", "http.server", str(KEYCLOAK), "--bind", hub_ip])
    wait_for(lambda: reachable(lab.node_host, f"127.0.0.1:{LISTENER}") and reachable(lab.superlink, f"{hub_ip}:{KEYCLOAK}"), "the stand-in listeners")

    server_connect = [f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{PUBLIC_PORT}", f"{superlink_ip}:{PUBLIC_PORT}", f"{hub_ip}:{KEYCLOAK}",
                      "169.254.169.254:80", f"127.0.0.1:{LISTENER}", PUBLIC]
    client_connect = [f"{public_name}:{PUBLIC_PORT}", f"{hub_ip}:{KEYCLOAK}", f"127.0.0.1:{LISTENER}", "127.0.0.53:53", PUBLIC]
    # Root on each host reaches every target the apps will be refused (the SuperLink's loopback port: /health).
    for address in [a for a in server_connect if a not in ("169.254.169.254:80", PUBLIC)]:
        assert reachable(lab.superlink, address), address
    for address in client_connect[:3]:
        assert reachable(lab.node_host, address), address

    tls = server_tls("superlink")
    config = {
        "server-read": [tls.key, layout.SUPERLINK_SUPEREXEC_SECRET, "/var/lib/nina/superlink/state.db"],
        "server-connect": server_connect,
        "server-post": [f"https://127.0.0.1:{RUNTIME_PORT}/v1/control/register-node", f"https://127.0.0.1:{RUNTIME_PORT}/v1/control/list-runs"],
        "server-register": [f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{PUBLIC_PORT}", f"{public_name}:{PUBLIC_PORT}", f"127.0.0.1:{RUNTIME_PORT}"],
        "client-read": [
            *(layout.supernode_key(sn) for sn in SUPERNODES),
            *(layout.supernode_superexec_secret(sn) for sn in SUPERNODES),
            *(f"{layout.supernode_dir(sn)}/supernode.conf" for sn in SUPERNODES),
        ],
        "client-connect": client_connect,
    }
    overrides = " ".join(f"{key}={json.dumps(' '.join(values))}" for key, values in config.items())
    run = lab.run_app(ROOT / "tests" / "flower_app_rogue", "--run-config", overrides)
    reports = {}
    for machine, name in [(lab.superlink, "rogue-serverapp"), *((lab.node_host, f"rogue-clientapp-{p}") for p in range(2))]:
        path = f"{layout.APP_HOME}/{name}.json"
        assert machine.exists(path), f"{name} did not report\n{run.stdout[-3000:]}\n{lab.logs()[-6000:]}"
        reports[name] = json.loads(machine.read(path))
    return {"run": run, "config": config, **reports}


def test_the_rogue_run_still_completes(attacked: dict[str, Any], flower_lab: FlowerLab) -> None:
    run = attacked["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "nina-rogue-app final model: [0.75, 0.75, 0.75, 0.75]" in run.stdout + run.stderr


@pytest.mark.parametrize("report", ["rogue-serverapp", "rogue-clientapp-0", "rogue-clientapp-1"])
def test_apps_run_as_their_own_user_without_privileges(attacked: dict[str, Any], flower_lab: FlowerLab, report: str) -> None:
    machine = flower_lab.superlink if report == "rogue-serverapp" else flower_lab.node_host
    app_uid, app_gid = (int(x) for x in machine.run(["sh", "-c", f"id -u {layout.APP_USER}; id -g {layout.APP_USER}"]).stdout.split())
    who = attacked[report]["identity"]
    assert (who["uid"], who["euid"], who["gid"], who["groups"]) == (app_uid, app_uid, app_gid, []), who  # no other group
    assert who["cap_eff"] == who["cap_prm"] == who["cap_amb"] == "0000000000000000" and who["no_new_privs"] == "1", who


def test_a_serverapp_reads_no_key_secret_or_state(attacked: dict[str, Any]) -> None:
    report = attacked["rogue-serverapp"]
    assert report["read"] == {path: "EACCES" for path in attacked["config"]["server-read"]}
    assert report["environ"] == {"flower-superlink": "EACCES", "flower-superexec": "EACCES"}


def test_a_serverapp_reaches_only_the_runtime_api_and_the_internet(attacked: dict[str, Any], flower_lab: FlowerLab) -> None:
    superlink_ip, hub_ip = str(flower_lab.cfg.hosts["superlink"].ip), str(flower_lab.cfg.hosts["hub"].ip)
    assert attacked["rogue-serverapp"]["connect"] == {
        f"127.0.0.1:{LOOPBACK_PORT}": "refused",  # the SuperLink itself: Control API beside the runtime API
        f"127.0.0.1:{PUBLIC_PORT}": "refused",  # its proxy, from this host
        f"{superlink_ip}:{PUBLIC_PORT}": "refused",
        f"{hub_ip}:{KEYCLOAK}": "refused",  # another host's service
        "169.254.169.254:80": "refused",  # instance metadata
        f"127.0.0.1:{LISTENER}": "connected",  # its own kind of listener: a simulation's Ray
        PUBLIC: "timeout",  # let out (and lost in the lab): runtime installs, public datasets
    }
    posts = attacked["rogue-serverapp"]["post"]
    assert set(posts.values()) == {"status 403"}, posts  # the runtime proxy serves the runtime API only


def test_a_serverapp_cannot_register_a_supernode(attacked: dict[str, Any], flower_lab: FlowerLab) -> None:
    register = attacked["rogue-serverapp"]["register"]
    for address, outcome in register["attempts"].items():
        assert outcome["returncode"] not in (0, None) and "registered successfully" not in outcome["said"], (address, outcome)
    # And the SuperLink agrees: asked on loopback by root, as pulumi asks, the key is not registered.
    check = flower_lab.superlink.run(["bash", "-c", flower.unregister_command(register["public_key"])], check=False, timeout=120)
    assert check.returncode == 0 and "nothing to do" in check.stdout, check.stdout + check.stderr


@pytest.mark.parametrize("partition", [0, 1])
def test_a_clientapp_reads_no_key_secret_or_other_instance(attacked: dict[str, Any], partition: int) -> None:
    report = attacked[f"rogue-clientapp-{partition}"]
    assert report["read"] == {path: "EACCES" for path in attacked["config"]["client-read"]}
    assert set(report["environ"].values()) == {"EACCES"} and "flower-supernode" in report["environ"], report["environ"]


@pytest.mark.parametrize("partition", [0, 1])
def test_a_clientapp_reaches_nothing_but_its_supernode(attacked: dict[str, Any], partition: int) -> None:
    report = attacked[f"rogue-clientapp-{partition}"]
    assert report["connect"] == {address: "refused" for address in attacked["config"]["client-connect"]}, report["connect"]


def test_the_guard_is_what_refuses(flower_lab: FlowerLab) -> None:
    """Without the apps guard the same user reaches the SuperLink's loopback port: the nftables table is the defence
    (the lab's other tests need it, so it is loaded again at the end)."""
    machine = flower_lab.superlink
    probe = f"import socket; socket.create_connection(('127.0.0.1', {LOOPBACK_PORT}), timeout=3).close()"
    as_app = ["setpriv", f"--reuid={layout.APP_USER}", f"--regid={layout.APP_USER}", "--clear-groups", "/usr/bin/python3", "-c", probe]
    assert machine.run(as_app, check=False).returncode != 0
    machine.run(["nft", "delete", "table", "inet", "nina_apps"])
    try:
        assert machine.run(as_app, check=False).returncode == 0
    finally:
        machine.start(layout.APPS_GUARD_UNIT)
    assert machine.run(as_app, check=False).returncode != 0, shlex.join(as_app)


def test_the_launcher_starts_flower_app_commands_only(flower_lab: FlowerLab) -> None:
    """The SuperExec may start only Flower's app commands through the launcher: any other name is refused before
    anything runs (a SuperExec bug or plugin cannot use it to run a shell as the app user)."""
    machine = flower_lab.superlink
    machine.run(["ln", "-sfn", layout.APP_LAUNCHER, "/tmp/bash"])
    as_superexec = ["setpriv", f"--reuid={layout.SUPEREXEC_USER}", f"--regid={layout.SUPEREXEC_USER}", "--init-groups",
                    "--inh-caps=+setuid,+setgid", "--ambient-caps=+setuid,+setgid"]
    refused = machine.run([*as_superexec, "/tmp/bash", "-c", "id"], check=False)
    assert refused.returncode == 2 and "not a Flower app command" in refused.stderr, refused.stdout + refused.stderr
    helped = machine.run([*as_superexec, f"{layout.APP_LAUNCHER_DIR}/flwr-serverapp", "--help"], check=False)
    assert helped.returncode == 0 and "--runtime-api-address" in helped.stdout, helped.stderr
