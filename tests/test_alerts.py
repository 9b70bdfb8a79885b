"""The alert-rule table (nina/catalog/alerts.py) judged by promtool: the rules file it renders is valid, and every row's
sample series fire that row's alert and its healthy series do not (`promtool test rules`, generated from the table,
so a new row brings its own test)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nina.catalog import alerts, layout
from nina.catalog.pki import EXPIRY_WARNING_DAYS
from nina.catalog.roles import BASE_UNITS, ROLES
from nina.plan.alerts import rules_yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: scripts/install-system-deps.sh installs it")
RANK = {s: i for i, s in enumerate(alerts.SEVERITIES)}
_LABEL_REF = re.compile(r"\{\{ \$labels\.([a-zA-Z_]+) \}\}")


def _labels(series: str) -> dict[str, str]:
    """Labels of a promtool series selector such as up{job="node",host="h1"} (values never contain quotes here)."""
    body = series[series.index("{") + 1 : series.rindex("}")]
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', body))


def _expected(rule: alerts.Rule) -> dict[str, Any]:
    first = next(iter(rule.sample.firing))
    kept = {k: v for k, v in _labels(first).items() if not rule.sample.keeps or k in rule.sample.keeps}
    labels = {**kept, "severity": rule.severity, **rule.labels}
    summary = _LABEL_REF.sub(lambda m: labels.get(m.group(1), ""), rule.summary)
    return {"exp_labels": labels, "exp_annotations": {"summary": summary, "manual": rule.manual}}


def _case(series: dict[str, str], name: str, expected: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": alerts.EVAL, "alertname": name, "exp_alerts": expected}],
    }


def promtool_tests(rule_file: str, rules: tuple[alerts.Rule, ...] = alerts.RULES) -> dict[str, Any]:
    """Two cases per row: its firing sample raises it (and, for a severity ladder, every lower level of the same
    alert); its healthy sample raises no alert of that name."""
    tests = []
    for rule in rules:
        levels = [r for r in alerts.RULES if r.name == rule.name and RANK[r.severity] <= RANK[rule.severity]]
        tests.append(_case(rule.sample.firing, rule.name, [_expected(r) for r in levels]))
        tests.append(_case(rule.sample.healthy, rule.name, []))
    return {"rule_files": [rule_file], "evaluation_interval": alerts.EVALUATION_INTERVAL, "tests": tests}


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _test_rules(tmp_path: Path, rules_text: str, rules: tuple[alerts.Rule, ...], processes: int = 2) -> tuple[int, str]:
    """`promtool test rules` on the generated cases, split over `processes` promtool runs (it uses one core)."""
    assert PROMTOOL is not None
    (tmp_path / "rules.yml").write_text(rules_text)
    procs = []
    for i in range(processes):
        part = rules[i::processes]
        if not part:
            continue
        (tmp_path / f"tests{i}.yml").write_text(yaml.safe_dump(promtool_tests("rules.yml", part), sort_keys=False, allow_unicode=True))
        procs.append(subprocess.Popen([PROMTOOL, "test", "rules", f"tests{i}.yml"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    return max(p.returncode for p in procs), "\n".join(outputs)


@needs_promtool
def test_rules_file_passes_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rules_yaml())
    result = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.RULES)} rules found" in result.stdout


@needs_promtool
def test_every_rule_fires_on_its_sample_and_stays_quiet_on_healthy_series(tmp_path: Path) -> None:
    code, output = _test_rules(tmp_path, rules_yaml(), alerts.RULES)
    assert code == 0, output
    assert output.count("SUCCESS") == 2


@needs_promtool
def test_the_generated_tests_catch_a_rule_that_never_fires(tmp_path: Path) -> None:
    """The promtool cases are not vacuous: with one rule's threshold made unreachable they fail, naming it."""
    victim = next(r for r in alerts.RULES if r.name == "GpuTemperatureHigh")
    broken = rules_yaml().replace(victim.expr, victim.expr.replace(">= 85", ">= 850"))
    assert broken != rules_yaml()
    code, output = _test_rules(tmp_path, broken, (victim,), processes=1)
    assert code != 0
    assert "GpuTemperatureHigh" in output


@needs_promtool
def test_the_generated_tests_catch_a_rule_that_always_fires(tmp_path: Path) -> None:
    victim = next(r for r in alerts.RULES if r.name == "SuperLinkHealthDown")
    broken = rules_yaml().replace(victim.expr, 'probe_success{job="superlink-health"} >= 0')
    code, output = _test_rules(tmp_path, broken, (victim,), processes=1)
    assert code != 0
    assert "SuperLinkHealthDown" in output


def test_every_key_unit_has_a_down_and_a_restarting_rule() -> None:
    """§5.3.4: a separate rule for each key service unit, read from the role table and the base units."""
    units = set(BASE_UNITS) | {u for role in ROLES.values() for u in role.units}
    by_unit: dict[str, set[str]] = {}
    for rule in alerts.RULES:
        if "unit" in rule.labels:
            by_unit.setdefault(rule.labels["unit"], set()).add(rule.name)
    assert set(by_unit) == units
    for unit, names in by_unit.items():
        assert any(n.endswith("Restarting") for n in names), unit
        if unit != alerts.NODE_EXPORTER_UNIT:
            assert any(n.endswith("Down") for n in names), unit


def test_unit_rules_only_expect_a_unit_on_hosts_whose_roles_run_it() -> None:
    for rule in alerts.RULES:
        unit = rule.labels.get("unit")
        if unit is None or not rule.name.endswith("Down"):
            continue
        roles = [r.name for r in ROLES.values() if unit in r.units]
        if unit in BASE_UNITS:
            assert "roles=~" not in rule.expr
        else:
            assert f'roles=~".*,({"|".join(roles)}),.*"' in rule.expr, rule.name


def test_manual_thresholds() -> None:
    """The numbers of §5.3.1-§5.3.6 and the PKI's renewal window, as written there."""
    exprs = {(r.name, r.severity): (r.expr, r.for_) for r in alerts.RULES}
    assert exprs["CpuLoadHigh", "medium"][0].endswith("> 0.8") and exprs["CpuLoadHigh", "high"][0].endswith("> 0.95")
    assert exprs["MemoryLow", "medium"][0].endswith("< 0.1") and exprs["MemoryLow", "high"][0].endswith("< 0.05")
    assert [exprs["DiskSpaceLow", s][0][-3:] for s in alerts.SEVERITIES] == ["0.3", "0.2", "0.1"]
    assert exprs["GpuTemperatureHigh", "high"] == ("DCGM_FI_DEV_GPU_TEMP >= 85", "30m")
    assert exprs["GpuMemoryHigh", "low"][0].endswith("> 0.9") and exprs["GpuMemoryHigh", "low"][1] == "1h"
    assert f"< {EXPIRY_WARNING_DAYS * 86400}" in exprs["CertificateExpiringSoon", "medium"][0]
    for name in ("CpuLoadHigh", "MemoryLow"):
        assert {f for (n, _), (_, f) in exprs.items() if n == name} == {"30m"}


def test_table_rows_are_well_formed() -> None:
    seen = set()
    for rule in alerts.RULES:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule.name), rule.name
        assert rule.severity in alerts.SEVERITIES
        assert rule.manual.startswith("§")
        assert rule.sample.firing and rule.sample.healthy, rule.name
        assert (rule.name, rule.severity) not in seen, f"{rule.name} {rule.severity} twice"
        seen.add((rule.name, rule.severity))
        # a severity ladder shares everything but the threshold
        ladder = [r for r in alerts.RULES if r.name == rule.name]
        assert len({r.for_ for r in ladder}) == 1, rule.name
        assert len({re.sub(r"[<>]=? [0-9.]+$", "", r.expr) for r in ladder}) == 1, rule.name


def test_rules_yaml_is_deterministic_and_names_its_path() -> None:
    assert rules_yaml() == rules_yaml()
    document = yaml.safe_load(rules_yaml())
    assert len(document["groups"][0]["rules"]) == len(alerts.RULES)
    assert layout.RULES_PATH.startswith(layout.RULES_DIR + "/") and layout.RULES_PATH.endswith(".yml")


def _run_cases(tmp_path: Path, cases: list[dict[str, Any]]) -> tuple[int, str]:
    """Hand-written promtool cases against the rendered rules file."""
    (tmp_path / "rules.yml").write_text(rules_yaml())
    document = {"rule_files": ["rules.yml"], "evaluation_interval": alerts.EVALUATION_INTERVAL, "tests": cases}
    (tmp_path / "cases.yml").write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    done = _promtool("test", "rules", "cases.yml", cwd=tmp_path)
    return done.returncode, done.stdout + done.stderr


def _fired(series: dict[str, str], name: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    rule = next(r for r in alerts.RULES if r.name == name)
    expected = {"exp_labels": {**labels, "severity": rule.severity, **rule.labels}, "exp_annotations": {"summary": summary, "manual": rule.manual}}
    return _case(series, name, [expected])


@needs_promtool
def test_the_superexecs_have_down_and_restarting_alerts(tmp_path: Path) -> None:
    """The SuperExecs start every app (layout.SUPEREXEC_UNIT beside the SuperLink, supernode-superexec@ beside each
    SuperNode): their rows come from the role table, and fire on the real unit names."""
    names = {r.name for r in alerts.RULES if r.labels.get("unit") in (layout.SUPEREXEC_UNIT, "supernode-superexec@.service")}
    assert names == {"SuperlinkSuperexecDown", "SuperlinkSuperexecRestarting", "SupernodeSuperexecDown", "SupernodeSuperexecRestarting"}
    sl = 'instance="10.0.0.6:9900",job="node",host="sl",environment="test",roles=",superlink,"'
    sn = 'instance="10.9.0.2:9900",job="node",host="site1",environment="test",roles=",supernode,"'
    sn1, sn2 = layout.supernode_superexec_unit("sn1"), layout.supernode_superexec_unit("sn2")
    cases = [
        _fired(
            {f"up{{{sl}}}": "1+0x120", f'node_systemd_unit_state{{{sl},name="{layout.SUPEREXEC_UNIT}",state="active",type="simple"}}': "0+0x120"},
            "SuperlinkSuperexecDown", {**_labels("up{" + sl + "}")},
            f"sl: {layout.SUPEREXEC_UNIT} is not active (failed, stopped or missing) on the superlink host",
        ),
        # one SuperNode's SuperExec failed while its sibling runs
        _fired(
            {
                f'node_systemd_unit_state{{{sn},name="{sn1}",state="failed",type="simple"}}': "1+0x120",
                f"up{{{sn}}}": "1+0x120",
                f'node_systemd_unit_state{{{sn},name="{sn1}",state="active",type="simple"}}': "0+0x120",
                f'node_systemd_unit_state{{{sn},name="{sn2}",state="active",type="simple"}}': "1+0x120",
            },
            "SupernodeSuperexecDown", {**_labels(f'x{{{sn},name="{sn1}",state="failed",type="simple"}}')},
            "site1: supernode-superexec@.service is not active (failed, stopped or missing) on the supernode host",
        ),
        _fired(
            {f'node_systemd_service_restart_total{{{sn},name="{sn2}"}}': "0+1x120"},
            "SupernodeSuperexecRestarting", {**_labels(f'x{{{sn},name="{sn2}"}}')}, f"site1: {sn2} restarted more than once in 30 minutes",
        ),
        # both running: nothing
        _case(
            {f"up{{{sl}}}": "1+0x120", f'node_systemd_unit_state{{{sl},name="{layout.SUPEREXEC_UNIT}",state="active",type="simple"}}': "1+0x120"},
            "SuperlinkSuperexecDown", [],
        ),
    ]
    code, output = _run_cases(tmp_path, cases)
    assert code == 0, output
