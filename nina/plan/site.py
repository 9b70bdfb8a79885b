"""What an on-premises site's kit reads from the deployed stack: the stack output `site_<organisation>`.

components/outputs.py writes it; `nina bundle --outputs` (nina/bundle) reads it, or builds the same shape from the
stack's full outputs (`from_full_outputs`, the older form of `--outputs`). The shape, all of it the site's own:

    organisation, environment, ca_cert_pem,
    supernode_public_keys: {federation: {supernode: OpenSSH public key}}   # as registered with the SuperLink
    vpn: {federation: {server, remotes, verify_x509_name, tls_crypt_key,   # the tenancy's, for its members only
                       cert_pem, serial, not_after, addresses, key}}       # the site's own client certificate

Never a private key: an organisation without `vpn_csr` has its generated key in the `vpn` output only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OUTPUT_PREFIX = "site_"
VPN_KEYS = ("server", "remotes", "verify_x509_name", "tls_crypt_key")  # per federation, from the `vpn` output
CLIENT_KEYS = ("cert_pem", "serial", "not_after", "addresses", "key")  # the site's entry of vpn.<fed>.clients


def output_name(org: str) -> str:
    """A flat name: `pulumi stack output <name>` reads one top-level output."""
    return f"{OUTPUT_PREFIX}{org}"


def vpn_entry(federation_output: Mapping[str, Any], org: str) -> dict[str, Any] | None:
    """The site's part of one federation's `vpn` output, or None when it is not a VPN client there."""
    client = federation_output.get("clients", {}).get(org)
    if client is None:
        return None
    entry = {k: federation_output[k] for k in VPN_KEYS if k in federation_output}
    entry.update({k: client[k] for k in CLIENT_KEYS if k in client})
    return entry


def from_full_outputs(outputs: Mapping[str, Any], org: str, environment: str) -> dict[str, Any]:
    """The site's view of `pulumi stack output --json --show-secrets` (all outputs): a stack deployed before
    `site_<org>` existed, or an operator who kept the old command."""
    if output_name(org) in outputs:
        return dict(outputs[output_name(org)])
    vpn: dict[str, Any] = {}
    for fed, fed_out in sorted(outputs.get("vpn", {}).items()):
        entry = vpn_entry(fed_out, org)
        if entry is not None:
            vpn[fed] = entry
    return {
        "organisation": org,
        "environment": environment,
        "ca_cert_pem": outputs.get("ca_cert_pem", ""),
        "supernode_public_keys": {},
        "vpn": vpn,
    }
