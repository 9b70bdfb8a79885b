"""Bad stack configuration fails before any resource exists, one message per problem naming the key path.

Each case starts from a real stack file (as Pulumi hands it to the program), breaks one thing, and checks the exact
`nina:<key.path>: ...` message. `parse` is pure, so these run in-process; the subprocess tests at the end prove the
same through `nina preview` and that nothing gets registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import STACKS, encode, evaluate_raw, problems, raw_config, run_nina
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

Raw = dict[str, Any]


def ecdsa_public_key(curve: ec.EllipticCurve = ec.SECP384R1()) -> str:
    key = ec.generate_private_key(curve).public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


ED25519_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPZvdHz57cTfb6u9gGegvD+VwpqKH2NodVdkgC+4UmU2 ops@example"
SN = "nina:federations.test-fl.members.org-a.supernodes"  # key path of the test stack's SuperNode list


def supernodes(raw: Raw) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = raw["nina:federations"]["test-fl"]["members"]["org-a"]["supernodes"]
    return nodes


def assert_problem(found: list[str], path: str, fragment: str) -> None:
    matching = [p for p in found if p.startswith(f"{path}: ")]
    assert matching, f"no problem reported for {path}; got:\n" + "\n".join(found)
    assert any(fragment in p for p in matching), f"{path}: expected {fragment!r} in {matching}"


def _set(path: tuple[str, ...], value: Any) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[str, ...]) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _same_key_twice(raw: Raw) -> None:
    key = ecdsa_public_key()
    supernodes(raw)[0]["public_key"] = key
    supernodes(raw)[1]["public_key"] = f"{key} another-comment"  # the comment is not part of the identity


def _sn(index: int, key: str, value: Any) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        supernodes(raw)[index][key] = value

    return mutate


def _roles(host: str, roles: list[str]) -> Callable[[Raw], None]:
    return _set(("nina:hosts", host, "roles"), roles)


def _second_federation_on_org_a_sn1(raw: Raw) -> None:
    raw["nina:hosts"]["superlink2"] = {"segment": "internal", "ip": "10.40.1.21", "flavor": "m3.medium", "roles": ["superlink"]}
    raw["nina:federations"]["other-fl"] = {
        "type": "deployment",
        "superlink_host": "superlink2",
        "members": {"org-a": {"supernodes": [{"name": "oa1", "partition_id": 0, "host": "org-a-sn1", "public_key": "generate", "port": 9096}]}},
    }


# (case id, stack, mutation, key path, fragment of the message)
CASES: list[tuple[str, str, Callable[[Raw], None], str, str]] = [
    ("bad-cidr", "test", _set(("nina:network", "segments", "org-a"), "10.40.10.0/33"), "nina:network.segments.org-a", "not a valid IPv4 CIDR"),
    ("cidr-host-bits", "test", _set(("nina:network", "segments", "org-a"), "10.40.10.5/24"), "nina:network.segments.org-a", "not a valid IPv4 CIDR"),
    ("segment-too-small", "test", _set(("nina:network", "segments", "org-a"), "10.40.10.0/29"), "nina:network.segments.org-a", "too small"),
    (
        "overlapping-segments",
        "test",
        _set(("nina:network", "segments", "org-a"), "10.40.0.128/25"),
        # segments reach the program in alphabetical order (Go's JSON), and the later of the two is named
        "nina:network.segments.public",
        "overlaps nina:network.segments.org-a",
    ),
    (
        "vpn-range-overlaps-segment",
        "test",
        _set(("nina:federations", "test-fl", "vpn_client_range"), "10.40.1.0/24"),
        "nina:federations.test-fl.vpn_client_range",
        "overlaps nina:network.segments.internal",
    ),
    ("role-on-no-host", "test", _roles("hub", ["ingress", "iam", "notebook"]), "nina:hosts", "role 'monitoring' is on no host"),
    ("singleton-on-two-hosts", "test", _roles("superlink", ["superlink", "iam"]), "nina:hosts", "role 'iam' is on several hosts"),
    ("unknown-role", "test", _roles("hub", ["ingress", "iam", "notebook", "monitoring", "database"]), "nina:hosts.hub.roles[4]", "unknown role 'database'"),
    ("role-twice", "test", _roles("vpn", ["vpn", "vpn"]), "nina:hosts.vpn.roles[1]", "listed twice"),
    ("gpu-is-not-a-role", "test", _roles("superlink", ["superlink", "gpu"]), "nina:hosts.superlink.roles[1]", "unknown role 'gpu'"),
    (
        "port-collision-of-roles",
        "test",
        _roles("hub", ["ingress", "iam", "notebook", "monitoring", "vpn"]),
        "nina:hosts.hub.roles",
        "both need 443/tcp",
    ),
    ("duplicate-partition-id", "test", _sn(1, "partition_id", 0), f"{SN}[1].partition_id", "already used by SuperNode sn1"),
    ("partition-id-too-large", "test", _sn(1, "partition_id", 2), f"{SN}[1].partition_id", "must be less than num_partitions (2)"),
    (
        "num-partitions-below-supernodes",
        "test",
        _set(("nina:federations", "test-fl", "num_partitions"), 1),
        "nina:federations.test-fl.num_partitions",
        "less than the 2 SuperNodes",
    ),
    ("duplicate-public-key", "test", _same_key_twice, f"{SN}[1].public_key", "already registered"),
    ("malformed-public-key", "test", _sn(0, "public_key", "ecdsa-sha2-nistp384 AAAAnot-base64"), f"{SN}[0].public_key", "not a valid OpenSSH public key"),
    ("ed25519-supernode-key", "test", _sn(0, "public_key", ED25519_KEY), f"{SN}[0].public_key", "must be an ECDSA key on a NIST curve"),
    ("same-port-on-one-host", "test", _sn(1, "port", 9094), f"{SN}[1].port", "9094 on host org-a-sn1 is already used by SuperNode sn1"),
    (
        "supernodes-of-two-federations-on-one-host",
        "test",
        _second_federation_on_org_a_sn1,
        "nina:federations.other-fl.members.org-a.supernodes[0].host",
        "host 'org-a-sn1' already runs SuperNodes of federation 'test-fl'",
    ),
    (
        "apps-in-the-superlinks-own-process",
        "test",
        _set(("nina:federations", "test-fl", "isolation"), "subprocess"),
        "nina:federations.test-fl.isolation",
        "'subprocess' is not supported: only 'process' runs researchers' ServerApps and ClientApps as a user of their own",
    ),
    ("notebook-memory-unit", "test", _set(("nina:notebook",), {"memory": "4GB"}), "nina:notebook.memory", "like 512M or 4G"),
    ("notebook-cpus-zero", "test", _set(("nina:notebook",), {"cpus": 0}), "nina:notebook.cpus", "from 0.1 to 256"),
    ("notebook-pids-few", "test", _set(("nina:notebook",), {"pids": 10}), "nina:notebook.pids", "must be at least 64"),
    ("notebook-unknown-limit", "test", _set(("nina:notebook",), {"disk": "10G"}), "nina:notebook.disk", "unknown key"),
    ("port-outside-supernode-range", "test", _sn(1, "port", 9100), f"{SN}[1].port", "outside the SuperNode range 9094-9099"),
    ("supernode-on-missing-host", "test", _sn(1, "host", "nowhere"), f"{SN}[1].host", "'nowhere' is not a host"),
    ("supernode-on-host-without-role", "test", _sn(1, "host", "superlink"), f"{SN}[1].host", "does not carry the 'supernode' role"),
    ("reserved-node-config", "test", _sn(0, "node_config", {"partition-id": 3}), f"{SN}[0].node_config.partition-id", "reserved"),
    ("missing-required-key", "test", _delete(("nina:cloud", "image")), "nina:cloud.image", "is required"),
    ("missing-section", "test", _delete(("nina:database",)), "nina:database.flavor", "is required"),
    ("missing-environment", "test", _delete(("nina:environment",)), "nina:environment", "is required"),
    ("missing-supernode-key", "test", _sn(0, "public_key", ""), f"{SN}[0].public_key", "is required"),
    ("unknown-top-level-key", "test", _set(("nina:colour",), "blue"), "nina:colour", "unknown key"),
    ("unknown-nested-key", "test", _set(("nina:hosts", "hub", "colour"), "blue"), "nina:hosts.hub.colour", "unknown key"),
    ("unknown-supernode-key", "test", _sn(0, "colour", "blue"), f"{SN}[0].colour", "unknown key"),
    (
        "public-role-outside-public-segment",
        "test",
        lambda raw: raw["nina:hosts"]["vpn"].update(segment="internal", ip="10.40.1.30"),
        "nina:hosts.vpn.segment",
        "role 'vpn' faces the internet and must be in segment 'public'",
    ),
    (
        "server-role-in-org-segment",
        "test",
        lambda raw: raw["nina:hosts"]["superlink"].update(segment="org-a", ip="10.40.10.20"),
        "nina:hosts.superlink.segment",
        "may hold only supernode hosts",
    ),
    ("ip-outside-segment", "test", _set(("nina:hosts", "hub", "ip"), "10.40.5.10"), "nina:hosts.hub.ip", "not a host address in segment public"),
    ("ip-is-gateway", "test", _set(("nina:hosts", "hub", "ip"), "10.40.0.1"), "nina:hosts.hub.ip", "is the gateway"),
    ("duplicate-ip", "test", _set(("nina:hosts", "vpn", "ip"), "10.40.0.10"), "nina:hosts.vpn.ip", "already used by host hub"),
    ("bad-host-name", "test", lambda raw: raw["nina:hosts"].update(Hub_2=raw["nina:hosts"].pop("vpn")), "nina:hosts.Hub_2", "not a valid name"),
    ("volume-not-integer", "test", _set(("nina:hosts", "hub", "volume_gb"), "lots"), "nina:hosts.hub.volume_gb", "must be an integer"),
    ("ssh-open-to-world", "test", _set(("nina:admin", "ssh_cidrs"), ["0.0.0.0/0"]), "nina:admin.ssh_cidrs[0]", "too wide for the operators' networks"),
    # The whole internet in two halves: each half is refused.
    ("ssh-open-in-halves", "test", _set(("nina:admin", "ssh_cidrs"), ["0.0.0.0/1", "128.0.0.0/1"]), "nina:admin.ssh_cidrs[1]", "128.0.0.0/1 is too wide"),
    ("ssh-from-a-site-segment", "test", _set(("nina:admin", "ssh_cidrs"), ["10.40.10.0/25"]), "nina:admin.ssh_cidrs[0]", "overlaps nina:network.segments.org-a"),
    ("ssh-from-a-vpn-pool", "test", _set(("nina:admin", "ssh_cidrs"), ["192.168.99.0/24"]), "nina:admin.ssh_cidrs[0]", "overlaps nina:federations.test-fl.vpn_client_range"),
    ("bad-operator-key", "test", _set(("nina:admin", "ssh_public_keys"), ["ssh-rsa nope"]), "nina:admin.ssh_public_keys[0]", "not a valid OpenSSH public key"),
    ("jump-host-without-floating-ip", "test", _set(("nina:admin", "jump_host"), "superlink"), "nina:admin.jump_host", "has no floating IP"),
    ("superlink-host-unknown", "test", _set(("nina:federations", "test-fl", "superlink_host"), "nowhere"), "nina:federations.test-fl.superlink_host", "'nowhere' is not a host"),
    ("superlink-host-without-role", "test", _set(("nina:federations", "test-fl", "superlink_host"), "hub"), "nina:federations.test-fl.superlink_host", "does not carry the 'superlink' role"),
    ("bad-federation-type", "test", _set(("nina:federations", "test-fl", "type"), "horizontal"), "nina:federations.test-fl.type", "must be one of deployment, simulation"),
    ("bad-domain", "test", _set(("nina:dns", "public_domain"), "not a domain"), "nina:dns.public_domain", "not a valid DNS domain"),
    ("nectar-org-without-segment", "test", _delete(("nina:organisations", "org-a", "segment")), "nina:organisations.org-a.segment", "is required for a Nectar-hosted organisation"),
    ("gpu-on-a-nectar-org", "test", _set(("nina:organisations", "org-a", "gpu"), True), "nina:organisations.org-a.gpu", "applies to an on-premises site"),
    (
        "generate-for-on-premises",
        "uat",
        lambda raw: raw["nina:federations"]["uat-cardiac"]["members"]["metro-north"]["supernodes"][0].update(public_key="generate"),
        "nina:federations.uat-cardiac.members.metro-north.supernodes[0].public_key",
        "'generate' is only for Nectar-hosted SuperNodes",
    ),
    (
        "on-premises-supernode-on-a-host",
        "uat",
        lambda raw: raw["nina:federations"]["uat-cardiac"]["members"]["metro-north"]["supernodes"][0].update(host="org-b-sn1"),
        "nina:federations.uat-cardiac.members.metro-north.supernodes[0].host",
        "runs at the site",
    ),
    (
        "on-premises-member-without-vpn",
        "uat",
        lambda raw: [raw["nina:federations"]["uat-cardiac"].pop(k) for k in ("vpn_host", "vpn_client_range")],
        "nina:federations.uat-cardiac.vpn_host",
        "is required: an on-premises member reaches the SuperLink only through the tenancy's VPN",
    ),
    (
        "member-not-an-organisation",
        "uat",
        lambda raw: raw["nina:federations"]["uat-cardiac"]["members"].update(nowhere=raw["nina:federations"]["uat-cardiac"]["members"].pop("org-b")),
        "nina:federations.uat-cardiac.members.nowhere",
        "is not an organisation",
    ),
    ("alert-email-malformed", "test", _set(("nina:monitoring",), {"alert_email": ["ops at qcif"], "test_stack": True}), "nina:monitoring.alert_email[0]", "not an email address"),
    # Alerts must reach a person (§5.3): a stack that routes them nowhere is refused unless it says it is a test stack.
    ("alerts-routed-nowhere", "uat", _delete(("nina:monitoring",)), "nina:monitoring", "alerts would reach nobody"),
    ("alerts-routed-nowhere-in-test", "test", _delete(("nina:monitoring",)), "nina:monitoring", "a test stack says test_stack: true"),
    ("alert-email-without-relay", "uat", _delete(("nina:smtp",)), "nina:smtp.host", "is required to mail nina:monitoring.alert_email"),
    ("alert-webhook-not-https", "uat", _set(("nina:alert_webhook_url",), "http://chat.example.org/hook"), "nina:alert_webhook_url", "must be an https:// URL"),
    ("alert-webhook-two-lines", "uat", _set(("nina:alert_webhook_url",), "https://chat.example.org/a\nb"), "nina:alert_webhook_url", "must be an https:// URL"),
    ("alert-webhook-bad-escape", "uat", _set(("nina:alert_webhook_url",), "https://chat.example.org/a%zz"), "nina:alert_webhook_url", "must be an https:// URL"),
    ("alert-webhook-too-long", "uat", _set(("nina:alert_webhook_url",), "https://chat.example.org/" + "a" * 3000), "nina:alert_webhook_url", "at most 2048"),
    ("delivery-key-missing", "test", _delete(("nina:admin", "delivery_public_key")), "nina:admin.delivery_public_key", "is required"),
    ("smtp-host-with-port", "test", _set(("nina:smtp",), {"host": "smtp.qcif.edu.au:587"}), "nina:smtp.host", "must be a host name"),
    ("smtp-user-without-password", "test", _set(("nina:smtp",), {"host": "smtp.qcif.edu.au", "username": "nina"}), "nina:smtp.username", "nina:smtp_password"),
    ("smtp-password-without-user", "test", _set(("nina:smtp_password",), "s3cret"), "nina:smtp_password", "username is not"),
    ("person-bad-username", "test", _set(("nina:people",), {"Alice": {"name": "Alice", "email": "a@x.org"}}), "nina:people.Alice", "not a valid user name"),
    ("person-unknown-federation", "test", _set(("nina:people",), {"alice": {"name": "Alice", "email": "a@x.org", "federations": ["nope"]}}), "nina:people.alice.federations[0]", "not a federation"),
    ("person-admin-with-federations", "test", _set(("nina:people",), {"root": {"name": "Ops", "email": "o@x.org", "role": "admin", "federations": ["test-fl"]}}), "nina:people.root.federations", "reaches every federation"),
    ("people-sharing-an-address", "test", _set(("nina:people",), {"alice": {"name": "A", "email": "a@x.org"}, "bob": {"name": "B", "email": "A@x.org"}}), "nina:people.bob.email", "already the address of alice"),
    ("person-name-with-markup", "test", _set(("nina:people",), {"alice": {"name": "Alice <script>", "email": "a@x.org"}}), "nina:people.alice.name", "must be letters"),
]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_are_valid(stack: str) -> None:
    assert problems(raw_config(stack)) == []


@pytest.mark.parametrize(("stack", "mutate", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_names_the_key_path(stack: str, mutate: Callable[[Raw], None], path: str, fragment: str) -> None:
    raw = raw_config(stack)
    mutate(raw)
    found = problems(raw)
    assert_problem(found, path, fragment)
    for problem in found:
        assert re.match(r"^nina:\S+: \S", problem), f"not 'nina:<key.path>: what is wrong': {problem!r}"


def test_several_problems_are_reported_together() -> None:
    raw = raw_config()
    raw["nina:network"]["segments"]["org-a"] = "10.40.10.0/33"
    raw["nina:hosts"]["hub"]["roles"].append("database")
    supernodes(raw)[1]["partition_id"] = 0
    raw["nina:cloud"].pop("image")
    found = problems(raw)
    assert_problem(found, "nina:network.segments.org-a", "not a valid IPv4 CIDR")
    assert_problem(found, "nina:hosts.hub.roles[4]", "unknown role")
    assert_problem(found, f"{SN}[1].partition_id", "already used")
    assert_problem(found, "nina:cloud.image", "is required")
    assert len(found) == len(set(found)), "a problem is reported twice"


def test_required_secret_missing() -> None:
    raw = raw_config()
    del raw["nina:ssh_private_key"]
    assert_problem(problems(raw), "nina:ssh_private_key", "pulumi config set --secret nina:ssh_private_key")


def test_nist_curves_are_accepted_for_supernodes() -> None:
    raw = raw_config()
    supernodes(raw)[0]["public_key"] = ecdsa_public_key(ec.SECP256R1())
    supernodes(raw)[1]["public_key"] = ecdsa_public_key(ec.SECP521R1())
    assert problems(raw) == []


# ------------------------------------------------------------------------------------ through the real program


def _broken() -> Raw:
    raw = raw_config()
    raw["nina:network"]["segments"]["org-a"] = "10.40.0.128/25"
    supernodes(raw)[1]["port"] = 9094
    return raw


def test_bad_config_registers_nothing() -> None:
    result = evaluate_raw(_broken())
    assert_problem(result["problems"], "nina:network.segments.public", "overlaps nina:network.segments.org-a")
    assert_problem(result["problems"], f"{SN}[1].port", "already used")
    assert result["registered"] == []


def test_registration_counter_sees_a_good_config() -> None:
    """The control for the test above: the same counter does see the resources of a valid config."""
    result = evaluate_raw(raw_config())
    assert result["problems"] == []
    assert len(result["registered"]) == result["resources"] > 0


def test_preview_of_bad_stack_exits_2(project_copy: Callable[[str, dict[str, Any]], Any]) -> None:
    raw = _broken()
    del raw["nina:ssh_private_key"]  # a stack file never holds it in clear; the preview stands in a placeholder
    root = project_copy("broken", raw)
    proc = run_nina("preview", "--stack", "broken", "--cwd", str(root))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Pulumi.broken.yaml is invalid; no resource was registered" in proc.stderr
    assert "nina:network.segments.public: 10.40.0.0/24 overlaps nina:network.segments.org-a (10.40.0.128/25)" in proc.stderr
    assert f"{SN}[1].port: 9094 on host org-a-sn1" in proc.stderr


def test_preview_of_missing_stack_exits_3() -> None:
    proc = run_nina("preview", "--stack", "nosuchstack")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "Pulumi.nosuchstack.yaml not found" in proc.stderr
    for stack in STACKS:
        assert stack in proc.stderr  # it lists the stacks that do exist


def test_mail_settings_and_people_are_typed() -> None:
    from nina.config import parse

    raw = raw_config("test")
    raw["nina:monitoring"] = {"alert_email": ["ops@qcif.edu.au"]}
    raw["nina:smtp"] = {"host": "smtp.qcif.edu.au", "port": 587, "from": "nina@qcif.edu.au", "username": "nina"}
    raw["nina:smtp_password"] = "s3cret"
    cfg = parse(encode(raw))
    assert cfg.monitoring.configured and cfg.monitoring.alert_email == ("ops@qcif.edu.au",)
    assert (cfg.smtp.smarthost, cfg.mail_sender, cfg.smtp.username, cfg.smtp.configured) == ("smtp.qcif.edu.au:587", "nina@qcif.edu.au", "nina", True)
    plain = parse(encode(raw_config("test")))
    assert not plain.monitoring.configured and not plain.smtp.configured  # absent: the preview warns instead
    assert plain.mail_sender == f"nina@{plain.dns.public_domain}"
    raw["nina:people"] = {"alice": {"name": "Alice Ng", "email": "alice@uq.edu.au", "federations": ["test-fl"]}, "ops": {"name": "Ops", "email": "ops@qcif.edu.au", "role": "admin"}}
    people = parse(encode(raw)).people
    assert people["alice"].federations == ("test-fl",) and not people["alice"].admin and people["ops"].admin


def test_a_webhook_alone_routes_alerts() -> None:
    raw = raw_config("uat")
    del raw["nina:monitoring"], raw["nina:smtp"]
    raw["nina:alert_webhook_url"] = "https://chat.example.org/hooks/T0/B0/abc-123"
    assert problems(raw) == []
    from nina.config import parse

    cfg = parse(encode(raw))
    assert cfg.monitoring.webhook and cfg.monitoring.configured and not cfg.monitoring.test_stack


def test_the_delivery_key_must_open_with_the_delivery_private_key(tmp_path: Any) -> None:
    """With the secret in clear (pulumi up), a delivery_public_key that is not its public half is refused: every VM
    would trust a key the delivery does not hold, and no delivery (nor any operator's key) would ever arrive."""
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "delivery", "-f", str(tmp_path / "k")], check=True)
    raw = raw_config("test")
    raw["nina:ssh_private_key"] = (tmp_path / "k").read_text()
    assert any(p.startswith("nina:admin.delivery_public_key: is not the public half of nina:ssh_private_key") for p in problems(raw))
    raw["nina:admin"]["delivery_public_key"] = (tmp_path / "k.pub").read_text().strip()
    assert problems(raw) == []
