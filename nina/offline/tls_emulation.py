"""Offline emulation of the pulumi-tls provider (v5.x, which wraps terraform-provider-tls v4) for Pulumi mocks.

Under `pulumi.runtime.set_mocks` no provider runs, so a mock that returned placeholders would hide every mistake in
how the program wires keys, CSRs and certificates together. `emulate` computes what the real provider's Create
would store instead: real keys, real certificates signed by the configured CA, the same PEM flavours, the same ids.

Where the provider's behaviour comes from Go's crypto/x509 rather than from the provider itself (extension order,
string types in names, which extensions are critical, which hash signs), the comments say so: those details decide
whether the certificates look and verify exactly like the ones a `pulumi up` would produce.

Deliberate differences from the real provider:
- times are formatted in UTC; the provider formats `time.Now()` in the provider host's zone;
- `readyForRenewal` is evaluated at `now` instead of always starting out false: the provider only flips it on the
  next refresh, and a certificate that is ready for renewal the moment it is issued is a configuration error
  (earlyRenewalHours >= validityPeriodHours) that the tests of the program should be able to see.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import re
import secrets
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID

from nina.offline.wire import unwrap

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Props: TypeAlias = dict[str, Any]
SignatureHash: TypeAlias = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

_PRIVATE_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


# --- shared tables -------------------------------------------------------------------------------------------------

_ALGORITHM_NAMES: tuple[tuple[type, str], ...] = (
    (rsa.RSAPrivateKey, "RSA"),
    (rsa.RSAPublicKey, "RSA"),
    (ec.EllipticCurvePrivateKey, "ECDSA"),
    (ec.EllipticCurvePublicKey, "ECDSA"),
    (ed25519.Ed25519PrivateKey, "ED25519"),
    (ed25519.Ed25519PublicKey, "ED25519"),
)

_CURVES: dict[str, ec.EllipticCurve] = {
    "P224": ec.SECP224R1(),
    "P256": ec.SECP256R1(),
    "P384": ec.SECP384R1(),
    "P521": ec.SECP521R1(),
}

# Go's x509 signs with a hash chosen by the signer's key: SHA-256 for RSA, by curve size for ECDSA, none for Ed25519.
_ECDSA_HASHES: dict[str, type[SignatureHash]] = {
    "secp224r1": hashes.SHA256,
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}

# privateKeyPem is "traditional" for RSA (PKCS#1) and ECDSA (SEC 1) but PKCS#8 for Ed25519, which has no other form.
_PRIVATE_KEY_PEM: dict[str, tuple[str, serialization.PrivateFormat]] = {
    "RSA": ("RSA PRIVATE KEY", serialization.PrivateFormat.TraditionalOpenSSL),
    "ECDSA": ("EC PRIVATE KEY", serialization.PrivateFormat.TraditionalOpenSSL),
    "ED25519": ("PRIVATE KEY", serialization.PrivateFormat.PKCS8),
}

# The only PEM blocks the provider's parsePrivateKeyPEM accepts (it reads the first block of the input).
_PRIVATE_KEY_LABELS = frozenset(label for label, _ in _PRIVATE_KEY_PEM.values())

# allowedUses -> KeyUsage bit number (RFC 5280 §4.2.1.3; Go's x509.KeyUsage flag is 1 << bit).
_KEY_USAGE_BITS: dict[str, int] = {
    "digital_signature": 0,
    "content_commitment": 1,
    "key_encipherment": 2,
    "data_encipherment": 3,
    "key_agreement": 4,
    "cert_signing": 5,
    "crl_signing": 6,
    "encipher_only": 7,
    "decipher_only": 8,
}

# allowedUses -> ExtendedKeyUsage OID (the OIDs behind Go's x509.ExtKeyUsage constants).
_EXTENDED_KEY_USAGES: dict[str, x509.ObjectIdentifier] = {
    "any_extended": x509.ObjectIdentifier("2.5.29.37.0"),
    "server_auth": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.1"),
    "client_auth": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.2"),
    "code_signing": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.3"),
    "email_protection": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.4"),
    "ipsec_end_system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.8"),
    "ocsp_signing": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.9"),
    "microsoft_server_gated_crypto": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}

# Subject fields in the order Go's pkix.Name.ToRDNSequence writes them. Each field becomes one RDN (several values
# of one field share a multi-valued RDN); emailAddress, which the provider adds as an extra name, comes last.
_SUBJECT_FIELDS: tuple[tuple[str, x509.ObjectIdentifier], ...] = (
    ("country", NameOID.COUNTRY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
)
# Go keeps these two as plain strings: an empty one is left out, and parsing keeps the last one seen.
_SINGLE_VALUED = frozenset({NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER})

# Go writes a name value as PrintableString when every character allows it, otherwise as UTF8String.
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")

# What Go's strings.TrimSpace trims (unicode.IsSpace); hashForState trims before hashing, even binary DER.
_GO_SPACES = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"

_PEM_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]+)-----")

# --- small helpers -------------------------------------------------------------------------------------------------


def _int(props: Props, key: str, default: int | None = None) -> int:
    """Wire numbers are doubles (384.0); the provider's schema says int64."""
    value = props.get(key)
    if value is None:
        if default is None:
            raise ValueError(f"{key} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return int(value)


def _bool(props: Props, key: str) -> bool:
    return bool(props.get(key))


def _strings(props: Props, key: str) -> list[str]:
    return [str(item) for item in props.get(key) or []]


def _algorithm(key: object) -> str:
    for cls, name in _ALGORITHM_NAMES:
        if isinstance(key, cls):
            return name
    raise ValueError(f"unsupported key type {type(key).__name__}")


def _pem(label: str, der: bytes) -> str:
    """PEM exactly as Go's pem.EncodeToMemory writes it: 64-column base64, trailing newline."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "".join(f"{line}\n" for line in [f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def _require_pem_block(text: str, expected: frozenset[str]) -> None:
    """The first PEM block must be one of `expected`: Go's pem.Decode only looks at that block."""
    match = _PEM_BEGIN.search(text)
    if match is None:
        raise ValueError("failed to decode PEM block")
    if match.group(1) not in expected:
        raise ValueError(f"unexpected PEM block {match.group(1)!r}, expected one of {sorted(expected)}")


def hash_for_state(data: bytes) -> str:
    """The provider's hashForState: hex SHA-1 of strings.TrimSpace(data)."""
    trimmed = data.decode("utf-8", "surrogateescape").strip(_GO_SPACES).encode("utf-8", "surrogateescape")
    return hashlib.sha1(trimmed).hexdigest()


def _go_time(moment: datetime.datetime) -> str:
    """Go's time.MarshalText (RFC 3339 with trailing zeros of the fraction dropped), in UTC."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc)


# --- keys ----------------------------------------------------------------------------------------------------------


def _load_private_key(pem: str) -> PrivateKey:
    _require_pem_block(pem, _PRIVATE_KEY_LABELS)
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, _PRIVATE_KEY_TYPES):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def _signature_hash(key: PrivateKey) -> SignatureHash | None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _ECDSA_HASHES[key.curve.name]()
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None  # Ed25519 signs the message itself


def _ssh_supported(key: PublicKey) -> bool:
    # golang.org/x/crypto/ssh has no P-224, so the provider leaves the OpenSSH fields empty for it.
    return not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp224r1")


def _subject_key_id(key: PublicKey) -> bytes:
    """The provider's generateSubjectKeyID: SHA-1 over the key's Go asn1/elliptic encoding."""
    if isinstance(key, rsa.RSAPublicKey):
        data = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        data = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        # asn1.Marshal of an ed25519.PublicKey ([]byte) is an OCTET STRING, so the tag and length are hashed too.
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bytes([0x04, len(raw)]) + raw
    return hashlib.sha1(data).digest()


def _public_key_outputs(key: PrivateKey) -> Props:
    public = key.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    outputs: Props = {
        "id": hash_for_state(der),
        "publicKeyPem": _pem("PUBLIC KEY", der),
        "publicKeyOpenssh": "",
        "publicKeyFingerprintMd5": "",
        "publicKeyFingerprintSha256": "",
    }
    if _ssh_supported(public):
        line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        blob = base64.b64decode(line.split()[1])
        outputs["publicKeyOpenssh"] = line + "\n"  # ssh.MarshalAuthorizedKey ends the line
        outputs["publicKeyFingerprintMd5"] = hashlib.md5(blob).digest().hex(":")
        sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")  # Go: RawStdEncoding
        outputs["publicKeyFingerprintSha256"] = "SHA256:" + sha256
    return outputs


def _openssh_private_key(key: PrivateKey) -> str:
    if not _ssh_supported(key.public_key()):
        return ""
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    # cryptography wraps at 70 columns like ssh-keygen; the provider goes through pem.EncodeToMemory (64).
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    return _pem("OPENSSH PRIVATE KEY", base64.b64decode(body))


_KEY_GENERATORS: dict[str, Callable[[int, str], PrivateKey]] = {
    "RSA": lambda bits, _curve: rsa.generate_private_key(public_exponent=65537, key_size=bits),
    "ECDSA": lambda _bits, curve: ec.generate_private_key(_CURVES[curve]),
    "ED25519": lambda _bits, _curve: ed25519.Ed25519PrivateKey.generate(),
}


def _private_key(props: Props, now: datetime.datetime) -> Props:
    algorithm = props.get("algorithm")
    rsa_bits = _int(props, "rsaBits", 2048)
    curve = props.get("ecdsaCurve") or "P224"
    if algorithm not in _KEY_GENERATORS:
        raise ValueError(f"algorithm must be one of {sorted(_KEY_GENERATORS)}, got {algorithm!r}")
    if curve not in _CURVES:
        raise ValueError(f"ecdsaCurve must be one of {sorted(_CURVES)}, got {curve!r}")
    key = _KEY_GENERATORS[algorithm](rsa_bits, curve)

    def der(private_format: serialization.PrivateFormat) -> bytes:
        return key.private_bytes(serialization.Encoding.DER, private_format, serialization.NoEncryption())

    label, private_format = _PRIVATE_KEY_PEM[algorithm]
    return {
        **props,
        "rsaBits": rsa_bits,  # schema defaults: present in state whatever the algorithm
        "ecdsaCurve": curve,
        "privateKeyPem": _pem(label, der(private_format)),
        "privateKeyPemPkcs8": _pem("PRIVATE KEY", der(serialization.PrivateFormat.PKCS8)),
        "privateKeyOpenssh": _openssh_private_key(key),
        **_public_key_outputs(key),
    }


# --- names, SANs, usages -------------------------------------------------------------------------------------------


def _name_attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute[str]:
    string_type = _ASN1Type.PrintableString if _PRINTABLE.fullmatch(value) else _ASN1Type.UTF8String
    with warnings.catch_warnings():
        # Go accepts a country that is not two letters; cryptography would refuse it (or warn, unvalidated).
        warnings.simplefilter("ignore")
        return x509.NameAttribute(oid, value, string_type, _validate=False)


def _go_name(fields: Mapping[x509.ObjectIdentifier, list[str]], email: str | None = None) -> x509.Name:
    """A subject laid out the way Go's pkix.Name.ToRDNSequence lays it out."""
    rdns: list[x509.RelativeDistinguishedName] = []
    for _, oid in _SUBJECT_FIELDS:
        values = fields.get(oid, [])
        if oid in _SINGLE_VALUED:
            values = [value for value in values[-1:] if value]
        if values:
            rdns.append(x509.RelativeDistinguishedName([_name_attribute(oid, value) for value in values]))
    if email is not None:
        rdns.append(
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, email, _ASN1Type.IA5String)])
        )
    return x509.Name(rdns)


def _subject_from_inputs(subject: Any) -> x509.Name:
    if isinstance(subject, list):  # a MaxItems=1 block may still arrive as a one-element list
        subject = subject[0] if subject else None
    if not subject:
        return x509.Name([])
    fields: dict[x509.ObjectIdentifier, list[str]] = {}
    for key, oid in _SUBJECT_FIELDS:
        value = subject.get(key)
        if value is not None:
            fields[oid] = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    email = subject.get("emailAddress")
    return _go_name(fields, None if email is None else str(email))


def _subject_from_csr(name: x509.Name) -> x509.Name:
    """The CSR subject after Go's parse-and-remarshal: only the pkix.Name fields survive (emailAddress does not)."""
    known = {oid for _, oid in _SUBJECT_FIELDS}
    fields: dict[x509.ObjectIdentifier, list[str]] = {}
    for attribute in name:
        if attribute.oid in known and isinstance(attribute.value, str):
            fields.setdefault(attribute.oid, []).append(attribute.value)
    return _go_name(fields)


_IP_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _ip(value: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> x509.IPAddress:
    if isinstance(value, str) and "%" in value:
        raise ValueError(f"Invalid IP address {value!r}")  # net.ParseIP has no zones
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Go stores an IPv4-mapped address as its 4-byte form
    return x509.IPAddress(address)


def _sans(dns_names: list[str], ips: list[x509.IPAddress], uris: list[str]) -> list[x509.GeneralName]:
    # Go's marshalSANs order: DNS names, (e-mail addresses,) IP addresses, URIs.
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += ips
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    return names


def _sans_from_inputs(props: Props) -> list[x509.GeneralName]:
    ips = [_ip(ip) for ip in _strings(props, "ipAddresses")]
    return _sans(_strings(props, "dnsNames"), ips, _strings(props, "uris"))


def _sans_from_csr(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return _sans(
        san.get_values_for_type(x509.DNSName),
        [_ip(ip) for ip in san.get_values_for_type(x509.IPAddress) if isinstance(ip, _IP_TYPES)],
        san.get_values_for_type(x509.UniformResourceIdentifier),
    )


def _key_usage_der(bits: int) -> bytes:
    """KeyUsage BIT STRING as Go's marshalKeyUsage writes it.

    Built by hand because cryptography's KeyUsage refuses encipher_only/decipher_only without key_agreement,
    which Go (and so the provider) accepts.
    """
    length = bits.bit_length()
    size = (length + 7) // 8
    msb_first = int("".join("1" if bits >> bit & 1 else "0" for bit in range(length)).ljust(size * 8, "0"), 2)
    return bytes([0x03, size + 1, size * 8 - length]) + msb_first.to_bytes(size, "big")


def _usages(allowed_uses: list[str]) -> tuple[int, list[x509.ObjectIdentifier]]:
    unknown = [use for use in allowed_uses if use not in _KEY_USAGE_BITS and use not in _EXTENDED_KEY_USAGES]
    if unknown:
        accepted = sorted([*_KEY_USAGE_BITS, *_EXTENDED_KEY_USAGES])
        raise ValueError(f"unsupported allowedUses {unknown}; accepted values: {accepted}")
    bits = 0
    for use in allowed_uses:
        if use in _KEY_USAGE_BITS:
            bits |= 1 << _KEY_USAGE_BITS[use]
    return bits, [_EXTENDED_KEY_USAGES[use] for use in allowed_uses if use in _EXTENDED_KEY_USAGES]


# --- certificates --------------------------------------------------------------------------------------------------


def _create_certificate(
    props: Props,
    now: datetime.datetime,
    *,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    public_key: PublicKey,
    issuer: x509.Name | None,  # None: self-signed
    issuer_key: PrivateKey,
    issuer_key_id: bytes | None = None,
) -> Props:
    """The provider's createCertificate followed by Go's x509.CreateCertificate."""
    validity_hours = _int(props, "validityPeriodHours")
    early_renewal_hours = _int(props, "earlyRenewalHours", 0)
    if validity_hours < 0 or early_renewal_hours < 0:
        raise ValueError("validityPeriodHours and earlyRenewalHours must be at least 0")
    not_before = now
    not_after = now + datetime.timedelta(hours=validity_hours)
    serial = 1 + secrets.randbelow((1 << 128) - 1)  # provider: rand.Int(2**128); cryptography needs > 0
    key_usage_bits, extended_key_usages = _usages(_strings(props, "allowedUses"))

    is_ca = _bool(props, "isCaCertificate")
    if is_ca and not list(subject):
        raise ValueError("Invalid Certificate Subject: must contain at least one Distinguished Name for a CA")
    max_path_length = _int(props, "maxPathLength", -1)
    subject_key_id = _subject_key_id(public_key) if is_ca or _bool(props, "setSubjectKeyId") else None

    if issuer is None:
        # Self-signed: the parent is the template, so the AKI is only set on request and copies the template's SKI.
        issuer = subject
        authority_key_id = None
        if _bool(props, "setAuthorityKeyId"):
            if subject_key_id is None:
                raise ValueError("Invalid Certificate Authority: could not determine Authority Key Identifier")
            authority_key_id = subject_key_id
    else:
        # Go copies the parent's SKI into the AKI whenever issuer and subject differ.
        authority_key_id = issuer_key_id if issuer.public_bytes() != subject.public_bytes() else None

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    # Extensions in the order (and with the criticality) Go's buildCertExtensions emits them.
    if key_usage_bits:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, _key_usage_der(key_usage_bits)), critical=True
        )
    if extended_key_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usages), critical=False)
    # MaxPathLen 0 means "unset" to Go unless MaxPathLenZero, which the provider never sets; non-CAs ignore it.
    path_length = max_path_length if is_ca and max_path_length > 0 else None
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
    if subject_key_id is not None:
        builder = builder.add_extension(x509.SubjectKeyIdentifier(subject_key_id), critical=False)
    if authority_key_id is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(authority_key_id, None, None), critical=False)
    if sans:
        # RFC 5280 §4.2.1.6: with an empty subject the SAN carries the identity and must be critical.
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=not list(subject))
    certificate = builder.sign(issuer_key, _signature_hash(issuer_key))

    return {
        **props,
        "earlyRenewalHours": early_renewal_hours,
        "validityPeriodHours": validity_hours,
        "isCaCertificate": is_ca,
        "setSubjectKeyId": _bool(props, "setSubjectKeyId"),
        **({"maxPathLength": max_path_length} if props.get("maxPathLength") is not None else {}),
        "certPem": _pem("CERTIFICATE", certificate.public_bytes(serialization.Encoding.DER)),
        "validityStartTime": _go_time(not_before),
        "validityEndTime": _go_time(not_after),
        "readyForRenewal": now >= not_after - datetime.timedelta(hours=early_renewal_hours),
        "id": str(serial),
    }


def _key_pem(props: Props, key: str) -> str:
    # v5.6+ also accepts a write-only variant, which the provider never stores in state.
    value = props.get(key) or props.get(key + "Wo")
    if not value:
        raise ValueError(f"{key} is required")
    return str(value)


def _without_write_only(props: Props, key: str) -> Props:
    return {name: value for name, value in props.items() if name != key + "Wo"}


def _self_signed_cert(props: Props, now: datetime.datetime) -> Props:
    key = _load_private_key(_key_pem(props, "privateKeyPem"))
    outputs = _create_certificate(
        _without_write_only(props, "privateKeyPem"),
        now,
        subject=_subject_from_inputs(props.get("subject")),
        sans=_sans_from_inputs(props),
        public_key=key.public_key(),
        issuer=None,
        issuer_key=key,
    )
    return {**outputs, "setAuthorityKeyId": _bool(props, "setAuthorityKeyId"), "keyAlgorithm": _algorithm(key)}


def _cert_request(props: Props, now: datetime.datetime) -> Props:
    key = _load_private_key(_key_pem(props, "privateKeyPem"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject_from_inputs(props.get("subject")))
    sans = _sans_from_inputs(props)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)  # Go's CSR: never critical
    der = builder.sign(key, _signature_hash(key)).public_bytes(serialization.Encoding.DER)
    return {
        **_without_write_only(props, "privateKeyPem"),
        "certRequestPem": _pem("CERTIFICATE REQUEST", der),
        "keyAlgorithm": _algorithm(key),
        "id": hash_for_state(der),
    }


def _locally_signed_cert(props: Props, now: datetime.datetime) -> Props:
    csr_pem = str(props.get("certRequestPem") or "")
    ca_cert_pem = str(props.get("caCertPem") or "")
    _require_pem_block(csr_pem, frozenset({"CERTIFICATE REQUEST"}))
    _require_pem_block(ca_cert_pem, frozenset({"CERTIFICATE"}))
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca_key = _load_private_key(_key_pem(props, "caPrivateKeyPem"))
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())

    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if ca_key.public_key().public_bytes(*spki) != ca_cert.public_key().public_bytes(*spki):
        raise ValueError("x509: provided PrivateKey doesn't match parent's PublicKey")  # Go's CreateCertificate
    public_key = csr.public_key()
    if not isinstance(public_key, _PUBLIC_KEY_TYPES):
        raise ValueError(f"unsupported public key type {type(public_key).__name__} in the certificate request")
    try:
        ca_key_id: bytes | None = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ca_key_id = None

    outputs = _create_certificate(
        _without_write_only(props, "caPrivateKeyPem"),
        now,
        subject=_subject_from_csr(csr.subject),
        sans=_sans_from_csr(csr),
        public_key=public_key,
        issuer=ca_cert.subject,
        issuer_key=ca_key,
        issuer_key_id=ca_key_id,
    )
    return {**outputs, "caKeyAlgorithm": _algorithm(ca_key)}


_EMULATORS: dict[str, Callable[[Props, datetime.datetime], Props]] = {
    "tls:index/privateKey:PrivateKey": _private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _self_signed_cert,
    "tls:index/certRequest:CertRequest": _cert_request,
    "tls:index/locallySignedCert:LocallySignedCert": _locally_signed_cert,
}

TLS_TYPES: frozenset[str] = frozenset(_EMULATORS)


def emulate(type_token: str, inputs: Mapping[str, Any], now: datetime.datetime | None = None) -> dict[str, Any]:
    """Given the resource type token and its inputs as the Pulumi mock receives them (wire camelCase names,
    numbers possibly as floats, nested objects as camelCase dicts, secrets possibly wrapped), return the full
    output property dict the real provider returns: inputs echoed with schema defaults, plus computed outputs.

    `now` is the issuance time for certificates and the moment readyForRenewal is judged at (default: now, UTC).
    Raises ValueError for unknown types and for inputs the provider would reject.
    """
    emulator = _EMULATORS.get(type_token)
    if emulator is None:
        raise ValueError(f"not a pulumi-tls resource this module emulates: {type_token!r}")
    return emulator(unwrap(inputs), _utc(now))
