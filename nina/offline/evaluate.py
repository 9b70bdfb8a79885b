"""Evaluate the real `__main__.py` for one stack under Pulumi mocks: no cloud, no Pulumi CLI.

Reads the stack's config as the Pulumi CLI would (nina/offline/stack_files.py), runs the program in this process and
returns what it registered. One evaluation per process: Pulumi's runtime keeps global state (use
`nina preview --json` in a subprocess to compare two runs).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from nina.offline.mocks import NinaMocks, RecordingMonitor, Registration, mask
from nina.offline.stack_files import project_name, project_root, stack_config


@dataclass
class Evaluation:
    stack: str
    resources: list[Registration]  # depth-first, children sorted by (type, name): stable across runs
    outputs: dict[str, Any]  # secrets still wrapped; use nina.offline.mocks.mask
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
                {
                    "type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom, "protect": r.protect,
                    "replace_on_changes": list(r.replace_on_changes), "inputs": mask(_clean(r.inputs), show_secrets),
                }
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
    pulumi.runtime.set_mocks(mocks, project=project_name(root), stack=stack, preview=False, monitor=monitor, logger=logger)
    pulumi.runtime.set_all_config(config, secret_keys)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    runpy.run_path(str(root / "__main__.py"), run_name="__main__")
    # Under mocks the root Stack registered its (empty) outputs before the program ran; register the exports as the
    # engine would receive them at the end of a real run. The monitor keeps them, secrets still marked.
    root_resource = pulumi.runtime.settings.get_root_resource()
    if isinstance(root_resource, pulumi.ComponentResource):
        root_resource.register_outputs(getattr(root_resource, "outputs", {}))
    loop = asyncio.get_event_loop()
    loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    # The program ran on this loop and the mock monitor answered on its executor's threads, each with a loop of its
    # own: end and close them all now, while the interpreter is whole, rather than leave them to its shutdown (where
    # closing a loop prints "Exception ignored ... Invalid file descriptor" now and then). One evaluation per process.
    loop.run_until_complete(loop.shutdown_default_executor())
    for leftover in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
        if not leftover.is_running() and not leftover.is_closed():
            leftover.close()
    gc.collect()
    return Evaluation(stack, _ordered(list(monitor.registrations.values())), monitor.stack_outputs, warnings + sorted(set(logged.warnings)))
