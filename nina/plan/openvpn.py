"""OpenVPN between Nectar and the hospitals (manual §2.1, §3.2.4, §4.1.2.3-4, §4.1.3.2): pure data and text.

One OpenVPN server per tenancy, on its federation's `vpn_host`, as two instances of the stock
`openvpn-server@.service`: UDP 1194 (the manual's) and a TCP 443 fallback for hospital firewalls that drop UDP. Two
processes cannot share one address pool, so the federation's `vpn_client_range` is split in halves: the lower for
UDP, the upper for TCP. Every on-premises organisation has a fixed address (the same offset in both halves), pushed
from its client-config-dir (CCD) file; `ccd-exclusive` refuses any certificate without one.

Role-static text (server configs, forwarding rules) goes into user-data through cloudinit/templates/vpn; what changes
in operation (CCD files, revoked serials) is delivered over SSH (components/delivery_payload.py). The site's
`client.conf` is rendered here for the site bundle (nina/bundle/vpn.py). Nothing in this module touches Pulumi.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nina.catalog import layout
from nina.catalog.ports import PORTS, Port
from nina.catalog.roles import server_tls
from nina.config import Federation, StackConfig
from nina.plan import names

# Modernised from §4.1.2.4 (tls-auth, dh.pem, tap): AEAD data ciphers only, TLS >= 1.2, ECDHE key exchange.
DATA_CIPHERS = ("AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305")
TLS_VERSION_MIN = "1.2"
# ECDHE groups (`ecdh-curve` is ignored with OpenSSL 3: OpenVPN 2.6 takes `tls-groups`).
TLS_GROUPS = ("X25519", "secp384r1", "prime256v1")
KEEPALIVE = (10, 60)  # §4.1.2.4; the server pushes the matching ping/ping-restart to clients
SERVER_POLL_TIMEOUT = 10  # seconds a client waits on one remote before it tries the next (UDP -> TCP fallback)
# Debian/Ubuntu spell the unprivileged group nogroup (§4.1.2.4); RHEL-family sites pass group="nobody".
USER, GROUP = "nobody", "nogroup"

SERVER_DIR = "/etc/openvpn/server"
LOG_DIR = "/var/log/openvpn"
CLIENT_DIR = "/etc/openvpn/client"  # on the site's VPN client host (§4.1.3.2)
CLIENT_UNIT = "openvpn-client@client.service"  # §4.1.3.2.1: reads /etc/openvpn/client/client.conf

# What the server reads, where nina-deliver puts it (nina/catalog/layout.py, the role table).
SERVER_CA = layout.CA_TRUST_PATH  # the delivered file itself: no wait for update-ca-certificates' symlink
SERVER_CERT = server_tls("vpn").cert
SERVER_KEY = server_tls("vpn").key
TLS_CRYPT = layout.OPENVPN_TLS_CRYPT
CRL_DIR = layout.OPENVPN_CRL_DIR
CCD_DIR = layout.OPENVPN_CCD_DIR


@dataclass(frozen=True)
class Instance:
    """One OpenVPN server process of a tenancy."""

    name: str  # server-udp | server-tcp: the %i of openvpn-server@.service, so <name>.conf in SERVER_DIR
    proto: str  # udp | tcp
    port: int
    network: ipaddress.IPv4Network  # this instance's half of vpn_client_range

    @property
    def unit(self) -> str:
        return f"openvpn-server@{self.name}.service"

    @property
    def conf(self) -> str:
        return f"{SERVER_DIR}/{self.name}.conf"

    @property
    def ccd_dir(self) -> str:
        return f"{CCD_DIR}/{self.proto}"

    @property
    def status(self) -> str:
        return f"{LOG_DIR}/{self.name}.status"  # rewritten every minute: not a .log, so logrotate leaves it alone

    @property
    def log(self) -> str:
        return f"{LOG_DIR}/{self.name}.log"

    @property
    def server_address(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1

    def address(self, offset: int) -> ipaddress.IPv4Address:
        return self.network.network_address + offset


def _port(name: str) -> Port:
    (port,) = (p for p in PORTS if p.name == name)
    return port


def instances(fed: Federation) -> tuple[Instance, Instance]:
    """UDP first: it is the one clients try first."""
    assert fed.vpn_client_range is not None, f"{fed.name} has no VPN"
    low, high = fed.vpn_client_range.subnets(prefixlen_diff=1)
    udp, tcp = _port("openvpn-udp"), _port("openvpn-tcp")
    return (Instance("server-udp", udp.protocol, udp.port, low), Instance("server-tcp", tcp.protocol, tcp.port, high))



def client_offsets(fed: Federation, organisations: Iterable[str]) -> dict[str, int]:
    """A fixed host offset per organisation inside each half of the range (.1 is the server).

    Derived from a hash of the names, not from list order, so adding or removing one organisation leaves the others'
    addresses alone (only a hash collision moves the later name, by sorted order, to the next free slot).
    """
    assert fed.vpn_client_range is not None
    size = instances(fed)[0].network.num_addresses
    slots = list(range(2, size - 1))  # not the network, the server (.1) or the broadcast address
    orgs = sorted(set(organisations))
    if len(orgs) > len(slots):
        raise ValueError(f"{fed.name}: vpn_client_range {fed.vpn_client_range} has room for {len(slots)} organisations, not {len(orgs)}")
    taken: dict[int, str] = {}
    result: dict[str, int] = {}
    for org in orgs:
        i = int.from_bytes(hashlib.sha256(f"{fed.name}/{org}".encode()).digest()[:8], "big") % len(slots)
        while slots[i] in taken:
            i = (i + 1) % len(slots)
        taken[slots[i]] = org
        result[org] = slots[i]
    return result


def site_addresses(fed: Federation, org: str, organisations: Iterable[str]) -> dict[str, ipaddress.IPv4Address]:
    """proto -> the organisation's tunnel address in that instance's half. A site holds one of them at a time (the
    instance it reached), so monitoring scrapes both and a site is down only when neither answers."""
    offset = client_offsets(fed, organisations)[org]
    return {inst.proto: inst.address(offset) for inst in instances(fed)}


def pushed_routes(cfg: StackConfig, fed: Federation) -> tuple[ipaddress.IPv4Network, ...]:
    """The internal segment (SuperLink, Keycloak, monitoring) and, if elsewhere, the SuperLink's own segment."""
    segments = ["internal", cfg.hosts[fed.superlink_host].segment]
    return tuple(cfg.network.segments[s].cidr for s in dict.fromkeys(segments))


def router_routes(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(federation, client range, VPN host's address): the Nectar router sends each tenancy's VPN range to its OpenVPN
    server, so replies and the monitoring host reach the sites without NAT."""
    return [
        (fed.name, str(fed.vpn_client_range), str(cfg.hosts[fed.vpn_host].ip))
        for fed in cfg.federations.values()
        if fed.vpn_host and fed.vpn_client_range
    ]


def server_name(cfg: StackConfig, fed: Federation) -> str:
    """The CN of the VPN server certificate (components/pki.py: the first alias), checked by clients."""
    return names.fqdn(cfg, names.vpn_alias(fed))


def ccd_file(inst: Instance, offset: int) -> str:
    # topology subnet: ifconfig-push <address> <netmask of the instance's pool>
    return f"ifconfig-push {inst.address(offset)} {inst.network.netmask}\n"


def ccd_files(cfg: StackConfig, fed: Federation) -> dict[str, str]:
    """path -> content of every CCD file on the federation's VPN host (one per organisation and instance)."""
    offsets = client_offsets(fed, cfg.vpn_clients(fed))
    return {f"{inst.ccd_dir}/{org}": ccd_file(inst, off) for inst in instances(fed) for org, off in sorted(offsets.items())}


# ------------------------------------------------------------------------------------------------ monitoring


@dataclass(frozen=True)
class SiteCertificate:
    """A site's VPN client certificate as the stack issued it, and the one the operator recorded as shipped."""

    serial: str  # hex, as openssl prints it
    not_after: int  # Unix time
    shipped_serial: str | None = None
    shipped_not_after: int | None = None

    @property
    def shipped(self) -> bool:
        return self.shipped_serial == self.serial

    @property
    def site_expiry(self) -> int:
        """When the certificate the site holds ends: the shipped one if recorded, else (never recorded: a new site
        gets the current one in its bundle) the one the stack issued."""
        return self.shipped_not_after if self.shipped_not_after is not None else self.not_after


def sites_document(cfg: StackConfig, fed: Federation, certificates: Mapping[str, SiteCertificate]) -> str:
    """What the VPN host's collector (nina-vpn-metrics) reads: the status file of each server instance and every
    on-premises organisation expected on the tunnel, with its addresses and certificate. Deterministic JSON."""
    orgs = () if fed.archived else cfg.vpn_clients(fed)  # an archived federation's sites are switched off on purpose
    doc = {
        "federation": fed.name,
        "instances": [{"proto": inst.proto, "status": inst.status} for inst in instances(fed)],
        "sites": [
            {
                "organisation": org,
                "addresses": {proto: str(a) for proto, a in site_addresses(fed, org, cfg.vpn_clients(fed)).items()},
                **(
                    {
                        "certificate": {
                            "serial": certificates[org].serial,
                            "site_expiry": certificates[org].site_expiry,
                            "shipped": certificates[org].shipped,
                        }
                    }
                    if org in certificates
                    else {}
                ),
            }
            for org in sorted(orgs)
        ],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------------------------ revocation


def serial_hex(serial: int) -> str:
    """The way openssl prints it, so an operator can paste it into `revoked:`."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def crl_files(fed: Federation) -> dict[str, str]:
    """`crl-verify DIR dir`: OpenVPN refuses a certificate whose decimal serial names a file in DIR.

    No signature is involved (pulumi-tls cannot sign CRLs, and a signed CRL would change bytes on every run), so the
    list is deterministic and delivered like any other file. The content is for the operator reading the host.
    """
    return {
        f"{CRL_DIR}/{r.serial}": f"organisation={r.organisation} serial={serial_hex(r.serial)} reason={r.reason}\n"
        for r in fed.revoked
    }


# -------------------------------------------------------------------------------------------------- client side


def client_conf(
    cfg: StackConfig,
    fed: Federation,
    org: str,
    remote: str,
    directory: str = CLIENT_DIR,
    group: str = GROUP,
) -> str:
    """`/etc/openvpn/client/client.conf` for one on-premises organisation (§4.1.3.2, modernised).

    `remote` is the VPN host's public address (the stack output hosts.<vpn_host>.public_ip after `pulumi up`).
    The files it names sit beside it in `directory`: ca.crt, client.crt, tls-crypt.key and client.key (the site's
    own key when it sent a CSR; otherwise the generated one from `pulumi stack output --show-secrets vpn`).
    """
    if org not in cfg.vpn_clients(fed):
        raise ValueError(f"{org} does not connect to {fed.name}'s VPN (not an on-premises member)")
    remotes = [f"remote {remote} {inst.port} {inst.proto}" for inst in instances(fed)]
    lines = [
        f"# NINA {cfg.environment}: {org} -> federation {fed.name} (managed by nina-fl; manual §4.1.3.2)",
        "client",
        "dev tun",
        *remotes,
        f"server-poll-timeout {SERVER_POLL_TIMEOUT}",
        "resolv-retry infinite",
        "nobind",
        "remote-cert-tls server",
        f"verify-x509-name {server_name(cfg, fed)} name",
        f"ca {directory}/ca.crt",
        f"cert {directory}/client.crt",
        f"key {directory}/client.key",
        f"tls-crypt {directory}/tls-crypt.key",
        f"tls-version-min {TLS_VERSION_MIN}",
        f"data-ciphers {':'.join(DATA_CIPHERS)}",
        f"user {USER}",
        f"group {group}",
        "persist-key",
        "persist-tun",
        "verb 3",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SiteFile:
    content: str
    mode: str  # octal


def site_files(
    cfg: StackConfig, fed: Federation, org: str, output: Mapping[str, Any], remote: str | None = None, directory: str = CLIENT_DIR
) -> dict[str, SiteFile]:
    """The VPN part of a site's bundle: file name (in `directory` on the site's VPN client host) -> content.

    `output` is the stack output `vpn.<federation>` (components/outputs.py, with --show-secrets for the tls-crypt key).
    client.key is never included: a site that sent a CSR has its own; a generated key is handed over separately
    from `pulumi stack output --show-secrets vpn` (README: VPN), so a copied bundle alone cannot join the VPN.
    """
    client = output.get("clients", {}).get(org, {})
    return {
        "client.conf": SiteFile(client_conf(cfg, fed, org, remote or output["server"], directory), "0644"),
        "ca.crt": SiteFile(output["ca_cert_pem"], "0644"),
        "client.crt": SiteFile(client.get("cert_pem", ""), "0644"),
        "tls-crypt.key": SiteFile(output.get("tls_crypt_key", ""), "0600"),
    }
