"""An on-premises site's kit (`nina bundle`): what a hospital needs to run its SuperNodes, built by a pipeline of
small builders, one per part, like FLARE's provisioning builders but without any private key.

Each builder is a function (SiteContext) -> {relative path: (content, mode)}: the SuperNodes' settings and the CA
(supernode.py), the wrapper, unit, Dockerfiles, run scripts and README (runtime.py), the VPN client (vpn.py). The
site creates its own ECDSA P-384 key pair and sends only the public key; builders must never add a private key, and
the tests check the result.
"""

from __future__ import annotations

from pathlib import Path

from nina.bundle import check, monitoring, runtime, supernode, vpn
from nina.bundle.context import Builder, Files, SiteContext, organisation_supernodes

BUILDERS: tuple[Builder, ...] = (supernode.files, runtime.files, vpn.files, monitoring.files, check.files)

__all__ = ["BUILDERS", "Files", "SiteContext", "build", "organisation_supernodes", "write"]


def build(ctx: SiteContext) -> Files:
    files: Files = {}
    for builder in BUILDERS:
        for path, value in builder(ctx).items():
            assert path not in files, f"two bundle builders write {path}"
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
