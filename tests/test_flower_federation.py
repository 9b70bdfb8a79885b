"""Federations as code (issue 4): registration per SuperNode touches only that SuperNode, the researchers' flwr
config, SuperNode confs, archived federations, and the superlink/supernode role files."""

from __future__ import annotations

import copy
import json
import subprocess
import tomllib
from collections.abc import Mapping
from typing import Any

from conftest import (
    COMMAND,
    Preview,
    config_of,
    evaluate_configs,
    problems,
    raw_config,
)

from cloudinit import delivered_files, render_template
from nina.catalog import layout
from nina.catalog.roles import server_tls
from nina.config import membership_fingerprint
from nina.plan import flower


def _changes(before: Mapping[tuple[str, str], Any], after: Mapping[tuple[str, str], Any]) -> set[str]:
    keys = set(before) | set(after)
    return {f"{t}::{n}" for t, n in keys if before.get((t, n)) != after.get((t, n))}


def _members(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = cfg["nina:federations"]["test-fl"]["members"]["org-a"]["supernodes"]
    return nodes


def test_adding_or_removing_a_supernode_touches_only_that_supernode() -> None:
    base = raw_config("test")
    added = copy.deepcopy(base)
    _members(added).append({"name": "sn3", "partition_id": 2, "host": "org-a-sn1", "public_key": "generate", "port": 9096})
    added["nina:federations"]["test-fl"]["num_partitions"] = 3
    removed = copy.deepcopy(base)
    del _members(removed)[1]
    before, after_add, after_remove = evaluate_configs("test", [base, added, removed])
    assert _changes(before, after_add) == {
        f"{COMMAND}::register-test-fl-sn3",
        "tls:index/privateKey:PrivateKey::supernode-test-fl-sn3",
        "random:index/randomPassword:RandomPassword::superexec-test-fl-supernode-sn3",  # its SuperExec's secret
        f"{COMMAND}::deliver-org-a-sn1",  # sn3's key and supernode.conf (and num-partitions=3 for its neighbours)
        f"{COMMAND}::deliver-superlink",  # the SuperNodes monitoring expects there (supernodes.json): no restart
    }
    assert _changes(before, after_remove) == {
        f"{COMMAND}::register-test-fl-sn2",
        "tls:index/privateKey:PrivateKey::supernode-test-fl-sn2",
        "random:index/randomPassword:RandomPassword::superexec-test-fl-supernode-sn2",
        f"{COMMAND}::deliver-org-a-sn1",
        f"{COMMAND}::deliver-superlink",
    }
    superlink = {f["path"]: f for f in json.loads(after_add[(COMMAND, "deliver-superlink")]["stdin"])["files"]}
    before_superlink = {f["path"]: f for f in json.loads(before[(COMMAND, "deliver-superlink")]["stdin"])["files"]}
    assert {p for p in superlink if superlink[p] != before_superlink.get(p)} == {layout.SUPERNODES_EXPECTED}
    assert superlink[layout.SUPERNODES_EXPECTED]["units"] == []
    # The delivery of the host that runs it now enables the new instance.
    payload = json.loads(after_add[(COMMAND, "deliver-org-a-sn1")]["stdin"])
    units = {u for f in payload["files"] for u in f["units"]}
    assert {"enable:supernode@sn3.service", "enable:supernode-superexec@sn3.service"} <= units


def test_registration_commands_run_on_the_superlink_host_against_loopback(materialized: dict[str, Preview]) -> None:
    preview = materialized["test"]  # the connection holds the operators' key: secret, shown here
    for sn in ("sn1", "sn2"):
        cmd = preview.named(COMMAND, f"register-test-fl-{sn}")
        inputs = cmd["inputs"]
        assert inputs["connection"]["host"] == "10.40.1.20"  # the superlink host, through the jump host
        assert f"127.0.0.1:{flower.LOOPBACK_PORT}" in inputs["create"] and layout.CA_PEM in inputs["create"]
        assert "flwr supernode register" in inputs["create"] and "already in use" in inputs["create"]
        assert "flwr supernode unregister" in inputs["delete"]
        assert inputs["triggers"], "a new public key must re-register"
    for script in (flower.register_command("ecdsa-sha2-nistp384 AAAA"), flower.unregister_command("ecdsa-sha2-nistp384 AAAA")):
        check = subprocess.run(["shellcheck", "-s", "bash", "-"], input=script, capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout


def test_researcher_flwr_config(previews: dict[str, Preview]) -> None:
    for stack, preview in previews.items():
        outputs = preview.data["outputs"]
        parsed = tomllib.loads(outputs["flwr_config_toml"])
        for fed in preview.cfg.federations:
            entry = parsed["superlink"][fed]
            assert entry == outputs["flwr_connections"][fed]
            assert entry["address"] == f"superlink-{fed}.{preview.cfg.dns.internal_domain}:9092"
            assert entry["root-certificates"] == layout.CA_PEM
        assert parsed["superlink"]["default"] in preview.cfg.federations, stack


def test_flower_reads_every_node_config_value_as_written() -> None:
    """--node-config as Flower 1.41 parses it (flwr's own parse_config_args, from its venv): numbers stay numbers,
    and what only Python takes for a number ("08", "Infinity", ".5", "1.") arrives as the string the stack wrote."""
    import dataclasses

    from conftest import FLWR_VENV

    from nina.config import Federation, SuperNode

    values = {"a": "3", "b": "-2.5", "c": "1e5", "d": "08", "e": "Infinity", "f": ".5", "g": "1.", "h": "/media/data/x", "i": "true"}
    sn = SuperNode(name="sn", organisation="org", partition_id=0, public_key=None, host=None, port=9094, node_config=values)
    fed = Federation(name="f", type="deployment", superlink_host="s", vpn_host=None, vpn_client_range=None,
                     num_partitions=1, runtime="numpy", runtime_dependency_installation=False, archived=False, simulation_supernodes=0,
                     supernodes=(sn,), revoked=())
    arg = flower.node_config(fed, dataclasses.replace(sn))
    script = "import json, sys; from flwr.common.config import parse_config_args; print(json.dumps(parse_config_args([sys.argv[1]])))"
    done = subprocess.run([str(FLWR_VENV / "bin" / "python"), "-c", script, arg], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert parsed == {"partition-id": 0, "num-partitions": 1, "a": 3, "b": -2.5, "c": 100000.0, "d": "08", "e": "Infinity", "f": ".5",
                      "g": "1.", "h": "/media/data/x", "i": "true"}


def test_supernode_conf_quotes_strings_for_flower(previews: dict[str, Preview]) -> None:
    cfg = previews["uat"].cfg
    fed = cfg.federations["uat-cardiac"]
    ob = next(sn for sn in fed.supernodes if sn.name == "ob-sn1")
    assert flower.node_config(fed, ob) == 'partition-id=1 num-partitions=2 data-path="/media/data/cardiac"'
    secret = layout.supernode_superexec_secret(ob.name)
    conf = render_template("supernode/supernode.conf.j2", cfg, federation=fed.name, supernode=ob.name, ca_path=layout.CA_PEM, superexec_secret=secret)
    assert "SUPERLINK=superlink-uat-cardiac.uat.nina.internal:9092\n" in conf
    assert f"AUTH_SUPERNODE_PRIVATE_KEY={layout.supernode_key('ob-sn1')}\n" in conf
    assert f"SUPEREXEC_AUTH_SECRET_FILE={secret}\n" in conf


def test_archived_federation_freezes_membership() -> None:
    cfg = raw_config("test")
    fed = cfg["nina:federations"]["test-fl"]
    fed["archived"] = True
    missing = problems(cfg)
    assert len(missing) == 1 and missing[0].startswith("nina:federations.test-fl.archived_membership: is required with archived: true")
    frozen = membership_fingerprint(config_of("test").federations["test-fl"].supernodes)
    assert repr(frozen) in missing[0]
    fed["archived_membership"] = frozen
    assert problems(cfg) == []
    _members(cfg).append({"name": "sn3", "partition_id": 1, "host": "org-a-sn1", "public_key": "generate", "port": 9096})
    del _members(cfg)[1]
    changed = problems(cfg)
    assert len(changed) == 1 and "federation test-fl is archived: its member and SuperNode lists may no longer change" in changed[0]
    assert changed[0].startswith("nina:federations.test-fl.members:")
    fed["archived"] = False
    assert problems(cfg) == ["nina:federations.test-fl.archived_membership: is only meaningful with archived: true"]


def test_archived_federation_stops_its_nectar_supernodes_and_runs() -> None:
    import dataclasses

    cfg = config_of("test")
    archived = dataclasses.replace(cfg.federations["test-fl"], archived=True)
    cfg2 = dataclasses.replace(cfg, federations={"test-fl": archived})
    assert delivered_files(cfg2, cfg2.hosts["org-a-sn1"], "supernode") == []  # nina-deliver disables supernode@sn1/sn2
    acl = flower.acl_files(cfg2, cfg2.federations["test-fl"])
    assert acl[f"{layout.SUPERLINK_ACL_DIR}/fleet.conf"] == "deny all;\n"
    assert "\ndeny all;" in acl[f"{layout.SUPERLINK_ACL_DIR}/runs.conf"]


def test_superlink_flags(previews: dict[str, Preview]) -> None:
    test = previews["test"].hosts["superlink"].file("/etc/flwr/superlink/superlink.conf")["content"]
    uat = previews["uat"].hosts["superlink"].file("/etc/flwr/superlink/superlink.conf")["content"]
    assert "SUPERNODE_AUTH=1\n" in test and "RUNTIME_DEPENDENCY_INSTALLATION=0\n" in test
    for conf, stack in ((test, "test"), (uat, "uat")):
        # Every federation's ServerApps run in a SuperExec of their own user (README: Threat model).
        assert f"SUPEREXEC_AUTH_SECRET_FILE={layout.SUPERLINK_SUPEREXEC_SECRET}\n" in conf
        files = {f["path"] for f in previews[stack].hosts["superlink"].write_files}
        assert f"/etc/systemd/system/{layout.SUPEREXEC_UNIT}" in files
    unit = previews["test"].hosts["superlink"].file("/etc/systemd/system/superlink.service")["content"]
    for line in ("User=superlink", "Restart=always", f"ConditionPathExists={server_tls('superlink').cert}", "ProtectSystem=strict", "FLWR_TELEMETRY_ENABLED=0"):
        assert line in unit


def test_simulation_federation() -> None:
    """A simulation federation: SuperLink with --simulation (Ray extra), no SuperNode auth, no Fleet API for anyone,
    and researchers get the number of simulated SuperNodes in their connection."""
    from conftest import encode

    from cloudinit import cloud_config
    from nina.config import parse

    raw = raw_config("test")
    raw["nina:hosts"]["sim"] = {"segment": "internal", "ip": "10.40.1.40", "flavor": "m3.large", "roles": ["superlink"], "volume_gb": 20}
    raw["nina:federations"]["sim-fl"] = {"type": "simulation", "superlink_host": "sim", "simulation": {"supernodes": 5}}
    cfg = parse(encode(raw))
    files = {f["path"]: f["content"] for f in cloud_config(cfg, cfg.hosts["sim"])["write_files"]}
    conf = files["/etc/flwr/superlink/superlink.conf"]
    assert "SIMULATION=1\n" in conf and "SUPERNODE_AUTH=0\n" in conf
    assert '"flwr[simulation]==1.41.0"' in files["/usr/local/lib/nina/bootstrap/10-superlink.sh"]
    acl = flower.acl_files(cfg, cfg.federations["sim-fl"])
    assert acl[f"{layout.SUPERLINK_ACL_DIR}/fleet.conf"] == "deny all;\n"
    parsed = tomllib.loads(flower.config_toml(cfg))
    assert parsed["superlink"]["sim-fl"]["options"] == {"num-supernodes": 5}
    assert parsed["superlink"]["sim-fl"] == flower.connections(cfg)["sim-fl"]
