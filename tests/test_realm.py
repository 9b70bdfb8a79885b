"""People and realm as code (nina/plan/realm.py), applied in place by nina-realm (nina/onhost/nina_realm.py).

nina-realm runs as it does on the Keycloak host, as its own process, over TLS, against a stand-in for Keycloak's
admin REST API (tests/keycloak_standin.py) that answers 400 to anything Keycloak's published description of the API
(tests/data/keycloak-admin-api.json) does not have: a misspelled field or a made-up parameter fails the test.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, encode, raw_config, run_nina
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from keycloak_standin import Keycloak, Server, Spec, SPEC

from nina.catalog.roles import OIDC_CLIENTS
from nina.config import parse
from nina.plan import realm

PROGRAM = ROOT / "nina" / "onhost" / "nina_realm.py"
ADMIN, ADMIN_PASSWORD = "admin", "bootstrap-admin-password"


def tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keycloak")])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp / "ca.pem", tmp / "server.pem", tmp / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def stack(smtp: bool = True, people: dict[str, Any] | None = None) -> Any:
    raw = raw_config("test")
    if smtp:
        raw["nina:smtp"] = {"host": "smtp.qcif.edu.au", "port": 587, "from": "nina@qcif.edu.au", "username": "nina"}
        raw["nina:smtp_password"] = "relay-password-1"
    if people is not None:
        raw["nina:people"] = people
    return parse(encode(raw))


class Host:
    """The Keycloak host's side: the secrets file, the relay's password file, and nina-realm run against the stand-in."""

    def __init__(self, tmp: Path, server: Server, ca: Path) -> None:
        self.tmp, self.server, self.ca = tmp, server, ca
        self.env = tmp / "keycloak.env"
        secrets = {"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN, "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD}
        secrets |= {c.env_var: f"secret-of-{c.client_id}-0123456789" for c in OIDC_CLIENTS}
        self.env.write_text("".join(f"{k}={v}\n" for k, v in sorted(secrets.items())))
        self.smtp_password = tmp / "smtp-password"
        self.smtp_password.write_text("relay-password-1\n")

    def apply(self, cfg: Any) -> dict[str, Any]:
        desired = self.tmp / "realm.json"
        desired.write_text(realm.desired_json(cfg))
        argv = [sys.executable, str(PROGRAM), "--desired", str(desired), "--env", str(self.env), "--url", self.server.url,
                "--ca", str(self.ca), "--smtp-password-file", str(self.smtp_password), "--wait", "10"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert self.server.kc.violations == [], self.server.kc.violations
        result: dict[str, Any] = json.loads(done.stdout)
        return result


@pytest.fixture
def keycloak(tmp_path: Path) -> Iterator[Host]:
    ca, cert, key = tls(tmp_path)
    kc = Keycloak(ADMIN, ADMIN_PASSWORD)
    with Server(kc, cert, key) as server:
        yield Host(tmp_path, server, ca)


def members(kc: Keycloak, username: str) -> set[str]:
    realm_ = kc.realms["nina"]
    (user,) = [u for u in realm_["users"].values() if u["rep"]["username"] == username]
    return {realm_["groups"][g]["name"] for g in user["groups"]}


def person(kc: Keycloak, username: str) -> dict[str, Any]:
    (user,) = [u["rep"] for u in kc.realms["nina"]["users"].values() if u["rep"]["username"] == username]
    return user


# ----------------------------------------------------------------------------------------------- the description


def test_the_description_names_groups_people_and_no_secret() -> None:
    cfg = stack()
    desired = realm.desired(cfg)
    groups = {g["name"]: g["realmRoles"] for g in desired["groups"]}
    assert groups == {
        "nina-admins": ["jupyter_admin", "jupyter_user", "superlink_user"],
        "nina-researchers": ["jupyter_user", "superlink_user"],
        "federation-test-fl": ["superlink_user"],
    }
    users = {u["username"]: u for u in desired["users"]}
    assert users["alice"]["groups"] == ["nina-researchers", "federation-test-fl"]
    assert users["ops"]["groups"] == ["nina-admins"]  # admins reach every federation through their group (the hub maps it)
    assert (users["alice"]["firstName"], users["alice"]["lastName"]) == ("Alice", "Researcher")
    text = realm.desired_json(cfg)
    assert "relay-password" not in text and "secret-of" not in text
    assert [c["secretEnv"] for c in desired["clients"]] == [c.env_var for c in OIDC_CLIENTS]  # read on the host


# --------------------------------------------------------------------------------------------------- applying it


def test_people_change_only_the_realm_command(project_copy: Any) -> None:
    """`nina preview --stack uat` shows people and federation groups (output keycloak_groups, the realm command's stdin); removing a person or
    moving one between federations changes that command alone: no VM, no delivery, no other resource."""
    config = yaml.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]

    groups: list[dict[str, list[str]]] = []

    def preview(people: dict[str, Any]) -> dict[tuple[str, str], Any]:
        project = project_copy("uat", {**config, "nina:people": people})
        done = run_nina("preview", "--stack", "uat", "--json", "--cwd", str(project))
        assert done.returncode == 0, done.stderr
        groups.append(json.loads(done.stdout)["outputs"]["keycloak_groups"])
        return {(r["type"], r["name"]): r.get("inputs") for r in json.loads(done.stdout)["resources"]}

    people = config["nina:people"]
    leaving = next(name for name, p in people.items() if p.get("role", "researcher") == "researcher")
    before = preview(people)
    after = preview({name: p for name, p in people.items() if name != leaving})
    # The output a reviewer reads: every federation's group and who is in it, before and after.
    (fed,) = [f"federation-{name}" for name in config["nina:federations"]]
    assert leaving in groups[0][fed] and leaving in groups[0]["nina-researchers"]
    assert leaving not in groups[1][fed] and leaving not in groups[1]["nina-researchers"]
    assert groups[0]["nina-admins"] == groups[1]["nina-admins"] == sorted(
        name for name, p in people.items() if p.get("role") == "admin"
    )
    assert before.keys() == after.keys()
    assert [key[1] for key in before if before[key] != after[key]] == ["realm-nina"]
    shown = {u["username"]: u["groups"] for u in json.loads(before[("command:remote:Command", "realm-nina")]["stdin"])["users"]}
    assert set(shown) == set(people) and shown[leaving][1].startswith("federation-")
    assert leaving not in {u["username"] for u in json.loads(after[("command:remote:Command", "realm-nina")]["stdin"])["users"]}


def test_an_empty_keycloak_becomes_the_described_realm_and_people_are_invited(keycloak: Host) -> None:
    kc = keycloak.server.kc
    result = keycloak.apply(stack())
    assert "realm nina created" in result["changes"]
    model = kc.realms["nina"]
    assert model["settings"]["registrationAllowed"] is False and model["settings"]["sslRequired"] == "all"
    assert model["smtp"]["host"] == "smtp.qcif.edu.au" and model["smtp"]["password"] == "relay-password-1"
    clients = {c["rep"]["clientId"]: c for c in model["clients"].values()}
    assert set(clients) == {c.client_id for c in OIDC_CLIENTS}
    hub = clients["jupyterhub"]
    assert hub["rep"]["secret"] == "secret-of-jupyterhub-0123456789"
    assert hub["rep"]["redirectUris"] == ["https://flhub.test.nina.qcif.edu.au/hub/oauth_callback"]
    assert [m["name"] for m in hub["mappers"].values()] == ["groups"]
    assert members(kc, "alice") == {"nina-researchers", "federation-test-fl"}
    assert members(kc, "ops") == {"nina-admins"}
    assert person(kc, "alice")["requiredActions"] == ["UPDATE_PASSWORD", "VERIFY_EMAIL"]
    assert sorted(m["to"] for m in kc.outbox) == ["alice@example.org", "ops@example.org"]
    assert all(m["actions"] == ["UPDATE_PASSWORD", "VERIFY_EMAIL"] and m["lifespan"] == 7 * 24 * 3600 for m in kc.outbox)


def test_a_second_run_changes_nothing(keycloak: Host) -> None:
    keycloak.apply(stack())
    kc = keycloak.server.kc
    before = len(kc.log)
    result = keycloak.apply(stack())
    assert result["changes"] == []
    assert [m for m, _ in kc.log[before:] if m != "GET"] == []  # not one write
    assert len(kc.outbox) == 2  # nobody invited twice


def test_what_the_stack_describes_does_not_drift(keycloak: Host) -> None:
    keycloak.apply(stack())
    kc = keycloak.server.kc
    model = kc.realms["nina"]
    # Drift by hand in the admin console: a role granted, a redirect URI added, a membership dropped, a person disabled.
    researchers = next(g for g in model["groups"].values() if g["name"] == "nina-researchers")
    researchers["roles"].add("jupyter_admin")
    hub = next(c for c in model["clients"].values() if c["rep"]["clientId"] == "jupyterhub")
    hub["rep"]["redirectUris"] = [*hub["rep"]["redirectUris"], "https://evil.example/*"]
    alice = next(u for u in model["users"].values() if u["rep"]["username"] == "alice")
    alice["groups"].clear()
    alice["rep"]["enabled"] = False
    model["settings"]["registrationAllowed"] = True
    result = keycloak.apply(stack())
    assert researchers["roles"] == {"jupyter_user", "superlink_user"}
    assert hub["rep"]["redirectUris"] == ["https://flhub.test.nina.qcif.edu.au/hub/oauth_callback"]
    assert members(kc, "alice") == {"nina-researchers", "federation-test-fl"} and person(kc, "alice")["enabled"] is True
    assert model["settings"]["registrationAllowed"] is False
    assert len(result["changes"]) >= 5, result["changes"]


def test_people_leave_and_change_federations_and_strangers_are_disabled_not_deleted(keycloak: Host) -> None:
    keycloak.apply(stack())
    kc = keycloak.server.kc
    model = kc.realms["nina"]
    # Someone made an account by hand; later the stack drops ops and takes alice out of her federation.
    stranger = next(kc.ids)
    model["users"][stranger] = {"rep": {"id": stranger, "username": "mallory", "enabled": True, "email": "m@example.org"}, "groups": set()}
    people = {"alice": {"name": "Alice Researcher", "email": "alice@example.org", "federations": []}}
    result = keycloak.apply(stack(people=people))
    assert members(kc, "alice") == {"nina-researchers"}
    assert person(kc, "ops")["enabled"] is False and person(kc, "mallory")["enabled"] is False
    assert {u["rep"]["username"] for u in model["users"].values()} == {"alice", "ops", "mallory"}  # nobody deleted
    assert "person ops disabled (not in nina:people)" in result["changes"]


def test_without_a_mail_relay_people_are_created_and_the_operator_is_told(keycloak: Host) -> None:
    result = keycloak.apply(stack(smtp=False))
    assert keycloak.server.kc.outbox == []
    assert any("no invitation mailed" in c for c in result["changes"])


def test_a_new_relay_password_reaches_keycloak(keycloak: Host) -> None:
    keycloak.apply(stack())
    keycloak.smtp_password.write_text("relay-password-2\n")
    result = keycloak.apply(stack())
    assert keycloak.server.kc.realms["nina"]["smtp"]["password"] == "relay-password-2"
    assert any("smtpServer" in c for c in result["changes"])


def test_the_stand_in_holds_nina_realm_to_keycloaks_published_api() -> None:
    """The judge can fail: what Keycloak does not have is refused."""
    spec = Spec(SPEC)
    assert spec.check("POST", "/admin/realms/nina/users", {}, {"username": "a", "emailAddress": "a@x"}) is not None
    assert spec.check("GET", "/admin/realms/nina/users", {"user": "a"}, None) is not None
    assert spec.check("PATCH", "/admin/realms/nina/users/1", {}, {}) is not None
    assert spec.check("PUT", "/admin/realms/nina", {}, {"smtpServer": {"host": "x"}, "registrationAllowed": False}) is None
    assert copy.deepcopy(SPEC)["x-nina-source"].startswith("Keycloak 26.7")
