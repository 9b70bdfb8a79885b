"""Which input changes replace a resource rather than update it in place: what `nina diff` tells reviewers.

- pulumi-openstack: the bridged terraform-provider-openstack's `ForceNew` arguments, generated from the provider's
  source into replace_rules.json (scripts/replacement-rules.py; its version is recorded there).
- pulumi-tls and pulumi-random bridge terraform-provider-tls and -random, whose resources replace on any argument
  change (every argument is RequiresReplace); a certificate also replaces once it is ready for renewal.
- Whatever the program itself declares: `replace_on_changes` (pulumi-command's `triggers`), recorded per resource
  by the offline evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

_TABLE = json.loads((Path(__file__).with_name("replace_rules.json")).read_text())
PROVIDER_VERSION: str = _TABLE["provider_version"]  # terraform-provider-openstack's, e.g. "v3.4.0"
FORCE_NEW: dict[str, tuple[str, ...]] = {token: tuple(props) for token, props in _TABLE["force_new"].items()}

EVERY_INPUT = (
    "tls:index/privateKey:PrivateKey",
    "tls:index/certRequest:CertRequest",
    "tls:index/locallySignedCert:LocallySignedCert",
    "tls:index/selfSignedCert:SelfSignedCert",
    "random:index/randomPassword:RandomPassword",
    "random:index/randomBytes:RandomBytes",
)


def replaced_by(type_token: str, prop: str, replace_on_changes: tuple[str, ...] = ()) -> str | None:
    """Why changing `prop` of a `type_token` resource replaces it (a short reason), or None if it updates in place."""
    if type_token in EVERY_INPUT:
        return f"{type_token.split(':')[0]}: every input replaces"
    if prop in FORCE_NEW.get(type_token, ()):
        return f"ForceNew in terraform-provider-openstack {PROVIDER_VERSION}"
    if any(rule.split("[", 1)[0].split(".", 1)[0] == prop for rule in replace_on_changes):
        return "replaceOnChanges"
    return None
