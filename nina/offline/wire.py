"""How secrets look on the Pulumi wire: a resource's inputs and outputs mark a secret value as
`{SIG_KEY: SECRET_SIG, "value": ...}`. The mocks receive inputs in that form and return outputs in it; the preview
masks them. The two constants are Pulumi's RPC protocol (`specialSigKey`, `secretSig`), stable across SDK versions;
tests/test_offline.py checks them against what the installed SDK serialises for `pulumi.Output.secret`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """Strip secret wrappers recursively (for feeding values to emulators)."""
    if is_secret(value):
        return unwrap(value.get("value"))
    if isinstance(value, Mapping):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    return value


def mask(value: Any, show_secrets: bool = False) -> Any:
    """Secrets become "[secret]" (or their plain value with show_secrets); floats that are ints become ints."""
    if is_secret(value):
        return mask(value["value"], show_secrets) if show_secrets else "[secret]"
    if isinstance(value, dict):
        return {k: mask(v, show_secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, show_secrets) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
