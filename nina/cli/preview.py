"""`nina preview --stack S`: the real program evaluated offline under Pulumi mocks, printed as the resources it
would create (a tree, or --json), each host's user-data written with --out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cloudinit import decode_user_data
from nina.cli.errors import report_stack_error
from nina.config import ConfigError
from nina.offline.evaluate import Evaluation, evaluate
from nina.offline.mocks import mask
from nina.offline.stack_files import StackNotFound, project_root

INSTANCE = "openstack:compute/instance:Instance"


def _tree(ev: Evaluation) -> str:
    depth: dict[str, int] = {"": 0}
    lines = [f"Stack {ev.stack}: {len(ev.resources)} resources (offline preview under mocks; nothing was created)", ""]
    for r in ev.resources:
        key = f"{r.type}::{r.name}"
        depth[key] = depth.get(r.parent, 0) + 1
        lines.append(f"{'  ' * (depth[key] - 1)}+ {r.type}  {r.name}")
    lines += ["", "Outputs:"]
    lines += _outputs(mask(ev.outputs), 1)
    return "\n".join(lines) + "\n"


def _outputs(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for k in sorted(value):
            v = value[k]
            if isinstance(v, (dict, list)):
                out.append(f"{pad}{k}:")
                out += _outputs(v, indent + 1)
            else:
                out.append(f"{pad}{k}: {v}")
        return out
    if isinstance(value, list):
        return [f"{pad}- {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}" for v in value]
    return [f"{pad}{value}"]


def write_host_files(ev: Evaluation, out: Path) -> list[Path]:
    """DIR/hosts/<host>/user-data exactly as the instance receives it, and the decoded cloud-config beside it."""
    written = []
    for r in ev.by_type(INSTANCE):
        host_dir = out / "hosts" / r.name
        host_dir.mkdir(parents=True, exist_ok=True)
        data = mask(r.inputs.get("userData", ""))
        (host_dir / "user-data").write_text(data)
        (host_dir / "cloud-config.yaml").write_text(decode_user_data(data))
        written.append(host_dir / "user-data")
    return written


def preview(args: argparse.Namespace) -> int:
    try:
        root = project_root(Path(args.cwd) if args.cwd else None)
        ev = evaluate(args.stack, root, materialize=args.materialize)
    except (StackNotFound, ConfigError) as exc:
        return report_stack_error(args.stack, exc)
    for warning in ev.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out:
        write_host_files(ev, Path(args.out))
    if args.json:
        sys.stdout.write(json.dumps(ev.as_json(args.show_secrets), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(_tree(ev))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("preview", help="evaluate a stack offline and print what it would create")
    p.add_argument("--stack", required=True, help="reads Pulumi.<stack>.yaml from the project root")
    p.add_argument("--json", action="store_true", help="machine-readable: stack, resources, outputs")
    p.add_argument("--show-secrets", action="store_true", help="print secret values instead of [secret]")
    p.add_argument("--materialize", action="store_true", help="real keys and certificates (not deterministic)")
    p.add_argument("--out", help="write each host's exact user-data to DIR/hosts/<host>/user-data")
    p.add_argument("--cwd", help="project directory (default: the current one or a parent)")
    p.set_defaults(func=preview)
