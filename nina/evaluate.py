"""Evaluate the real `__main__.py` for one stack under Pulumi mocks: no cloud, no Pulumi CLI.

Reads `Pulumi.<stack>.yaml` from the project root as Pulumi does (structured values become JSON strings, `secure:`
values are secrets), runs the program in this process and returns what it registered. One evaluation per process:
Pulumi's runtime keeps global state (use `nina preview --json` in a subprocess to compare two runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from nina.config import NAMESPACE, REQUIRED_SECRETS
from nina.mocks import NinaMocks, RecordingMonitor, Registration, mask

PROJECT = "nina-fl"
# What `pulumi preview` would show for a secure value it cannot decrypt offline.
OFFLINE_SECRET = "[secret from stack config]"


class StackNotFound(Exception):
    pass


def report_stack_error(stack: str, exc: Exception) -> int:
    """What every `nina` command prints for a missing or invalid stack file; returns its exit code (3 or 2)."""
    from nina.config import ConfigError

    if isinstance(exc, ConfigError):
        print(f"error: Pulumi.{stack}.yaml is invalid; no resource was registered:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(f"error: {exc}", file=sys.stderr)
    return 3


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


@dataclass
class Evaluation:
    stack: str
    resources: list[Registration]  # depth-first, children sorted by (type, name): stable across runs
    outputs: dict[str, Any]  # secrets still wrapped; use nina.mocks.mask
    warnings: list[str] = field(default_factory=list)  # what `pulumi preview` would print as warnings

    def by_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, type_token: str, name: str) -> Registration:
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{type_token} {name}: {len(matches)} matches")
        return matches[0]

    def as_json(self, show_secrets: bool = False) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [
                {"type": r.type, "name": r.name, "parent": r.parent, "inputs": mask(_clean(r.inputs), show_secrets)}
                for r in self.resources
            ],
            "outputs": mask(self.outputs, show_secrets),
        }


def _clean(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(inputs.items()) if not k.startswith("__")}


def _ordered(registrations: list[Registration]) -> list[Registration]:
    children: dict[str, list[Registration]] = {}
    for reg in registrations:
        children.setdefault(reg.parent, []).append(reg)
    out: list[Registration] = []

    def walk(parent: str) -> None:
        for reg in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            out.append(reg)
            walk(f"{reg.type}::{reg.name}")

    walk("")
    return out


class _CollectingHandler(logging.Handler):
    """Collects what the program logs with pulumi.log.warn (the engine would print it in `pulumi preview`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.warnings.append(record.getMessage())


def evaluate(stack: str, root: Path | None = None, materialize: bool = False, config: dict[str, str] | None = None) -> Evaluation:
    """Run the program for `stack`. Raises nina.config.ConfigError on bad configuration (nothing registered)."""
    root = root or project_root()
    secret_keys: list[str] = []
    warnings: list[str] = []
    if config is None:
        config, secret_keys, warnings = stack_config(root, stack)
    mocks = NinaMocks(materialize=materialize)
    monitor = RecordingMonitor(mocks)
    logged = _CollectingHandler()
    logger = logging.getLogger("nina.preview")
    logger.propagate = False
    logger.addHandler(logged)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, logger=logger)
    pulumi.runtime.set_all_config(config, secret_keys)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    runpy.run_path(str(root / "__main__.py"), run_name="__main__")
    loop = asyncio.get_event_loop()
    loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    root_resource = pulumi.runtime.settings.get_root_resource()
    outputs: dict[str, Any] = {}
    if root_resource is not None:
        serialized = _sync_await(rpc.serialize_properties(getattr(root_resource, "outputs", {}), {}))
        outputs = rpc.deserialize_properties(serialized)
    return Evaluation(stack, _ordered(list(monitor.registrations.values())), outputs, warnings + sorted(set(logged.warnings)))
