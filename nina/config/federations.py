"""Parsing nina:federations: the tenancies, their SuperLink and OpenVPN hosts, member organisations and SuperNodes,
revoked VPN certificates, and the frozen membership of an archived federation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from nina.catalog import runtimes
from nina.catalog.ports import SUPERNODE_PORTS
from nina.config.model import (
    GENERATE,
    Federation,
    Host,
    Organisation,
    Revocation,
    SuperNode,
)
from nina.config.reader import Reader, show

# Flower's `--isolation subprocess` runs researchers' apps as the SuperLink's or SuperNode's own user, next to its
# key; the platform always runs them in a SuperExec as a user of their own (README "Threat model"). The stack key
# `isolation` stays, so a stack may say `process`, and a stack saying `subprocess` is told why not.
FEDERATION_TYPES = ("deployment", "simulation")
# Flower refuses Ed25519/RSA SuperNode keys (shared/FLOWER.md): NIST curves only.
SUPERNODE_KEY_CURVES = {"ecdsa-sha2-nistp256": 256, "ecdsa-sha2-nistp384": 384, "ecdsa-sha2-nistp521": 521}
NODE_CONFIG_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
# What a SuperNode's --node-config carries (a data path, a site label): text a shell, TOML and Flower take as it is.
NODE_CONFIG_VALUE = re.compile(r"[A-Za-z0-9._/:@+-]{1,256}")


def parse_federations(r: Reader, raw: Any, hosts: Mapping[str, Host], orgs: Mapping[str, Organisation]) -> dict[str, Federation]:
    p = "nina:federations"
    feds: dict[str, Federation] = {}
    keys_seen: dict[str, str] = {}
    superlinks_taken: dict[str, str] = {}
    vpns_taken: dict[str, str] = {}
    host_ports: dict[tuple[str, int], str] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(
            body,
            path,
            ("type", "superlink_host", "vpn_host", "vpn_client_range", "isolation", "num_partitions", "runtime", "runtime_dependency_installation", "archived", "archived_membership", "simulation", "members", "revoked"),
        )
        ftype = r.choice(d, "type", path, FEDERATION_TYPES)
        superlink = _host_with_role(r, d, "superlink_host", path, hosts, "superlink")
        if superlink:
            if superlink in superlinks_taken:
                r.problem(f"{path}.superlink_host", f"{superlink} already serves federation {superlinks_taken[superlink]} (one SuperLink per tenancy)")
            superlinks_taken[superlink] = name
        vpn = _host_with_role(r, d, "vpn_host", path, hosts, "vpn") if "vpn_host" in d else None
        if vpn:
            if vpn in vpns_taken:
                r.problem(f"{path}.vpn_host", f"{vpn} already serves federation {vpns_taken[vpn]} (one OpenVPN server per tenancy)")
            vpns_taken[vpn] = name
        vpn_range = None
        if vpn:
            vpn_range = r.network(r.required(d, "vpn_client_range", path), f"{path}.vpn_client_range") if "vpn_client_range" in d else None
            if "vpn_client_range" not in d:
                r.problem(f"{path}.vpn_client_range", "is required with vpn_host (the tenancy's VPN address pool)")
            elif vpn_range is not None and vpn_range.prefixlen > 28:
                # Split into UDP and TCP halves, each with the server's address and one per organisation.
                r.problem(f"{path}.vpn_client_range", f"{vpn_range} is too small (use /28 or larger)")
        elif "vpn_client_range" in d:
            r.problem(f"{path}.vpn_client_range", "is set but the federation has no vpn_host")
        revoked = _parse_revoked(r, d.get("revoked"), f"{path}.revoked")
        if revoked and not vpn:
            r.problem(f"{path}.revoked", "lists VPN certificates but the federation has no vpn_host")
        members = r.mapping(d.get("members"), f"{path}.members")
        sim = r.mapping(d.get("simulation"), f"{path}.simulation", ("supernodes",))
        supernodes: list[SuperNode] = []
        sn_paths: list[str] = []  # key path of each SuperNode, parallel to `supernodes`
        if ftype == "simulation":
            if members:
                r.problem(f"{path}.members", "a simulation federation has no real SuperNodes")
            if vpn:
                r.problem(f"{path}.vpn_host", "a simulation federation needs no VPN")
            sim_nodes = r.integer(sim, "supernodes", f"{path}.simulation", minimum=1)
        else:
            sim_nodes = 0
            if sim:
                r.problem(f"{path}.simulation", "only a simulation federation has simulated SuperNodes")
            if not members:
                r.problem(f"{path}.members", "is required (at least one member organisation with SuperNodes)")
            for org, org_path, mbody in r.each(members, f"{path}.members"):
                organisation = orgs.get(org)
                if organisation is None:
                    r.problem(org_path, f"{org!r} is not an organisation in nina:organisations")
                md = r.mapping(mbody, org_path, ("supernodes",))
                raw_nodes = md.get("supernodes")
                if not isinstance(raw_nodes, list) or not raw_nodes:
                    r.problem(f"{org_path}.supernodes", "is required (a non-empty list)")
                    continue
                for i, nbody in enumerate(raw_nodes):
                    sn_path = f"{org_path}.supernodes[{i}]"
                    supernodes.append(_parse_supernode(r, nbody, sn_path, org, organisation, hosts, keys_seen, host_ports))
                    sn_paths.append(sn_path)
            if vpn is None and any(orgs[o].hosting == "on_premises" for o in members if o in orgs):
                r.problem(f"{path}.vpn_host", "is required: an on-premises member reaches the SuperLink only through the tenancy's VPN")
        for sn in supernodes:
            if any(o.name == sn.name for o in supernodes if o is not sn):
                r.problem(f"{path}.members", f"SuperNode name {sn.name!r} is used twice in this federation")
                break
        num = r.integer(d, "num_partitions", path, default=max(len(supernodes), sim_nodes, 1), minimum=1)
        if ftype == "deployment" and num < len(supernodes):
            r.problem(f"{path}.num_partitions", f"{num} is less than the {len(supernodes)} SuperNodes of this federation")
        seen_partitions: dict[int, str] = {}
        for sn, sn_path in zip(supernodes, sn_paths):
            where = f"{sn_path}.partition_id"
            if sn.partition_id >= num:
                r.problem(where, f"{sn.partition_id} must be less than num_partitions ({num})")
            if sn.partition_id in seen_partitions:
                r.problem(where, f"{sn.partition_id} is already used by SuperNode {seen_partitions[sn.partition_id]}")
            seen_partitions.setdefault(sn.partition_id, sn.name)
        _check_archived(r, d, path, name, supernodes)
        _check_isolation(r, d, path)
        feds[name] = Federation(
            name=name,
            type=ftype,
            superlink_host=superlink or "",
            vpn_host=vpn,
            vpn_client_range=vpn_range,
            num_partitions=num,
            runtime=_runtime(r, d, path, ftype),
            runtime_dependency_installation=r.boolean(d, "runtime_dependency_installation", path, False),
            archived=r.boolean(d, "archived", path, False),
            simulation_supernodes=sim_nodes,
            supernodes=tuple(supernodes),
            revoked=revoked,
        )
    _check_one_tenancy_per_host(r, feds)
    for host in hosts.values():
        if host.has("superlink") and host.name not in superlinks_taken:
            r.problem(f"nina:hosts.{host.name}.roles", "carries superlink but no federation in nina:federations uses it")
        if host.has("supernode") and not any(h == host.name for h, _ in host_ports):
            r.problem(f"nina:hosts.{host.name}.roles", "carries supernode but no SuperNode in nina:federations runs on it")
    return feds


def _runtime(r: Reader, d: dict[str, Any], path: str, ftype: str) -> str:
    """The federation's runtime: a profile in runtimes/ whose locks match their inputs (an edited profile or a new
    flwr pin without scripts/lock-runtimes.py would deploy something nobody resolved)."""
    name = r.choice(d, "runtime", path, runtimes.names(), runtimes.DEFAULT)
    if ftype == "simulation" and name != runtimes.DEFAULT:
        r.problem(f"{path}.runtime", f"a simulation runs in the SuperLink's flwr[simulation] venv with NumPy only; runtimes are for deployments (got {name!r})")
    if name in runtimes.names():
        for gpu in (False, True):
            problem = runtimes.stale(runtimes.lock(name, gpu))
            if problem:
                r.problem(f"{path}.runtime", problem)
                break
    return name


def _check_isolation(r: Reader, d: dict[str, Any], path: str) -> None:
    if d.get("isolation", "process") != "process":
        r.problem(
            f"{path}.isolation",
            f"{show(d['isolation'])} is not supported: only 'process' runs researchers' ServerApps and ClientApps as a user of "
            "their own, away from the SuperLink's and SuperNodes' keys (README: Threat model)",
        )


def _check_one_tenancy_per_host(r: Reader, feds: Mapping[str, Federation]) -> None:
    """A Nectar host runs the SuperNodes of one federation: tenants never share a VM (its users, disk, network)."""
    first: dict[str, str] = {}
    for fed in feds.values():
        for sn in fed.supernodes:
            if sn.host is None:
                continue
            owner = first.setdefault(sn.host, fed.name)
            if owner != fed.name:
                r.problem(
                    f"nina:federations.{fed.name}.members.{sn.organisation}.supernodes[{_index(fed, sn)}].host",
                    f"host {sn.host!r} already runs SuperNodes of federation {owner!r}: each federation's SuperNodes need "
                    "hosts of their own (tenants never share a VM)",
                )


def _index(fed: Federation, sn: SuperNode) -> int:
    """The SuperNode's position in its organisation's list (the key a stack author reads)."""
    return [o.name for o in fed.supernodes if o.organisation == sn.organisation].index(sn.name)


def _parse_revoked(r: Reader, raw: Any, path: str) -> tuple[Revocation, ...]:
    """`revoked: [{organisation, serial, reason}]`: serials stay listed after the organisation leaves the stack."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.problem(path, "must be a list of {organisation, serial, reason}")
        return ()
    out: list[Revocation] = []
    for i, body in enumerate(raw):
        p = f"{path}[{i}]"
        d = r.mapping(body, p, ("organisation", "serial", "reason"))
        org = r.string(d, "organisation", p)
        if org:
            r.name(org, f"{p}.organisation")
        text = d.get("serial")
        serial = 0
        try:
            digits = str(text).strip().lower().removeprefix("0x").replace(":", "")
            serial = int(digits, 16) if isinstance(text, str) and digits else -1
        except ValueError:
            serial = -1
        if serial <= 0 or serial >= 1 << 160:  # RFC 5280: at most 20 octets
            r.problem(f"{p}.serial", f"{str(text)[:60]!r} must be the certificate serial in hex (at most 40 digits), as `openssl x509 -noout -serial` prints it (quoted)")
        elif any(x.serial == serial for x in out):
            r.problem(f"{p}.serial", "is listed twice")
        out.append(Revocation(org, serial, r.text(d, "reason", p, "unspecified")))
    return tuple(out)


def membership_fingerprint(supernodes: Iterable[SuperNode]) -> str:
    """What an archived federation freezes: its members, their SuperNodes, partitions, keys and hosts."""
    rows = sorted(f"{sn.organisation}/{sn.name}/{sn.partition_id}/{sn.public_key or GENERATE}/{sn.host or ''}" for sn in supernodes)
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _check_archived(r: Reader, d: dict[str, Any], path: str, name: str, supernodes: list[SuperNode]) -> None:
    """`archived: true` freezes membership. The config has no history, so the stack file records what was frozen
    (`archived_membership`, a fingerprint of the lists) and any later change to the lists is an error."""
    now = membership_fingerprint(supernodes)
    recorded = d.get("archived_membership")
    if d.get("archived") is True:
        if recorded is None:
            r.problem(f"{path}.archived_membership", f"is required with archived: true: it freezes the member and SuperNode lists; set it to {now!r} (the lists as they are now)")
        elif recorded != now:
            r.problem(
                f"{path}.members",
                f"federation {name} is archived: its member and SuperNode lists may no longer change (they now give {now}, "
                f"archived_membership records {recorded}); set archived: false first to change them",
            )
    elif recorded is not None:
        r.problem(f"{path}.archived_membership", "is only meaningful with archived: true")


def _host_with_role(r: Reader, d: dict[str, Any], key: str, path: str, hosts: Mapping[str, Host], role: str) -> str | None:
    name = r.string(d, key, path)
    if not name:
        return None
    if name not in hosts:
        r.problem(f"{path}.{key}", f"{name!r} is not a host in nina:hosts")
        return None
    if not hosts[name].has(role):
        r.problem(f"{path}.{key}", f"host {name!r} does not carry the {role!r} role")
        return None
    return name


def _parse_supernode(
    r: Reader,
    body: Any,
    path: str,
    org: str,
    organisation: Organisation | None,
    hosts: Mapping[str, Host],
    keys_seen: dict[str, str],
    host_ports: dict[tuple[str, int], str],
) -> SuperNode:
    d = r.mapping(body, path, ("name", "partition_id", "public_key", "host", "port", "node_config"))
    name = r.string(d, "name", path)
    if name:
        r.name(name, f"{path}.name")
    key = r.string(d, "public_key", path)
    public_key: str | None = None
    if key == GENERATE:
        if organisation is not None and organisation.hosting != "nectar":
            r.problem(f"{path}.public_key", "'generate' is only for Nectar-hosted SuperNodes: an on-premises site creates its own key pair and sends the public key")
    elif key:
        public_key = " ".join(key.split()[:2])  # drop the comment: it is not part of the identity
        r.ssh_public_key(key, f"{path}.public_key", SUPERNODE_KEY_CURVES)
        if public_key in keys_seen:
            r.problem(f"{path}.public_key", f"the same key is already registered for {keys_seen[public_key]}")
        keys_seen[public_key] = path
    host = r.string(d, "host", path, "")
    if organisation is not None and organisation.hosting == "nectar":
        if not host:
            r.problem(f"{path}.host", "is required for a Nectar-hosted SuperNode (the host in the organisation's segment)")
        elif host not in hosts:
            r.problem(f"{path}.host", f"{host!r} is not a host in nina:hosts")
        elif not hosts[host].has("supernode"):
            r.problem(f"{path}.host", f"host {host!r} does not carry the 'supernode' role")
        elif hosts[host].segment != organisation.segment:
            r.problem(f"{path}.host", f"host {host!r} is not in {org}'s segment {organisation.segment!r}")
    elif host:
        r.problem(f"{path}.host", "an on-premises SuperNode runs at the site, not on a Nectar host")
    port = r.integer(d, "port", path, default=SUPERNODE_PORTS[0], minimum=0)
    if not SUPERNODE_PORTS[0] <= port <= SUPERNODE_PORTS[1]:
        r.problem(f"{path}.port", f"{port} is outside the SuperNode range {SUPERNODE_PORTS[0]}-{SUPERNODE_PORTS[1]} (§3.3.1)")
    if host:
        if (host, port) in host_ports:
            r.problem(f"{path}.port", f"{port} on host {host} is already used by SuperNode {host_ports[(host, port)]}; give each SuperNode on a host its own port")
        host_ports.setdefault((host, port), name)
    node_config = r.mapping(d.get("node_config"), f"{path}.node_config")
    clean: dict[str, str] = {}
    for k, v in node_config.items():
        if k in ("partition-id", "num-partitions") or not NODE_CONFIG_KEY.fullmatch(k):
            r.problem(f"{path}.node_config.{k[:40]}", "is reserved or not a valid node-config key (lowercase letters, digits, '_' and '-')")
        elif isinstance(v, bool) or not isinstance(v, (str, int, float)) or not NODE_CONFIG_VALUE.fullmatch(str(v)):
            r.problem(f"{path}.node_config.{k}", f"{str(v)[:60]!r} must be a number, or a path or word of letters, digits and ._/:@+- (max 256)")
        else:
            clean[k] = str(v)
    return SuperNode(
        name=name,
        organisation=org,
        partition_id=r.integer(d, "partition_id", path),
        public_key=public_key,
        host=host or None,
        port=port,
        node_config=clean,
    )
