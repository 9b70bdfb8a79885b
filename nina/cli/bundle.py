"""`nina bundle --stack S --org O --out DIR`: write an on-premises organisation's site kit (nina/bundle), from the
deployed stack's output `site_<org>` (--outputs, the real path; the full `pulumi stack output --json` still works)
or an offline evaluation. `--renewal DIR` writes only a renewed VPN certificate (and the CA if it changed)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nina.bundle import SiteContext, build, organisation_supernodes, renewal, vpn, write
from nina.cli.errors import report_stack_error
from nina.config import ConfigError, StackConfig, parse
from nina.offline.evaluate import evaluate
from nina.offline.mocks import mask
from nina.offline.stack_files import StackNotFound, project_root, stack_config
from nina.plan import site

PEM_CERT = "-----BEGIN CERTIFICATE-----"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _site_outputs(args: argparse.Namespace, cfg: StackConfig, root: Path) -> Mapping[str, Any] | str:
    """The site's view (nina/plan/site.py), or why it cannot be had."""
    org = args.org
    name = site.output_name(org)
    if not args.outputs:
        outputs = mask(evaluate(args.stack, root, materialize=args.materialize).outputs, show_secrets=True)
        return site.from_full_outputs(outputs, org, cfg.environment)
    command = f"pulumi stack output {name} --show-secrets --json > {org}.json"
    try:
        loaded = json.loads(Path(args.outputs).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"--outputs {args.outputs}: not JSON from `{command}` ({exc})"
    if loaded == "[secret]" or "[secret]" in json.dumps(loaded):
        return f"--outputs {args.outputs} holds masked secrets: run `{command}`"
    if not isinstance(loaded, dict):
        return f"--outputs {args.outputs}: not a stack output object; run `{command}`"
    if "organisation" in loaded:  # the site's own output
        if loaded["organisation"] != org:
            return f"--outputs {args.outputs} is the output of {loaded['organisation']!r}, not {org!r}: run `{command}`"
        if loaded.get("environment") != cfg.environment:
            return f"--outputs {args.outputs} comes from stack {loaded.get('environment')!r}, not {cfg.environment!r}"
        return loaded
    return site.from_full_outputs(loaded, org, cfg.environment)  # all outputs: the older form


def bundle(args: argparse.Namespace) -> int:
    try:
        root = project_root(Path(args.cwd) if args.cwd else None)
        raw, _, _ = stack_config(root, args.stack)
        cfg = parse(raw)
    except (StackNotFound, ConfigError) as exc:
        return report_stack_error(args.stack, exc)
    org = cfg.organisations.get(args.org)
    if org is None:
        return _fail(f"{args.org!r} is not an organisation in Pulumi.{args.stack}.yaml ({', '.join(cfg.organisations)})")
    if org.hosting != "on_premises":
        return _fail(f"{org.name} is Nectar-hosted: its SuperNodes are configured by `pulumi up`, not by a bundle")
    supernodes = organisation_supernodes(cfg, org.name)
    if not supernodes:
        return _fail(f"{org.name} runs no SuperNode in an active federation")
    found = _site_outputs(args, cfg, root)
    if isinstance(found, str):
        return _fail(found)
    ca_pem = Path(args.ca_file).read_text() if args.ca_file else str(found.get("ca_cert_pem", ""))
    if PEM_CERT not in ca_pem:
        return _fail(
            "no CA certificate offline: pass --outputs with the site's stack output "
            f"(pulumi stack output {site.output_name(org.name)} --show-secrets --json > {org.name}.json) or --ca-file"
        )
    ctx = SiteContext(cfg, org, supernodes, ca_pem, found)
    if args.renewal:
        return _renewal(ctx, Path(args.renewal), Path(args.previous) if args.previous else None)
    files = build(ctx)
    out = Path(args.out)
    write(files, out)
    print(f"bundle for {org.name} ({len(supernodes)} SuperNode(s)) written to {out}: {len(files)} files; no private key")
    shipped = [(c.federation.name, ctx.vpn_output(c.federation.name)) for c in vpn.clients(ctx)]
    _print_record(org.name, [(fed, given) for fed, given in shipped if PEM_CERT in str(given.get("cert_pem", ""))])
    return 0


def _print_record(org: str, certificates: list[tuple[str, Any]]) -> None:
    """The stack's record of the certificates the site now holds (README: Site certificates): it ends the preview's
    warning and moves the SiteCertificateExpiring alerts to them. Quoted: YAML reads a serial of digits as a number
    and the time as a timestamp."""
    if not certificates:
        return
    print(f"once {org} has installed it, record it in the stack file under nina:organisations.{org}:")
    print("  vpn_certificate_shipped:")
    for fed, cert in certificates:
        print(f'    {fed}: {{serial: "{cert.get("serial", "")}", not_after: "{cert.get("not_after", "")}"}}')


def _previous_ca(previous: Path) -> str | None:
    for candidate in (previous / "etc/openvpn/client/ca.crt", *sorted(previous.glob("etc/openvpn/client/*/ca.crt")), *sorted(previous.glob("etc/flwr/supernode/*/certs/ca.pem"))):
        if candidate.is_file():
            return candidate.read_text()
    return None


def _renewal(ctx: SiteContext, out: Path, previous: Path | None) -> int:
    previous_ca = None
    if previous is not None:
        previous_ca = _previous_ca(previous)
        if previous_ca is None:
            return _fail(f"--previous {previous}: no ca.crt or ca.pem in it (the site's last bundle)")
    try:
        files, renewed = renewal.files(ctx, previous_ca)
    except renewal.NotRenewable as exc:
        return _fail(f"{exc}: pass --outputs with the deployed stack's site output")
    if not renewed:
        return _fail(f"{ctx.org.name} joins no federation's VPN: there is no VPN certificate to renew")
    write(files, out)
    for client, cert in renewed:
        print(f"{ctx.org.name} {client.federation.name}: client.crt serial {cert['serial']} valid until {cert['not_after']}")
    _print_record(ctx.org.name, [(client.federation.name, cert) for client, cert in renewed])
    ca = "ca.crt included (changed)" if previous_ca is not None and previous_ca.strip() != ctx.ca_pem.strip() else (
        "ca.crt included (no --previous bundle to compare with)" if previous_ca is None else "CA unchanged"
    )
    print(f"renewal for {ctx.org.name} written to {out}: {len(files)} files ({ca}); see README-RENEWAL.txt")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bundle", help="write an on-premises organisation's SuperNode bundle (no private key)")
    p.add_argument("--stack", required=True)
    p.add_argument("--org", required=True, help="an on-premises organisation of the stack")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="directory to write the bundle to")
    target.add_argument("--renewal", help="directory to write only the renewed VPN certificate(s) to, with README-RENEWAL.txt")
    p.add_argument(
        "--outputs",
        help="the site's stack output: `pulumi stack output site_<org> --show-secrets --json` (or every output, the older form)",
    )
    p.add_argument("--previous", help="with --renewal: the site's previous bundle, so ca.crt is sent only if the CA changed")
    p.add_argument("--ca-file", help="the stack's CA certificate (pulumi stack output ca_cert_pem)")
    p.add_argument("--materialize", action="store_true", help="use a freshly minted CA from the offline evaluation (tests)")
    p.add_argument("--cwd", help="project directory (default: the current one or a parent)")
    p.set_defaults(func=bundle)
