"""`nina preview` as an operator meets it: the tree, the JSON with secrets masked, and its warnings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import ROOT, STACKS, Preview, run_nina, run_nina_concurrently

# Placeholders the mocks give secret provider outputs (private keys, passwords, random bytes). If one shows up in
# the masked JSON, the program turned a secret into a plain value somewhere.
SECRET_PLACEHOLDER = re.compile(r"\[computed: (tls PrivateKey \S+ privateKey\w*|random RandomPassword \S+ (result|bcryptHash)|random RandomBytes \S+ (base64|hex))\]")


@pytest.fixture(scope="module")
def trees() -> dict[str, str]:
    trees = {}
    for stack, proc in zip(STACKS, run_nina_concurrently(*(("preview", "--stack", s) for s in STACKS))):
        assert proc.returncode == 0, proc.stderr
        trees[stack] = proc.stdout
    return trees


def test_tree_lists_every_resource_under_its_parent(preview: Preview, trees: dict[str, str]) -> None:
    lines = trees[preview.stack].splitlines()
    assert lines[0].startswith(f"Stack {preview.stack}: {len(preview.resources)} resources")
    depth = {"": 0}
    expected = []
    for r in preview.resources:  # the JSON lists resources depth-first, like the tree
        depth[preview.key(r)] = depth[r["parent"]] + 1
        expected.append(f"{'  ' * (depth[preview.key(r)] - 1)}+ {r['type']}  {r['name']}")
    assert [line for line in lines if line.lstrip().startswith("+ ")] == expected


def test_tree_shows_the_outputs(preview: Preview, trees: dict[str, str]) -> None:
    tree = trees[preview.stack]
    assert "\nOutputs:\n" in tree
    for host in preview.cfg.hosts.values():
        assert f"private_ip: {host.ip}" in tree


def test_json_masks_secrets(preview: Preview) -> None:
    assert '"[secret]"' in preview.stdout
    assert SECRET_PLACEHOLDER.search(preview.stdout) is None, SECRET_PLACEHOLDER.search(preview.stdout)
    outputs = preview.data["outputs"]
    assert outputs["keycloak_admin_password"] == "[secret]"
    assert outputs["grafana_admin_password"] == "[secret]"


def test_show_secrets_reveals_what_was_masked(previews: dict[str, Preview]) -> None:
    stack = STACKS[0]
    proc = run_nina("preview", "--stack", stack, "--json", "--show-secrets")
    assert proc.returncode == 0, proc.stderr
    assert '"[secret]"' not in proc.stdout
    assert SECRET_PLACEHOLDER.search(proc.stdout), "the control: secret values exist and are shown"
    masked, shown = previews[stack].data, json.loads(proc.stdout)
    assert [(r["type"], r["name"]) for r in masked["resources"]] == [(r["type"], r["name"]) for r in shown["resources"]]


def test_missing_ssh_key_is_a_warning_not_an_error(preview: Preview) -> None:
    document = yaml.safe_load((ROOT / f"Pulumi.{preview.stack}.yaml").read_text())
    assert "nina:ssh_private_key" not in document["config"], "the stack files never hold the operators' key"
    assert f"warning: nina:ssh_private_key is not set in Pulumi.{preview.stack}.yaml" in preview.stderr
    assert "pulumi config set --secret nina:ssh_private_key" in preview.stderr
    assert "warning" not in preview.stdout


def test_no_warning_once_the_ssh_key_is_set(project_copy: Callable[[str, dict[str, Any]], Any]) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    config["nina:ssh_private_key"] = {"secure": "v1:AAAAAAAAAAAAAAAA:encrypted-by-pulumi"}
    root = project_copy("test", config)
    proc = run_nina("preview", "--stack", "test", "--json", "--cwd", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "nina:ssh_private_key is not set" not in proc.stderr
    assert json.loads(proc.stdout)["stack"] == "test"


def test_a_test_stack_that_routes_alerts_nowhere_says_so(preview: Preview) -> None:
    # Only a stack that says test_stack: true may route alerts nowhere (others are refused): the preview says so.
    said = "warning: nina:monitoring.test_stack: alerts reach nobody on this stack" in preview.stderr
    assert said == preview.cfg.monitoring.test_stack


def test_configured_alert_mail_delivers_the_smtp_password_as_a_secret(project_copy: Callable[[str, dict[str, Any]], Any]) -> None:
    config = yaml.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]
    config["nina:monitoring"] = {"alert_email": ["ops@qcif.edu.au"]}
    config["nina:smtp"] = {"host": "smtp.qcif.edu.au", "port": 587, "username": "nina"}
    config["nina:smtp_password"] = {"secure": "v1:AAAAAAAAAAAAAAAA:encrypted-by-pulumi"}
    root = project_copy("uat", config)
    masked = run_nina("preview", "--stack", "uat", "--json", "--cwd", str(root))
    plain = run_nina("preview", "--stack", "uat", "--json", "--show-secrets", "--cwd", str(root))
    assert masked.returncode == 0 and plain.returncode == 0, masked.stderr
    assert "alerts reach nobody" not in masked.stderr

    def payload(stdout: str) -> Any:
        (deliver,) = [r for r in json.loads(stdout)["resources"] if r["name"] == "deliver-monitoring"]
        return deliver["inputs"]["stdin"]

    assert payload(masked.stdout) == "[secret]"
    files = {f["path"]: f for f in json.loads(payload(plain.stdout))["files"]}
    from nina.catalog.layout import SMTP_PASSWORD_PATH
    from nina.offline.stack_files import OFFLINE_SECRET

    password = files[SMTP_PASSWORD_PATH]
    # The stack's secure value (offline: the preview's stand-in for it), readable only by Alertmanager's user.
    assert password["content"] == OFFLINE_SECRET and password["mode"] == "0600"
    assert password["owner"] == "prometheus:prometheus" and password["units"] == ["reload:prometheus-alertmanager.service"]
    assert "smtp.qcif.edu.au:587" in files["/etc/prometheus/alertmanager.yml"]["content"]
