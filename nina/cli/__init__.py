"""`nina`: the offline companion of `pulumi` for this project.

    nina preview --stack test [--json] [--show-secrets] [--materialize] [--out DIR]
    nina bundle --stack uat --org metro-north --out DIR [--outputs outputs.json | --ca-file ca.pem]
    nina diff --stack uat [--base REV] [--head REV|worktree] [--format text|markdown|json]

`preview` runs the real `__main__.py` with `Pulumi.<stack>.yaml` under Pulumi mocks and prints the resources it would
create; `bundle` writes an on-premises site's kit; `diff` reports what a change does to a stack (exit 0 none, 1
changes, 2 invalid stack, 3 dangerous). Exit codes: 0 ok, 2 bad stack configuration (one line per
problem), 3 no such stack.
"""

from __future__ import annotations

import argparse

from nina.cli import bundle, diff, preview


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    preview.add_parser(sub)
    bundle.add_parser(sub)  # nina bundle --stack S --org O --out DIR: an on-premises site's SuperNode bundle
    diff.add_parser(sub)  # nina diff --stack S [--base REV] [--head REV]: what a change does, for reviewers
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
