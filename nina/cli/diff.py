"""`nina diff --stack S [--base REV] [--head REV|worktree]`: what going from one revision of the repository to another
does to a stack, as a reviewer needs it (README "Reviewing a change"): replacements with their cause, every file
that changes inside a VM's user-data or a host's delivery, the units that restart, registrations and certificates,
and a danger section first.

Exit status: 0 no change, 1 changes, 2 a stack file is invalid on either side (as `nina preview`), 3 a dangerous
change (a replaced VM or stateful resource, a protected resource, a port opened to the internet, a wider group).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from nina.review import evaluations, report

NO_STACK = 3  # `nina preview`'s status when the stack file does not exist on that side


def _project(root: Path) -> str:
    data = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    return str(data.get("name", "project"))


def _evaluate_pair(base: evaluations.Side, head: evaluations.Side, stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides; a stack file missing on one side is an empty stack there (a stack being added or retired)."""
    empty = {"stack": stack, "resources": [], "outputs": {}}
    try:
        return evaluations.evaluate_both(base, head, stack)
    except evaluations.EvaluationError as exc:
        if exc.status != NO_STACK:
            raise
    sides = []
    missing = []
    for side in (base, head):
        try:
            sides.append(evaluations.evaluate(side, stack))
        except evaluations.EvaluationError as exc:
            if exc.status != NO_STACK:
                raise
            sides.append(empty)
            missing.append(exc)
    if len(missing) == 2:  # a misspelt stack is not "no change"
        raise evaluations.EvaluationError("both sides", 2, f"no stack file Pulumi.{stack}.yaml on either side")
    return sides[0], sides[1]


def diff(args: argparse.Namespace) -> int:
    """Any failure is status 2: 1 must only ever mean "changes" (CI reads it)."""
    try:
        return _diff(args)
    except Exception as exc:  # noqa: BLE001 - reported, and never mistaken for a change
        print(f"error: nina diff failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _diff(args: argparse.Namespace) -> int:
    try:
        repo = evaluations.git_root(Path(args.cwd or "."))
    except Exception:
        if not (args.base_dir and args.head_dir):
            print("error: nina diff compares git revisions inside the project's repository (or give --base-dir and --head-dir)", file=sys.stderr)
            return 2
        repo = Path(args.head_dir)
    with evaluations.temporary() as tmp:
        try:
            for given in (args.base_dir, args.head_dir):
                if given and not (Path(given) / "Pulumi.yaml").is_file():
                    raise evaluations.EvaluationError(given, 2, f"{given} is not a project directory (no Pulumi.yaml)")
            if args.base_dir:
                base = evaluations.Side(args.base_dir, Path(args.base_dir))
            else:
                base = evaluations.export(repo, args.base, Path(tmp) / "base")
            if args.head_dir:
                head = evaluations.Side(args.head_dir, Path(args.head_dir))
            elif args.head == "worktree":
                head = evaluations.Side("worktree", repo)
            else:
                head = evaluations.export(repo, args.head, Path(tmp) / "head")
            before, after = _evaluate_pair(base, head, args.stack)
        except evaluations.EvaluationError as exc:
            print(f"error: {exc.side}:", file=sys.stderr)
            sys.stderr.write(exc.stderr if exc.stderr.endswith("\n") else exc.stderr + "\n")
            return 2
        result = report.build(args.stack, base.label, head.label, before, after, _project(head.root))
    render = {"text": report.as_text, "markdown": report.as_markdown, "json": report.as_json}[args.format]
    sys.stdout.write(render(result))
    return result.status


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diff", help="what a change does to a stack: replacements, file diffs per host, restarts, dangers")
    p.add_argument("--stack", required=True)
    p.add_argument("--base", default="HEAD", help="git revision to compare from (default HEAD)")
    p.add_argument("--head", default="worktree", help="git revision to compare to, or 'worktree' (default)")
    p.add_argument("--base-dir", help="compare from this project directory instead of a revision")
    p.add_argument("--head-dir", help="compare to this project directory instead of a revision")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--cwd", help="a directory inside the repository (default: the current one)")
    p.set_defaults(func=diff)
