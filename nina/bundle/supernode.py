"""The site's SuperNode settings: per SuperNode its supernode.conf (the template the Nectar hosts get, with the CA
beside it) and the platform CA. The CA sits in the SuperNode's own directory so the container's single
/etc/flwr/supernode mount carries everything."""

from __future__ import annotations

from cloudinit import render_template
from nina.bundle.context import Files, SiteContext
from nina.catalog import layout


def files(ctx: SiteContext) -> Files:
    out: Files = {}
    for fed, sn in ctx.supernodes:
        ca_path = f"{layout.supernode_dir(sn.name)}/certs/ca.pem"
        conf = render_template(
            "supernode/supernode.conf.j2", ctx.cfg, federation=fed.name, supernode=sn.name, ca_path=ca_path,
            superexec_secret=layout.supernode_superexec_secret(sn.name),  # the site makes it (README, step 3)
        )
        out[f"{layout.supernode_dir(sn.name).lstrip('/')}/supernode.conf"] = (conf, 0o644)
        out[ca_path.lstrip("/")] = (ctx.ca_pem, 0o644)
    return out
