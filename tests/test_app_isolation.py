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
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, wait_for
from flower_lab import FED, LOOPBACK_PORT, PUBLIC_PORT, RUNTIME_PORT, SUPERNODES, UNIX_SOCKETS, FlowerLab

from nina.catalog import layout
from nina.catalog.roles import server_tls
from nina.plan import flower, names

LISTENER = 8080  # a port no row of the port table holds: the apps' own kind of listener (Ray's, say)
KEYCLOAK = 8443  # on the JupyterHub host's address, as Keycloak's admin API would be on the IAM host
PUBLIC = "203.0.113.1:443"  # TEST-NET-3: routed out of the lab, answered by nobody


def unix_reachable(machine: Any, path: str) -> bool:
    probe = f"import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect({path!r})"
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", probe]
    return machine.run(as_nobody, check=False).returncode == 0  # any user may, like resolved's and D-Bus's


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
    # The local resolver, as a name server and as systemd-resolved's and D-Bus's sockets (DNS carries data out too).
    lab.node_host.background("resolver-stand-in", ["/usr/bin/python3", "-m", "http.server", "53", "--bind", "127.0.0.53"])
    wait_for(
        lambda: reachable(lab.node_host, f"127.0.0.1:{LISTENER}") and reachable(lab.superlink, f"{hub_ip}:{KEYCLOAK}")
        and reachable(lab.node_host, "127.0.0.53:53") and all(unix_reachable(lab.node_host, p) for p in UNIX_SOCKETS),
        "the stand-in listeners",
    )

    server_connect = [f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{PUBLIC_PORT}", f"{superlink_ip}:{PUBLIC_PORT}", f"{hub_ip}:{KEYCLOAK}",
                      "169.254.169.254:80", f"127.0.0.1:{LISTENER}", PUBLIC]
    client_connect = [f"{public_name}:{PUBLIC_PORT}", f"{hub_ip}:{KEYCLOAK}", f"127.0.0.1:{LISTENER}", "127.0.0.53:53", PUBLIC]
    # Root on each host reaches every target the apps will be refused (the SuperLink's loopback port: /health).
    for address in [a for a in server_connect if a not in ("169.254.169.254:80", PUBLIC)]:
        assert reachable(lab.superlink, address), address
    for address in client_connect[:4]:
        assert reachable(lab.node_host, address), address

    tls = server_tls("superlink")
    config = {
        "server-read": [tls.key, layout.SUPERLINK_SUPEREXEC_SECRET, "/var/lib/nina/superlink/state.db"],
        "server-connect": server_connect,
        "server-post": [f"https://127.0.0.1:{RUNTIME_PORT}/v1/control/register-node", f"https://127.0.0.1:{RUNTIME_PORT}/v1/control/list-runs",
                        f"https://127.0.0.1:{RUNTIME_PORT}/v1/runtime/start-automation", f"https://127.0.0.1:{RUNTIME_PORT}/v1/runtime/create-task"],
        "server-register": [f"127.0.0.1:{LOOPBACK_PORT}", f"127.0.0.1:{PUBLIC_PORT}", f"{public_name}:{PUBLIC_PORT}", f"127.0.0.1:{RUNTIME_PORT}"],
        "client-read": [
            *(layout.supernode_key(sn) for sn in SUPERNODES),
            *(layout.supernode_superexec_secret(sn) for sn in SUPERNODES),
            *(f"{layout.supernode_dir(sn)}/supernode.conf" for sn in SUPERNODES),
        ],
        "client-connect": client_connect,
        "client-unix": list(UNIX_SOCKETS),
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
    assert (who["uid"], who["euid"], who["gid"]) == (app_uid, app_uid, app_gid) and set(who["groups"]) <= {app_gid}, who  # no other group
    assert who["cap_eff"] == who["cap_prm"] == who["cap_amb"] == "0000000000000000" and who["no_new_privs"] == "1", who


def test_each_app_ran_in_a_home_of_its_own_that_is_gone(attacked: dict[str, Any], flower_lab: FlowerLab) -> None:
    """Nothing an app installs or writes (its FAB, uv's cache, a planted file) is there for a later run."""
    for machine in (flower_lab.superlink, flower_lab.node_host):
        # An app's process may still be exiting when `flwr run` returns: its cleanup gets a moment.
        def listing(machine: Any = machine) -> list[str]:
            return machine.run(["ls", "-A", layout.APP_HOME]).stdout.split()
        wait_for(lambda: not any(name.startswith("run.") for name in listing()), "apps' homes removed", lambda: str(listing()), timeout=30)
        left = listing()
        assert left and all(name.startswith("rogue-") and name.endswith(".json") for name in left), (machine.name, left)


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
    assert set(posts.values()) == {"status 403"}, posts  # the runtime proxy serves the apps' runtime calls only


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
    # Nor the resolver's and D-Bus's sockets, which any other user of the host reaches (unix_reachable, above).
    assert set(report["unix"]) == set(UNIX_SOCKETS) and "connected" not in report["unix"].values(), report["unix"]


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


def test_no_apps_without_their_guard(flower_lab: FlowerLab) -> None:
    """Every SuperExec unit Requires= the guard: if the guard cannot load, no SuperExec (so no app) starts."""
    machine = flower_lab.node_host
    good = machine.read(layout.APPS_GUARD)
    machine.write(layout.APPS_GUARD, good.replace("meta skuid", "meta skuidd"))
    machine.active.discard(layout.APPS_GUARD_UNIT)
    try:
        with pytest.raises(AssertionError, match="nft"):
            machine.start(layout.supernode_superexec_unit("sn3"))
        assert not machine.log(layout.supernode_superexec_unit("sn3"))  # it never ran
    finally:
        machine.write(layout.APPS_GUARD, good)
        machine.start(layout.APPS_GUARD_UNIT)


def test_the_launcher_starts_flower_app_commands_only(flower_lab: FlowerLab) -> None:
    """The SuperExec may start only Flower's app commands through the launcher: any other name is refused before
    anything runs (a SuperExec bug or plugin cannot use it to run a shell as the app user)."""
    machine = flower_lab.superlink
    machine.run(["ln", "-sfn", layout.APP_LAUNCHER, "/tmp/bash"])
    refused = machine.run([*AS_SUPEREXEC, "/tmp/bash", "-c", "id"], check=False)
    assert refused.returncode == 2 and "not a Flower app command" in refused.stderr, refused.stdout + refused.stderr
    helped = machine.run([*AS_SUPEREXEC, f"{layout.APP_LAUNCHER_DIR}/flwr-serverapp", "--help"], check=False)
    assert helped.returncode == 0 and "--runtime-api-address" in helped.stdout, helped.stderr


AS_SUPEREXEC = ["setpriv", f"--reuid={layout.SUPEREXEC_USER}", f"--regid={layout.SUPEREXEC_USER}", "--init-groups",
                "--inh-caps=-all", "--bounding-set=-all,+setuid,+setgid,+audit_write"]


def test_the_superexec_has_no_privilege_but_starting_apps(flower_lab: FlowerLab) -> None:
    """It runs without capabilities, and sudo lets it run the app runner as the app user, nothing else."""
    machine = flower_lab.superlink
    pid = next(p for p in machine.processes() if "flower-superexec" in Path(f"/proc/{p}/cmdline").read_text(errors="replace"))
    status = Path(f"/proc/{pid}/status").read_text()
    assert "CapEff:\t0000000000000000" in status and "CapAmb:\t0000000000000000" in status, status
    for attempt in (["-u", "root", "/usr/bin/id"], ["-u", layout.APP_USER, "/bin/sh", "-c", "id"], ["-u", "superlink", layout.APP_RUNNER, "flwr-serverapp"]):
        done = machine.run([*AS_SUPEREXEC, "sudo", "--non-interactive", *attempt], check=False)
        assert done.returncode != 0, (attempt, done.stdout)
    assert "parsed OK" in machine.run(["visudo", "-cf", layout.APP_SUDOERS]).stdout
