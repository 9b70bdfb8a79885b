"""Key types and validity for everything the local CA issues, in one place (manual §4.1.2.2, §4.1.2.16).

ECDSA everywhere: Flower accepts P-256/P-384 server keys and requires NIST-curve SuperNode keys; OpenVPN, nginx,
Keycloak (PKCS#8 PEM), Grafana and JupyterHub all take ECDSA. The CA lives ten years and is never re-minted by
accident (re-minting it would make every hospital reinstall); leaves live a year and are renewed 30 days early:
`pulumi up` replaces a leaf once pulumi-tls reports `ready_for_renewal`, and the SSH delivery re-installs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpec:
    algorithm: str  # pulumi-tls: RSA | ECDSA | ED25519
    ecdsa_curve: str | None = None


@dataclass(frozen=True)
class CertSpec:
    validity_hours: int
    early_renewal_hours: int
    allowed_uses: tuple[str, ...]


CA_KEY = KeySpec("ECDSA", "P384")
CA_CERT = CertSpec(10 * 365 * 24, 0, ("cert_signing", "crl_signing", "digital_signature"))
SERVER_KEY = KeySpec("ECDSA", "P256")
SERVER_CERT = CertSpec(365 * 24, 30 * 24, ("digital_signature", "key_encipherment", "server_auth"))
CLIENT_KEY = KeySpec("ECDSA", "P256")
CLIENT_CERT = CertSpec(365 * 24, 30 * 24, ("digital_signature", "key_encipherment", "client_auth"))
# Flower SuperNode authentication: ECDSA P-384 in OpenSSH format (manual §4.1.2.16.2, `ssh-keygen -t ecdsa -b 384`).
SUPERNODE_KEY = KeySpec("ECDSA", "P384")

# The preview and `pulumi preview` warn when a certificate ends within this window.
EXPIRY_WARNING_DAYS = 30

ORGANIZATION = "QCIF"
COUNTRY = "AU"
PROVINCE = "Queensland"
LOCALITY = "Brisbane"
ORGANIZATIONAL_UNIT = "NINA"  # manual's easy-rsa vars (§4.1.2.2)

# OpenVPN tls-crypt: a 2048-bit static key ("OpenVPN Static key V1"), made from RandomBytes.
TLS_CRYPT_BYTES = 256
