#!/usr/bin/python3
"""nina-realm: make Keycloak's realm what the stack describes (nina/plan/realm.py), in place, through Keycloak's
admin REST API on this host. Run by nina-realm.service: after every `pulumi up` that changes the description, and
hourly (nina-realm.timer), so nothing the stack describes drifts.

What it does, each step idempotent (a second run changes nothing):
- the realm: created if missing; its settings and mail relay set (the relay's password from its file);
- realm roles, groups (with their realm roles: extra ones removed), OIDC clients (redirect URIs, origins, secret from
  the secrets file, the groups claim mapper);
- people: created with Keycloak's "set your password" invitation mailed (when a relay is configured), names and
  addresses kept as described, group memberships made exactly the described ones among the groups this document
  describes (others untouched); anyone else is disabled, never deleted (their history stays); service accounts
  are left alone.

Usage: nina-realm --desired FILE --env SECRETS_ENV --url https://127.0.0.1:PORT --ca CA_PEM
                  [--smtp-password-file FILE] [--wait SECONDS]
Standard library only, like nina-deliver: it runs on a bare Ubuntu 24.04 host. Prints what it changed as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

MANAGED = "nina.managed"  # the attribute on people nina-realm created
SMTP_DIGEST = "nina.smtpPasswordSha256"  # realm attribute: which relay password was set last (Keycloak never shows it)


class KeycloakError(RuntimeError):
    pass


class Api:
    """Keycloak's admin REST API as the master realm's admin (admin-cli, password grant), over TLS to the local CA."""

    def __init__(self, url: str, ca: str, username: str, password: str, wait: float) -> None:
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca)
        self.username, self.password = username, password
        self.deadline = time.monotonic() + wait
        self.token = ""
        self.mutations = 0

    def _open(self, request: urllib.request.Request) -> tuple[int, bytes, dict[str, str]]:
        while True:
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
                    return answer.status, answer.read(), dict(answer.headers)
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read(), dict(exc.headers or {})
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                # Keycloak may still be starting (a fresh host, a restart by the delivery): wait for it, within bounds.
                if time.monotonic() > self.deadline:
                    raise KeycloakError(f"Keycloak does not answer at {self.url}: {exc}") from None
                time.sleep(5)

    def login(self) -> None:
        form = urllib.parse.urlencode({"grant_type": "password", "client_id": "admin-cli", "username": self.username, "password": self.password})
        request = urllib.request.Request(f"{self.url}/realms/master/protocol/openid-connect/token", data=form.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        status, body, _ = self._open(request)
        if status != 200:
            raise KeycloakError(f"the admin login was refused ({status})")
        self.token = json.loads(body)["access_token"]

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None, ok: tuple[int, ...] = (200, 201, 204)) -> tuple[int, Any, dict[str, str]]:
        url = f"{self.url}/admin{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        status, raw, headers = self._open(request)
        if status == 401:  # the token expired during a long run
            self.login()
            request.add_header("Authorization", f"Bearer {self.token}")
            status, raw, headers = self._open(request)
        if status not in ok:
            raise KeycloakError(f"{method} {path}: {status} {raw[:300].decode(errors='replace')}")
        if method != "GET":
            self.mutations += 1
        return status, (json.loads(raw) if raw.strip() else None), headers


def env_file(path: str) -> dict[str, str]:
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key] = value
    return values


class Reconcile:
    def __init__(self, api: Api, desired: dict[str, Any], secrets: dict[str, str], smtp_password: str | None) -> None:
        self.api = api
        self.want = desired
        self.secrets = secrets
        self.smtp_password = smtp_password
        self.realm = desired["realm"]
        self.base = f"/realms/{urllib.parse.quote(self.realm)}"
        self.changes: list[str] = []

    def run(self) -> list[str]:
        self.ensure_realm()
        self.ensure_roles()
        groups = self.ensure_groups()
        self.ensure_clients()
        self.ensure_people(groups)
        return self.changes

    # ---------------------------------------------------------------------------------------------- the realm

    def ensure_realm(self) -> None:
        status, current, _ = self.api.call("GET", self.base, ok=(200, 404))
        if status == 404:
            self.api.call("POST", "/realms", {"realm": self.realm, "enabled": True})
            self.changes.append(f"realm {self.realm} created")
            _, current, _ = self.api.call("GET", self.base)
        update = {k: v for k, v in self.want["settings"].items() if current.get(k) != v}
        smtp = self.want.get("smtp")
        if smtp is not None:
            now = {k: v for k, v in (current.get("smtpServer") or {}).items() if k != "password"}
            digest = hashlib.sha256((self.smtp_password or "").encode()).hexdigest()
            stored = (current.get("attributes") or {}).get(SMTP_DIGEST)
            if now != smtp or stored != digest:
                update["smtpServer"] = {**smtp, **({"password": self.smtp_password} if self.smtp_password else {})}
                update["attributes"] = {**(current.get("attributes") or {}), SMTP_DIGEST: digest}
        if update:
            self.api.call("PUT", self.base, update)
            self.changes.append(f"realm settings: {', '.join(sorted(update))}")

    def ensure_roles(self) -> None:
        _, current, _ = self.api.call("GET", f"{self.base}/roles", query={"max": 1000})
        have = {r["name"] for r in current}
        for name in self.want["roles"]:
            if name not in have:
                self.api.call("POST", f"{self.base}/roles", {"name": name})
                self.changes.append(f"role {name} created")

    # ------------------------------------------------------------------------------------------------- groups

    def ensure_groups(self) -> dict[str, str]:
        """name -> id of every described group, each with exactly its described realm roles."""
        ids = self._group_ids()
        for group in self.want["groups"]:
            if group["name"] not in ids:
                self.api.call("POST", f"{self.base}/groups", {"name": group["name"]})
                self.changes.append(f"group {group['name']} created")
        ids = self._group_ids()
        for group in self.want["groups"]:
            path = f"{self.base}/groups/{ids[group['name']]}/role-mappings/realm"
            _, mapped, _ = self.api.call("GET", path)
            have = {r["name"] for r in mapped or []}
            add = [self._role(name) for name in group["realmRoles"] if name not in have]
            remove = [r for r in mapped or [] if r["name"] not in group["realmRoles"]]
            if add:
                self.api.call("POST", path, add)
                self.changes.append(f"group {group['name']}: roles {', '.join(r['name'] for r in add)} added")
            if remove:
                self.api.call("DELETE", path, remove)
                self.changes.append(f"group {group['name']}: roles {', '.join(r['name'] for r in remove)} removed")
        return ids

    def _group_ids(self) -> dict[str, str]:
        _, groups, _ = self.api.call("GET", f"{self.base}/groups", query={"max": 1000, "briefRepresentation": "true"})
        return {g["name"]: g["id"] for g in groups}

    def _role(self, name: str) -> dict[str, Any]:
        _, role, _ = self.api.call("GET", f"{self.base}/roles/{urllib.parse.quote(name)}")
        return {"id": role["id"], "name": role["name"]}

    # ------------------------------------------------------------------------------------------------ clients

    def ensure_clients(self) -> None:
        for want in self.want["clients"]:
            rep = {k: v for k, v in want.items() if k not in ("secretEnv", "protocolMappers")}
            secret = self.secrets.get(want["secretEnv"])
            if not secret:
                raise KeycloakError(f"client {want['clientId']}: {want['secretEnv']} is not in the secrets file")
            rep["secret"] = secret
            _, found, _ = self.api.call("GET", f"{self.base}/clients", query={"clientId": want["clientId"]})
            if not found:
                self.api.call("POST", f"{self.base}/clients", {**rep, "protocolMappers": want["protocolMappers"]})
                self.changes.append(f"client {want['clientId']} created")
                continue
            current = found[0]
            merged = {**current, **rep, "attributes": {**(current.get("attributes") or {}), **rep["attributes"]}}
            if any(_differs(current.get(k), merged[k]) for k in rep) or merged["attributes"] != current.get("attributes"):
                self.api.call("PUT", f"{self.base}/clients/{current['id']}", merged)
                self.changes.append(f"client {want['clientId']} updated")
            self.ensure_mappers(current["id"], want)

    def ensure_mappers(self, client: str, want: dict[str, Any]) -> None:
        path = f"{self.base}/clients/{client}/protocol-mappers/models"
        _, mappers, _ = self.api.call("GET", path)
        by_name = {m["name"]: m for m in mappers or []}
        for mapper in want["protocolMappers"]:
            have = by_name.get(mapper["name"])
            if have is None:
                self.api.call("POST", path, mapper)
                self.changes.append(f"client {want['clientId']}: mapper {mapper['name']} created")
            elif have.get("protocolMapper") != mapper["protocolMapper"] or have.get("config") != mapper["config"]:
                self.api.call("PUT", f"{path}/{have['id']}", {**mapper, "id": have["id"]})
                self.changes.append(f"client {want['clientId']}: mapper {mapper['name']} updated")

    # ------------------------------------------------------------------------------------------------- people

    def ensure_people(self, group_ids: dict[str, str]) -> None:
        described = {g["name"] for g in self.want["groups"]}
        wanted = {u["username"]: u for u in self.want["users"]}
        for username, want in wanted.items():
            user = self._user(username)
            if user is None:
                self.api.call(
                    "POST",
                    f"{self.base}/users",
                    {
                        "username": username, "email": want["email"], "firstName": want["firstName"], "lastName": want["lastName"],
                        "enabled": True, "emailVerified": False, "requiredActions": self.want["invitation"]["actions"],
                        "attributes": {MANAGED: ["true"]},
                    },
                )
                user = self._user(username)
                assert user is not None
                self.changes.append(f"person {username} created")
                self.invite(user)
            else:
                fields = {"email": want["email"], "firstName": want["firstName"], "lastName": want["lastName"], "enabled": True}
                if any(user.get(k) != v for k, v in fields.items()):
                    self.api.call("PUT", f"{self.base}/users/{user['id']}", {**user, **fields})
                    self.changes.append(f"person {username} updated")
            self.ensure_memberships(user, want["groups"], described, group_ids)
        first = 0
        while True:
            _, page, _ = self.api.call("GET", f"{self.base}/users", query={"first": first, "max": 100, "briefRepresentation": "true"})
            for user in page:
                if user["username"] in wanted or user.get("serviceAccountClientId") or user["username"].startswith("service-account-"):
                    continue
                if user.get("enabled", True):
                    _, full, _ = self.api.call("GET", f"{self.base}/users/{user['id']}")
                    self.api.call("PUT", f"{self.base}/users/{user['id']}", {**full, "enabled": False})
                    self.changes.append(f"person {user['username']} disabled (not in nina:people)")
            if len(page) < 100:
                break
            first += 100

    def _user(self, username: str) -> dict[str, Any] | None:
        _, found, _ = self.api.call("GET", f"{self.base}/users", query={"username": username, "exact": "true"})
        return found[0] if found else None

    def invite(self, user: dict[str, Any]) -> None:
        if self.want.get("smtp") is None:
            self.changes.append(f"person {user['username']}: no invitation mailed (nina:smtp is not set); send it from the admin console")
            return
        invitation = self.want["invitation"]
        self.api.call("PUT", f"{self.base}/users/{user['id']}/execute-actions-email", invitation["actions"], query={"lifespan": invitation["lifespan"]})
        self.changes.append(f"person {user['username']}: invitation mailed to {user.get('email')}")

    def ensure_memberships(self, user: dict[str, Any], groups: list[str], described: set[str], ids: dict[str, str]) -> None:
        _, current, _ = self.api.call("GET", f"{self.base}/users/{user['id']}/groups", query={"max": 1000, "briefRepresentation": "true"})
        have = {g["name"]: g["id"] for g in current or []}
        for name in groups:
            if name not in have:
                self.api.call("PUT", f"{self.base}/users/{user['id']}/groups/{ids[name]}")
                self.changes.append(f"person {user['username']} joined {name}")
        for name, gid in have.items():
            if name in described and name not in groups:
                self.api.call("DELETE", f"{self.base}/users/{user['id']}/groups/{gid}")
                self.changes.append(f"person {user['username']} left {name}")


def _differs(have: Any, want: Any) -> bool:
    if isinstance(want, list) and isinstance(have, list):
        return sorted(map(str, have)) != sorted(map(str, want))
    return bool(have != want)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina-realm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--desired", required=True)
    parser.add_argument("--env", required=True, help="the Keycloak host's secrets file (admin, client secrets)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--smtp-password-file")
    parser.add_argument("--wait", type=float, default=300)
    args = parser.parse_args(argv)
    with open(args.desired, encoding="utf-8") as f:
        desired = json.load(f)
    secrets = env_file(args.env)
    smtp_password = None
    if args.smtp_password_file:
        try:
            with open(args.smtp_password_file, encoding="utf-8") as f:
                smtp_password = f.read().rstrip("\n")
        except FileNotFoundError:
            smtp_password = None
    try:
        api = Api(args.url, args.ca, secrets["KC_BOOTSTRAP_ADMIN_USERNAME"], secrets["KC_BOOTSTRAP_ADMIN_PASSWORD"], args.wait)
        api.login()
        changes = Reconcile(api, desired, secrets, smtp_password).run()
    except (KeycloakError, KeyError) as exc:
        print(f"nina-realm: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"realm": desired["realm"], "changes": changes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
