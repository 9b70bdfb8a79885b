"""`nina diff` (nina/review/, README "Reviewing a change") on scripted changes, each between two project
directories that hold the program's code and stack files (the head's code edited where the change is code): its
classification (create, update in place, replace with the property that forces it, delete), the files that
change inside user-data and deliveries with the units that restart, registrations, the danger section and the
exit status; determinism, no secret in clear, the comment size limit on the 20 x 25 benchmark stack, the git path
(`--base REV`, worktree), and the replacement table's provenance.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, nina_command, raw_config

from nina.catalog import layout, replacements
from nina.review import report

CODE = ("nina", "components", "cloudinit", "runtimes", "__main__.py", "Pulumi.yaml")
Project = Callable[..., Path]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """project(name, stack, config, edit=None): a project directory with a copy of the code, `config` as
    Pulumi.<stack>.yaml, and `edit(root)` applied to its code."""

    def make(name: str, stack: str, config: dict[str, Any], edit: Callable[[Path], None] | None = None) -> Path:
        root = tmp_path / name
        root.mkdir()
        for item in CODE:
            source = ROOT / item
            if source.is_dir():
                shutil.copytree(source, root / item, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, root / item)
        (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        if edit:
            edit(root)
        return root

    yield make


def nina_diff(base: Path, head: Path, stack: str = "test", fmt: str = "json") -> tuple[int, Any]:
    done = subprocess.run(
        nina_command("diff", "--stack", stack, "--base-dir", str(base), "--head-dir", str(head), "--format", fmt),
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode in (0, 1, 2, 3), done.stderr
    return done.returncode, (json.loads(done.stdout) if fmt == "json" and done.returncode != 2 else done.stdout + done.stderr)


def stack_file(config: dict[str, Any]) -> dict[str, Any]:
    """raw_config's values as a stack file holds them (the placeholder for the unset SSH key left out)."""
    return {k: v for k, v in config.items() if k != "nina:ssh_private_key"}


def kinds(result: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in result["resources"]:
        out.setdefault(r["change"], set()).add(f"{r['type'].rsplit(':', 1)[1]}:{r['name']}")
    return out


def host(result: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [h for h in result["hosts"] if h["name"] == name]
    return found


def edits(*changes: tuple[str, str, str]) -> Callable[[Path], None]:
    """An edit of the head's code: in each file (relative to the project), the first `old` becomes `new`; an `old`
    that is not there fails the test rather than leaving the change unmade."""

    def edit(root: Path) -> None:
        for relative, old, new in changes:
            path = root / relative
            text = path.read_text()
            assert old in text, (relative, old)
            path.write_text(text.replace(old, new, 1))

    return edit


JOURNAL = ("cloudinit/templates/base/journald.conf.j2", "SystemMaxUse=1G", "SystemMaxUse=2G")  # in every VM's user-data
RUNTIME_UNIT = ("cloudinit/templates/runtime/nina-runtime.service.j2", "TimeoutStartSec=45min", "TimeoutStartSec=60min")  # delivered


def test_adding_a_supernode_registers_it_and_delivers_one_host(project: Project) -> None:
    base = raw_config("test")
    head = copy.deepcopy(base)
    head["nina:federations"]["test-fl"]["members"]["org-a"]["supernodes"].append(
        {"name": "sn3", "partition_id": 2, "host": "org-a-sn1", "public_key": "generate", "port": 9096})
    head["nina:federations"]["test-fl"]["num_partitions"] = 3
    status, result = nina_diff(project("a", "test", stack_file(base)), project("b", "test", stack_file(head)))
    assert status == 1 and result["danger"] == []
    changed = kinds(result)
    assert "replace" not in changed and "delete" not in changed
    # Its key, its SuperExec secret and its registration: nothing else is made.
    assert changed["create"] == {"Command:register-test-fl-sn3", "PrivateKey:supernode-test-fl-sn3", "RandomPassword:superexec-test-fl-supernode-sn3"}
    assert result["registrations"]["added"] == ["test-fl-sn3"]
    assert [h["name"] for h in result["hosts"]] == ["org-a-sn1", "superlink"]
    monitored = host(result, "superlink")  # the SuperNodes monitoring expects, restarting nothing
    assert [f["path"] for f in monitored["delivery"]] == [layout.SUPERNODES_EXPECTED]
    assert monitored["restarts"] == [f"ensure:{layout.RUNTIME_UNIT}"]  # what every delivery runs (a no-op once built)
    sn1 = host(result, "org-a-sn1")
    assert not sn1["replaced"] and sn1["user_data"] == []
    added = {f["path"]: f for f in sn1["delivery"] if f["status"] == "added"}
    assert f"{layout.supernode_dir('sn3')}/supernode.conf" in added
    assert f"enable:{layout.supernode_unit('sn3')}" in sn1["restarts"]


def test_a_base_template_change_replaces_every_vm_and_shows_the_file(project: Project) -> None:
    # and a delivered file in the same change: those deliveries are replaced with their VMs all the same
    edit = edits(JOURNAL, RUNTIME_UNIT)
    config = stack_file(raw_config("test"))
    status, result = nina_diff(project("a", "test", config), project("b", "test", config, edit))
    assert status == 3
    vms = {h["name"] for h in result["hosts"] if h["replaced"]}
    assert vms == {"hub", "org-a-sn1", "superlink", "vpn"}
    for name in vms:
        (changed,) = host(result, name)["user_data"]
        assert changed["path"] == "/etc/systemd/journald.conf.d/90-nina.conf" and "+SystemMaxUse=2G" in changed["diff"]
    causes = {r["name"]: r["replaced_because"] for r in result["resources"] if r["type"] == "openstack:compute/instance:Instance"}
    assert all(c == {"userData": f"ForceNew in terraform-provider-openstack {replacements.PROVIDER_VERSION}"} for c in causes.values())
    # What follows a new VM: its delivery re-runs (triggers), its state volume is re-attached; a delivery that
    # changed as well is a replacement too, not an update.
    assert {"Command:deliver-hub", "Command:deliver-superlink", "VolumeAttach:superlink"} <= kinds(result)["replace"]
    assert "update" not in kinds(result)
    assert {d["urn"].rsplit("::", 1)[1] for d in result["danger"]} >= vms


def test_resizing_a_flavor_updates_in_place(project: Project) -> None:
    base = raw_config("test")
    head = copy.deepcopy(base)
    head["nina:hosts"]["vpn"]["flavor"] = "m3.large"
    status, result = nina_diff(project("a", "test", stack_file(base)), project("b", "test", stack_file(head)))
    assert status == 1 and result["danger"] == []
    assert result["resources"] == [{
        "change": "update", "name": "vpn", "properties": ["flavorName"], "type": "openstack:compute/instance:Instance",
        "urn": "urn:pulumi:test::nina-fl::nina:platform:Platform$nina:host:Host$openstack:compute/instance:Instance::vpn",
    }]


def test_resizing_the_database_replaces_it_and_is_a_danger(project: Project) -> None:
    base = raw_config("test")
    head = copy.deepcopy(base)
    head["nina:database"]["size_gb"] = 20
    status, result = nina_diff(project("a", "test", stack_file(base)), project("b", "test", stack_file(head)))
    assert status == 3
    (db,) = [r for r in result["resources"] if r["type"] == "openstack:database/instance:Instance"]
    assert db["change"] == "replace" and "size" in db["replaced_because"]
    (danger,) = [d for d in result["danger"] if d["urn"] == db["urn"]]
    assert danger["why"].startswith("protected") and "managed database" in danger["why"]


def _add_port_row(row: str) -> Callable[[Path], None]:
    anchor = '    _p("http", "ingress"'
    return edits(("nina/catalog/ports.py", anchor, row + "\n" + anchor))


def test_a_port_row_to_the_internet_is_a_danger_and_one_between_groups_widens(project: Project) -> None:
    config = stack_file(raw_config("test"))
    base = project("a", "test", config)
    public = project("b", "test", config, _add_port_row('    _p("extra", "ingress", "tcp", 8444, (PUBLIC,), "an extra public port"),'))
    status, result = nina_diff(base, public)
    assert status == 3
    (opened,) = [d for d in result["danger"] if "internet" in d["why"]]
    assert "ingress tcp 8444 from 0.0.0.0/0" in opened["why"]
    assert kinds(result)["create"] and "replace" not in kinds(result)
    private = project("c", "test", config, _add_port_row('    _p("extra", "ingress", "tcp", 8444, ("monitoring",), "scraped"),'))
    status, result = nina_diff(base, private)
    assert status == 3 and not any("internet" in d["why"] for d in result["danger"])
    assert any(d["why"].startswith("widens an existing security group: ingress tcp 8444") for d in result["danger"])


def test_a_delivered_file_changes_no_vm_and_restarts_its_unit(project: Project) -> None:
    edit = edits(RUNTIME_UNIT, ("cloudinit/templates/runtime/nina-runtime.sh.j2", 'echo "built $env"', 'echo "built $env (lock $sum)"'))
    config = stack_file(raw_config("test"))
    status, result = nina_diff(project("a", "test", config), project("b", "test", config, edit))
    assert status == 1 and result["danger"] == []
    assert set(kinds(result)) == {"update"}
    assert kinds(result)["update"] == {"Command:deliver-org-a-sn1", "Command:deliver-superlink"}
    for name in ("org-a-sn1", "superlink"):
        h = host(result, name)
        assert not h["replaced"] and h["user_data"] == []
        assert {f["path"] for f in h["delivery"]} == {layout.RUNTIME_COMMAND, f"/etc/systemd/system/{layout.RUNTIME_UNIT}"}
        # restart: the changed script's unit; ensure: the build nina-deliver runs at every delivery anyway
        assert h["restarts"] == [f"ensure:{layout.RUNTIME_UNIT}", f"restart:{layout.RUNTIME_UNIT}"]


def test_diffs_are_deterministic_and_never_show_a_secret_file(project: Project) -> None:
    base = raw_config("test")
    head = copy.deepcopy(base)
    head["nina:federations"]["test-fl"]["members"]["org-a"]["supernodes"][0]["node_config"] = {"data-path": "/media/data/cardio-v2"}
    a, b = project("a", "test", stack_file(base)), project("b", "test", stack_file(head))
    first, second = nina_diff(a, b, fmt="text"), nina_diff(a, b, fmt="text")
    assert first == second and first[0] == 1
    conf = f"{layout.supernode_dir('sn1')}/supernode.conf"  # root:fl_system 0640: only its readers may see it
    assert f"changed  {conf} (secret: content not shown)" in first[1]
    assert "cardio-v2" not in first[1]
    for fmt in ("markdown", "json"):
        assert "cardio-v2" not in nina_diff(a, b, fmt=fmt)[1] if fmt == "markdown" else "cardio-v2" not in json.dumps(nina_diff(a, b)[1])


def test_an_invalid_stack_on_either_side_is_status_2_and_names_the_key(project: Project) -> None:
    base = raw_config("test")
    head = copy.deepcopy(base)
    head["nina:database"]["size_gb"] = "big"
    status, out = nina_diff(project("a", "test", stack_file(base)), project("b", "test", stack_file(head)))
    assert status == 2 and "nina:database.size_gb" in out


def test_revisions_of_a_git_repository(tmp_path: Path, project: Project) -> None:
    """The default: HEAD against the work tree, each side evaluated with its own code."""
    repo = project("repo", "test", stack_file(raw_config("test")))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    run = lambda *a: subprocess.run(nina_command("diff", "--stack", "test", "--cwd", str(repo), *a), capture_output=True, text=True, timeout=600)  # noqa: E731
    clean = run()
    assert clean.returncode == 0 and "No changes." in clean.stdout, clean.stderr
    config = yaml.safe_load((repo / "Pulumi.test.yaml").read_text())
    config["config"]["nina:hosts"]["vpn"]["flavor"] = "m3.large"
    (repo / "Pulumi.test.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    changed = run()
    assert changed.returncode == 1 and "update   urn:pulumi:test::nina-fl::" in changed.stdout and "flavorName" in changed.stdout
    subprocess.run([*git, "commit", "-q", "-am", "head"], check=True)
    between = run("--base", "HEAD~1", "--head", "HEAD")
    assert between.returncode == 1 and between.stdout.split("\n", 1)[1] == changed.stdout.split("\n", 1)[1]
    missing = run("--base", "no-such-rev")
    assert missing.returncode == 2 and "no such revision" in missing.stderr


def test_the_comment_fits_for_the_benchmark_stack(project: Project) -> None:
    """20 federations x 25 SuperNodes with a base template changed: every VM replaced, every user-data diff too
    many for one comment: the markdown stays within GitHub's limit and says what it cut."""
    sys.path.insert(0, str(ROOT / "bench"))
    from preview_scale import synthetic_stack

    config = synthetic_stack(20, 25)

    edit = edits(JOURNAL)
    status, text = nina_diff(project("a", "bench", config), project("b", "bench", config, edit), stack="bench", fmt="markdown")
    assert status == 3
    assert len(text) <= report.COMMENT_LIMIT and text.startswith(report.marker("bench"))
    # Every host is there (the same file change shown once, then referred to), and the summary sections too.
    assert text.count("— **VM replaced**") == len(config["nina:hosts"]) and "the same change as on `hub`" in text
    assert "#### Resources" in text and "#### ⚠️ Danger" in text and text.count("```") % 2 == 0


def test_the_replacement_table_comes_from_the_provider_version_we_pin() -> None:
    table = json.loads((ROOT / "nina/catalog/replace_rules.json").read_text())
    assert table["provider_version"] == replacements.PROVIDER_VERSION == "v3.4.0"
    assert table["generator"] == "scripts/replacement-rules.py"
    pins = (ROOT / "pyproject.toml").read_text()
    assert '"pulumi-openstack==5.5.3"' in pins, "a new pulumi-openstack: regenerate the table (scripts/replacement-rules.py)"
    rules = replacements.FORCE_NEW
    assert "userData" in rules["openstack:compute/instance:Instance"] and "flavorName" not in rules["openstack:compute/instance:Instance"]
    assert {"size", "flavorId"} <= set(rules["openstack:database/instance:Instance"])
    assert "remoteIpPrefix" in rules["openstack:networking/secGroupRule:SecGroupRule"]
    assert replacements.replaced_by("command:remote:Command", "create", ("triggers[*]",)) is None
    assert replacements.replaced_by("command:remote:Command", "triggers", ("triggers[*]",)) == "replaceOnChanges"


def test_rewording_a_rule_or_narrowing_it_is_not_a_danger(project: Project) -> None:
    """A rule replaced with a narrower source (operators' SSH networks /20 -> /32), or only for its description,
    lets nothing new through; the same rule from the internet, added, does."""
    config = stack_file(raw_config("test"))
    narrow = copy.deepcopy(config)
    narrow["nina:admin"]["ssh_cidrs"] = [c.rsplit("/", 1)[0] + "/32" for c in narrow["nina:admin"]["ssh_cidrs"]]
    status, result = nina_diff(project("a", "test", config), project("c", "test", narrow))
    (created,) = kinds(result)["create"]
    assert created.startswith("SecGroupRule:sg-base-ssh-from-") and created.endswith("_32")
    # The hub's VM is replaced (its sshd allow list is user-data): that danger, and no widening.
    assert [d["urn"].rsplit("::", 1)[1] for d in result["danger"]] == ["hub"] and status == 3

    def doc(description: str, prefix: str) -> dict[str, Any]:
        rule = {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "portRangeMin": 22, "portRangeMax": 22,
                "remoteIpPrefix": prefix, "securityGroupId": "secgroup-sg-x-000000000000", "description": description}
        return {"stack": "t", "outputs": {}, "resources": [
            {"type": "openstack:networking/secGroupRule:SecGroupRule", "name": "r", "parent": "", "custom": True, "inputs": rule}]}

    reworded = report.build("t", "a", "b", doc("ssh", "10.0.0.0/20"), doc("SSH for operators", "10.0.0.0/20"), "p")
    assert [r["change"] for r in reworded.resources] == ["replace"] and reworded.danger == []
    opened = report.build("t", "a", "b", doc("ssh", "10.0.0.0/20"), doc("ssh", "0.0.0.0/0"), "p")
    assert [d["why"] for d in opened.danger] == ["opens to the internet: ingress tcp 22 from 0.0.0.0/0"]


def test_re_issued_certificates_change_the_deliveries_that_carry_them(project: Project) -> None:
    edit = edits(("nina/catalog/pki.py", "SERVER_CERT = CertSpec(365 * 24,", "SERVER_CERT = CertSpec(2 * 365 * 24,"))
    config = stack_file(raw_config("test"))
    status, result = nina_diff(project("a", "test", config), project("b", "test", config, edit))
    assert status == 1 and result["certificates"]
    notes = [f for h in result["hosts"] for f in h["delivery"] if f["note"].startswith("new value at apply")]
    assert notes and all(f["status"] == "changed" for f in notes)
    assert any(h["restarts"] for h in result["hosts"])


def test_failures_are_status_2_never_1(project: Project, tmp_path: Path) -> None:
    config = stack_file(raw_config("test"))
    a = project("a", "test", config)
    bad = subprocess.run(nina_command("diff", "--stack", "test", "--base-dir", str(tmp_path / "nowhere"), "--head-dir", str(a)), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a project directory" in bad.stderr
    typo = subprocess.run(nina_command("diff", "--stack", "tset", "--base-dir", str(a), "--head-dir", str(a)), capture_output=True, text=True, timeout=300)
    assert typo.returncode == 2 and "no stack file Pulumi.tset.yaml on either side" in typo.stderr


def test_every_rule_names_an_input_of_the_pinned_sdk() -> None:
    """The table speaks Pulumi's names (the bridge's plurals included): each is an input or output of the installed
    SDK's resource (a Terraform name, `network` for `networks`, would never match a change)."""
    import importlib
    import inspect

    checked = 0
    for token, props in replacements.FORCE_NEW.items():
        _, module, kind = token.split(":")
        try:
            sdk = importlib.import_module(f"pulumi_openstack.{module.split('/')[0]}")
        except ImportError:
            continue
        args = getattr(sdk, f"{kind}Args", None)
        if args is None:
            continue
        resource = getattr(sdk, kind)
        snake = {p for p in inspect.signature(args.__init__).parameters if p != "self"} | {n for n in dir(resource) if not n.startswith("_")}
        names = {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), p) for p in snake}
        assert set(props) <= names, (token, set(props) - names)
        checked += 1
    assert checked > 40


def test_removing_an_operator_key_replaces_no_vm(project: Project) -> None:
    """Operators' keys are delivered (only the delivery's own key is in user-data): adding or removing one changes
    every host's delivery of that one file, and nothing else."""
    base = raw_config("test")
    second = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3ua0oX8YWcHh0yG1m3ZC3cNq2Ezb4wH8ZT7WZr3Jd2 departed@qcif.edu.au"
    base["nina:admin"]["ssh_public_keys"].insert(0, second)  # first in the list: order means nothing any more
    head = copy.deepcopy(base)
    head["nina:admin"]["ssh_public_keys"].remove(second)
    status, result = nina_diff(project("a", "test", stack_file(base)), project("b", "test", stack_file(head)))
    assert status == 1 and result["danger"] == []
    assert set(kinds(result)) == {"update"} and all(n.startswith("Command:deliver-") for n in kinds(result)["update"])
    keys_file = f"{layout.OPERATOR_KEYS_DIR}/{base['nina:admin']['ssh_user']}"
    for h in result["hosts"]:
        assert not h["replaced"] and h["user_data"] == []
        (changed,) = h["delivery"]
        assert changed["path"] == keys_file and f"-{second}" in changed["diff"]
