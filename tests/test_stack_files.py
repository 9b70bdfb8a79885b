"""The offline preview reads a project's configuration as the Pulumi CLI hands it to the program: Pulumi.yaml's
project-level values under the stack's own, objects replaced whole, objects passed as Go's JSON (keys sorted), and
Pulumi.yaml's rules for keys of another namespace enforced the way the CLI enforces them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, config_of, run_nina
from nina.config import ConfigError, parse
from nina.offline.stack_files import OFFLINE_SECRET, ProjectConfigError, config_string, project_config, stack_config

CLOUD = {"availability_zone": "QRIScloud", "external_network": "QRIScloud", "image": "NeCTAR Ubuntu 24.04 LTS (Noble) amd64", "dns_nameservers": ["8.8.8.8", "1.1.1.1"]}


def project(tmp_path: Path, project_config_block: Any, stack: dict[str, Any]) -> Path:
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    if project_config_block is None:
        document.pop("config", None)
    else:
        document["config"] = project_config_block
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "__main__.py").symlink_to(ROOT / "__main__.py")
    (tmp_path / "Pulumi.s.yaml").write_text(yaml.safe_dump({"config": stack}, sort_keys=False))
    return tmp_path


def test_the_shared_nectar_site_comes_from_the_project_file() -> None:
    for stack in ("test", "uat"):
        assert "nina:cloud" not in yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert config_of(stack).cloud.availability_zone == "QRIScloud"
    assert json.loads(project_config(ROOT)["nina:cloud"]) == CLOUD


def test_a_stacks_own_value_replaces_the_project_value_whole(tmp_path: Path) -> None:
    """Pulumi does not merge objects: a stack that sets nina:cloud sets all of it."""
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    stack["nina:cloud"] = {"availability_zone": "melbourne-qh2"}
    (tmp_path / "partial").mkdir()
    config, _, _ = stack_config(project(tmp_path / "partial", {"nina:cloud": {"value": CLOUD}}, stack), "s")
    assert json.loads(config["nina:cloud"]) == {"availability_zone": "melbourne-qh2"}
    with pytest.raises(ConfigError) as caught:
        parse(config)
    assert "nina:cloud.external_network: is required" in caught.value.problems
    stack["nina:cloud"] = {**CLOUD, "availability_zone": "melbourne-qh2"}
    (tmp_path / "whole").mkdir()
    config, _, _ = stack_config(project(tmp_path / "whole", {"nina:cloud": {"value": CLOUD}}, stack), "s")
    assert parse(config).cloud.availability_zone == "melbourne-qh2"


def test_objects_reach_the_program_as_gos_json() -> None:
    config, _, _ = stack_config(ROOT, "uat")
    hosts = config["nina:hosts"]
    assert list(json.loads(hosts)) == sorted(json.loads(hosts)), "Go's encoder sorts map keys"
    assert ", " not in hosts and ": " not in hosts.split('"flavor":')[0]
    assert list(config_of("uat").hosts) == sorted(config_of("uat").hosts)
    # YAML numbers the way Go writes them back; dates stay text (Go's YAML decoder keeps them strings)
    assert config_string({"b": 20.0, "a": [1.5, True, None]}) == '{"a":[1.5,true,null],"b":20}'
    assert config_string(True) == "true" and config_string(7) == "7" and config_string(None) == ""


def test_dates_and_nested_secure_values(tmp_path: Path) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    stack["nina:organisations"]["org-a"]["display_name"] = "placeholder"
    root = project(tmp_path, None, stack)
    text = (root / "Pulumi.s.yaml").read_text().replace("display_name: placeholder", "display_name: 2026-01-01")
    text += "  nina:grafana_admin_password:\n    secure: AAABAKDc\n"
    (root / "Pulumi.s.yaml").write_text(text)
    config, secret_keys, _ = stack_config(root, "s")
    assert json.loads(config["nina:organisations"])["org-a"]["display_name"] == "2026-01-01"
    assert config["nina:grafana_admin_password"] == OFFLINE_SECRET and "nina:grafana_admin_password" in secret_keys


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"nina:cloud": CLOUD}, "unknown attribute(s) availability_zone, dns_nameservers, external_network, image; an object value goes under `value:`"),
        ({"nina:cloud": {"default": CLOUD}}, "is not namespaced by the project (nina-fl) and may set only `value:`"),
        ({"nina:cloud": {"type": "object", "value": CLOUD}}, "is not namespaced by the project (nina-fl) and may set only `value:`"),
        ({"nina:cloud": {"description": "the site"}}, "is namespaced and must provide an attribute 'value'"),
        ({"nina:cloud": {"value": CLOUD, "default": CLOUD}}, "cannot have both a 'default' and a 'value' attribute"),
    ],
    ids=["object-without-value", "default", "type", "no-value", "both"],
)
def test_project_file_mistakes_are_refused_as_the_cli_refuses_them(tmp_path: Path, block: dict[str, Any], message: str) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    root = project(tmp_path, block, stack)
    with pytest.raises(ProjectConfigError) as caught:
        stack_config(root, "s")
    assert caught.value.problems == [f"Pulumi.yaml: config.nina:cloud: {message}"]
    done = run_nina("preview", "--stack", "s", "--cwd", str(root))
    assert done.returncode == 2 and "error: Pulumi.yaml is invalid; no resource was registered:" in done.stderr and message in done.stderr


def test_shorthand_values_and_project_keys(tmp_path: Path) -> None:
    """`nina:x: value` or a list is a value; a key of the project's own namespace declares a typed default, which
    this program does not read."""
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    root = project(tmp_path, {"nina:cloud": {"value": CLOUD}, "nina:environment": "shared", "size": 3, "nina-fl:size": {"type": "integer", "default": 2}}, stack)
    values = project_config(root)
    assert values["nina:environment"] == "shared" and "nina-fl:size" not in values
    config, _, _ = stack_config(root, "s")
    assert config["nina:environment"] == "test"  # the stack's own value wins
