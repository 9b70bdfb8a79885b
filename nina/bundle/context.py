"""What every site-kit builder receives: the stack, the organisation, its SuperNodes and the outputs a site may hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nina.config import Federation, Organisation, StackConfig, SuperNode

Files = dict[str, tuple[str, int]]  # relative path -> (content, mode)


@dataclass(frozen=True)
class SiteContext:
    cfg: StackConfig
    org: Organisation
    supernodes: tuple[tuple[Federation, SuperNode], ...]  # the organisation's SuperNodes, by federation
    ca_pem: str
    outputs: dict[str, Any]  # the stack's outputs, secrets shown: take only what a site may hold


Builder = Callable[[SiteContext], Files]


def organisation_supernodes(cfg: StackConfig, org: str) -> tuple[tuple[Federation, SuperNode], ...]:
    """The organisation's SuperNodes in its active federations."""
    return tuple((f, sn) for f in cfg.federations.values() if not f.archived for sn in f.supernodes if sn.organisation == org)
