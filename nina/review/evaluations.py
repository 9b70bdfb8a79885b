"""The two sides of a diff: a git revision (exported to a temporary directory) or a project directory (the work
tree), each evaluated offline by `nina preview --json --show-secrets` in a process of its own (Pulumi's runtime is
global state). Secrets shown: the delivery payloads must be compared; offline they hold placeholders and emulated
keys only, and the report never prints a secret file's content."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class EvaluationError(Exception):
    def __init__(self, side: str, status: int, stderr: str) -> None:
        super().__init__(f"{side}: {stderr.strip()}")
        self.side, self.status, self.stderr = side, status, stderr


@dataclass(frozen=True)
class Side:
    label: str  # what the report calls it: a revision or "worktree"
    root: Path  # a project directory (Pulumi.yaml, __main__.py, the stack files, the code)


def git_root(path: Path) -> Path:
    done = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def export(repo: Path, revision: str, into: Path) -> Side:
    """The project as it was at `revision` (git archive: tracked files only, nothing of the work tree)."""
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{revision}^{{commit}}"], capture_output=True, text=True)
    if commit.returncode != 0:
        raise EvaluationError(revision, 2, f"no such revision: {revision}")
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit.stdout.strip()], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return Side(f"{revision} ({commit.stdout.strip()[:12]})", into)


def evaluate(side: Side, stack: str) -> dict[str, Any]:
    """`nina preview --stack S --json --show-secrets` of that side, with that side's own code."""
    done = subprocess.run(
        [sys.executable, "-m", "nina.cli", "preview", "--stack", stack, "--json", "--show-secrets", "--cwd", str(side.root)],
        cwd=side.root, capture_output=True, text=True, timeout=900, env=_env(side.root),
    )
    if done.returncode != 0:
        raise EvaluationError(side.label, done.returncode, done.stderr)
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _env(root: Path) -> dict[str, str]:
    """That side's code first on the path: a revision is evaluated with its own program, not the work tree's."""
    import os

    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}


def evaluate_both(base: Side, head: Side, stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both at once (one core each)."""
    procs = []
    for side in (base, head):
        procs.append((side, subprocess.Popen(
            [sys.executable, "-m", "nina.cli", "preview", "--stack", stack, "--json", "--show-secrets", "--cwd", str(side.root)],
            cwd=side.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(side.root),
        )))
    results = []
    for side, proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            for _, other in procs:
                other.kill()
            raise EvaluationError(side.label, proc.returncode, err)
        results.append(json.loads(out))
    return results[0], results[1]


def temporary() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="nina-diff-")
