"""The ingress fragment (manual §4.1.2.5-7): nginx in front of Keycloak, JupyterHub and Grafana, Let's Encrypt by certbot.

Judged by the real tools: `nginx -t` on the rendered files inside the distribution's own nginx.conf, a real nginx
on 127.0.0.1 proxying to TLS upstreams signed by a throwaway CA, `systemd-analyze verify` on the units and
shellcheck on the bootstrap. The rendered files come from `nina preview --out` (tests/conftest.py `previews`).
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import WEB_ROLES as PUBLIC_SERVICES
from nina.plan import names
from nina.plan.public import public_name, upstream
from tests.conftest import BOOTSTRAP, Preview, role_files

CONF = "/etc/nginx/conf.d/nina.conf"
TLS_SNIPPET = "/etc/nginx/snippets/nina-tls.conf"
DROPIN = "/etc/systemd/system/nginx.service.d/nina.conf"
CERTBOT = "/etc/systemd/system/nina-certbot.service"
TIMER = "/etc/systemd/system/nina-certbot.timer"
DISTRO_NGINX_CONF = Path("/etc/nginx/nginx.conf")
# Installed on the VM by the role's packages, absent on a test machine: systemd-analyze gets a stub there.
INSTALLED_BY_ROLE = ("/usr/bin/certbot",)
PORT = {p.name: p for p in PORTS}

nginx_bin = shutil.which("nginx")
needs_nginx = pytest.mark.skipif(nginx_bin is None, reason="nginx not installed (scripts/install-system-deps.sh)")


def ingress_files(preview: Preview) -> dict[str, str]:
    files = role_files(preview, "ingress")
    assert BOOTSTRAP in files
    return files


# ------------------------------------------------------------------------------------------- a small nginx parser


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        (found,) = self.all(name)
        return found

    def walk(self) -> Iterator[Directive]:
        for d in self.block or []:
            yield d
            yield from d.walk()


_TOKEN = re.compile(r"""\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([{};])|([^\s{};"'#]+))""")


def parse_nginx(text: str) -> Directive:
    """nginx's grammar as far as our files use it: words, quoted strings, `;`, `{ }`, comments."""
    root = Directive("", [], [])
    stack = [root]
    words: list[str] = []
    pos = 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        assert m, f"cannot tokenise at {text[pos:pos + 40]!r}"
        pos = m.end()
        comment, quoted, punct, word = m.groups()
        if comment:
            continue
        if quoted:
            words.append(quoted[1:-1])
        elif word:
            words.append(word)
        elif punct == ";":
            stack[-1].block.append(Directive(words[0], words[1:]))  # type: ignore[union-attr]
            words = []
        elif punct == "{":
            d = Directive(words[0], words[1:], [])
            stack[-1].block.append(d)  # type: ignore[union-attr]
            stack.append(d)
            words = []
        elif punct == "}":
            assert not words, f"dangling words {words}"
            stack.pop()
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def servers_with_name(conf: Directive, name: str) -> list[Directive]:
    return [s for s in conf.all("server") if s.all("server_name") and name in s.one("server_name").args]


def https_server(conf: Directive, name: str) -> Directive:
    (found,) = [s for s in servers_with_name(conf, name) if any("ssl" in d.args for d in s.all("listen"))]
    return found


# ------------------------------------------------------------------------------------------------ static checks


def test_public_table_matches_platform_outputs(preview: Preview) -> None:
    """The stack's public_urls output names the web roles of the role table."""
    urls = preview.data["outputs"]["public_urls"]
    assert {s.public.label for s in PUBLIC_SERVICES} == set(urls)
    for s in PUBLIC_SERVICES:
        assert urls[s.public.label] == f"https://{public_name(preview.cfg, s)}/"


def test_each_public_name_proxies_to_its_internal_service(preview: Preview) -> None:
    cfg = preview.cfg
    conf = parse_nginx(ingress_files(preview)[CONF])
    for s in PUBLIC_SERVICES:
        server = https_server(conf, public_name(cfg, s))
        passes = {d.args[0] for d in server.walk() if d.name == "proxy_pass"}
        assert passes == {upstream(cfg, s)}, s
        assert server.one("proxy_ssl_name").args == [names.fqdn(cfg, s.alias)]
        assert server.one("include").args == [TLS_SNIPPET]
        assert [d.args for d in server.all("listen")] == [[str(PORT["https"].port), "ssl", "http2"]]


def test_upstreams_are_verified_against_the_local_ca(preview: Preview) -> None:
    files = ingress_files(preview)
    conf = parse_nginx(files[CONF])
    top = {d.name: d.args for d in conf.block or [] if d.block is None}
    assert top["proxy_ssl_verify"] == ["on"]
    assert top["proxy_ssl_server_name"] == ["on"]
    assert top["proxy_ssl_trusted_certificate"] == [layout.CA_PEM]
    # nginx cannot start without the CA: its unit waits for the delivery instead of failing.
    assert f"ConditionPathExists={layout.CA_PEM}" in files[DROPIN].splitlines()


def test_tls_policy(preview: Preview) -> None:
    snippet = parse_nginx(ingress_files(preview)[TLS_SNIPPET])
    assert snippet.one("ssl_protocols").args == ["TLSv1.2", "TLSv1.3"]
    ciphers = snippet.one("ssl_ciphers").args[0].split(":")
    assert ciphers and all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers)
    headers = {d.args[0]: d.args[1:] for d in snippet.all("add_header")}
    assert headers["Strict-Transport-Security"][0].startswith("max-age=") and headers["Strict-Transport-Security"][-1] == "always"
    assert headers["X-Content-Type-Options"][0] == "nosniff"


def test_port_80_only_serves_acme_and_redirects(preview: Preview) -> None:
    cfg = preview.cfg
    conf = parse_nginx(ingress_files(preview)[CONF])
    (plain,) = [s for s in conf.all("server") if s.all("server_name") and s.one("listen").args == ["80"]]
    assert set(plain.one("server_name").args) == {public_name(cfg, s) for s in PUBLIC_SERVICES}
    locations = {tuple(loc.args): loc for loc in plain.all("location")}
    assert set(locations) == {("/.well-known/acme-challenge/",), ("/",)}
    assert locations[("/",)].one("return").args == ["301", "https://$host$request_uri"]
    # Any other name, on 80 or 443, gets nothing (no certificate is even offered on 443).
    (default,) = [s for s in conf.all("server") if any("default_server" in d.args for d in s.all("listen"))]
    assert default.one("ssl_reject_handshake").args == ["on"] and default.one("return").args == ["444"]


def test_admin_consoles_are_limited_to_the_operators(preview: Preview) -> None:
    cfg = preview.cfg
    conf = parse_nginx(ingress_files(preview)[CONF])
    allow = [str(c) for c in cfg.admin.ssh_cidrs]

    def restricted(location: Directive) -> bool:
        return [d.args[0] for d in location.all("allow")] == allow and location.one("deny").args == ["all"]

    keycloak = https_server(conf, f"keycloak.{cfg.dns.public_domain}")
    (public,) = [loc for loc in keycloak.all("location") if loc.args[0] == "~"]
    (rest,) = [loc for loc in keycloak.all("location") if loc.args == ["/"]]
    assert restricted(rest) and not public.all("allow")
    # The public regex (PCRE; this one means the same in Python) lets the login flows through, not the consoles.
    pattern = re.compile(public.args[1])
    for path in ("/realms/nina/protocol/openid-connect/auth", "/realms/nina/.well-known/openid-configuration", "/resources/x.css"):
        assert pattern.match(path), path
    for path in ("/admin/master/console/", "/realms/master/protocol/openid-connect/auth", "/metrics", "/"):
        assert not pattern.match(path), path

    grafana = https_server(conf, f"grafana.{cfg.dns.public_domain}")
    (admin,) = [loc for loc in grafana.all("location") if loc.args[0] == "~"]
    assert restricted(admin)
    for path in ("/admin/users", "/api/admin/settings", "/metrics"):
        assert re.match(admin.args[1], path), path


def test_jupyterhub_gets_websockets_and_large_uploads(preview: Preview) -> None:
    conf = parse_nginx(ingress_files(preview)[CONF])
    top = {(d.name, d.args[0]): d.args[1:] for d in conf.block or [] if d.name == "proxy_set_header"}
    assert top[("proxy_set_header", "Upgrade")] == ["$http_upgrade"]
    assert top[("proxy_set_header", "Connection")] == ["$connection_upgrade"]
    hub = https_server(conf, f"flhub.{preview.cfg.dns.public_domain}")
    size = hub.one("client_max_body_size").args[0]
    assert size.endswith("m") and int(size[:-1]) >= 100
    assert hub.one("proxy_buffering").args == ["off"]


def test_certbot_asks_for_every_public_name(preview: Preview) -> None:
    files = ingress_files(preview)
    exec_start = next(line for line in files[CERTBOT].splitlines() if line.startswith("ExecStart="))
    domains = re.findall(r"-d (\S+)", exec_start)
    assert sorted(domains) == sorted(public_name(preview.cfg, s) for s in PUBLIC_SERVICES)
    assert "--webroot" in exec_start and "--cert-name nina" in exec_start
    # The deploy hook points nginx at the certificate the TLS snippet names.
    snippet = parse_nginx(files[TLS_SNIPPET])
    hook = re.search(r'--deploy-hook "([^"]+)"', exec_start)
    assert hook is not None
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        assert snippet.one(directive).args[0] in hook.group(1).split()
    assert "systemctl reload nginx.service" in hook.group(1)
    # The bootstrap's self-signed stand-in carries the same names.
    sans = re.search(r"subjectAltName=(\S+)\"", files[BOOTSTRAP])
    assert sans is not None and sorted(x.removeprefix("DNS:") for x in sans.group(1).split(",")) == sorted(domains)


def test_no_secret_material_in_the_fragment(preview: Preview) -> None:
    for path, content in ingress_files(preview).items():
        if path.startswith(("/etc/nginx", "/etc/systemd/system/nina-certbot")) or path == BOOTSTRAP:
            assert "PRIVATE KEY" not in content and "BEGIN CERTIFICATE" not in content, path


# --------------------------------------------------------------------------------------------- the real tools


def _pem_pair(tmp: Path, stem: str, names_: list[str], ca: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """A key and certificate for these DNS names, signed by `ca` (or self-signed, usable as a CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names_[0])])
    issuer_key, issuer_cert = ca if ca else (key, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names_]), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    cert = builder.sign(issuer_key, hashes.SHA256())
    (tmp / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{stem}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key, cert


@dataclass
class Sandbox:
    """The rendered files under a temporary prefix, runnable by nginx without touching the machine."""

    root: Path
    main: Path
    conf: Path
    files: dict[str, str] = field(default_factory=dict)

    def nginx(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert nginx_bin
        return subprocess.run([nginx_bin, "-p", str(self.root), "-c", str(self.main), *args], capture_output=True, text=True, timeout=60)


def _relocate(text: str, root: Path) -> str:
    """Absolute paths in a config moved under `root` (all of /etc, /var and /run that the files name)."""
    return re.sub(r"(?<![\w.])(/(?:etc|var|run)/[^\s;'\"]*)", lambda m: f"{root}{m.group(1)}", text)


def make_sandbox(preview: Preview, tmp: Path, upstreams: dict[str, int] | None = None, listen: tuple[int, int] | None = None) -> Sandbox:
    """Write the rendered nginx files under `tmp`, inside the distribution's own nginx.conf (so a directive our
    files repeat from it, like ssl_protocols in the http block, fails as it would on the VM).

    `nginx -t` resolves every proxy_pass host name while loading the config and the internal names exist only in
    the hosts' /etc/hosts (delivered after boot), so proxy_pass hosts become 127.0.0.1 here; proxy_ssl_name keeps the
    internal name, so certificate verification still checks it. `upstreams` maps an internal name to a local port.
    """
    files = ingress_files(preview)
    cfg = preview.cfg
    root = tmp / "root"
    for path in (CONF, TLS_SNIPPET):
        text = files[path]
        for s in PUBLIC_SERVICES:
            internal = names.fqdn(cfg, s.alias)
            port = (upstreams or {}).get(internal)
            target = f"127.0.0.1:{port}" if port else "127.0.0.1:" + upstream(cfg, s).rsplit(":", 1)[1]
            text = text.replace(f"proxy_pass https://{internal}:" + upstream(cfg, s).rsplit(":", 1)[1], f"proxy_pass https://{target}")
        if listen:
            text = re.sub(r"listen 80\b", f"listen 127.0.0.1:{listen[0]}", text)
            text = re.sub(r"listen 443\b", f"listen 127.0.0.1:{listen[1]}", text)
        target_path = root / path.lstrip("/")
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target_path.write_text(_relocate(text, root))
    for d in ("etc/nginx/sites-enabled", "var/log/nginx", "var/www/letsencrypt", "etc/nginx/certs", "etc/ssl/certs", "run", "var/lib/nginx"):
        (root / d).mkdir(parents=True, exist_ok=True)
    if (Path("/etc/nginx/mime.types")).exists():
        shutil.copy("/etc/nginx/mime.types", root / "etc/nginx/mime.types")
    else:
        (root / "etc/nginx/mime.types").write_text("types { text/html html; }\n")
    distro = DISTRO_NGINX_CONF.read_text() if DISTRO_NGINX_CONF.exists() else _UBUNTU_NGINX_CONF
    # Dynamic modules stay where the package put them; everything else moves under the sandbox.
    main_text = _relocate(distro, root).replace(f"{root}/etc/nginx/modules-enabled", "/etc/nginx/modules-enabled")
    main_text = re.sub(r"^user\s+[^;]+;", "", main_text, flags=re.M)
    temp = " ".join(f"{k}_temp_path {root}/var/lib/nginx/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main_text = main_text.replace("http {", "http {\n" + temp, 1)
    main = root / "etc/nginx/nginx.conf"
    main.write_text(main_text)
    return Sandbox(root, main, root / CONF.lstrip("/"), files)


# Ubuntu 24.04's /etc/nginx/nginx.conf (the parts that matter), for machines without nginx's own file.
_UBUNTU_NGINX_CONF = """user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 768; }
http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log /var/log/nginx/access.log;
    gzip on;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
"""


def _install_certs(sandbox: Sandbox, preview: Preview, tmp: Path) -> tuple[Any, Any]:
    """The public stand-in certificate at the snippet's paths and a throwaway local CA at layout.CA_PEM."""
    cfg = preview.cfg
    snippet = parse_nginx(_relocate(sandbox.files[TLS_SNIPPET], sandbox.root))
    public = [public_name(cfg, s) for s in PUBLIC_SERVICES]
    _pem_pair(tmp, "public", public)
    shutil.copy(tmp / "public.pem", snippet.one("ssl_certificate").args[0])
    shutil.copy(tmp / "public.key", snippet.one("ssl_certificate_key").args[0])
    ca = _pem_pair(tmp, "ca", ["nina test local CA"])
    shutil.copy(tmp / "ca.pem", f"{sandbox.root}{layout.CA_PEM}")
    return ca


@needs_nginx
def test_nginx_accepts_the_rendered_config(preview: Preview, tmp_path: Path) -> None:
    sandbox = make_sandbox(preview, tmp_path)
    _install_certs(sandbox, preview, tmp_path)
    result = sandbox.nginx("-t")
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr.replace('the "listen ... http2" directive is deprecated', ""), result.stderr


@needs_nginx
def test_nginx_rejects_a_broken_copy(preview: Preview, tmp_path: Path) -> None:
    """The check can fail: a missing CA file, a typo and TLS settings repeated in the http block are caught."""
    sandbox = make_sandbox(preview, tmp_path)
    _install_certs(sandbox, preview, tmp_path)
    good = sandbox.conf.read_text()
    Path(f"{sandbox.root}{layout.CA_PEM}").unlink()
    assert sandbox.nginx("-t").returncode != 0
    _install_certs(sandbox, preview, tmp_path)
    sandbox.conf.write_text(good.replace("proxy_ssl_verify on;", "proxy_ssl_verify yes please;"))
    assert sandbox.nginx("-t").returncode != 0
    # Ubuntu's nginx.conf sets TLS options in the http block: repeating a flag there is fatal, and ssl_protocols
    # is silently OR-ed with the distribution's TLSv1/TLSv1.1 (only a warning says so): hence the per-server snippet.
    sandbox.conf.write_text("ssl_prefer_server_ciphers off;\n" + good)
    result = sandbox.nginx("-t")
    assert result.returncode != 0 and "is duplicate" in result.stderr
    sandbox.conf.write_text("ssl_protocols TLSv1.2 TLSv1.3;\n" + good)
    result = sandbox.nginx("-t")
    assert result.returncode == 0 and "[warn]" in result.stderr and "duplicate value" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _tls_upstream(tmp: Path, stem: str, dns: list[str], ca: tuple[Any, Any]) -> tuple[http.server.HTTPServer, int]:
    _pem_pair(tmp, stem, dns, ca)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / f"{stem}.pem", tmp / f"{stem}.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _https(port: int, name: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=name)
    conn = http.client.HTTPSConnection(name, port, context=context, timeout=10)
    conn.sock = sock
    conn.request("GET", path, headers={"Host": name, **(headers or {})})
    return conn.getresponse()


@needs_nginx
def test_nginx_proxies_verifies_and_restricts(preview: Preview, tmp_path: Path) -> None:
    """A real nginx on 127.0.0.1 with the rendered config, TLS upstreams signed by a throwaway local CA."""
    cfg = preview.cfg
    ca = _pem_pair(tmp_path, "upstream-ca", ["nina test local CA"])
    keycloak, hub, grafana = (names.fqdn(cfg, s.alias) for s in PUBLIC_SERVICES)
    good, good_port = _tls_upstream(tmp_path, "upstream", [keycloak, hub], ca)
    # Grafana's upstream presents a certificate for another name: proxy_ssl_verify must refuse it.
    wrong, wrong_port = _tls_upstream(tmp_path, "wrong", ["somewhere-else.invalid"], ca)
    p80, p443 = _free_port(), _free_port()
    sandbox = make_sandbox(preview, tmp_path, {keycloak: good_port, hub: good_port, grafana: wrong_port}, (p80, p443))
    _install_certs(sandbox, preview, tmp_path)
    shutil.copy(tmp_path / "upstream-ca.pem", f"{sandbox.root}{layout.CA_PEM}")  # the CA that signed the upstreams
    (sandbox.root / "var/www/letsencrypt/.well-known/acme-challenge").mkdir(parents=True)
    (sandbox.root / "var/www/letsencrypt/.well-known/acme-challenge/tok").write_text("challenge-answer")
    proc = subprocess.Popen(
        [nginx_bin or "nginx", "-p", str(sandbox.root), "-c", str(sandbox.main), "-g", "daemon off; master_process off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", p443), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        flhub = f"flhub.{cfg.dns.public_domain}"
        r = _https(p443, flhub, "/hub/home", {"Upgrade": "websocket", "Connection": "Upgrade"})
        assert r.status == 200, (sandbox.root / "var/log/nginx/error.log").read_text()
        seen = json.loads(r.read())
        assert seen["path"] == "/hub/home"
        assert seen["headers"]["host"] == flhub and seen["headers"]["x-forwarded-proto"] == "https"
        assert seen["headers"]["upgrade"] == "websocket" and seen["headers"]["connection"] == "upgrade"
        assert r.getheader("Strict-Transport-Security", "").startswith("max-age=")
        kc = f"keycloak.{cfg.dns.public_domain}"
        assert _https(p443, kc, "/realms/nina/.well-known/openid-configuration").status == 200
        # 127.0.0.1 is not an operator network: the consoles answer 403 without reaching Keycloak.
        assert _https(p443, kc, "/admin/master/console/").status == 403
        assert _https(p443, kc, "/realms/master/protocol/openid-connect/auth").status == 403
        assert _https(p443, f"grafana.{cfg.dns.public_domain}", "/login").status == 502
        # An unknown name gets no certificate at all.
        with pytest.raises(ssl.SSLError):
            _https(p443, "unknown.example.org", "/")
        plain = http.client.HTTPConnection("127.0.0.1", p80, timeout=10)
        plain.request("GET", "/x?y=1", headers={"Host": flhub})
        redirect = plain.getresponse()
        assert redirect.status == 301 and redirect.getheader("Location") == f"https://{flhub}/x?y=1"
        redirect.read()
        plain.request("GET", "/.well-known/acme-challenge/tok", headers={"Host": flhub})
        answer = plain.getresponse()
        assert answer.status == 200 and answer.read() == b"challenge-answer"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        good.shutdown()
        wrong.shutdown()


def test_admin_cidrs_are_networks(preview: Preview) -> None:
    """`allow` takes what config parsed: a CIDR nginx understands, never `0.0.0.0/0`."""
    for cidr in preview.cfg.admin.ssh_cidrs:
        assert ipaddress.ip_network(str(cidr)).prefixlen > 0
