"""Just the renewed files for one site (`nina bundle --renewal DIR`): per VPN federation the new client.crt, and
ca.crt (with the SuperNodes' copies of the CA) only when the CA changed, plus README-RENEWAL.txt saying where they
go and how to restart the client. The site's key is untouched: pulumi-tls re-signs the same CSR (README: VPN)."""

from __future__ import annotations

from cloudinit import render_template
from nina.bundle import vpn
from nina.bundle.context import Files, SiteContext
from nina.catalog import layout

PEM_CERT = "-----BEGIN CERTIFICATE-----"


class NotRenewable(ValueError):
    """The outputs hold no issued certificate for a federation (offline placeholders, or masked secrets)."""


def files(ctx: SiteContext, previous_ca: str | None) -> tuple[Files, list[tuple[vpn.Client, dict[str, str]]]]:
    """(files, [(client, its certificate's serial and not_after)]). previous_ca None: unknown, so ca.crt is sent."""
    ca_changed = previous_ca is None or previous_ca.strip() != ctx.ca_pem.strip()
    out: Files = {}
    renewed = []
    for client in vpn.clients(ctx):
        given = ctx.vpn_output(client.federation.name)
        cert = str(given.get("cert_pem", ""))
        if not cert.startswith(PEM_CERT):
            raise NotRenewable(f"{client.federation.name}: the outputs hold no certificate for {ctx.org.name} ({cert[:40]!r})")
        out[client.files["client.crt"].lstrip("/")] = (cert, 0o644)
        if ca_changed:
            out[client.files["ca.crt"].lstrip("/")] = (ctx.ca_pem, 0o644)
        renewed.append((client, {"serial": str(given.get("serial", "")), "not_after": str(given.get("not_after", ""))}))
    if ca_changed:
        for _, sn in ctx.supernodes:
            out[f"{layout.supernode_dir(sn.name).lstrip('/')}/certs/ca.pem"] = (ctx.ca_pem, 0o644)
    readme = render_template(
        "supernode/bundle/README-RENEWAL.txt.j2", ctx.cfg, org=ctx.org, renewed=renewed, ca_changed=ca_changed, supernodes=ctx.supernodes,
    )
    out["README-RENEWAL.txt"] = (readme, 0o644)
    return out, renewed
