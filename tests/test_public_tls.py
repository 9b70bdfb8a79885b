"""The public certificate really issues and renews: the ingress host of the test stack, booted in a lab namespace
(tests/lab.py) from its rendered user-data, bootstrap and delivery, runs the rendered nginx and the rendered
nina-certbot.service against pebble, Let's Encrypt's test ACME server (Debian's package), on a second lab machine.
pebble resolves the public names through pebble-challtestsrv to the ingress host and validates http-01 on port 80,
through the nginx the program renders. Then certbot renews (what certbot.timer runs), and nginx serves each
certificate in turn. The only test-side settings: certbot's ACME server (cli.ini) and trust in pebble's API
certificate, as an operator pointing at a private ACME server would set them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLWR_VENV, Preview, payload_of, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nina.catalog.roles import WEB_ROLES
from nina.plan import public

ACME_IP = "10.40.0.200"  # the lab's ACME server: an address of the test stack's public segment no host uses
DELIVER = Path(__file__).resolve().parents[1] / "nina" / "onhost" / "nina_deliver.py"


def _unavailable() -> str | None:
    from lab import unavailable

    reason = unavailable()
    for tool in ("pebble", "pebble-challtestsrv", "certbot", "openssl"):
        if reason is None and shutil.which(tool) is None:
            reason = f"{tool} is not installed (scripts/install-system-deps.sh)"
    return reason


def _api_certificate(tmp: Path) -> tuple[Path, Path]:
    """pebble's own HTTPS certificate (its ACME API), self-signed for ACME_IP: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab ACME server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ACME_IP))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "acme-api.pem", tmp / "acme-api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def ingress(materialized: dict[str, Preview], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = _unavailable()
    if reason:
        if os.environ.get("NINA_REQUIRE_NETNS") == "1":
            pytest.fail(f"NINA_REQUIRE_NETNS=1 but the public TLS lab cannot run: {reason}")
        pytest.skip(f"public TLS lab: {reason}")
    from lab import Lab

    preview = materialized["test"]
    cfg = preview.cfg
    host = cfg.the_host_with("ingress")
    tmp = tmp_path_factory.mktemp("public-tls")
    lab = Lab(tmp, FLWR_VENV)
    try:
        hub = lab.machine(host.name, str(host.ip))
        acme = lab.machine("acme", ACME_IP)
        hub.boot(preview.hosts[host.name].cloud_config, cfg.admin.ssh_user)
        hub.package_accounts(users=("grafana", "prometheus"), groups=("docker",))
        hub.bootstrap(only=("base", "ingress"))
        hub.deliver(payload_of(preview, host.name), DELIVER)
        hub.start("nginx.service")
        name = public.public_name(cfg, WEB_ROLES[0])
        answered = lambda: hub.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {name}", "http://127.0.0.1/"], check=False).stdout  # noqa: E731
        wait_for(lambda: answered() == "301", "nginx on the ingress host", lambda: hub.log("nginx.service") + hub.read("/var/log/nginx/error.log"))

        # The ACME server: challtestsrv answers every name with the ingress host; pebble validates there on port 80.
        cert, key = _api_certificate(tmp)
        (tmp / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"{ACME_IP}:14000", "managementListenAddress": f"{ACME_IP}:15000", "certificate": str(cert),
            "privateKey": str(key), "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}))
        acme.background("challtestsrv", ["pebble-challtestsrv", "-management", f"{ACME_IP}:8055", "-dns01", f"{ACME_IP}:8053",
                                         "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", str(host.ip), "-defaultIPv6", ""])
        wait_for(lambda: acme.run(["curl", "-s", "-o", "/dev/null", f"http://{ACME_IP}:8055/"], check=False).returncode == 0,
                 "pebble-challtestsrv", lambda: acme.log("challtestsrv"))
        acme.background("pebble", ["env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "pebble", "-config", str(tmp / "pebble.json"),
                                   "-dnsserver", f"{ACME_IP}:8053"])
        wait_for(lambda: hub.run(["curl", "-s", "--cacert", str(cert), f"https://{ACME_IP}:14000/dir"], check=False).returncode == 0,
                 "pebble", lambda: acme.log("pebble"))
        # The operator's two settings for a private ACME server: where it is, and trust in its API certificate.
        hub.write("/usr/local/share/ca-certificates/lab-acme.crt", cert.read_text())
        hub.run(["update-ca-certificates"])
        hub.write("/etc/letsencrypt/cli.ini", f"server = https://{ACME_IP}:14000/dir\n")
        yield {"lab": lab, "hub": hub, "acme": acme, "cfg": cfg, "host": host}
    finally:
        lab.close()


def served(hub: Any, cfg: Any, name: str) -> x509.Certificate:
    """The certificate nginx presents for `name` (SNI), fetched from inside the lab."""
    done = hub.run(["sh", "-c", f"openssl s_client -connect 127.0.0.1:443 -servername {name} </dev/null 2>/dev/null | openssl x509"], check=False)
    assert done.returncode == 0, done.stderr
    return x509.load_pem_x509_certificate(done.stdout.encode())


def nginx_reloads(hub: Any) -> int:
    log = hub.logs / "systemctl.log"
    return log.read_text().count("reload nginx.service") if log.exists() else 0


def public_names(cfg: Any) -> list[str]:
    return [public.public_name(cfg, role) for role in WEB_ROLES]


def test_port_80_answers_challenges_and_redirects_only(ingress: dict[str, Any]) -> None:
    hub, cfg = ingress["hub"], ingress["cfg"]
    name = public_names(cfg)[0]
    hub.write("/var/www/letsencrypt/.well-known/acme-challenge/probe", "token\n")
    challenge = hub.run(["curl", "-s", "-H", f"Host: {name}", "http://127.0.0.1/.well-known/acme-challenge/probe"]).stdout
    assert challenge == "token\n"
    redirect = hub.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", f"Host: {name}", "http://127.0.0.1/hub/login"]).stdout
    assert redirect == f"301 https://{name}/hub/login"
    unknown = hub.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: elsewhere.example", "http://127.0.0.1/"], check=False)
    assert unknown.stdout == "000"  # 444: nginx closes the connection for names it does not serve


def test_certbot_gets_the_public_certificate_through_nginx_and_renews_it(ingress: dict[str, Any]) -> None:
    hub, cfg = ingress["hub"], ingress["cfg"]
    names = public_names(cfg)
    stand_in = served(hub, cfg, names[0])
    assert stand_in.issuer.rfc4514_string() == "CN=nina bootstrap"  # the bootstrap's self-signed stand-in, until now

    hub.start("nina-certbot.service")  # the rendered unit: certonly --webroot ... with its deploy hook
    assert nginx_reloads(hub) == 1  # the deploy hook re-pointed the links and asked systemd to reload nginx
    hub.run(["nginx", "-s", "reload"])  # what that reload does
    wait_for(lambda: served(hub, cfg, names[0]).issuer != stand_in.issuer, "nginx serving the new certificate")
    first = served(hub, cfg, names[0])
    assert "Pebble" in first.issuer.rfc4514_string()
    sans = set(first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    assert sans == set(names)  # one certificate for every public name
    for name in names:
        assert served(hub, cfg, name).serial_number == first.serial_number

    # certbot.timer runs `certbot -q renew`; forced here because pebble's certificate is years from its renewal window,
    # and without the random delay it adds to spread renewals over the day.
    try:
        renewed = hub.run(["env", f"PATH={hub.stubs}:/usr/sbin:/usr/bin:/sbin:/bin", "certbot", "-q", "renew", "--force-renewal", "--no-random-sleep-on-renew"], check=False, timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(hub.read("/var/log/letsencrypt/letsencrypt.log")[-6000:]) from None
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert nginx_reloads(hub) == 2  # the renewal ran the deploy hook certbot saved with the certificate
    hub.run(["nginx", "-s", "reload"])
    wait_for(lambda: served(hub, cfg, names[0]).serial_number != first.serial_number, "nginx serving the renewed certificate")
    assert time.time() < served(hub, cfg, names[0]).not_valid_after_utc.timestamp()
