"""A stand-in for Keycloak's admin REST API, for testing nina-realm where Keycloak cannot run.

Faithful where nina-realm depends on it, and strict where a real Keycloak would be: every request is checked against
Keycloak's own published description of the API (tests/data/keycloak-admin-api.json, a subset of the official
openapi.json of Keycloak 26.7): the method and path must be an operation there, every query parameter one it
declares, and every field of a JSON body one of its schema's properties (recursively); a request that is not is
answered 400 and recorded in `violations`. Behind that, an in-memory realm model with Keycloak's semantics for the
calls nina-realm makes: 404 for an unknown realm, 201 with a Location for creations, 409 for duplicate names,
partial realm updates, the SMTP password never shown, group role mappings, user search by exact username, paging,
memberships, and the execute-actions email (refused, as Keycloak does, when the realm has no mail relay).
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPEC = json.loads((Path(__file__).parent / "data" / "keycloak-admin-api.json").read_text())
MASKED = "**********"


class Spec:
    """The published operations and schemas, and the checks a request must pass."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.schemas = spec["components"]["schemas"]
        self.operations = []
        for template, item in spec["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")  # paths hold only [a-z/{}-]
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = [*item.get("parameters", []), *op.get("parameters", [])]
                query = {p["name"] for p in params if p["in"] == "query"}
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                self.operations.append((method.upper(), template, pattern, query, body))

    def check(self, method: str, path: str, query: dict[str, Any], body: Any) -> str | None:
        """None if the request is one the API describes, else why not."""
        matches = [op for op in self.operations if op[0] == method and op[2].match(path)]
        if not matches:
            return f"{method} {path} is not an operation of Keycloak's admin API"
        # the most specific template (fewest parameters) wins, as JAX-RS routes literal segments first
        _, template, _, allowed, schema = min(matches, key=lambda op: op[1].count("{"))
        unknown = sorted(set(query) - allowed)
        if unknown:
            return f"{method} {template}: unknown query parameters {unknown}"
        if body is not None and schema is not None:
            return self._fields(body, schema, f"{method} {template}")
        return None

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def _fields(self, value: Any, schema: dict[str, Any], where: str) -> str | None:
        schema = self._resolve(schema)
        if schema.get("type") == "array" and isinstance(value, list):
            for item in value:
                problem = self._fields(item, schema.get("items", {}), where)
                if problem:
                    return problem
            return None
        if isinstance(value, dict) and "properties" in schema:
            for key, item in value.items():
                if key not in schema["properties"]:
                    return f"{where}: {key!r} is not a field of {schema.get('title', 'its schema')} ({sorted(schema['properties'])[:8]}...)"
                problem = self._fields(item, schema["properties"][key], f"{where}.{key}")
                if problem:
                    return problem
        return None


class Keycloak:
    """The realm model behind the API. `admin` and `password` are the master realm's bootstrap admin."""

    def __init__(self, admin: str, password: str) -> None:
        self.admin, self.password = admin, password
        self.realms: dict[str, dict[str, Any]] = {}
        self.outbox: list[dict[str, Any]] = []
        self.log: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
        self.token = "standin-token"

    def new_realm(self, name: str) -> dict[str, Any]:
        return {"settings": {"realm": name, "enabled": True}, "smtp": {}, "attributes": {}, "roles": {}, "groups": {}, "clients": {}, "users": {}}


def _handler(kc: Keycloak, spec: Spec) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, location: str | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            if raw:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path == "/realms/master/protocol/openid-connect/token" and method == "POST":
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                ok = form.get("grant_type") == "password" and form.get("client_id") == "admin-cli"
                ok = ok and (form.get("username"), form.get("password")) == (kc.admin, kc.password)
                return self._send(200, {"access_token": kc.token, "expires_in": 60}) if ok else self._send(401, {"error": "invalid_grant"})
            if self.headers.get("Authorization") != f"Bearer {kc.token}":
                return self._send(401)
            body = json.loads(raw) if raw else None
            problem = spec.check(method, url.path, query, body)
            if problem:
                kc.violations.append(problem)
                return self._send(400, {"error": problem})
            kc.log.append((method, url.path))
            with lock:
                status, answer, location = route(kc, method, url.path.split("/")[2:], query, body)
            self._send(status, answer, location)

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

    lock = threading.Lock()
    return Handler


Answer = tuple[int, Any, str | None]


def route(kc: Keycloak, method: str, parts: list[str], query: dict[str, str], body: Any) -> Answer:
    """/admin/<parts...>: parts[0] == "realms"."""
    if parts == ["realms"] and method == "POST":
        if body["realm"] in kc.realms:
            return 409, {"errorMessage": "Conflict detected. See logs for details"}, None
        realm = kc.new_realm(body["realm"])
        realm["settings"].update({k: v for k, v in body.items() if k not in ("smtpServer", "attributes")})
        kc.realms[body["realm"]] = realm
        return 201, None, f"/admin/realms/{body['realm']}"
    name = urllib.parse.unquote(parts[1])
    realm = kc.realms.get(name)
    if realm is None:
        return 404, {"error": "Realm not found."}, None
    rest = parts[2:]
    if not rest:
        return _realm(realm, method, body)
    kind = rest[0]
    if kind == "roles":
        return _roles(kc, realm, method, rest[1:], body)
    if kind == "groups":
        return _groups(kc, realm, method, rest[1:], query, body)
    if kind == "clients":
        return _clients(kc, realm, method, rest[1:], query, body)
    if kind == "users":
        return _users(kc, realm, method, rest[1:], query, body)
    return 404, None, None


def _realm(realm: dict[str, Any], method: str, body: Any) -> Answer:
    if method == "GET":
        smtp = {**realm["smtp"], **({"password": MASKED} if "password" in realm["smtp"] else {})}
        return 200, {**realm["settings"], "smtpServer": smtp, "attributes": dict(realm["attributes"])}, None
    if method == "PUT":  # only the fields given change (Keycloak's partial update of the top-level realm)
        for key, value in body.items():
            if key == "smtpServer":
                realm["smtp"] = {**({"password": realm["smtp"]["password"]} if "password" in realm["smtp"] else {}), **value}
            elif key == "attributes":
                realm["attributes"] = dict(value)
            else:
                realm["settings"][key] = value
        return 204, None, None
    return 405, None, None


def _roles(kc: Keycloak, realm: dict[str, Any], method: str, rest: list[str], body: Any) -> Answer:
    roles = realm["roles"]
    if not rest and method == "GET":
        return 200, [dict(r) for r in roles.values()], None
    if not rest and method == "POST":
        if body["name"] in roles:
            return 409, {"errorMessage": f"Role with name {body['name']} already exists"}, None
        roles[body["name"]] = {"id": next(kc.ids), "name": body["name"], "composite": False, "clientRole": False}
        return 201, None, None
    if len(rest) == 1 and method == "GET":
        role = roles.get(urllib.parse.unquote(rest[0]))
        return (200, dict(role), None) if role else (404, {"error": "Could not find role"}, None)
    return 405, None, None


def _groups(kc: Keycloak, realm: dict[str, Any], method: str, rest: list[str], query: dict[str, str], body: Any) -> Answer:
    groups = realm["groups"]
    if not rest and method == "GET":
        brief = query.get("briefRepresentation", "true") == "true"
        return 200, [{"id": g["id"], "name": g["name"], "path": "/" + g["name"], **({} if brief else {"realmRoles": sorted(g["roles"])})} for g in groups.values()], None
    if not rest and method == "POST":
        if any(g["name"] == body["name"] for g in groups.values()):
            return 409, {"errorMessage": f"Top level group named '{body['name']}' already exists."}, None
        gid = next(kc.ids)
        groups[gid] = {"id": gid, "name": body["name"], "roles": set()}
        return 201, None, f"/admin/realms/x/groups/{gid}"
    group = groups.get(rest[0])
    if group is None:
        return 404, {"error": "Could not find group by id"}, None
    if rest[1:] == ["role-mappings", "realm"]:
        if method == "GET":
            return 200, [dict(realm["roles"][n]) for n in sorted(group["roles"])], None
        names = {r["name"] for r in body}
        if not names <= set(realm["roles"]):
            return 404, {"error": "Could not find role"}, None
        group["roles"] = group["roles"] | names if method == "POST" else group["roles"] - names
        return 204, None, None
    return 405, None, None


def _clients(kc: Keycloak, realm: dict[str, Any], method: str, rest: list[str], query: dict[str, str], body: Any) -> Answer:
    clients = realm["clients"]
    if not rest and method == "GET":
        found = [c for c in clients.values() if "clientId" not in query or c["rep"]["clientId"] == query["clientId"]]
        return 200, [dict(c["rep"]) for c in found], None
    if not rest and method == "POST":
        if any(c["rep"]["clientId"] == body["clientId"] for c in clients.values()):
            return 409, {"errorMessage": f"Client {body['clientId']} already exists"}, None
        cid = next(kc.ids)
        mappers = {}
        for mapper in body.get("protocolMappers", []):
            mid = next(kc.ids)
            mappers[mid] = {**mapper, "id": mid}
        rep = {k: v for k, v in body.items() if k != "protocolMappers"}
        rep["attributes"] = {"backchannel.logout.session.required": "true", **rep.get("attributes", {})}  # Keycloak's defaults
        clients[cid] = {"rep": {**rep, "id": cid}, "mappers": mappers}
        return 201, None, f"/admin/realms/x/clients/{cid}"
    client = clients.get(rest[0])
    if client is None:
        return 404, {"error": "Could not find client"}, None
    if len(rest) == 1 and method == "GET":
        return 200, dict(client["rep"]), None
    if len(rest) == 1 and method == "PUT":
        client["rep"] = {**{k: v for k, v in body.items() if k != "protocolMappers"}, "id": client["rep"]["id"]}
        return 204, None, None
    if rest[1:3] == ["protocol-mappers", "models"]:
        mappers = client["mappers"]
        if len(rest) == 3 and method == "GET":
            return 200, [dict(m) for m in mappers.values()], None
        if len(rest) == 3 and method == "POST":
            if any(m["name"] == body["name"] for m in mappers.values()):
                return 409, {"errorMessage": "Protocol mapper exists with same name"}, None
            mid = next(kc.ids)
            mappers[mid] = {**body, "id": mid}
            return 201, None, None
        if len(rest) == 4 and method == "PUT" and rest[3] in mappers:
            mappers[rest[3]] = {**body, "id": rest[3]}
            return 204, None, None
    return 405, None, None


def _users(kc: Keycloak, realm: dict[str, Any], method: str, rest: list[str], query: dict[str, str], body: Any) -> Answer:
    users = realm["users"]
    if not rest and method == "GET":
        found = list(users.values())
        if "username" in query:
            wanted = query["username"].lower()
            exact = query.get("exact") == "true"
            found = [u for u in found if (u["rep"]["username"] == wanted if exact else wanted in u["rep"]["username"])]
        first, most = int(query.get("first", 0)), int(query.get("max", 100))
        return 200, [dict(u["rep"]) for u in found[first : first + most]], None
    if not rest and method == "POST":
        username = body["username"].lower()
        if any(u["rep"]["username"] == username for u in users.values()):
            return 409, {"errorMessage": "User exists with same username"}, None
        if body.get("email") and any((u["rep"].get("email") or "").lower() == body["email"].lower() for u in users.values()):
            return 409, {"errorMessage": "User exists with same email"}, None
        uid = next(kc.ids)
        users[uid] = {"rep": {**body, "username": username, "id": uid, "createdTimestamp": 0}, "groups": set()}
        return 201, None, f"/admin/realms/x/users/{uid}"
    user = users.get(rest[0])
    if user is None:
        return 404, {"error": "User not found"}, None
    if len(rest) == 1 and method == "GET":
        return 200, dict(user["rep"]), None
    if len(rest) == 1 and method == "PUT":
        user["rep"] = {**user["rep"], **body, "id": user["rep"]["id"], "username": user["rep"]["username"]}
        return 204, None, None
    if rest[1:] == ["groups"] and method == "GET":
        return 200, [{"id": g, "name": realm["groups"][g]["name"], "path": "/" + realm["groups"][g]["name"]} for g in sorted(user["groups"])], None
    if rest[1] == "groups" and len(rest) == 3:
        if rest[2] not in realm["groups"]:
            return 404, {"error": "Group not found"}, None
        user["groups"] = user["groups"] | {rest[2]} if method == "PUT" else user["groups"] - {rest[2]}
        return 204, None, None
    if rest[1:] == ["execute-actions-email"] and method == "PUT":
        if not realm["smtp"].get("host"):
            return 500, {"errorMessage": "Failed to send execute actions email"}, None
        if not user["rep"].get("email"):
            return 400, {"errorMessage": "User email missing"}, None
        kc.outbox.append({"to": user["rep"]["email"], "actions": list(body), "lifespan": int(query.get("lifespan", 43200))})
        return 204, None, None
    return 405, None, None


class Server:
    """The stand-in on 127.0.0.1 over TLS (`cert`, `key` from the test's CA), in a thread; a context manager."""

    def __init__(self, kc: Keycloak, cert: Path, key: Path) -> None:
        self.kc = kc
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(kc, Spec(SPEC)))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
