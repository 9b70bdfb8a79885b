"""The iam fragment (manual §4.1.2.9-10, §4.1.2.17.1): Keycloak from the pinned tarball; realm `nina` as the Realm
component's description (nina-realm applies it: tests/test_realm.py runs it against a stand-in Keycloak).

Keycloak itself cannot run here (no download), so the files are judged by what reads them: keycloak.conf against the
contract with nginx, the port table and the role table (nina/catalog/roles.py), units by `systemd-analyze verify`,
the bootstrap by shellcheck, the realm's description against the stack file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import SYSTEM_GROUP, server_tls
from tests.test_cloudinit import Target, verify_units
from tests.conftest import BOOTSTRAP, COMMAND, STACKS, Preview, delivered, env_path, env_var_names, realm_of, role_files

CONF = "/opt/keycloak/conf/keycloak.conf"
UNIT = "/etc/systemd/system/keycloak.service"
KC_SH = "/opt/keycloak/bin/kc.sh"  # from the tarball
PORT = {p.name: p for p in PORTS}


def iam_files(preview: Preview) -> dict[str, str]:
    files = role_files(preview, "iam")
    assert BOOTSTRAP in files
    return files


def properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"repeated keys in keycloak.conf: {keys}"
    return {k.strip(): v.strip() for k, v in pairs}


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def realm_text(preview: Preview) -> str:
    text: str = preview.named(COMMAND, "realm-nina")["inputs"]["stdin"]
    return text


def test_keycloak_conf(preview: Preview) -> None:
    cfg = preview.cfg
    conf = properties(iam_files(preview)[CONF])
    assert conf["db"] == "postgres"
    assert conf["hostname"] == preview.data["outputs"]["public_urls"]["keycloak"].rstrip("/")
    assert conf["hostname"] == f"https://keycloak.{cfg.dns.public_domain}"
    assert conf["proxy-headers"] == "xforwarded"
    # Only the reverse proxy may set X-Forwarded-*: it is the one host the port table lets in besides the backchannel.
    assert conf["proxy-trusted-addresses"] == str(cfg.the_host_with("ingress").ip)
    assert conf["https-port"] == str(PORT["keycloak"].port)
    assert conf["http-enabled"] == "false"
    assert conf["health-enabled"] == conf["metrics-enabled"] == "true"
    assert conf["https-certificate-file"] == server_tls("iam").cert
    assert conf["https-certificate-key-file"] == server_tls("iam").key
    # Credentials come from the delivered env file (KC_DB_*), never from this file.
    assert not {"db-url", "db-username", "db-password"} & set(conf)
    assert {"KC_DB_URL", "KC_DB_USERNAME", "KC_DB_PASSWORD"} <= set(env_var_names("iam"))


def test_realm_clients(preview: Preview) -> None:
    domain = preview.cfg.dns.public_domain
    data = realm_of(preview)
    assert data["realm"] == "nina" and data["settings"]["enabled"] is True and data["settings"]["sslRequired"] == "all"
    assert data["settings"]["registrationAllowed"] is False
    clients = {c["clientId"]: c for c in data["clients"]}
    assert set(clients) == {"jupyterhub", "grafana"}
    expected = {
        "jupyterhub": (f"https://flhub.{domain}/hub/oauth_callback", "NINA_JUPYTERHUB_CLIENT_SECRET"),
        "grafana": (f"https://grafana.{domain}/login/generic_oauth", "NINA_GRAFANA_CLIENT_SECRET"),
    }
    for client_id, (redirect, secret_var) in expected.items():
        client = clients[client_id]
        assert client["redirectUris"] == [redirect]
        assert client["publicClient"] is False and client["directAccessGrantsEnabled"] is False
        # The secret is named, not written: nina-realm reads it from the delivered secrets file.
        assert client["secretEnv"] == secret_var and secret_var in env_var_names("iam") and "secret" not in client
        (mapper,) = client["protocolMappers"]
        assert mapper["protocolMapper"] == "oidc-group-membership-mapper" and mapper["config"]["claim.name"] == "groups"
        assert mapper["config"]["userinfo.token.claim"] == "true" and mapper["config"]["full.path"] == "false"
    # oauthenticator sends PKCE by default: the hub's client requires it.
    assert clients["jupyterhub"]["attributes"]["pkce.code.challenge.method"] == "S256"
    groups = {g["name"]: set(g["realmRoles"]) for g in data["groups"]}
    assert "nina-researchers" in groups and "jupyter_admin" in groups["nina-admins"]
    assert set().union(*groups.values()) <= set(data["roles"])


def test_realm_people_and_federation_groups(preview: Preview) -> None:
    """Each federation is a group; each person of the stack file is a user in the groups their entry names."""
    cfg, data = preview.cfg, realm_of(preview)
    groups = {g["name"] for g in data["groups"]}
    assert {f"federation-{name}" for name in cfg.federations} <= groups
    users = {u["username"]: u for u in data["users"]}
    assert set(users) == set(cfg.people)
    for username, person in cfg.people.items():
        user = users[username]
        assert user["email"] == person.email and f"{user['firstName']} {user['lastName']}".strip() == person.name
        expected = ["nina-admins"] if person.admin else ["nina-researchers", *(f"federation-{f}" for f in person.federations)]
        assert user["groups"] == expected


@pytest.mark.parametrize("stack", STACKS)
def test_the_realm_command_carries_no_secret(materialized: dict[str, Preview], stack: str) -> None:
    """Reviewers read the realm in the plan: names and addresses, never a secret value (the clients' secrets stay in
    the delivered secrets file, which nina-realm reads on the host)."""
    preview = materialized[stack]
    text = realm_text(preview)
    env = delivered(preview, preview.cfg.the_host_with("iam").name)[env_path("iam")]["content"]
    pairs = dict(line.split("=", 1) for line in env.splitlines())
    secrets = [v for k, v in pairs.items() if re.search(r"(SECRET|PASSWORD)$", k)]
    assert len(secrets) >= 3 and all(len(v) >= 16 for v in secrets)  # admin's password, the two clients' secrets
    assert not any(v in text for v in secrets)


def test_unit_reads_the_delivered_files(preview: Preview) -> None:
    unit = iam_files(preview)[UNIT]
    tls = server_tls("iam")
    assert set(unit_values(unit, "ConditionPathExists")) == {tls.cert, tls.key, env_path("iam")}
    assert unit_values(unit, "EnvironmentFile") == [env_path("iam")]
    assert unit_values(unit, "User") == ["keycloak"] and unit_values(unit, "Group") == [SYSTEM_GROUP]
    assert tls.owner == f"keycloak:{SYSTEM_GROUP}" and "keycloak.service" in tls.units
    (exec_start,) = unit_values(unit, "ExecStart")
    # No --import-realm: it skips a realm that exists, so nina-realm.service applies the realm instead.
    assert exec_start.split() == [KC_SH, "start", "--optimized"]
    assert unit_values(unit, "ReadWritePaths") == ["/opt/keycloak/data"]


def test_unit_heap_only_capped_on_shared_hosts(preview: Preview) -> None:
    host = preview.cfg.the_host_with("iam")
    heap = unit_values(iam_files(preview)[UNIT], "Environment")
    assert bool(heap) == (len(host.roles) > 1)


def test_bootstrap_pins_and_verifies_the_release(preview: Preview) -> None:
    script = iam_files(preview)[BOOTSTRAP]
    version = re.search(r"^version=(\S+)$", script, re.M)
    digest = re.search(r"^sha256=(\S+)$", script, re.M)
    assert version and re.fullmatch(r"26\.\d+\.\d+", version.group(1))
    assert digest and re.fullmatch(r"[0-9a-f]{64}", digest.group(1))
    assert "sha256sum -c" in script
    assert 'https://github.com/keycloak/keycloak/releases/download/$version/keycloak-$version.tar.gz' in script
    # Our keycloak.conf (written by cloud-init before the bootstrap) must survive the extraction.
    assert "--exclude='*/conf/keycloak.conf'" in script
    assert f"ensure_dir {server_tls('iam').cert.rsplit('/', 1)[0]} keycloak {SYSTEM_GROUP} 0750" in script
    assert script.index("kc.sh\" build") < script.index("enable_unit keycloak.service")




@pytest.mark.parametrize("stack", STACKS)
def test_nina_realm_is_delivered_with_its_units(materialized: dict[str, Preview], stack: str) -> None:
    """The program and its service and hourly timer arrive by delivery (a new version never replaces the VM); the
    timer is enabled by nina-deliver; the service reads the files the delivery puts there."""
    preview = materialized[stack]
    files = delivered(preview, preview.cfg.the_host_with("iam").name)
    service, timer = (f"/etc/systemd/system/{u}" for u in (layout.REALM_UNIT, layout.REALM_TIMER))
    assert files[timer]["units"] == [f"enable:{layout.REALM_TIMER}"]
    assert files[layout.REALM_COMMAND]["mode"] == "0755" and files[layout.REALM_COMMAND]["content"].startswith("#!/usr/bin/python3\n")
    units = {Path(p).name: files[p]["content"] for p in (service, timer)}
    assert verify_units(Target(units=units, drop_ins={}, expected_units={"keycloak.service"}, written=set(files))) == []
    (exec_start,) = unit_values(units[layout.REALM_UNIT], "ExecStart")
    args = exec_start.split()
    assert args[0] == layout.REALM_COMMAND and args[args.index("--env") + 1] == env_path("iam") and args[args.index("--desired") + 1] == layout.REALM_DESIRED
    assert "nina-realm" not in "".join(f["path"] for f in preview.hosts[preview.cfg.the_host_with("iam").name].write_files)
