"""Reading a project's stack files as the Pulumi CLI hands them to the program: `Pulumi.<stack>.yaml` becomes
{key: string} with structured values as JSON strings and `secure:` values as secrets.

Required secrets that the stack file does not hold yet (a fresh checkout never has the operators' SSH key) are
stood in by a placeholder so the preview still shows the plan; `pulumi up` itself refuses without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from nina.config import NAMESPACE, REQUIRED_SECRETS

PROJECT = "nina-fl"
# What `pulumi preview` would show for a secure value it cannot decrypt offline.
OFFLINE_SECRET = "[secret from stack config]"


class StackNotFound(Exception):
    pass


def project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    raise StackNotFound(f"no Pulumi.yaml in {here} or its parents")


def stack_config(root: Path, stack: str) -> tuple[dict[str, str], list[str], list[str]]:
    """Pulumi.<stack>.yaml as Pulumi passes it to a program: {key: string}, the secret keys, and warnings.

    Required secrets that the stack file does not hold yet (a fresh checkout never has the operators' SSH key) are
    stood in by a placeholder so the preview still shows the plan; `pulumi up` itself refuses without them.
    """
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise StackNotFound(f"stack {stack!r}: {path.name} not found (stacks here: {', '.join(known)})")
    document = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = OFFLINE_SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    warnings = []
    for name in REQUIRED_SECRETS:
        key = f"{NAMESPACE}:{name}"
        if key not in config:
            config[key] = f"[secret {key} not set]"
            secret_keys.append(key)
            warnings.append(f"{key} is not set in {path.name}; previewing with a placeholder. Before `pulumi up`: pulumi config set --secret {key} < key-file")
    return config, secret_keys, warnings
