"""The iam fragment (manual §4.1.2.9-10, §4.1.2.17.1): Keycloak from the pinned tarball, realm `nina` imported.

Keycloak itself cannot run here (no download), so the files are judged by what reads them: the realm JSON by a JSON
parser after Keycloak-style `${VAR}` substitution, keycloak.conf against the contract with nginx, the port table
and the role table (nina/catalog/roles.py), the unit by `systemd-analyze verify`, the bootstrap by shellcheck.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from nina.catalog.ports import PORTS
from nina.catalog.roles import SYSTEM_GROUP, server_tls
from tests.conftest import BOOTSTRAP, Preview, env_path, env_var_names, role_files

CONF = "/opt/keycloak/conf/keycloak.conf"
REALM = "/opt/keycloak/data/import/nina-realm.json"
UNIT = "/etc/systemd/system/keycloak.service"
KC_SH = "/opt/keycloak/bin/kc.sh"  # from the tarball
PORT = {p.name: p for p in PORTS}
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


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


def realm(preview: Preview, values: dict[str, str] | None = None) -> dict[str, Any]:
    """The realm as Keycloak reads it: ${VAR} replaced textually from its environment, then JSON."""
    text = iam_files(preview)[REALM]
    env = values or {v: f"value-of-{v}" for v in env_var_names("iam")}
    substituted = PLACEHOLDER.sub(lambda m: env[m.group(1)], text)
    parsed: dict[str, Any] = json.loads(substituted)
    return parsed


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
    data = realm(preview)
    assert data["realm"] == "nina" and data["enabled"] is True and data["sslRequired"] == "all"
    assert data["registrationAllowed"] is False
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
        assert client["secret"] == f"value-of-{secret_var}"
        (mapper,) = client["protocolMappers"]
        assert mapper["protocolMapper"] == "oidc-group-membership-mapper" and mapper["config"]["claim.name"] == "groups"
        assert mapper["config"]["userinfo.token.claim"] == "true" and mapper["config"]["full.path"] == "false"
    # oauthenticator sends PKCE by default: the hub's client requires it.
    assert clients["jupyterhub"]["attributes"]["pkce.code.challenge.method"] == "S256"
    groups = {g["name"]: set(g["realmRoles"]) for g in data["groups"]}
    assert "nina-researchers" in groups and "jupyter_admin" in groups["nina-admins"]
    roles = {r["name"] for r in data["roles"]["realm"]}
    assert set().union(*groups.values()) <= roles


def test_realm_placeholders_are_the_env_file_contract(preview: Preview) -> None:
    text = iam_files(preview)[REALM]
    used = set(PLACEHOLDER.findall(text))
    assert used == {"NINA_JUPYTERHUB_CLIENT_SECRET", "NINA_GRAFANA_CLIENT_SECRET"}
    assert used <= set(env_var_names("iam"))
    # The raw file is valid JSON too (placeholders sit inside strings), and no secret value is in it.
    raw = json.loads(text)
    assert all(c["secret"].startswith("${") for c in raw["clients"])


def test_realm_substitution_breaks_on_json_special_characters(preview: Preview) -> None:
    """Keycloak substitutes before parsing: a client secret with a quote would break the import, so the
    delivery must generate secrets without JSON-special characters. This shows why (the check can fail)."""
    env = {v: "abc" for v in env_var_names("iam")}
    env["NINA_GRAFANA_CLIENT_SECRET"] = 'a"b'
    with pytest.raises(json.JSONDecodeError):
        realm(preview, env)


def test_unit_reads_the_delivered_files(preview: Preview) -> None:
    unit = iam_files(preview)[UNIT]
    tls = server_tls("iam")
    assert set(unit_values(unit, "ConditionPathExists")) == {tls.cert, tls.key, env_path("iam")}
    assert unit_values(unit, "EnvironmentFile") == [env_path("iam")]
    assert unit_values(unit, "User") == ["keycloak"] and unit_values(unit, "Group") == [SYSTEM_GROUP]
    assert tls.owner == f"keycloak:{SYSTEM_GROUP}" and "keycloak.service" in tls.units
    (exec_start,) = unit_values(unit, "ExecStart")
    assert exec_start.split() == [KC_SH, "start", "--optimized", "--import-realm"]
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


