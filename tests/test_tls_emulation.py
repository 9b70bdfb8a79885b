"""The pulumi-tls emulation must produce what the real provider would: certificates that openssl accepts, keys that
ssh-keygen reads, and the provider's output names, defaults and formats.

openssl and ssh-keygen are the judges on purpose: a test that only re-parsed our output with cryptography would
share any misunderstanding the module has.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from nina.offline.tls_emulation import TLS_TYPES, emulate, hash_for_state

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"

NOW = datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)
SERVER_DNS = ["superlink.nina.internal", "localhost"]
SERVER_IPS = ["10.20.1.20", "127.0.0.1", "::1"]


def secret(value: Any) -> dict[str, Any]:
    """A value the way the Pulumi SDK puts a secret on the wire."""
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": value}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, check=False)


def assert_provider_id(value: str, der: bytes) -> None:
    """The provider's ids hash strings.TrimSpace(der); random DER rarely ends in a space byte, and when it does the
    trimming is what testhash_for_state_trims_like_go covers, so only the common case is checked here."""
    if not der.decode("utf-8", "replace")[-1].isspace():
        assert value == hashlib.sha1(der).hexdigest()


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def ca_inputs(key_pem: str, common_name: str = "NINA Test CA") -> dict[str, Any]:
    return {
        "privateKeyPem": secret(key_pem),
        "subject": {"commonName": common_name, "organization": "NINA", "country": "AU"},
        "validityPeriodHours": 87600.0,
        "earlyRenewalHours": 720.0,
        "allowedUses": ["cert_signing", "crl_signing"],
        "isCaCertificate": True,
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """CA -> CSR -> locally signed server certificate, fed to emulate() the way the Pulumi mock feeds it."""
    ca_key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P384"})
    ca = emulate(SELF_SIGNED_CERT, ca_inputs(ca_key["privateKeyPem"]))
    server_key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    csr = emulate(
        CERT_REQUEST,
        {
            "privateKeyPem": secret(server_key["privateKeyPem"]),
            "subject": {"commonName": "superlink.nina.internal", "organization": "NINA"},
            "dnsNames": SERVER_DNS,
            "ipAddresses": SERVER_IPS,
        },
    )
    server = emulate(
        LOCALLY_SIGNED_CERT,
        {
            "certRequestPem": csr["certRequestPem"],
            "caPrivateKeyPem": secret(ca_key["privateKeyPem"]),
            "caCertPem": ca["certPem"],
            "validityPeriodHours": 8760.0,
            "allowedUses": ["digital_signature", "key_encipherment", "server_auth"],
        },
    )
    directory = tmp_path_factory.mktemp("pki")
    (directory / "ca.pem").write_text(ca["certPem"])
    (directory / "server.pem").write_text(server["certPem"])
    return {"ca_key": ca_key, "ca": ca, "server_key": server_key, "csr": csr, "server": server, "dir": directory}


def test_tls_types_are_the_four_resources() -> None:
    assert TLS_TYPES == {PRIVATE_KEY, SELF_SIGNED_CERT, CERT_REQUEST, LOCALLY_SIGNED_CERT}
    with pytest.raises(ValueError, match="not a pulumi-tls resource"):
        emulate("tls:index/foo:Foo", {})


def test_openssl_verifies_server_cert_against_ca(pki: dict[str, Any], tmp_path: Path) -> None:
    directory: Path = pki["dir"]
    result = run("openssl", "verify", "-CAfile", directory / "ca.pem", directory / "server.pem")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("server.pem: OK")

    # Control: the same check must fail against a CA with the same name but another key.
    other_key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P384"})
    (tmp_path / "other.pem").write_text(emulate(SELF_SIGNED_CERT, ca_inputs(other_key["privateKeyPem"]))["certPem"])
    assert run("openssl", "verify", "-CAfile", tmp_path / "other.pem", directory / "server.pem").returncode != 0


def test_openssl_shows_sans_and_server_auth(pki: dict[str, Any]) -> None:
    result = run("openssl", "x509", "-in", pki["dir"] / "server.pem", "-noout", "-text")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in SERVER_DNS:
        assert f"DNS:{name}" in text
    for ip in ("10.20.1.20", "127.0.0.1"):
        assert f"IP Address:{ip}" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    assert "Issuer: C = AU, O = NINA, CN = NINA Test CA" in text


def test_server_cert_copies_csr_and_chains_to_ca(pki: dict[str, Any]) -> None:
    ca, server = cert(pki["ca"]["certPem"]), cert(pki["server"]["certPem"])
    csr = x509.load_pem_x509_csr(pki["csr"]["certRequestPem"].encode())

    assert server.subject == csr.subject
    assert server.issuer == ca.subject
    assert server.public_key() == csr.public_key()
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == SERVER_DNS
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ip) for ip in SERVER_IPS]

    basic = server.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    usage = server.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_key_id
    with pytest.raises(x509.ExtensionNotFound):  # setSubjectKeyId defaults to false for a leaf
        server.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    # Go signs with the hash matching the signer's curve: the CA key is P-384.
    assert isinstance(server.signature_hash_algorithm, hashes.SHA384)
    assert server.serial_number == int(pki["server"]["id"]) < 2**128
    assert server.not_valid_after_utc - server.not_valid_before_utc == datetime.timedelta(hours=8760)
    assert pki["server"]["caKeyAlgorithm"] == "ECDSA"
    assert pki["server"]["validityPeriodHours"] == 8760
    assert pki["server"]["earlyRenewalHours"] == 0
    assert pki["server"]["isCaCertificate"] is False
    assert pki["server"]["readyForRenewal"] is False


def test_ca_cert(pki: dict[str, Any]) -> None:
    ca = cert(pki["ca"]["certPem"])
    assert ca.subject == ca.issuer
    # Go's pkix.Name order: C, ..., O, OU, CN.
    assert [attribute.oid for attribute in ca.subject] == [
        NameOID.COUNTRY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.COMMON_NAME,
    ]
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length is None
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    # Go's KeyUsage encoding, byte for byte.
    assert ca.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value.public_bytes() == b"\x03\x02\x01\x06"
    with pytest.raises(x509.ExtensionNotFound):  # no EKU was asked for
        ca.extensions.get_extension_for_class(x509.ExtendedKeyUsage)

    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == hashlib.sha1(point).digest()  # a CA always gets an SKI
    assert pki["ca"]["keyAlgorithm"] == "ECDSA"
    assert pki["ca"]["id"] == str(ca.serial_number)
    assert "privateKeyPem" in pki["ca"] and not isinstance(pki["ca"]["privateKeyPem"], dict)


def test_cert_request(pki: dict[str, Any]) -> None:
    csr_pem: str = pki["csr"]["certRequestPem"]
    assert csr_pem.startswith("-----BEGIN CERTIFICATE REQUEST-----\n") and csr_pem.endswith("-----\n")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "superlink.nina.internal"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == SERVER_DNS
    assert pki["csr"]["keyAlgorithm"] == "ECDSA"
    assert_provider_id(pki["csr"]["id"], csr.public_bytes(serialization.Encoding.DER))
    assert pki["csr"]["dnsNames"] == SERVER_DNS  # inputs are echoed
    (pki["dir"] / "server.csr").write_text(csr_pem)
    assert run("openssl", "req", "-in", pki["dir"] / "server.csr", "-noout", "-verify").returncode == 0


def test_ecdsa_p384_key_round_trips_through_ssh_keygen(tmp_path: Path) -> None:
    key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P384"})
    public_line: str = key["publicKeyOpenssh"]
    assert public_line.startswith("ecdsa-sha2-nistp384 AAAA")
    assert public_line.endswith("\n") and public_line.count("\n") == 1

    key_file = tmp_path / "id_ecdsa"
    key_file.write_text(key["privateKeyOpenssh"])
    key_file.chmod(0o600)
    derived = run("ssh-keygen", "-y", "-f", key_file)
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == public_line.split()[:2]

    (tmp_path / "id_ecdsa.pub").write_text(public_line)
    sha256 = run("ssh-keygen", "-l", "-E", "sha256", "-f", tmp_path / "id_ecdsa.pub")
    md5 = run("ssh-keygen", "-l", "-E", "md5", "-f", tmp_path / "id_ecdsa.pub")
    assert sha256.stdout.split()[1] == key["publicKeyFingerprintSha256"]
    assert md5.stdout.split()[1] == "MD5:" + key["publicKeyFingerprintMd5"]
    # pem.EncodeToMemory wraps at 64 columns (ssh-keygen would use 70).
    assert max(len(line) for line in key["privateKeyOpenssh"].splitlines()) <= 64


@pytest.mark.parametrize(
    ("inputs", "pem_label", "key_type"),
    [
        ({"algorithm": "RSA", "rsaBits": 2048.0}, "RSA PRIVATE KEY", rsa.RSAPrivateKey),
        ({"algorithm": "ECDSA", "ecdsaCurve": "P256"}, "EC PRIVATE KEY", ec.EllipticCurvePrivateKey),
        ({"algorithm": "ED25519"}, "PRIVATE KEY", ed25519.Ed25519PrivateKey),
    ],
)
def test_private_key_pem_flavours(inputs: dict[str, Any], pem_label: str, key_type: type) -> None:
    key = emulate(PRIVATE_KEY, inputs)
    assert key["privateKeyPem"].startswith(f"-----BEGIN {pem_label}-----\n")
    assert key["privateKeyPemPkcs8"].startswith("-----BEGIN PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(key["privateKeyPem"].encode(), password=None)
    assert isinstance(private, key_type)
    pkcs8 = serialization.load_pem_private_key(key["privateKeyPemPkcs8"].encode(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    public_der = private.public_key().public_bytes(*spki)
    assert pkcs8.public_key().public_bytes(*spki) == public_der
    assert key["publicKeyPem"] == private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    assert_provider_id(key["id"], public_der)
    assert key["publicKeyFingerprintSha256"].startswith("SHA256:") and "=" not in key["publicKeyFingerprintSha256"]
    # Schema defaults are stored whatever the algorithm, as integers.
    assert type(key["rsaBits"]) is int and key["rsaBits"] == 2048
    assert key["ecdsaCurve"] == inputs.get("ecdsaCurve", "P224")
    if isinstance(private, rsa.RSAPrivateKey):
        assert private.key_size == 2048


def test_default_curve_p224_has_no_openssh_forms() -> None:
    """x/crypto/ssh cannot encode P-224, so the provider stores empty strings instead of failing."""
    key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA"})
    assert key["ecdsaCurve"] == "P224"
    private = serialization.load_pem_private_key(key["privateKeyPem"].encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp224r1"
    for name in ("privateKeyOpenssh", "publicKeyOpenssh", "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"):
        assert key[name] == ""


@pytest.mark.parametrize(
    ("data", "hashed"),
    [
        (b"\x30\x03ab", b"\x30\x03ab"),
        (b"\x30\x03ab \t\n\r\v\f", b"\x30\x03ab"),  # ASCII spaces
        (b"\x30\x03ab\xc2\xa0\xe2\x80\x80", b"\x30\x03ab"),  # U+00A0, U+2000: unicode.IsSpace
        (b"\x30\x03ab\xa0", b"\x30\x03ab\xa0"),  # a lone 0xA0 is invalid UTF-8, not a space
        (b"\x30\x03ab\x1f", b"\x30\x03ab\x1f"),  # Python counts U+001F as space, Go does not
    ],
)
def testhash_for_state_trims_like_go(data: bytes, hashed: bytes) -> None:
    """Ids are sha1(strings.TrimSpace(der)) in the provider, binary DER included."""
    assert hash_for_state(data) == hashlib.sha1(hashed).hexdigest()


@pytest.fixture(scope="module")
def ecdsa_key_pem() -> str:
    pem: str = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P256"})["privateKeyPem"]
    return pem


def self_signed(key_pem: str, **inputs: Any) -> dict[str, Any]:
    base = {"privateKeyPem": key_pem, "validityPeriodHours": 48, "allowedUses": ["server_auth"]}
    return emulate(SELF_SIGNED_CERT, {**base, **inputs}, now=NOW)


def test_validity_times_are_rfc3339_utc(ecdsa_key_pem: str) -> None:
    outputs = self_signed(ecdsa_key_pem)
    assert outputs["validityStartTime"] == "2026-11-23T09:00:00Z"
    assert outputs["validityEndTime"] == "2026-11-25T09:00:00Z"
    certificate = cert(outputs["certPem"])
    assert certificate.not_valid_before_utc == NOW
    assert certificate.not_valid_after_utc == NOW + datetime.timedelta(hours=48)

    # Go's MarshalText keeps a fraction, without trailing zeros; a zone-aware `now` is converted to UTC.
    aest = datetime.timezone(datetime.timedelta(hours=10))
    later = emulate(
        SELF_SIGNED_CERT,
        {"privateKeyPem": ecdsa_key_pem, "validityPeriodHours": 1, "allowedUses": []},
        now=datetime.datetime(2026, 11, 23, 19, 0, 0, 250000, tzinfo=aest),
    )
    assert later["validityStartTime"] == "2026-11-23T09:00:00.25Z"


def test_ready_for_renewal_flips_inside_early_renewal_window(ecdsa_key_pem: str) -> None:
    assert self_signed(ecdsa_key_pem, earlyRenewalHours=47)["readyForRenewal"] is False
    assert self_signed(ecdsa_key_pem, earlyRenewalHours=48)["readyForRenewal"] is True  # window starts now
    assert self_signed(ecdsa_key_pem, earlyRenewalHours=100)["readyForRenewal"] is True
    assert self_signed(ecdsa_key_pem, validityPeriodHours=0)["readyForRenewal"] is True  # already expired


def test_floats_and_secret_wrapped_inputs(ecdsa_key_pem: str) -> None:
    key = emulate(PRIVATE_KEY, {"algorithm": secret("RSA"), "rsaBits": secret(3072.0)})
    assert key["algorithm"] == "RSA" and key["rsaBits"] == 3072 and type(key["rsaBits"]) is int
    private = serialization.load_pem_private_key(key["privateKeyPem"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 3072

    outputs = emulate(
        SELF_SIGNED_CERT,
        secret(
            {
                "privateKeyPem": secret(ecdsa_key_pem),
                "subject": {"commonName": secret("wrapped"), "streetAddresses": [secret("1 Main St"), "Level 2"]},
                "validityPeriodHours": 24.0,
                "earlyRenewalHours": secret(2.0),
                "allowedUses": [secret("client_auth")],
                "isCaCertificate": secret(False),
            }
        ),
        now=NOW,
    )

    def has_wrapper(value: Any) -> bool:
        if isinstance(value, dict):
            return "4dabf18193072939515e22adb298388d" in value or any(map(has_wrapper, value.values()))
        return isinstance(value, list) and any(map(has_wrapper, value))

    assert not has_wrapper(outputs)
    assert outputs["privateKeyPem"] == ecdsa_key_pem
    assert (outputs["validityPeriodHours"], outputs["earlyRenewalHours"]) == (24, 2)
    assert type(outputs["validityPeriodHours"]) is int
    certificate = cert(outputs["certPem"])
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(hours=24)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "wrapped"
    # Several street addresses share one multi-valued RDN, as Go writes them.
    street_rdns = [rdn for rdn in certificate.subject.rdns if rdn.get_attributes_for_oid(NameOID.STREET_ADDRESS)]
    assert len(street_rdns) == 1 and {attribute.value for attribute in street_rdns[0]} == {"1 Main St", "Level 2"}
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_self_signed_authority_key_id(ecdsa_key_pem: str) -> None:
    outputs = self_signed(ecdsa_key_pem, setSubjectKeyId=True, setAuthorityKeyId=True)
    certificate = cert(outputs["certPem"])
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    without = cert(self_signed(ecdsa_key_pem)["certPem"])
    with pytest.raises(x509.ExtensionNotFound):
        without.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    with pytest.raises(ValueError, match="Authority Key Identifier"):  # nothing to copy without an SKI
        self_signed(ecdsa_key_pem, setAuthorityKeyId=True)


def test_key_usage_flags_go_accepts(ecdsa_key_pem: str, tmp_path: Path) -> None:
    """encipher_only without key_agreement is legal for Go (cryptography's KeyUsage would refuse to build it)."""
    outputs = self_signed(ecdsa_key_pem, allowedUses=["digital_signature", "encipher_only", "decipher_only"])
    (tmp_path / "cert.pem").write_text(outputs["certPem"])
    text = run("openssl", "x509", "-in", tmp_path / "cert.pem", "-noout", "-text").stdout
    assert "Digital Signature, Encipher Only, Decipher Only" in text


def test_ed25519_ca_verifies_and_uses_the_providers_key_id(tmp_path: Path) -> None:
    key = emulate(PRIVATE_KEY, {"algorithm": "ED25519"})
    ca = emulate(SELF_SIGNED_CERT, {**ca_inputs(key["privateKeyPem"]), "dnsNames": ["ca.nina.internal"]})
    (tmp_path / "ca.pem").write_text(ca["certPem"])
    result = run("openssl", "verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "ca.pem")
    assert result.returncode == 0, result.stdout + result.stderr
    certificate = cert(ca["certPem"])
    assert ca["keyAlgorithm"] == "ED25519" and certificate.signature_hash_algorithm is None
    raw = certificate.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == hashlib.sha1(b"\x04\x20" + raw).digest()  # Go hashes asn1.Marshal(key): an OCTET STRING


def test_empty_subject_makes_san_critical(ecdsa_key_pem: str) -> None:
    certificate = cert(self_signed(ecdsa_key_pem, dnsNames=["only.san"])["certPem"])
    assert list(certificate.subject) == []
    assert certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_inputs_the_provider_rejects(pki: dict[str, Any], ecdsa_key_pem: str) -> None:
    with pytest.raises(ValueError, match="allowedUses"):
        self_signed(ecdsa_key_pem, allowedUses=["server_auth", "serverAuth"])
    with pytest.raises(ValueError, match="Distinguished Name"):
        self_signed(ecdsa_key_pem, isCaCertificate=True)
    with pytest.raises(ValueError, match="algorithm"):
        emulate(PRIVATE_KEY, {"algorithm": "DSA"})
    with pytest.raises(ValueError, match="ecdsaCurve"):
        emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P192"})
    with pytest.raises(ValueError, match="integer"):
        self_signed(ecdsa_key_pem, validityPeriodHours=1.5)

    signing = {
        "certRequestPem": pki["csr"]["certRequestPem"],
        "caPrivateKeyPem": pki["ca_key"]["privateKeyPem"],
        "caCertPem": pki["ca"]["certPem"],
        "validityPeriodHours": 1,
        "allowedUses": ["server_auth"],
    }
    with pytest.raises(ValueError, match="doesn't match"):
        emulate(LOCALLY_SIGNED_CERT, {**signing, "caPrivateKeyPem": pki["server_key"]["privateKeyPem"]})
    with pytest.raises(ValueError, match="PEM block"):
        emulate(LOCALLY_SIGNED_CERT, {**signing, "caCertPem": pki["csr"]["certRequestPem"]})
    with pytest.raises(ValueError, match="PEM block"):
        emulate(CERT_REQUEST, {"privateKeyPem": pki["ca"]["certPem"]})


def test_intermediate_ca_from_csr(pki: dict[str, Any], tmp_path: Path) -> None:
    """isCaCertificate on a locally signed cert yields a CA that can itself sign a verifiable leaf."""
    key = emulate(PRIVATE_KEY, {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    csr = emulate(CERT_REQUEST, {"privateKeyPem": key["privateKeyPem"], "subject": {"commonName": "NINA Sub CA"}})
    sub = emulate(
        LOCALLY_SIGNED_CERT,
        {
            "certRequestPem": csr["certRequestPem"],
            "caPrivateKeyPem": pki["ca_key"]["privateKeyPem"],
            "caCertPem": pki["ca"]["certPem"],
            "validityPeriodHours": 100,
            "allowedUses": ["cert_signing"],
            "isCaCertificate": True,
            "maxPathLength": 0.0,
        },
    )
    basic = cert(sub["certPem"]).extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length is None  # 0 means "unset" to Go without MaxPathLenZero
    assert type(sub["maxPathLength"]) is int and sub["isCaCertificate"] is True
    leaf_key = emulate(PRIVATE_KEY, {"algorithm": "ED25519"})
    leaf_csr = emulate(CERT_REQUEST, {"privateKeyPem": leaf_key["privateKeyPem"], "dnsNames": ["leaf.nina.internal"]})
    leaf = emulate(
        LOCALLY_SIGNED_CERT,
        {
            "certRequestPem": leaf_csr["certRequestPem"],
            "caPrivateKeyPem": key["privateKeyPem"],
            "caCertPem": sub["certPem"],
            "validityPeriodHours": 10,
            "allowedUses": ["client_auth"],
        },
    )
    (tmp_path / "sub.pem").write_text(sub["certPem"])
    (tmp_path / "leaf.pem").write_text(leaf["certPem"])
    result = run(
        "openssl", "verify", "-CAfile", pki["dir"] / "ca.pem", "-untrusted", tmp_path / "sub.pem", tmp_path / "leaf.pem"
    )
    assert result.returncode == 0, result.stdout + result.stderr
