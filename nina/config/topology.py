"""Parsing the stack's topology: nina:network (segments), nina:hosts (VMs and their roles, placed by the role
table's rules) and nina:organisations."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from nina.catalog.ports import listeners
from nina.catalog.roles import (
    ASSIGNABLE_ROLES,
    ORGANISATION,
    PUBLIC,
    ROLES,
    SINGLETON_ROLES,
)
from nina.config.model import IP, Host, NetworkSettings, Organisation, Segment, ShippedCertificate
from nina.config.reader import Reader

REQUIRED_SEGMENTS = ("public", "internal")
CSR_PEM = re.compile(r"-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]{16,8192}\n-----END CERTIFICATE REQUEST-----")
HOSTINGS = ("nectar", "on_premises")


def parse_network(r: Reader, raw: Any, organisations: Mapping[str, Organisation]) -> NetworkSettings:
    p = "nina:network"
    d = r.mapping(raw, p, ("segments",))
    segments: dict[str, Segment] = {}
    org_segments = {o.segment: o.name for o in organisations.values() if o.segment}
    for name, path, value in r.each(r.mapping(r.required(d, "segments", p), f"{p}.segments"), f"{p}.segments"):
        net = r.network(value, path)
        if net is None:
            continue
        if net.prefixlen > 28:
            r.problem(path, f"{net} is too small for a Nectar subnet (use /28 or larger)")
        kind = name if name in REQUIRED_SEGMENTS else ORGANISATION
        if kind == ORGANISATION and name not in org_segments:
            r.problem(path, "is neither public, internal nor the segment of an organisation in nina:organisations")
        segments[name] = Segment(name, net, kind)
    for required in REQUIRED_SEGMENTS:
        if required not in segments and f"{p}.segments.{required}: is required" not in r.problems:
            r.problem(f"{p}.segments.{required}", "is required")
    return NetworkSettings(segments)


def parse_hosts(r: Reader, raw: Any, network: NetworkSettings) -> dict[str, Host]:
    p = "nina:hosts"
    hosts: dict[str, Host] = {}
    seen_ips: dict[IP, str] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(body, path, ("segment", "ip", "flavor", "roles", "volume_gb", "gpu"))
        roles = r.strings(d, "roles", path)
        for i, role in enumerate(roles):
            if role not in ASSIGNABLE_ROLES:
                r.problem(f"{path}.roles[{i}]", f"unknown role {role!r} (known: {', '.join(ASSIGNABLE_ROLES)})")
            elif roles.index(role) != i:
                r.problem(f"{path}.roles[{i}]", f"role {role!r} is listed twice")
        gpu = r.boolean(d, "gpu", path, False)
        effective = tuple(dict.fromkeys(x for x in roles if x in ASSIGNABLE_ROLES)) + (("gpu",) if gpu else ())
        segment_name = r.string(d, "segment", path)
        segment = network.segments.get(segment_name)
        if segment_name and segment is None:
            r.problem(f"{path}.segment", f"{segment_name!r} is not a segment in nina:network.segments")
        ip: IP | None = None
        try:
            ip = ipaddress.IPv4Address(r.string(d, "ip", path))
        except ValueError as exc:
            if "ip" in d:
                r.problem(f"{path}.ip", str(exc))
        if ip is not None and segment is not None:
            if ip not in segment.cidr or ip in (segment.cidr.network_address, segment.cidr.broadcast_address):
                r.problem(f"{path}.ip", f"{ip} is not a host address in segment {segment.name} ({segment.cidr})")
            elif ip == segment.gateway:
                r.problem(f"{path}.ip", f"{ip} is the gateway of segment {segment.name}")
        if ip is not None:
            if ip in seen_ips:
                r.problem(f"{path}.ip", f"{ip} is already used by host {seen_ips[ip]}")
            seen_ips[ip] = name
        if segment is not None:
            check_placement(r, path, effective, segment)
        volume = d.get("volume_gb")
        if volume is not None:
            r.integer(d, "volume_gb", path, minimum=1)
        hosts[name] = Host(
            name=name,
            segment=segment_name,
            ip=ip or ipaddress.IPv4Address("0.0.0.0"),
            flavor=r.text(d, "flavor", path, maximum=64),
            roles=effective,
            volume_gb=volume if isinstance(volume, int) and not isinstance(volume, bool) else None,
            gpu=gpu,
        )
        check_port_collisions(r, path, effective)
    if not hosts:
        r.problem(p, "is required (at least one host)")
    for role in SINGLETON_ROLES:
        carriers = [h.name for h in hosts.values() if h.has(role)]
        if not carriers:
            r.problem(p, f"role {role!r} is on no host (exactly one host must carry it)")
        elif len(carriers) > 1:
            r.problem(p, f"role {role!r} is on several hosts ({', '.join(carriers)}); exactly one must carry it")
    return hosts


def check_placement(r: Reader, path: str, roles: tuple[str, ...], segment: Segment) -> None:
    """§3.3, from each role's `segments`: public-facing roles sit in the public segment; organisation segments hold
    only the roles allowed there (SuperNodes); a role that lives only in organisation segments stays there."""
    for name in roles:
        role = ROLES[name]
        if role.public_facing and segment.kind != PUBLIC:
            r.problem(f"{path}.segment", f"role {name!r} faces the internet and must be in segment 'public'")
        if segment.kind == ORGANISATION and ORGANISATION not in role.segments:
            r.problem(f"{path}.segment", f"organisation segment {segment.name!r} may hold only supernode hosts, not {name!r}")
        if role.segments == {ORGANISATION} and segment.kind != ORGANISATION:
            r.problem(f"{path}.segment", f"a {name} host belongs in its organisation's segment")


def check_port_collisions(r: Reader, path: str, roles: tuple[str, ...]) -> None:
    taken: dict[tuple[str, int], str] = {}
    for port in listeners(roles):
        for number in range(port.port, port.port_max + 1):
            key = (port.protocol, number)
            if key in taken and taken[key] != port.name:
                r.problem(f"{path}.roles", f"{port.name} and {taken[key]} both need {number}/{port.protocol} on this host")
            taken.setdefault(key, port.name)


def _check_csr(r: Reader, csr: Any, path: str, org: str) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    if not CSR_PEM.fullmatch(str(csr).strip()):
        r.problem(path, "must be exactly one PEM certificate signing request (BEGIN/END CERTIFICATE REQUEST) and nothing else")
        return
    try:
        request = x509.load_pem_x509_csr(str(csr).encode())
    except ValueError as exc:
        r.problem(path, f"is not a PEM certificate signing request ({exc})")
        return
    if not request.is_signature_valid:
        r.problem(path, "the CSR's signature does not verify")
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names != [org]:
        # The OpenVPN server gives each organisation its fixed address by certificate CN.
        r.problem(path, f"the CSR's common name must be the organisation's name {org!r}, got {common_names or 'none'}")


SERIAL_HEX = re.compile(r"[0-9A-F]{2,64}")
# pulumi-tls writes Go's time.MarshalText: fractional seconds (up to nanoseconds) when the clock had them
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


def _parse_shipped(r: Reader, raw: Any, path: str) -> dict[str, ShippedCertificate]:
    """federation -> {serial, not_after}, as `nina bundle --renewal` prints them (the federations are checked once
    they are parsed: nina/config/parse.py)."""
    if raw is None:
        return {}
    shipped = {}
    for fed, fpath, body in r.each(r.mapping(raw, path), path):
        d = r.mapping(body, fpath, ("serial", "not_after"))
        serial, not_after = r.string(d, "serial", fpath), r.string(d, "not_after", fpath)
        if serial and not SERIAL_HEX.fullmatch(serial):
            r.problem(f"{fpath}.serial", "must be the certificate's serial in upper-case hex, as `nina bundle --renewal` prints it")
        if not_after and not RFC3339_UTC.fullmatch(not_after):
            r.problem(f"{fpath}.not_after", "must be a UTC time like 2027-11-30T12:00:00Z, as `nina bundle --renewal` prints it")
        shipped[fed] = ShippedCertificate(serial, not_after)
    return shipped


def parse_organisations(r: Reader, raw: Any) -> dict[str, Organisation]:
    p = "nina:organisations"
    orgs: dict[str, Organisation] = {}
    for name, path, body in r.each(r.mapping(raw, p), p):
        d = r.mapping(body, path, ("display_name", "hosting", "segment", "vpn_csr", "gpu", "vpn_certificate_shipped"))
        hosting = r.choice(d, "hosting", path, HOSTINGS)
        segment = r.string(d, "segment", path, "")
        if hosting == "nectar" and not segment:
            r.problem(f"{path}.segment", "is required for a Nectar-hosted organisation (its own network segment)")
        if hosting == "on_premises" and segment:
            r.problem(f"{path}.segment", "an on-premises organisation has no Nectar segment (it connects over the VPN)")
        csr = r.string(d, "vpn_csr", path, "")
        if csr:
            _check_csr(r, csr, f"{path}.vpn_csr", name)
            if hosting != "on_premises":
                r.problem(f"{path}.vpn_csr", "only an on-premises organisation connects over the VPN")
        gpu = r.boolean(d, "gpu", path, False)
        if gpu and hosting != "on_premises":
            r.problem(f"{path}.gpu", "applies to an on-premises site; a Nectar-hosted organisation's GPU is its host's `gpu: true`")
        shipped = _parse_shipped(r, d.get("vpn_certificate_shipped"), f"{path}.vpn_certificate_shipped")
        if shipped and hosting != "on_premises":
            r.problem(f"{path}.vpn_certificate_shipped", "only an on-premises organisation holds a VPN certificate")
        orgs[name] = Organisation(name, r.text(d, "display_name", path, name, maximum=100), hosting, segment or None, csr or None, gpu, shipped)
    return orgs
