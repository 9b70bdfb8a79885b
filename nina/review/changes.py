"""Resource by resource: what `pulumi up` would do to go from one evaluation to the other, and why.

A resource is known by its type and name (its URN without the stack); custom resources only (components hold no
state). An input change replaces the resource when the provider or the program says so (nina/catalog/
replacements.py), otherwise it is an update in place. Values are compared as the offline evaluation records them:
a placeholder for something only the cloud knows (an address, an id) is stable, so it changes only when what it
stands for does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from nina.catalog import replacements

CREATE, UPDATE, REPLACE, DELETE = "create", "update", "replace", "delete"


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    protect: bool
    replace_on_changes: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.type}::{self.name}"


@dataclass
class Change:
    kind: str  # CREATE, UPDATE, REPLACE, DELETE
    resource: Resource  # the head's (the base's for a delete)
    urn: str
    properties: list[str] = field(default_factory=list)  # inputs that differ
    causes: dict[str, str] = field(default_factory=dict)  # for a replacement: input -> why it replaces
    before: Resource | None = None


def resources(document: dict[str, Any]) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for r in document["resources"]:
        # Components hold no state. (Evaluations older than `nina diff` do not say: ours are the nina:* types.)
        if not r.get("custom", not r["type"].startswith("nina:")):
            continue
        res = Resource(r["type"], r["name"], r.get("parent", ""), r.get("inputs", {}), bool(r.get("protect")), tuple(r.get("replace_on_changes", ())))
        out[res.key] = res
    return out


def urn(document: dict[str, Any], project: str, key: str) -> str:
    """The resource's URN as Pulumi builds it: the chain of parent types, then the type and the name."""
    by_key = {f"{r['type']}::{r['name']}": r for r in document["resources"]}
    chain = []
    current = by_key.get(key)
    while current is not None:
        chain.append(current["type"])
        current = by_key.get(current.get("parent", ""))
    name = key.split("::", 1)[1]
    return f"urn:pulumi:{document['stack']}::{project}::{'$'.join(reversed(chain))}::{name}"


def compare(base: dict[str, Any], head: dict[str, Any], project: str) -> list[Change]:
    before, after = resources(base), resources(head)
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            changes.append(Change(CREATE, new, urn(head, project, key)))
        elif new is None and old is not None:
            changes.append(Change(DELETE, old, urn(base, project, key), before=old))
        elif old is not None and new is not None and old.inputs != new.inputs:
            props = sorted(p for p in old.inputs.keys() | new.inputs.keys() if old.inputs.get(p) != new.inputs.get(p))
            causes = {p: why for p in props if (why := replacements.replaced_by(new.type, p, new.replace_on_changes))}
            changes.append(Change(REPLACE if causes else UPDATE, new, urn(head, project, key), props, causes, before=old))
    _follow_replacements(changes, after, head, project)
    return changes


def offline_id(type_token: str, name: str) -> str:
    """The id the offline evaluation gives a resource (nina/offline/mocks.py resource_id): how other resources'
    inputs refer to it."""
    kind = type_token.rsplit(":", 1)[-1]
    return f"{kind.lower()}-{name}-{hashlib.sha256(f'{type_token}/{name}'.encode()).hexdigest()[:12]}"


def references(res: Resource) -> tuple[str, ...]:
    """How other resources' inputs name this one's outputs offline: its id, and the placeholders of its computed
    outputs ("[computed: tls LocallySignedCert <name> certPem]")."""
    package, kind = res.type.split(":", 1)[0], res.type.rsplit(":", 1)[-1]
    return (offline_id(res.type, res.name), f"[computed: {package} {kind} {res.name} ")


def _follow_replacements(changes: list[Change], after: dict[str, Resource], head: dict[str, Any], project: str) -> None:
    """A replaced resource gets a new id and new outputs in the cloud, which offline values cannot show: whatever
    refers to them changes too (a delivery whose triggers hold the VM's id is replaced with it; one that carries a
    re-issued certificate is updated), transitively."""
    by_key = {c.resource.key: c for c in changes}
    todo = [c.resource for c in changes if c.kind == REPLACE]
    while todo:
        gone = todo.pop(0)
        names = references(gone)
        for key, res in sorted(after.items()):
            if key == gone.key:
                continue
            props = sorted(p for p, v in res.inputs.items() if any(n in json.dumps(v) for n in names))
            if not props:
                continue
            causes = {
                p: f"follows the replacement of {gone.name} ({why})"
                for p in props if (why := replacements.replaced_by(res.type, p, res.replace_on_changes))
            }
            existing = by_key.get(key)
            if existing is None:
                existing = by_key[key] = Change(UPDATE, res, urn(head, project, key), [], {}, before=res)
                changes.append(existing)
            elif existing.kind in (CREATE, DELETE):
                continue
            existing.properties = sorted(set(existing.properties) | set(props))
            new_causes = {p: w for p, w in causes.items() if p not in existing.causes}
            if new_causes:
                existing.causes.update(new_causes)
                if existing.kind != REPLACE:
                    existing.kind = REPLACE
                    todo.append(res)
    changes.sort(key=lambda c: c.resource.key)
