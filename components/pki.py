"""The platform's local CA and everything it issues, as pulumi-tls resources (manual §4.1.2.2, §4.1.2.16, §4.1.2.3.1).

Stable identity is the point: every key and certificate here is named after what it is for (`tls-superlink-superlink`,
`supernode-test-fl-sn1`), never after unrelated config, so changing a flavor or adding a host leaves them alone. The
CA is `protect`ed: re-minting it would make every hospital reinstall, so Pulumi refuses to replace or delete it
unless an operator unprotects it on purpose. What is issued, with which names, is nina/plan/pki.py; key
types and lifetimes are nina/catalog/pki.py. Leaves renew early and their end dates are stack outputs.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from nina.catalog import pki as pki_spec
from nina.plan.pki import Certificate, Issuance


@dataclass
class Issued:
    """A certificate and (unless the holder keeps its own key) its private key."""

    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str] | None  # PKCS#8 PEM, secret; None when the key stays with its owner (a site's CSR)
    not_after: pulumi.Output[str]


def _subject_fields(common_name: str) -> dict[str, str]:
    return {
        "common_name": common_name,
        "organization": pki_spec.ORGANIZATION,
        "organizational_unit": pki_spec.ORGANIZATIONAL_UNIT,
        "country": pki_spec.COUNTRY,
        "province": pki_spec.PROVINCE,
        "locality": pki_spec.LOCALITY,
    }


def _key(name: str, spec: pki_spec.KeySpec, opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    return tls.PrivateKey(name, algorithm=spec.algorithm, ecdsa_curve=spec.ecdsa_curve, opts=opts)


def expiry_warning(label: str, not_after: str, now: datetime.datetime | None = None) -> str | None:
    """The warning `pulumi preview` prints for a certificate ending within EXPIRY_WARNING_DAYS (None otherwise)."""
    try:
        end = datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    except ValueError:
        return None  # a placeholder: the provider has not issued it yet
    now = now or datetime.datetime.now(datetime.timezone.utc)
    left = end - now
    if left > datetime.timedelta(days=pki_spec.EXPIRY_WARNING_DAYS):
        return None
    return (
        f"certificate {label} expires {not_after} ({max(left.days, 0)} days left): `pulumi up` renews leaves "
        f"{pki_spec.SERVER_CERT.early_renewal_hours // 24} days early; the CA needs an operator (README: PKI)"
    )


def _warn_on_expiry(label: str, not_after: pulumi.Output[str]) -> None:
    def check(value: str) -> str:
        message = expiry_warning(label, value)
        if message:
            pulumi.log.warn(message)
        return value

    not_after.apply(check)


def openvpn_static_key(hex_digits: str) -> str:
    """OpenVPN's tls-crypt key file format: 2048 bits as 16 lines of 32 hex digits between markers."""
    lines = [hex_digits[i : i + 32] for i in range(0, len(hex_digits), 32)]
    return "-----BEGIN OpenVPN Static key V1-----\n" + "\n".join(lines) + "\n-----END OpenVPN Static key V1-----\n"


class Pki(pulumi.ComponentResource):
    ca_cert_pem: pulumi.Output[str]
    servers: dict[tuple[str, str], Issued]  # (host, role) -> server certificate
    supernode_keys: dict[tuple[str, str], tls.PrivateKey]  # (federation, SuperNode) -> generated auth key
    vpn_clients: dict[tuple[str, str], Issued]  # (federation, organisation) -> OpenVPN client certificate
    tls_crypt: dict[str, pulumi.Output[str]]  # federation -> OpenVPN tls-crypt key (secret)
    superexec_secrets: dict[tuple[str, str | None], pulumi.Output[str]]  # (federation, SuperNode or None) -> SuperExec secret

    def __init__(self, name: str, wanted: Issuance, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:pki:Pki", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # §4.1.2.2: one CA for the environment. Protected: it must outlive any refactoring of this program.
        ca_opts = pulumi.ResourceOptions(parent=self, protect=True)
        ca_key = _key("ca", pki_spec.CA_KEY, ca_opts)
        ca_cert = tls.SelfSignedCert(
            "ca",
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(**_subject_fields(f"NINA {wanted.environment} local CA")),
            is_ca_certificate=True,
            validity_period_hours=pki_spec.CA_CERT.validity_hours,
            allowed_uses=list(pki_spec.CA_CERT.allowed_uses),
            opts=ca_opts,
        )
        self.ca_cert_pem = ca_cert.cert_pem
        self._ca_key_pem = ca_key.private_key_pem
        self.expiry: dict[str, pulumi.Output[str]] = {"ca": ca_cert.validity_end_time}

        self.servers = {(c.host, c.role): self._issue(c) for c in wanted.servers}
        self.vpn_clients = {(c.federation, c.organisation): self._issue(c) for c in wanted.vpn_clients}
        # Flower SuperNode authentication: an ECDSA P-384 key whose OpenSSH public half is registered.
        self.supernode_keys = {(fed, sn): _key(f"supernode-{fed}-{sn}", pki_spec.SUPERNODE_KEY, child) for fed, sn in wanted.supernode_keys}
        self.superexec_secrets = {}
        for fed, sn in wanted.superexec_secrets:
            name = f"superexec-{fed}" if sn is None else f"superexec-{fed}-supernode-{sn}"
            secret = random.RandomPassword(name, length=48, special=False, opts=child)
            self.superexec_secrets[(fed, sn)] = pulumi.Output.secret(secret.result)
        self.tls_crypt = {}
        for fed in wanted.tls_crypt:
            static = random.RandomBytes(f"tls-crypt-{fed}", length=pki_spec.TLS_CRYPT_BYTES, opts=child)
            self.tls_crypt[fed] = pulumi.Output.secret(static.hex.apply(openvpn_static_key))
        for label, end in sorted(self.expiry.items()):
            _warn_on_expiry(label, end)
        self.register_outputs({"ca_cert_pem": self.ca_cert_pem, "expiry": self.expiry})

    def _issue(self, cert: Certificate) -> Issued:
        """A key (unless the holder sent its own CSR), a CSR and the CA's signature, all named `cert.name`."""
        child = pulumi.ResourceOptions(parent=self)
        key_pem: pulumi.Output[str] | None = None
        if cert.csr is None:
            private = _key(cert.name, cert.key, child)
            request = tls.CertRequest(
                cert.name,
                private_key_pem=private.private_key_pem,
                subject=tls.CertRequestSubjectArgs(**_subject_fields(cert.common_name)),
                dns_names=list(cert.dns_names),
                ip_addresses=list(cert.ip_addresses),
                opts=child,
            )
            request_pem: pulumi.Input[str] = request.cert_request_pem
            # PKCS#8: the one PEM flavour every consumer here reads (Keycloak needs it; flwr, nginx, OpenVPN accept it).
            key_pem = pulumi.Output.secret(private.private_key_pem_pkcs8)
        else:
            request_pem = cert.csr  # the site made its own key; only the CSR travelled
        signed = tls.LocallySignedCert(
            cert.name,
            cert_request_pem=request_pem,
            ca_private_key_pem=self._ca_key_pem,
            ca_cert_pem=self.ca_cert_pem,
            validity_period_hours=cert.spec.validity_hours,
            early_renewal_hours=cert.spec.early_renewal_hours,
            allowed_uses=list(cert.spec.allowed_uses),
            opts=child,
        )
        self.expiry[cert.name] = signed.validity_end_time
        return Issued(signed.cert_pem, key_pem, signed.validity_end_time)
