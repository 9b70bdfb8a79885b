"""Issue 3: the PKI the program builds, checked on real material from the faithful pulumi-tls emulation.

One materialised evaluation of `uat` (in a subprocess: Pulumi's runtime allows one program per process) gives both
the masked and the unmasked view of the same keys, so we can prove that no secret value leaks into the masked
preview or any host's user-data, and feed the certificates to openssl.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import env_path, env_var_names
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.pki import expiry_warning
from nina.catalog import layout
from nina.catalog import pki as pki_spec
from nina.catalog.roles import ROLES, server_tls

ROOT = Path(__file__).resolve().parent.parent
SECRET = "[secret]"

_EVALUATE = """
import json, sys
from cloudinit import decode_user_data
from nina.offline.evaluate import evaluate
from nina.offline.mocks import mask
ev = evaluate(sys.argv[1], materialize=True)
json.dump({
    "masked": ev.as_json(False),
    "plain": ev.as_json(True),
    "protected": sorted(f"{r.type}::{r.name}" for r in ev.resources if r.protect),
    "user_data": {r.name: decode_user_data(mask(r.inputs["userData"], True))
                  for r in ev.by_type("openstack:compute/instance:Instance")},
    "warnings": ev.warnings,
    "issued": {r.name: mask(r.outputs, True).get("certPem") for r in ev.by_type("tls:index/locallySignedCert:LocallySignedCert")},
}, sys.stdout)
"""


def evaluate_materialized(stack: str, prelude: str = "") -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", prelude + _EVALUATE, stack], cwd=ROOT, capture_output=True, text=True, check=True
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def uat() -> dict[str, Any]:
    return evaluate_materialized("uat")


def resources(view: dict[str, Any], type_token: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r["inputs"] for r in view["resources"] if r["type"] == type_token}


def payload(view: dict[str, Any], host: str) -> dict[str, dict[str, Any]]:
    stdin = resources(view, "command:remote:Command")[f"deliver-{host}"]["stdin"]
    return {f["path"]: f for f in json.loads(stdin)["files"]}


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def sans(c: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def secret_values(masked: Any, plain: Any) -> list[str]:
    """Every value the masked view hides, taken from the unmasked view of the same evaluation."""
    if masked == SECRET:
        return [plain] if isinstance(plain, str) else [json.dumps(plain)]
    if isinstance(masked, dict):
        return [v for k in masked for v in secret_values(masked[k], plain[k])]
    if isinstance(masked, list):
        return [v for m, p in zip(masked, plain) for v in secret_values(m, p)]
    return []


def test_every_server_certificate_chains_to_the_ca_and_matches_its_key(uat: dict[str, Any], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(uat["plain"]["outputs"]["ca_cert_pem"])
    checked = 0
    for host in ("ingress", "keycloak", "jupyterhub", "monitoring", "superlink", "vpn"):
        files = payload(uat["plain"], host)
        for role, paths in ((r.name, r.tls) for r in ROLES.values() if r.tls is not None):
            if paths.cert not in files:
                continue
            leaf = tmp_path / f"{host}-{role}.pem"
            leaf.write_text(files[paths.cert]["content"])
            verify = subprocess.run(
                ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(ca), str(leaf)], capture_output=True, text=True
            )
            assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr
            key = serialization.load_pem_private_key(files[paths.key]["content"].encode(), None)
            assert files[paths.key]["content"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8 (Keycloak needs it)
            assert key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == cert(
                files[paths.cert]["content"]
            ).public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            checked += 1
    assert checked == 6


def test_ca_is_a_long_lived_protected_ecdsa_ca(uat: dict[str, Any]) -> None:
    ca = cert(uat["plain"]["outputs"]["ca_cert_pem"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp384r1"
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 9 * 365
    # Re-minting the CA would force every hospital to reinstall: Pulumi must refuse to replace it.
    assert {"tls:index/privateKey:PrivateKey::ca", "tls:index/selfSignedCert:SelfSignedCert::ca"} <= set(uat["protected"])


def test_superlink_certificate_names_what_supernodes_researchers_and_superexec_use(uat: dict[str, Any]) -> None:
    c = cert(payload(uat["plain"], "superlink")[server_tls("superlink").cert]["content"])
    dns, ips = sans(c)
    assert {"superlink-uat-cardiac.uat.nina.internal", "superlink.uat.nina.internal", "localhost"} <= dns
    assert {"10.50.1.20", "127.0.0.1", "::1"} <= ips  # 127.0.0.1: flwr's SuperExec connects there (FLOWER.md)
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "superlink-uat-cardiac.uat.nina.internal"
    assert list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (c.not_valid_after_utc - c.not_valid_before_utc).days == pki_spec.SERVER_CERT.validity_hours // 24
    signed = resources(uat["plain"], "tls:index/locallySignedCert:LocallySignedCert")["tls-superlink-superlink"]
    assert signed["earlyRenewalHours"] == pki_spec.SERVER_CERT.early_renewal_hours


def test_service_certificates_carry_their_service_alias(uat: dict[str, Any]) -> None:
    for host, role, alias in (("keycloak", "iam", "keycloak"), ("jupyterhub", "notebook", "jupyterhub"), ("monitoring", "monitoring", "grafana")):
        dns, _ = sans(cert(payload(uat["plain"], host)[server_tls(role).cert]["content"]))
        assert f"{alias}.uat.nina.internal" in dns and f"{host}.uat.nina.internal" in dns


def test_generated_supernode_keys_are_ecdsa_p384_openssh_and_match_the_published_public_key(uat: dict[str, Any]) -> None:
    files = payload(uat["plain"], "org-b-sn1")
    private = files[layout.supernode_key("ob-sn1")]
    assert private["mode"] == "0600" and private["owner"] == "supernode:fl_system"
    assert private["content"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = serialization.load_ssh_private_key(private["content"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    published = uat["plain"]["outputs"]["supernode_public_keys"]["uat-cardiac"]
    assert set(published) == {"ob-sn1"}  # the on-premises SuperNode's key is the site's, never generated here
    openssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    assert published["ob-sn1"].split()[:2] == openssh.split()[:2]


def test_on_premises_vpn_certificate_is_signed_from_the_sites_csr(uat: dict[str, Any]) -> None:
    stack = yaml.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]
    csr = x509.load_pem_x509_csr(stack["nina:organisations"]["metro-north"]["vpn_csr"].encode())
    signed = resources(uat["plain"], "tls:index/locallySignedCert:LocallySignedCert")["vpn-uat-cardiac-metro-north"]
    c = cert(uat["issued"]["vpn-uat-cardiac-metro-north"])
    keys = resources(uat["plain"], "tls:index/privateKey:PrivateKey")
    assert "vpn-uat-cardiac-metro-north" not in keys  # the site keeps its key
    assert signed["certRequestPem"].strip() == csr.public_bytes(serialization.Encoding.PEM).decode().strip()
    assert signed["allowedUses"] == list(pki_spec.CLIENT_CERT.allowed_uses)
    assert c.public_key() == csr.public_key()
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "metro-north"
    assert list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_tls_crypt_key_is_an_openvpn_static_key(uat: dict[str, Any]) -> None:
    content = payload(uat["plain"], "vpn")[layout.OPENVPN_TLS_CRYPT]
    lines = content["content"].splitlines()
    assert lines[0] == "-----BEGIN OpenVPN Static key V1-----" and lines[-1] == "-----END OpenVPN Static key V1-----"
    assert len(lines[1:-1]) == 16 and all(len(line) == 32 and int(line, 16) >= 0 for line in lines[1:-1])
    assert content["mode"] == "0600"


def test_service_env_files_hold_exactly_the_contracted_variables(uat: dict[str, Any]) -> None:
    for host, role in (("keycloak", "iam"), ("jupyterhub", "notebook"), ("monitoring", "monitoring")):
        env = payload(uat["plain"], host)[env_path(role)]
        assert env["mode"] == "0600" and env["owner"] == "root:root"
        pairs = dict(line.split("=", 1) for line in env["content"].splitlines())
        assert set(pairs) == set(env_var_names(role))
        assert all(len(v) >= 5 for v in pairs.values()), pairs.keys()
    keycloak = dict(line.split("=", 1) for line in payload(uat["plain"], "keycloak")[env_path("iam")]["content"].splitlines())
    hub = dict(line.split("=", 1) for line in payload(uat["plain"], "jupyterhub")[env_path("notebook")]["content"].splitlines())
    # The OIDC client secret Keycloak's realm holds is the one JupyterHub presents.
    assert keycloak["NINA_JUPYTERHUB_CLIENT_SECRET"] == hub["OAUTH_CLIENT_SECRET"]
    assert keycloak["KC_DB_URL"].startswith("jdbc:postgresql://") and keycloak["KC_DB_URL"].endswith(":5432/keycloakdb_server")


def test_no_secret_reaches_user_data_or_the_masked_preview(uat: dict[str, Any]) -> None:
    secrets = [s for s in secret_values(uat["masked"], uat["plain"]) if len(s) >= 16 and not s.startswith("[secret ")]
    assert len(secrets) > 20  # keys, passwords, payloads: the check below must have something to find
    masked_text = json.dumps(uat["masked"])
    assert "PRIVATE KEY" not in masked_text and "OpenVPN Static key" not in masked_text
    for host, text in uat["user_data"].items():
        assert "PRIVATE KEY" not in text, host
        assert "[secret" not in text, host
    # Each secret value, and each line of multi-line ones (a key's base64 body), is absent from both.
    needles = {s for value in secrets for s in [value, *value.splitlines()] if len(s) >= 16 and "-----" not in s}
    haystacks = [masked_text, *uat["user_data"].values()]
    leaks = [n[:24] for n in needles if any(n in h for h in haystacks)]
    assert not leaks


def test_every_key_and_password_output_is_secret(uat: dict[str, Any]) -> None:
    outputs = uat["masked"]["outputs"]
    assert outputs["keycloak_admin_password"] == SECRET and outputs["grafana_admin_password"] == SECRET
    commands = resources(uat["masked"], "command:remote:Command")
    # Every SSH connection carries the operators' private key.
    assert commands and all(inputs["connection"] == SECRET for inputs in commands.values())
    deliveries = {name: inputs for name, inputs in commands.items() if name.startswith("deliver-")}
    assert len(deliveries) == 7 and all(inputs["stdin"] == SECRET for inputs in deliveries.values())


def test_expiry_warning_names_the_certificate_within_the_window() -> None:
    import datetime

    now = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)
    assert expiry_warning("tls-x", "[computed: tls LocallySignedCert tls-x validityEndTime]", now) is None
    assert expiry_warning("tls-x", "2027-11-23T00:00:00Z", now) is None
    message = expiry_warning("tls-x", "2026-12-03T00:00:00Z", now)
    assert message is not None and "tls-x" in message and "10 days left" in message


def test_preview_warns_for_each_certificate_close_to_expiry() -> None:
    # With the warning window wider than a leaf's life every leaf must be reported, and the CA must not.
    data = evaluate_materialized("test", prelude="import nina.catalog.pki as s; s.EXPIRY_WARNING_DAYS = 400\n")
    expiring = sorted(w.split()[1] for w in data["warnings"] if w.startswith("certificate "))
    leaves = sorted(resources(data["plain"], "tls:index/locallySignedCert:LocallySignedCert"))
    assert expiring == leaves and "ca" not in expiring


def _placeholder_preview(project: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "nina.cli", "preview", "--stack", "test", "--json", "--cwd", str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_unrelated_config_changes_leave_every_key_and_certificate_alone(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).symlink_to(ROOT / name)
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())
    (tmp_path / "Pulumi.test.yaml").write_text(yaml.safe_dump(stack))
    before = _placeholder_preview(tmp_path)
    config = stack["config"]
    config["nina:hosts"]["hub"]["flavor"] = "m3.xlarge"
    config["nina:hosts"]["superlink"]["volume_gb"] = 40
    project_cloud = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["nina:cloud"]["value"]
    config["nina:cloud"] = {**project_cloud, "dns_nameservers": ["1.1.1.1"]}  # the stack's own, replacing the project's
    config["nina:database"]["size_gb"] = 20
    config["nina:admin"]["ssh_cidrs"].append("192.0.2.0/24")
    (tmp_path / "Pulumi.test.yaml").write_text(yaml.safe_dump(stack))
    after = _placeholder_preview(tmp_path)

    def identity(view: dict[str, Any]) -> dict[str, Any]:
        return {(r["type"], r["name"]): r["inputs"] for r in view["resources"] if r["type"].split(":")[0] in ("tls", "random")}

    assert identity(before) and identity(before) == identity(after)
    # The changes did land somewhere, so the comparison above compared two different programs' outputs.
    assert before != after
