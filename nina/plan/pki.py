"""What the local CA issues for one stack (manual §4.1.2.2, §4.1.2.3.1), and the other key material it makes: every
certificate with its resource name, names and addresses, read off the role table and the topology, the SuperNode
key pairs, SuperExec secrets and tls-crypt keys. components/pki.py turns these into pulumi-tls and pulumi-random
resources.

Names depend only on what a certificate is for (`tls-<host>-<role>`, `vpn-<federation>-<organisation>`), never on
unrelated config, so changing a flavor or adding a host leaves every other certificate alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from nina.catalog import pki
from nina.catalog.roles import ROLES
from nina.config import StackConfig
from nina.plan import names


@dataclass(frozen=True)
class Certificate:
    name: str  # the pulumi-tls resources' name
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    spec: pki.CertSpec
    key: pki.KeySpec
    csr: str | None = None  # the holder's own CSR: its key never reaches us


@dataclass(frozen=True)
class ServerCertificate(Certificate):
    host: str = ""
    role: str = ""


@dataclass(frozen=True)
class VpnClientCertificate(Certificate):
    federation: str = ""
    organisation: str = ""


def server_certificates(cfg: StackConfig) -> list[ServerCertificate]:
    """One per host and role with a server certificate: the role's alias first (its CN), the host's name,
    localhost, and the host's, loopback's and IPv6 loopback's addresses."""
    out = []
    for host in cfg.hosts.values():
        for role in host.roles:
            if ROLES[role].tls is None:
                continue
            short = names.role_aliases(cfg, host, role)
            out.append(
                ServerCertificate(
                    f"tls-{host.name}-{role}",
                    common_name=names.fqdn(cfg, short[0]),
                    dns_names=tuple(names.fqdn(cfg, n) for n in short) + ("localhost",),
                    # 127.0.0.1: the SuperLink's own SuperExec and local health checks connect there (FLOWER.md).
                    ip_addresses=(str(host.ip), "127.0.0.1", "::1"),
                    spec=pki.SERVER_CERT,
                    key=pki.SERVER_KEY,
                    host=host.name,
                    role=role,
                )
            )
    return out


def vpn_client_certificates(cfg: StackConfig) -> list[VpnClientCertificate]:
    """One per on-premises organisation of each VPN tenancy; the CN is the organisation (OpenVPN's client-config-dir
    keys on it). Nectar-hosted organisations reach the SuperLink inside the cloud."""
    return [
        VpnClientCertificate(
            f"vpn-{fed.name}-{org}",
            common_name=org,
            dns_names=(),
            ip_addresses=(),
            spec=pki.CLIENT_CERT,
            key=pki.CLIENT_KEY,
            csr=cfg.organisations[org].vpn_csr,
            federation=fed.name,
            organisation=org,
        )
        for fed in cfg.federations.values()
        for org in cfg.vpn_clients(fed)
    ]


@dataclass(frozen=True)
class Issuance:
    environment: str
    servers: list[ServerCertificate]
    vpn_clients: list[VpnClientCertificate]
    supernode_keys: list[tuple[str, str]]  # (federation, SuperNode) whose key pair the stack makes (`generate`)
    # (federation, None) for each SuperLink, (federation, SuperNode) for each Nectar-hosted SuperNode: the secret its
    # SuperExec presents (an on-premises site makes its own, README of its bundle).
    superexec_secrets: list[tuple[str, str | None]]
    tls_crypt: list[str]  # federations with an OpenVPN server


def issuance(cfg: StackConfig) -> Issuance:
    return Issuance(
        environment=cfg.environment,
        servers=server_certificates(cfg),
        vpn_clients=vpn_client_certificates(cfg),
        supernode_keys=[(fed.name, sn.name) for fed in cfg.federations.values() for sn in fed.supernodes if sn.generated],
        superexec_secrets=[(fed.name, None) for fed in cfg.federations.values()]
        + [(fed.name, sn.name) for fed in cfg.federations.values() for sn in fed.supernodes if sn.host],
        tls_crypt=[fed.name for fed in cfg.federations.values() if fed.vpn_host],
    )
