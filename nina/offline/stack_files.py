"""Reading a project's configuration exactly as the Pulumi CLI hands it to the program.

The CLI merges two files (pulumi/pulumi sdk/go/common/workspace: project.go, config.go, resource/config/value.go):

- `Pulumi.yaml`'s `config:` holds project-level values, defaults for every stack. A key in another namespace than
  the project's (ours: `nina:`) takes a plain value (`nina:x: 5`, or a list) or `{value: ...}` for an object; it
  may not declare a `type` or a `default`.
- `Pulumi.<stack>.yaml`'s `config:` holds the stack's own values. A stack value replaces the project value of the
  same key whole: objects are not merged.

The program receives every value as a string: scalars as text, objects and lists as JSON that Go's encoder wrote
(keys sorted, integral numbers without a fraction). So the program sees `nina:hosts` in alphabetical order,
whatever order the file lists them in, and this module gives the preview the same. `secure:` values become
secrets the preview cannot decrypt; required secrets that are not set yet (a fresh checkout never has the operators'
SSH key) are stood in by a placeholder so the preview still shows the plan, and `pulumi up` refuses without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nina.config import NAMESPACE, REQUIRED_SECRETS, ConfigError

PROJECT_FILE = "Pulumi.yaml"
# Stands in for a secure value the preview cannot decrypt (offline there is no passphrase or KMS); shaped like a
# valid password so the stand-in passes the same checks the real value must.
OFFLINE_SECRET = "secret-from-stack-config"
# A project config key's attributes (Pulumi's ProjectConfigType).
PROJECT_CONFIG_ATTRIBUTES = frozenset({"type", "description", "items", "default", "value", "secret"})


class StackNotFound(Exception):
    pass


class ProjectConfigError(ConfigError):
    """Pulumi.yaml's `config:` is not what the Pulumi CLI accepts."""


class _Loader(yaml.SafeLoader):
    """YAML as Go's decoder reads it into Pulumi's config: an unquoted date stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(), Loader=_Loader) or {}  # noqa: S506 (a SafeLoader)
    if not isinstance(document, dict):
        raise (ProjectConfigError if path.name == PROJECT_FILE else ConfigError)([f"{path.name}: is not a YAML mapping"])
    return document


def project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise StackNotFound(f"no {PROJECT_FILE} in {here} or its parents")


def project_name(root: Path) -> str:
    return str(_load(root / PROJECT_FILE).get("name", ""))


def _go_json(value: Any) -> Any:
    """What Go's encoder makes of a decoded YAML value: an integral float is written without a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k).lower() if isinstance(k, bool) else str(k): _go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_json(v) for v in value]
    return value


def config_string(value: Any) -> str:
    """A config value as the program receives it: text for a scalar, Go's JSON for an object or a list."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(_go_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _namespaced(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def project_config(root: Path) -> dict[str, str]:
    """The values Pulumi.yaml's `config:` gives every stack (keys in namespaces other than the project's)."""
    document = _load(root / PROJECT_FILE)
    project = str(document.get("name", ""))
    problems: list[str] = []
    values: dict[str, str] = {}
    for key, spec in (document.get("config") or {}).items():
        where = f"{PROJECT_FILE}: config.{key}"
        by_project = ":" not in key or key.startswith(f"{project}:")
        if not isinstance(spec, dict):
            if by_project:
                continue  # a default of a typed project key; this program reads only nina: keys
            values[_namespaced(project, key)] = config_string(spec)
            continue
        unknown = sorted(set(spec) - PROJECT_CONFIG_ATTRIBUTES)
        if unknown:
            problems.append(f"{where}: unknown attribute(s) {', '.join(unknown)}; an object value goes under `value:`")
        elif "value" in spec and "default" in spec:
            problems.append(f"{where}: cannot have both a 'default' and a 'value' attribute")
        elif not by_project and ("type" in spec or "default" in spec):
            problems.append(f"{where}: is not namespaced by the project ({project}) and may set only `value:`")
        elif not by_project and "value" not in spec:
            problems.append(f"{where}: is namespaced and must provide an attribute 'value'")
        elif "value" in spec:
            values[_namespaced(project, key)] = config_string(spec["value"])
    if problems:
        raise ProjectConfigError(problems)
    return values


def _secure(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` (at any depth) with what an offline preview can show; whether there was one."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return OFFLINE_SECRET, True
    if isinstance(value, dict):
        found = False
        out = {}
        for k, v in value.items():
            out[k], inner = _secure(v)
            found = found or inner
        return out, found
    if isinstance(value, list):
        items = [_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def stack_config(root: Path, stack: str) -> tuple[dict[str, str], list[str], list[str]]:
    """The config the program of `stack` receives: {key: string}, the secret keys, and warnings."""
    document = _load(root / PROJECT_FILE)
    project = str(document.get("name", ""))
    directory = root / str(document.get("stackConfigDir") or ".")
    path = directory / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))
        raise StackNotFound(f"stack {stack!r}: {path.name} not found (stacks here: {', '.join(known)})")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, raw in (_load(path).get("config") or {}).items():
        value, secret = _secure(raw)
        key = _namespaced(project, key)
        config[key] = OFFLINE_SECRET if value == OFFLINE_SECRET else config_string(value)
        if secret:
            secret_keys.append(key)
    for key, value in project_config(root).items():
        config.setdefault(key, value)  # a stack's own value replaces the project's whole
    warnings = []
    for name in REQUIRED_SECRETS:
        key = f"{NAMESPACE}:{name}"
        if key not in config:
            config[key] = f"[secret {key} not set]"
            secret_keys.append(key)
            warnings.append(f"{key} is not set in {path.name}; previewing with a placeholder. Before `pulumi up`: pulumi config set --secret {key} < key-file")
    return dict(sorted(config.items())), secret_keys, warnings
