"""What an operator needs to hand each on-premises site its VPN client (manual §4.1.3.2), as one stack output.

`pulumi stack output vpn` gives, per federation: the server's public address and ports, the name clients verify, and
per organisation its certificate, serial (what `revoked:` takes), expiry and fixed tunnel addresses. Secret parts
(the shared tls-crypt key; the private key of an organisation that sent no CSR) are Pulumi secrets, shown only by
`pulumi stack output --show-secrets vpn`. No resources: the certificates themselves are components/pki.py's.
"""

from __future__ import annotations

from typing import Any

import pulumi
from cryptography import x509

from components.host import Host
from components.pki import Pki
from nina import openvpn
from nina.config import StackConfig


def serial_of(cert_pem: str) -> str:
    """The serial as `openssl x509 -noout -serial` prints it; an unissued placeholder passes through."""
    try:
        return openvpn.serial_hex(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number)
    except ValueError:
        return cert_pem


def outputs(cfg: StackConfig, pki: Pki, hosts: dict[str, Host]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for fed in cfg.federations.values():
        if not fed.vpn_host:
            continue
        insts = openvpn.instances(fed)
        orgs = openvpn.clients(cfg, fed)
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
            "server": hosts[fed.vpn_host].public_ip,
            "remotes": [{"port": i.port, "proto": i.proto} for i in insts],
            "verify_x509_name": openvpn.server_name(cfg, fed),
            "ca_cert_pem": pki.ca_cert_pem,
            "tls_crypt_key": pulumi.Output.secret(pki.tls_crypt[fed.name]),
            "clients": clients,
        }
    return result
