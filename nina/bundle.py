"""`nina bundle --stack S --org O --out DIR`: what an on-premises site needs to run its SuperNodes (issue 4).

Like FLARE's startup kit, but without any private key: the site creates its own ECDSA P-384 key pair and sends
only the public key (README in the bundle). The bundle holds, per SuperNode of the organisation, its supernode.conf
and the platform CA, plus the wrapper script and unit the Nectar hosts use, the §5.7 Dockerfiles (CPU, CUDA), run
scripts for Docker and Podman, and the README for the site's IT team.

Other parts of the platform add files through BUNDLE_CONTRIBUTORS (the VPN client configuration, say): functions
(BundleContext) -> {relative path: (content, mode)}. They must never add a private key; tests check the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nina import layout, names, openvpn
from nina.config import ConfigError, Federation, Organisation, StackConfig, SuperNode, parse
from nina.evaluate import StackNotFound, evaluate, project_root, report_stack_error, stack_config
from nina.mocks import mask

Files = dict[str, tuple[str, int]]  # relative path -> (content, mode)
PEM_CERT = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class BundleContext:
    cfg: StackConfig
    org: Organisation
    supernodes: tuple[tuple[Federation, SuperNode], ...]  # the organisation's SuperNodes, by federation
    ca_pem: str
    outputs: dict[str, Any]  # the stack's outputs, secrets shown: take only what a site may hold


BundleContributor = Callable[[BundleContext], Files]


def _conf_dir(sn: SuperNode) -> str:
    return layout.supernode_dir(sn.name).lstrip("/")


def supernode_files(ctx: BundleContext) -> Files:
    """supernode.conf + CA per SuperNode; the CA sits in the SuperNode's own directory so the container's single
    /etc/flwr/supernode mount carries everything."""
    from components.federation import supernode_conf

    files: Files = {}
    for fed, sn in ctx.supernodes:
        ca_path = f"{layout.supernode_dir(sn.name)}/certs/ca.pem"
        files[f"{_conf_dir(sn)}/supernode.conf"] = (supernode_conf(ctx.cfg, fed, sn, ca_path=ca_path), 0o644)
        files[ca_path.lstrip("/")] = (ctx.ca_pem, 0o644)
    return files


def runtime_files(ctx: BundleContext) -> Files:
    """The same wrapper and unit the Nectar hosts get, the §5.7 Dockerfiles and the §4.1.3.3.2 run scripts."""
    from cloudinit.render import FLWR_VERSION, _env, context

    any_host = next(iter(ctx.cfg.hosts.values()))
    jinja = context(ctx.cfg, any_host)
    files: Files = {
        "opt/flwr/supernode/run_supernode.sh": (_env.get_template("supernode/run_supernode.sh.j2").render(jinja), 0o755),
        "etc/systemd/system/supernode@.service": (_env.get_template("supernode/supernode@.service.j2").render(jinja), 0o644),
    }
    for variant in ("cpu", "cuda"):
        files[f"docker/Dockerfile.{variant}"] = (_env.get_template("supernode/bundle/Dockerfile.j2").render(variant=variant, flwr_version=FLWR_VERSION), 0o644)
    feds = dict.fromkeys(fed.name for fed, _ in ctx.supernodes)
    superlinks = [
        (f, names.fqdn(ctx.cfg, names.superlink_alias(ctx.cfg.federations[f])), str(ctx.cfg.hosts[ctx.cfg.federations[f].superlink_host].ip))
        for f in feds
    ]
    default_name = ctx.supernodes[0][1].name
    for script, engine, image, gpu in (
        ("run-docker.sh", "docker", f"nina-supernode-cpu:{FLWR_VERSION}", False),
        ("run-docker-gpu.sh", "docker", f"nina-supernode-cuda:{FLWR_VERSION}", True),
        ("run-podman.sh", "podman", f"localhost/nina-supernode-cpu:{FLWR_VERSION}", False),
    ):
        text = _env.get_template("supernode/bundle/run-container.sh.j2").render(
            script=f"docker/{script}", engine=engine, image=image, gpu=gpu, superlinks=superlinks, default_name=default_name
        )
        files[f"docker/{script}"] = (text, 0o755)
    from components.federation import PUBLIC_PORT

    addresses = {f: f"{address}:{PUBLIC_PORT}" for f, address, _ in superlinks}
    readme = _env.get_template("supernode/bundle/README.md.j2").render(
        cfg=ctx.cfg, org=ctx.org, supernodes=ctx.supernodes, superlinks=superlinks, addresses=addresses, flwr_version=FLWR_VERSION
    )
    files["README.md"] = (readme, 0o644)
    return files


# The VPN client configuration is added here by the VPN component (README: VPN).
BUNDLE_CONTRIBUTORS: list[BundleContributor] = [supernode_files, runtime_files, openvpn.bundle_files]


def organisation_supernodes(cfg: StackConfig, org: str) -> tuple[tuple[Federation, SuperNode], ...]:
    return tuple((f, sn) for f in cfg.federations.values() if not f.archived for sn in f.supernodes if sn.organisation == org)


def build(ctx: BundleContext) -> Files:
    files: Files = {}
    for contribute in BUNDLE_CONTRIBUTORS:
        for path, value in contribute(ctx).items():
            assert path not in files, f"two bundle contributors write {path}"
            files[path] = value
    return files


def write(files: Files, out: Path) -> list[Path]:
    written = []
    for rel, (content, mode) in sorted(files.items()):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
        written.append(target)
    return written


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
    files = build(BundleContext(cfg, org, supernodes, ca_pem, outputs))
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
