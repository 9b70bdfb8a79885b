"""`nina bundle --stack S --org O --out DIR`: write an on-premises organisation's site kit (nina/bundle), from the
deployed stack's outputs (--outputs, the real path) or an offline evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nina.bundle import SiteContext, build, organisation_supernodes, write
from nina.cli.errors import report_stack_error
from nina.config import ConfigError, parse
from nina.offline.evaluate import evaluate
from nina.offline.mocks import mask
from nina.offline.stack_files import StackNotFound, project_root, stack_config

PEM_CERT = "-----BEGIN CERTIFICATE-----"


def bundle(args: argparse.Namespace) -> int:
    try:
        root = project_root(Path(args.cwd) if args.cwd else None)
        raw, _, _ = stack_config(root, args.stack)
        cfg = parse(raw)
    except (StackNotFound, ConfigError) as exc:
        return report_stack_error(args.stack, exc)
    org = cfg.organisations.get(args.org)
    if org is None:
        print(f"error: {args.org!r} is not an organisation in Pulumi.{args.stack}.yaml ({', '.join(cfg.organisations)})", file=sys.stderr)
        return 2
    if org.hosting != "on_premises":
        print(f"error: {org.name} is Nectar-hosted: its SuperNodes are configured by `pulumi up`, not by a bundle", file=sys.stderr)
        return 2
    supernodes = organisation_supernodes(cfg, org.name)
    if not supernodes:
        print(f"error: {org.name} runs no SuperNode in an active federation", file=sys.stderr)
        return 2
    if args.outputs:
        # The deployed stack's own values: CA, floating IP, the site's certificate, the tls-crypt key.
        try:
            outputs = json.loads(Path(args.outputs).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: --outputs {args.outputs}: not the JSON of `pulumi stack output --json --show-secrets` ({exc})", file=sys.stderr)
            return 2
        if "[secret]" in json.dumps(outputs):
            print("error: --outputs holds masked secrets: run `pulumi stack output --json --show-secrets`", file=sys.stderr)
            return 2
    else:
        outputs = mask(evaluate(args.stack, root, materialize=args.materialize).outputs, show_secrets=True)
    ca_pem = Path(args.ca_file).read_text() if args.ca_file else str(outputs.get("ca_cert_pem", ""))
    if PEM_CERT not in ca_pem:
        print(
            "error: no CA certificate offline: pass --outputs with the deployed stack's outputs "
            "(pulumi stack output --json --show-secrets > outputs.json) or --ca-file",
            file=sys.stderr,
        )
        return 2
    files = build(SiteContext(cfg, org, supernodes, ca_pem, outputs))
    out = Path(args.out)
    write(files, out)
    print(f"bundle for {org.name} ({len(supernodes)} SuperNode(s)) written to {out}: {len(files)} files; no private key")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bundle", help="write an on-premises organisation's SuperNode bundle (no private key)")
    p.add_argument("--stack", required=True)
    p.add_argument("--org", required=True, help="an on-premises organisation of the stack")
    p.add_argument("--out", required=True, help="directory to write the bundle to")
    p.add_argument("--outputs", help="`pulumi stack output --json --show-secrets` of the deployed stack (the real path)")
    p.add_argument("--ca-file", help="the stack's CA certificate (pulumi stack output ca_cert_pem)")
    p.add_argument("--materialize", action="store_true", help="use a freshly minted CA from the offline evaluation (tests)")
    p.add_argument("--cwd", help="project directory (default: the current one or a parent)")
    p.set_defaults(func=bundle)
