"""A researcher's federated run across the test stack's Flower hosts, booted from what the program renders (the
Flower lab, tests/flower_lab.py): the SuperLink and its proxy, the SuperExec that runs ServerApps as their own user,
two SuperNodes on their Nectar host with their SuperExecs, each started as systemd would start its unit; SuperNodes
registered by the very command strings of the register-* resources; a NumPy FedAvg app and a scikit-learn one
(from the runtime's lock) run to completion from the
JupyterHub host with the stack's flwr_config_toml output (every federation's connections, an admin's); a SuperNode whose key nobody registered refused, and
the delete command of a registration unregistering exactly that key.
"""

from __future__ import annotations

import json
import re

from conftest import COMMAND, ROOT, samples, wait_for
from flower_lab import FED, FlowerLab

from nina.catalog import layout, runtimes
from nina.catalog.roles import ROLES
from nina.plan import flower

STRANGER = "stranger"  # a SuperNode instance whose key the stack never registered
STRANGER_PORT = 9097


def test_a_federated_run_completes(flower_lab: FlowerLab) -> None:
    run = flower_lab.run_app(ROOT / "tests" / "flower_app")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + flower_lab.logs()[-6000:]
    assert "nina-numpy-app final model: [0.75, 0.75, 0.75, 0.75]" in run.stdout + run.stderr
    assert {r["status"] for r in flower_lab.runs()} == {"finished:completed"}


def test_a_federated_run_of_scikit_learn_completes(flower_lab: FlowerLab) -> None:
    """An app that needs more than NumPy: the ServerApp and both ClientApps import scikit-learn from the runtime
    each host's delivery switched to (nina-runtime, the test stack's runtime `sklearn`), whose venv was installed
    from runtimes/locks/sklearn.txt with --require-hashes (scripts/flwr-venv.sh)."""
    lock = runtimes.lock(flower_lab.cfg.federations[FED].runtime, False)
    assert lock.runtime == "sklearn"
    for host in (flower_lab.superlink, flower_lab.node_host):
        assert host.run(["readlink", layout.RUNTIME_CURRENT]).stdout.strip() == lock.digest()[:12], host.name
    run = flower_lab.run_app(ROOT / "tests" / "flower_app_sklearn")
    out = run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + flower_lab.logs()[-6000:]
    found = re.search(r"nina-sklearn-app scikit-learn (\S+) accuracy: ([0-9.]+)", out)
    assert found, out[-3000:]
    pinned = re.search(r"^scikit-learn==(\S+) ", lock.text(), re.M)
    assert pinned and found.group(1) == pinned.group(1)
    assert float(found.group(2)) > 0.75


def test_monitoring_hears_which_supernodes_the_superlink_hears(flower_lab: FlowerLab) -> None:
    """The delivered collector on the SuperLink host, run as its unit runs it, against the lab's real SuperLink: both
    registered SuperNodes are known and online; a SuperNode the stack would list whose key the SuperLink does not
    know is reported as not registered (the SuperNodeNotSeen / SuperNodeNotRegistered alerts read these)."""
    import time

    host = flower_lab.superlink
    expected = json.loads(host.read(layout.SUPERNODES_EXPECTED))
    assert {(r["federation"], r["name"]) for r in expected["supernodes"]} == {(FED, "sn1"), (FED, "sn2")}
    stranger = host.run(["bash", "-c", "d=$(mktemp -d) && ssh-keygen -q -t ecdsa -b 384 -N '' -C '' -f $d/k && cat $d/k.pub"]).stdout.strip()
    expected["supernodes"].append({"federation": FED, "name": "ghost", "public_key": stranger})
    host.write("/tmp/supernodes.json", json.dumps(expected))
    collect = (
        f"d=$(mktemp -d) && install -m 0600 {layout.FLWR_LOCAL_CONFIG} $d/config.toml && "
        f"FLWR_HOME=$d NINA_SUPERNODES_EXPECTED=/tmp/supernodes.json NINA_TEXTFILE_DIR=/tmp/textfile "
        f"{ROLES['superlink'].python_venv}/bin/python {layout.SUPERNODE_METRICS_COMMAND}"
    )

    def collected() -> dict[str, float]:
        done = host.run(["bash", "-c", collect], check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return samples(host.read("/tmp/textfile/nina_supernodes.prom"))

    # The SuperNodes were started with the lab; their first heartbeat may still be on its way.
    online = f'nina_supernode_online_until_timestamp_seconds{{federation="{FED}",supernode="sn2"}}'
    wait_for(lambda: collected().get(online, 0) > time.time(), "both SuperNodes heard by the SuperLink", flower_lab.logs, timeout=120)
    metrics = collected()
    now = time.time()
    for sn in ("sn1", "sn2"):
        labels = f'{{federation="{FED}",supernode="{sn}"}}'
        assert metrics[f"nina_supernode_registered{labels}"] == 1
        assert metrics[f"nina_supernode_online_until_timestamp_seconds{labels}"] > now - 60, metrics
    ghost = f'{{federation="{FED}",supernode="ghost"}}'
    assert metrics[f"nina_supernode_registered{ghost}"] == 0 and metrics[f"nina_supernode_online_until_timestamp_seconds{ghost}"] == 0
    # The federation dashboard's runs: what `flwr ls` says, by outcome.
    said: dict[str, int] = {}
    for run in flower_lab.runs():
        state = run["status"].split(":")[-1]
        said[state] = said.get(state, 0) + 1
    counted = {k.split('status="')[1].rstrip('"}'): int(v) for k, v in metrics.items() if k.startswith("nina_federation_runs{")}
    assert {k: v for k, v in counted.items() if v} == said
    assert (metrics[f'nina_federation_last_run_timestamp_seconds{{federation="{FED}"}}'] > now - 3600) == bool(said)


def test_the_register_commands_are_idempotent(flower_lab: FlowerLab) -> None:
    """pulumi re-running a registration (a retry, a refresh) is not an error."""
    create = flower_lab.preview.named(COMMAND, f"register-{FED}-sn1")["inputs"]["create"]
    again = flower_lab.superlink.run(["bash", "-c", create], check=False, timeout=180)
    assert again.returncode == 0 and "already registered" in again.stdout, again.stdout + again.stderr


def _stranger(flower_lab: FlowerLab) -> str:
    """SuperNode instance `stranger` on org-a-sn1: sn1's conf with a key of its own (and its own port); its public key."""
    host = flower_lab.node_host
    key = layout.supernode_key(STRANGER)
    if host.exists(key):
        return host.read(key + ".pub").strip()
    conf = re.sub(r"(?m)^PORT=.*$", f"PORT={STRANGER_PORT}", host.read(f"{layout.supernode_dir('sn1')}/supernode.conf"))
    conf = conf.replace(layout.supernode_key("sn1"), layout.supernode_key(STRANGER))
    conf = conf.replace(layout.supernode_superexec_secret("sn1"), layout.supernode_superexec_secret(STRANGER))
    host.write(f"{layout.supernode_dir(STRANGER)}/supernode.conf", conf, "0644")
    host.sh(f"install -d -o supernode -g fl_system -m 0750 $(dirname {key}) && ssh-keygen -q -t ecdsa -b 384 -N '' -C '' -f {key} && chown supernode {key}")
    host.sh(f"head -c 48 /dev/urandom | base64 -w0 > {layout.supernode_superexec_secret(STRANGER)} && chgrp superexec {layout.supernode_superexec_secret(STRANGER)}")
    return host.read(key + ".pub").strip()


def test_a_supernode_with_an_unregistered_key_is_refused(flower_lab: FlowerLab) -> None:
    _stranger(flower_lab)
    refused = flower_lab.node_host.start(layout.supernode_unit(STRANGER))
    assert refused is not None
    code = refused.wait(timeout=120)
    log = flower_lab.node_host.log(layout.supernode_unit(STRANGER))
    assert code == 305 or "Failed to activate" in log, log[-3000:]


def test_a_registration_and_its_delete_command(flower_lab: FlowerLab) -> None:
    """What `pulumi up` runs when a SuperNode joins and when it leaves the stack: the resources' command strings are
    these functions' (asserted for sn2), run here for a key of the test's own so the lab's SuperNodes stay."""
    pub = _stranger(flower_lab)
    sn2 = flower_lab.preview.named(COMMAND, f"register-{FED}-sn2")["inputs"]
    sn2_key = flower_lab.node_host.read(layout.supernode_key("sn2") + ".pub").strip()
    assert (sn2["create"], sn2["delete"]) == (flower.register_command(sn2_key), flower.unregister_command(sn2_key))

    superlink = flower_lab.superlink
    joined = superlink.run(["bash", "-c", flower.register_command(pub)], check=False, timeout=180)
    assert joined.returncode == 0 and "registered successfully" in joined.stdout, joined.stdout + joined.stderr
    flower_lab.node_host.start(layout.supernode_unit(STRANGER))
    wait_for(lambda: "SuperNode ID" in flower_lab.node_host.log(layout.supernode_unit(STRANGER)), "the registered stranger's activation")

    gone = superlink.run(["bash", "-c", flower.unregister_command(pub)], check=False, timeout=180)
    assert gone.returncode == 0 and "unregistered successfully" in gone.stdout, gone.stdout + gone.stderr
    again = superlink.run(["bash", "-c", flower.unregister_command(pub)], check=False, timeout=180)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    listed = flower_lab.researcher(flower_lab.tmp, "supernode", "list", FED, "--format", "json", timeout=60)
    statuses = sorted(n["status"] for n in json.loads(listed.stdout)["nodes"])
    assert statuses.count("unregistered") == 1 and len(statuses) == 3, listed.stdout
