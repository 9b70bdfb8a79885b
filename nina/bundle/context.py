"""What every site-kit builder receives: the stack, the organisation, its SuperNodes and the site's own stack output
(`site_<org>`, the shape in nina/plan/site.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    site: Mapping[str, Any]  # the stack output site_<org>, secrets shown (nina/plan/site.py); {} offline without one

    @property
    def vpn_federations(self) -> tuple[Federation, ...]:
        """The active federations whose VPN this site joins."""
        return tuple(f for f in self.cfg.federations.values() if not f.archived and self.org.name in self.cfg.vpn_clients(f))

    def vpn_output(self, federation: str) -> Mapping[str, Any]:
        return dict(self.site.get("vpn", {}).get(federation, {}))


Builder = Callable[[SiteContext], Files]


def organisation_supernodes(cfg: StackConfig, org: str) -> tuple[tuple[Federation, SuperNode], ...]:
    """The organisation's SuperNodes in its active federations."""
    return tuple((f, sn) for f in cfg.federations.values() if not f.archived for sn in f.supernodes if sn.organisation == org)
