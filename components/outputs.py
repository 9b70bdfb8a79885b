"""The stack's outputs: what operators, researchers and on-premises sites read with `pulumi stack output`.

`vpn` is what an operator needs to hand each on-premises site its VPN client (manual §4.1.3.2): per federation the
server's public address and ports, the name clients verify, and per organisation its certificate, serial (what
`revoked:` takes), expiry and fixed tunnel addresses. Secret parts (the shared tls-crypt key; the private key of an
organisation that sent no CSR) are Pulumi secrets, shown only with --show-secrets. No resources here.

`site_<organisation>` (one per on-premises organisation) is exactly what that site's kit needs and nothing more:
`pulumi stack output site_<org> --show-secrets --json > site.json; nina bundle --org <org> --outputs site.json`.
It holds the CA, its SuperNodes' registered public keys and, per VPN federation it belongs to, the server's address,
its own certificate (serial, expiry, tunnel addresses) and that federation's tls-crypt key: no admin password, no
other tenancy's key, no private key (a generated VPN key stays in `vpn`, handed over separately). It is a secret as
a whole (it carries tls-crypt keys).
"""

from __future__ import annotations

from typing import Any

import pulumi
from cryptography import x509

from components.database import ManagedPostgres
from components.dns import PublicDns
from components.host import Vm
from components.pki import Pki
from components.secrets import Secrets
from nina.catalog.databases import offsite_container
from nina.config import StackConfig
from nina.plan import flower, names, openvpn, public, realm, scrape, site


def serial_of(cert_pem: str) -> str:
    """The serial as `openssl x509 -noout -serial` prints it; an unissued placeholder passes through."""
    try:
        return openvpn.serial_hex(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number)
    except ValueError:
        return cert_pem


def vpn(cfg: StackConfig, pki: Pki, vms: dict[str, Vm]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for fed in cfg.federations.values():
        if not fed.vpn_host:
            continue
        insts = openvpn.instances(fed)
        orgs = cfg.vpn_clients(fed)
        offsets = openvpn.client_offsets(fed, orgs)
        clients: dict[str, Any] = {}
        for org in orgs:
            issued = pki.vpn_clients[(fed.name, org)]
            entry: dict[str, Any] = {
                "cert_pem": issued.cert_pem,
                "serial": issued.cert_pem.apply(serial_of),
                "not_after": issued.not_after,
                "addresses": {i.proto: str(i.address(offsets[org])) for i in insts},
                # "site": the key never left the site (it sent vpn_csr); otherwise key_pem below is the generated one.
                "key": "site" if issued.key_pem is None else "generated",
            }
            if issued.key_pem is not None:
                entry["key_pem"] = issued.key_pem  # already a secret
            clients[org] = entry
        result[fed.name] = {
            "server": vms[fed.vpn_host].public_ip,
            "remotes": [{"port": i.port, "proto": i.proto} for i in insts],
            "verify_x509_name": openvpn.server_name(cfg, fed),
            "ca_cert_pem": pki.ca_cert_pem,
            "tls_crypt_key": pulumi.Output.secret(pki.tls_crypt[fed.name]),
            "clients": clients,
        }
    return result


def sites(cfg: StackConfig, pki: Pki, vpn_outputs: dict[str, Any]) -> dict[str, Any]:
    """site_<org> -> what that on-premises site's bundle needs (the shape: nina/plan/site.py)."""
    result: dict[str, Any] = {}
    for org in sorted(o.name for o in cfg.organisations.values() if o.hosting == "on_premises"):
        vpn_part = {f: e for f, fed_out in sorted(vpn_outputs.items()) if (e := site.vpn_entry(fed_out, org)) is not None}
        keys = {
            fed.name: {sn.name: sn.public_key for sn in fed.supernodes if sn.organisation == org}
            for fed in cfg.federations.values()
            if any(sn.organisation == org for sn in fed.supernodes)
        }
        value = {
            "organisation": org,
            "environment": cfg.environment,
            "ca_cert_pem": pki.ca_cert_pem,
            "supernode_public_keys": keys,
            "vpn": vpn_part,
        }
        # A whole secret (it carries tls-crypt keys): [secret] until --show-secrets, like `vpn`.
        result[site.output_name(org)] = pulumi.Output.secret(value) if vpn_part else value
    return result


def stack_outputs(
    cfg: StackConfig, vms: dict[str, Vm], pki: Pki, secrets: Secrets, database: ManagedPostgres, dns: PublicDns
) -> dict[str, Any]:
    vpn_outputs = vpn(cfg, pki, vms)
    return {
        "environment": cfg.environment,
        "hosts": {
            n: {"private_ip": vm.private_ip, "public_ip": vm.public_ip, "roles": list(cfg.hosts[n].roles)}
            for n, vm in vms.items()
        },
        "jump_host": vms[cfg.admin.jump_host].public_ip,
        "public_urls": public.public_urls(cfg),
        # The A records the public names need (kept in nina:dns.public_zone when set; otherwise create them).
        "public_dns": dns.records,
        "internal_names": {n: [names.fqdn(cfg, a) for a in names.aliases(cfg, h)] for n, h in cfg.hosts.items()},
        "postgres_address": database.address,
        # Where the backups are copied off the hosts (README: Backups): restore from here.
        "backup_container": {"name": offsite_container(cfg.environment), "region": cfg.cloud.object_store_region},
        # Distribute to anyone who must trust NINA's internal endpoints (researchers' flwr, hospital sites).
        "ca_cert_pem": pki.ca_cert_pem,
        # Monitoring alerts on these; the preview warns within EXPIRY_WARNING_DAYS (nina/catalog/pki.py).
        "certificate_expiry": pki.expiry,
        "supernode_public_keys": {
            fed: {sn: key.public_key_openssh for (f, sn), key in pki.supernode_keys.items() if f == fed}
            for fed in cfg.federations
        },
        # Per federation: the VPN server's address and each on-premises site's certificate (README: VPN).
        "vpn": vpn_outputs,
        # Per on-premises organisation: only what its kit needs (nina bundle --outputs; README: On-premises sites).
        **sites(cfg, pki, vpn_outputs),
        # What Prometheus scrapes, which alerts exist, and per on-premises site what watches it (README: Operations).
        "monitoring": scrape.summary(cfg),
        # Researchers' ~/.flwr/config.toml: one connection per federation (README: Federations).
        "flwr_connections": flower.connections(cfg),
        "flwr_config_toml": flower.config_toml(cfg),
        # Who is in which Keycloak group (nina:people; README: People and federations): federation-<fed> is who
        # reaches that federation besides nina-admins.
        "keycloak_groups": realm.members(cfg),
        "keycloak_admin_password": secrets["keycloak-admin"],
        "grafana_admin_password": secrets["grafana-admin"],
    }
