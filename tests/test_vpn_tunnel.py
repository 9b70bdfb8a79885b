"""A real OpenVPN tunnel between two network namespaces, with the configs and material the program produces.

The uat stack's on-premises organisation (metro-north) sent a CSR; here the test plays the site: it makes a fresh key
and CSR, puts the CSR into a copy of Pulumi.uat.yaml, and previews that copy with real material. The VPN host's
payload is installed with nina-deliver under a temporary root, the rendered server configs (user-data) point there,
and the real `openvpn` runs in a server namespace joined by a veth pair to a client namespace. Everything the test
creates (namespaces, veth, processes, files) is removed at the end; nothing touches the host's own network.

Skips only where namespaces or /dev/net/tun are unavailable, and fails instead when NINA_REQUIRE_NETNS=1 (CI).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import samples, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nina.config import StackConfig, parse
from nina.offline.stack_files import stack_config
from nina.catalog import layout
from nina.plan import openvpn, scrape

ROOT = Path(__file__).resolve().parents[1]
STACK, FED, ORG, VPN_HOST = "uat", "uat-cardiac", "metro-north", "vpn"
SERVER_IP, CLIENT_IP = "10.250.0.1", "10.250.0.2"  # the veth pair between the two namespaces (a /30 of our own)
TCP_SERVER_IP, TCP_CLIENT_IP = "10.250.0.5", "10.250.0.6"  # a second site whose firewall drops UDP


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns, /dev/net/tun)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is not available"
    for tool in ("ip", "openvpn", "ping", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-system-deps.sh)"
    probe = f"nina-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


_reason = _netns_unavailable()
if _reason and os.environ.get("NINA_REQUIRE_NETNS") == "1":
    raise RuntimeError(f"NINA_REQUIRE_NETNS=1 but the VPN tunnel test cannot run: {_reason}")
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"VPN tunnel test: {_reason}")


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=60)


def in_ns(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, *cmd, check=check)


# ------------------------------------------------------------------------------------------------ the site's PKI


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def csr_for(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    return request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def sign_client(ca_cert_pem: str, ca_key_pem: str, key: ec.EllipticCurvePrivateKey, cn: str, serial: int) -> str:
    """A client certificate from the same CA, as an attacker holding a revoked or unregistered one would present."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# ------------------------------------------------------------------------------------------------------ the lab


@dataclass
class Lab:
    tmp: Path
    root: Path  # where nina-deliver installed the VPN host's payload
    cfg: StackConfig
    server_ns: str
    client_ns: str
    ca_cert_pem: str
    ca_key_pem: str
    tls_crypt: str
    org_cert_pem: str
    site_key: ec.EllipticCurvePrivateKey
    revoked_serial: int
    server_confs: dict[str, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    user_data: dict[str, str] = field(default_factory=dict)  # the VPN host's write_files
    output: dict[str, Any] = field(default_factory=dict)  # the stack output vpn.<federation>
    payload: dict[str, str] = field(default_factory=dict)  # the VPN host's delivered files

    @property
    def fed(self) -> Any:
        return self.cfg.federations[FED]

    def server_log(self, inst: openvpn.Instance) -> str:
        path = self.rooted(inst.log)
        return path.read_text(errors="replace") if path.exists() else ""

    def rooted(self, path: str) -> Path:
        return Path(str(self.root) + path)

    def start(self, ns: str, conf: Path, log: Path) -> subprocess.Popen[str]:
        handle = log.open("w")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "openvpn", "--config", str(conf)], cwd=conf.parent, stdout=handle, stderr=subprocess.STDOUT, text=True
        )
        self.processes.append(proc)
        return proc

    def client(
        self, name: str, cert_pem: str, key: ec.EllipticCurvePrivateKey, ns: str = "", remote: str = SERVER_IP
    ) -> tuple[subprocess.Popen[str], Path]:
        d = self.site(name, cert_pem, key, remote)
        log = d / "openvpn.log"
        return self.start(ns or self.client_ns, d / "client.conf", log), log

    def site(self, name: str, cert_pem: str, key: ec.EllipticCurvePrivateKey, remote: str = SERVER_IP) -> Path:
        """A site's VPN client host: the files client.conf names, beside it (§4.1.3.2)."""
        d = self.tmp / "sites" / name
        d.mkdir(parents=True)
        # The bundle's VPN files from the stack output, as the operator hands them to the site ...
        for file_name, f in openvpn.site_files(self.cfg, self.fed, ORG, self.output, remote=remote, directory=str(d)).items():
            (d / file_name).write_text(f.content)
            (d / file_name).chmod(int(f.mode, 8))
        # ... plus what the site holds itself: its key (and, for the attackers below, another certificate).
        (d / "client.key").write_text(pem_key(key))
        (d / "client.key").chmod(0o600)
        (d / "client.crt").write_text(cert_pem)
        return d

    def namespace(self, name: str) -> str:
        ns = f"{self.server_ns}-{name}"
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        return ns

    def link(self, ns: str, here: str, there: str, prefix: int = 30) -> None:
        """A veth pair from the VPN host's namespace (address `here`) to `ns` (address `there`)."""
        a, b = f"v{len(self.namespaces)}a", f"v{len(self.namespaces)}b"
        in_ns(self.server_ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
        in_ns(self.server_ns, "ip", "addr", "add", f"{here}/{prefix}", "dev", a)
        in_ns(self.server_ns, "ip", "link", "set", a, "up")
        in_ns(ns, "ip", "addr", "add", f"{there}/{prefix}", "dev", b)
        in_ns(ns, "ip", "link", "set", b, "up")

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _preview(project: Path, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "nina.cli", "preview", "--stack", STACK, "--cwd", str(project), "--json", "--materialize", "--show-secrets", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _resource(data: dict[str, Any], type_token: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in data["resources"] if r["type"] == type_token and r["name"] == name]
    return found


def rewrite_paths(text: str, root: Path) -> str:
    """Absolute paths in a rendered config, moved under the test's root (as nina-deliver --root installed them)."""
    return re.sub(r"(?<=\s)(/(?:etc|usr|var)/\S+)", lambda m: f"{root}{m.group(1)}", text)


def _veth(server_ns: str, client_ns: str) -> None:
    for ns in (server_ns, client_ns):
        run("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    # Created inside the server namespace, so no interface ever appears in the host's own namespace.
    in_ns(server_ns, "ip", "link", "add", "vpn-srv", "type", "veth", "peer", "name", "vpn-cli", "netns", client_ns)
    in_ns(server_ns, "ip", "addr", "add", f"{SERVER_IP}/30", "dev", "vpn-srv")
    in_ns(server_ns, "ip", "link", "set", "vpn-srv", "up")
    in_ns(client_ns, "ip", "addr", "add", f"{CLIENT_IP}/30", "dev", "vpn-cli")
    in_ns(client_ns, "ip", "link", "set", "vpn-cli", "up")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    tmp = Path(tempfile.mkdtemp(prefix="nina-vpn-"))
    tmp.chmod(0o755)  # OpenVPN drops to nobody and then reads CCD files and the CRL directory under here
    tag = f"{os.getpid() % 100000}"
    server_ns, client_ns = f"nina-vpn-srv-{tag}", f"nina-vpn-cli-{tag}"
    lab_: Lab | None = None
    try:
        # The site: its own key, only the CSR goes into the stack. A second serial is listed as revoked up front.
        site_key = new_key()
        revoked_serial = secrets.randbits(63) | 1
        stack = yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())
        config = stack["config"]
        config["nina:organisations"][ORG]["vpn_csr"] = csr_for(site_key, ORG)
        config["nina:federations"][FED]["revoked"] = [{"organisation": ORG, "serial": f"{revoked_serial:X}", "reason": "key compromise (test)"}]
        project = tmp / "project"
        project.mkdir()
        (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        (project / "__main__.py").symlink_to(ROOT / "__main__.py")
        (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))
        raw, _, _ = stack_config(project, STACK)
        cfg = parse({**raw, "nina:ssh_private_key": "placeholder"})

        data = _preview(project, tmp / "out")
        payload = json.loads(_resource(data, "command:remote:Command", f"deliver-{VPN_HOST}")["inputs"]["stdin"])
        root = tmp / "root"
        subprocess.run([sys.executable, "-I", str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(root)], input=json.dumps(payload), text=True, check=True, capture_output=True)
        files = {f["path"]: f["content"] for f in payload["files"]}
        # The CA key as the program hands it to pulumi-tls (the test signs extra certificates an attacker might hold).
        ca_key_pem = _resource(data, "tls:index/locallySignedCert:LocallySignedCert", f"vpn-{FED}-{ORG}")["inputs"]["caPrivateKeyPem"]
        org_cert = data["outputs"]["vpn"][FED]["clients"][ORG]["cert_pem"]
        lab_ = Lab(
            tmp, root, cfg, server_ns, client_ns, data["outputs"]["ca_cert_pem"], ca_key_pem, files[openvpn.TLS_CRYPT], org_cert, site_key, revoked_serial
        )

        # What the vpn bootstrap does before the servers start (directories nothing is delivered into yet).
        for d in (openvpn.CRL_DIR, openvpn.LOG_DIR, *(i.ccd_dir for i in openvpn.instances(cfg.federations[FED]))):
            lab_.rooted(d).mkdir(parents=True, exist_ok=True)
        cloud_config = yaml.safe_load((tmp / "out" / "hosts" / VPN_HOST / "cloud-config.yaml").read_text())
        written = {f["path"]: f["content"] for f in cloud_config["write_files"]}
        lab_.user_data = written
        lab_.output = data["outputs"]["vpn"][FED]
        lab_.payload = files
        _veth(server_ns, client_ns)
        for inst in openvpn.instances(cfg.federations[FED]):
            conf = lab_.rooted(inst.conf)
            conf.parent.mkdir(parents=True, exist_ok=True)
            # The status file every 2 s instead of every minute, so the monitoring test need not wait.
            conf.write_text(re.sub(r"(?m)^(status \S+) 60$", r"\1 2", rewrite_paths(written[inst.conf], root)))
            lab_.server_confs[inst.name] = conf
            lab_.start(server_ns, conf, tmp / f"{inst.name}.stdout")
        for inst in openvpn.instances(cfg.federations[FED]):
            wait_for(lambda inst=inst: "Initialization Sequence Completed" in lab_.server_log(inst), f"{inst.name} to start")
        yield lab_
    finally:
        if lab_ is not None:
            for proc in lab_.processes:
                lab_.stop(proc)
        extra = lab_.namespaces if lab_ is not None else []
        for ns in (*extra, client_ns, server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def connected(lab: Lab) -> Iterator[tuple[Lab, Path]]:
    """metro-north's VPN client, with the certificate the program signed from its CSR, connected over UDP."""
    proc, log = lab.client("metro-north", lab.org_cert_pem, lab.site_key)
    wait_for(lambda: "Initialization Sequence Completed" in log.read_text() or proc.poll() is not None, "the client to connect")
    assert "Initialization Sequence Completed" in log.read_text(), log.read_text()
    yield lab, log
    lab.stop(proc)


# ------------------------------------------------------------------------------------------------------- tests


def test_rendered_server_configs_start(lab: Lab) -> None:
    for inst in openvpn.instances(lab.fed):
        log = lab.server_log(inst)
        assert "Initialization Sequence Completed" in log
        assert "WARNING" not in log.replace("WARNING: --topology net30", ""), log  # e.g. deprecated or ignored options


def test_site_reaches_the_servers_tunnel_address(connected: tuple[Lab, Path]) -> None:
    lab, _ = connected
    udp = openvpn.instances(lab.fed)[0]
    result = in_ns(lab.client_ns, "ping", "-c", "1", "-W", "5", str(udp.server_address), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_gets_its_fixed_address(connected: tuple[Lab, Path]) -> None:
    lab, _ = connected
    udp = openvpn.instances(lab.fed)[0]
    offset = openvpn.client_offsets(lab.fed, lab.cfg.vpn_clients(lab.fed))[ORG]
    addresses = in_ns(lab.client_ns, "ip", "-4", "-o", "addr", "show").stdout
    assert f"{udp.address(offset)}/{udp.network.prefixlen}" in addresses, addresses


def test_pushed_routes_are_installed(connected: tuple[Lab, Path]) -> None:
    lab, _ = connected
    udp = openvpn.instances(lab.fed)[0]
    routes = in_ns(lab.client_ns, "ip", "-4", "route", "show").stdout
    internal = lab.cfg.network.segments["internal"].cidr
    assert f"{internal} via {udp.server_address}" in routes, routes


def _refused(lab: Lab, name: str, cert_pem: str, key: ec.EllipticCurvePrivateKey, server_says: str) -> None:
    udp = openvpn.instances(lab.fed)[0]
    proc, log = lab.client(name, cert_pem, key)
    try:
        wait_for(lambda: server_says in lab.server_log(udp), f"the server to refuse {name}", lambda: lab.server_log(udp)[-3000:] + log.read_text()[-2000:])
        assert proc.poll() is None or "Initialization Sequence Completed" not in log.read_text()
        assert "Initialization Sequence Completed" not in log.read_text(), log.read_text()
    finally:
        lab.stop(proc)


def test_revoked_certificate_is_refused_and_others_are_not(connected: tuple[Lab, Path]) -> None:
    lab, _ = connected
    cert = sign_client(lab.ca_cert_pem, lab.ca_key_pem, lab.site_key, ORG, lab.revoked_serial)
    _refused(lab, "revoked", cert, lab.site_key, f"serial={lab.revoked_serial} is revoked")
    # metro-north's current certificate (another serial) is still connected and working.
    udp = openvpn.instances(lab.fed)[0]
    assert in_ns(lab.client_ns, "ping", "-c", "1", "-W", "5", str(udp.server_address), check=False).returncode == 0


def test_certificate_without_ccd_file_is_refused(lab: Lab) -> None:
    key = new_key()
    cert = sign_client(lab.ca_cert_pem, lab.ca_key_pem, key, "stranger", secrets.randbits(63) | 1)
    _refused(lab, "stranger", cert, key, "--client-config-dir authentication failed for common name 'stranger'")


# ------------------------------------------------------------------------------ routing and isolation (nftables)

# Accepts TCP connections on the given ports and records "<port> <peer address>" lines.
LISTENER = """
import socket, sys, threading
out = open(sys.argv[1], "a", buffering=1)
def serve(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen()
    while True:
        c, peer = s.accept()
        out.write(f"{port} {peer[0]}\\n")
        c.close()
for p in sys.argv[3:]:
    threading.Thread(target=serve, args=(sys.argv[2], int(p)), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()"


def listen(lab: Lab, ns: str, address: str, *ports: int) -> Path:
    seen = lab.tmp / f"seen-{ns}"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, str(seen), address, *map(str, ports)], stdout=subprocess.PIPE, text=True
    )
    lab.processes.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return seen


def connects(ns: str, address: str, port: int) -> bool:
    return in_ns(ns, sys.executable, "-c", CONNECT, address, str(port), check=False).returncode == 0


def pings(ns: str, address: str) -> bool:
    return in_ns(ns, "ping", "-c", "1", "-W", "3", address, check=False).returncode == 0


@dataclass
class Routed:
    lab: Lab
    superlink_ns: str
    superlink_ip: str
    superlink_seen: Path


@pytest.fixture(scope="module")
def routed(connected: tuple[Lab, Path]) -> Routed:
    """The VPN host's real forwarding rules loaded in its namespace, with the SuperLink behind it. (On Nectar the
    router sits between them and routes the VPN range back to the VPN host; here the VPN host's namespace is the
    internal segment's gateway, which is the same path for a packet.)"""
    lab, _ = connected
    superlink = lab.cfg.hosts[lab.fed.superlink_host]
    internal = lab.cfg.network.segments[superlink.segment]
    ns = lab.namespace("sl")
    lab.link(ns, str(internal.gateway), str(superlink.ip), internal.cidr.prefixlen)
    in_ns(ns, "ip", "route", "add", str(lab.fed.vpn_client_range), "via", str(internal.gateway))
    rules = lab.tmp / "vpn-forward.nft"
    rules.write_text(lab.user_data["/etc/nina/vpn-forward.nft"])
    in_ns(lab.server_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")  # per namespace: the host's own stays as it was
    in_ns(lab.server_ns, "nft", "-f", str(rules))
    in_ns(lab.server_ns, "nft", "-f", str(rules))  # re-loadable: the unit's restart replaces the table
    seen = listen(lab, ns, str(superlink.ip), 9092, 8443)
    return Routed(lab, ns, str(superlink.ip), seen)


def test_site_reaches_the_superlink_with_its_own_address(routed: Routed) -> None:
    lab = routed.lab
    offset = openvpn.client_offsets(lab.fed, lab.cfg.vpn_clients(lab.fed))[ORG]
    site = openvpn.instances(lab.fed)[0].address(offset)
    assert connects(lab.client_ns, routed.superlink_ip, 9092)
    # Routed, not masqueraded: the SuperLink (and its security group) sees the organisation's fixed address.
    wait_for(lambda: f"9092 {site}" in (routed.superlink_seen.read_text() if routed.superlink_seen.exists() else ""), "the SuperLink to log the site")
    assert pings(lab.client_ns, routed.superlink_ip)


def test_site_reaches_no_other_nectar_port(routed: Routed) -> None:
    assert not connects(routed.lab.client_ns, routed.superlink_ip, 8443)  # listening, but not for VPN sites


def test_site_cannot_use_the_vpn_hosts_own_services(routed: Routed) -> None:
    lab = routed.lab
    udp = openvpn.instances(lab.fed)[0]
    listen(lab, lab.server_ns, "0.0.0.0", 2222)
    assert not connects(lab.client_ns, str(udp.server_address), 2222)
    assert connects(lab.server_ns, "127.0.0.1", 2222)  # the listener is there
    assert pings(lab.client_ns, str(udp.server_address))


def test_tcp_fallback_and_sites_cannot_reach_each_other(routed: Routed) -> None:
    """A second site whose firewall drops UDP falls back to TCP 443, gets its fixed TCP-range address, reaches the
    SuperLink, and cannot reach the first site (traffic between sites' addresses is dropped on the VPN host)."""
    lab = routed.lab
    ns = lab.namespace("s2")
    lab.link(ns, TCP_SERVER_IP, TCP_CLIENT_IP)
    firewall = lab.tmp / "site2.nft"
    firewall.write_text("table inet site {\n chain out {\n  type filter hook output priority filter;\n  udp dport 1194 drop\n }\n}\n")
    in_ns(ns, "nft", "-f", str(firewall))
    proc, log = lab.client("site2", lab.org_cert_pem, lab.site_key, ns=ns, remote=TCP_SERVER_IP)
    try:
        wait_for(lambda: "Initialization Sequence Completed" in log.read_text() or proc.poll() is not None, "the TCP fallback", log.read_text)
        assert "Initialization Sequence Completed" in log.read_text(), log.read_text()
        udp, tcp = openvpn.instances(lab.fed)
        offset = openvpn.client_offsets(lab.fed, lab.cfg.vpn_clients(lab.fed))[ORG]
        assert f"{tcp.address(offset)}/{tcp.network.prefixlen}" in in_ns(ns, "ip", "-4", "-o", "addr", "show").stdout
        assert connects(ns, routed.superlink_ip, 9092)
        assert not pings(ns, str(udp.address(offset)))  # the first site, connected over UDP
        assert not pings(lab.client_ns, str(tcp.address(offset)))
    finally:
        lab.stop(proc)


def test_revocation_reaches_a_connected_site_at_renegotiation(routed: Routed) -> None:
    """A serial delivered into the CRL directory while its site is connected: no restart, the next TLS
    renegotiation (hourly by default; seconds here) refuses it."""
    lab = routed.lab
    ns = lab.namespace("s3")
    lab.link(ns, "10.250.0.9", "10.250.0.10")
    serial = secrets.randbits(63) | 1
    cert = sign_client(lab.ca_cert_pem, lab.ca_key_pem, lab.site_key, ORG, serial)
    conf = lab.site("renegotiating", cert, lab.site_key, remote="10.250.0.9") / "client.conf"
    # TCP only (the UDP instance serves the connected metro-north session: one session per CN and instance)
    conf.write_text(conf.read_text().replace("remote 10.250.0.9 1194 udp\n", "") + "reneg-sec 5\n")
    log = conf.parent / "openvpn.log"
    proc = lab.start(ns, conf, log)
    tcp = openvpn.instances(lab.fed)[1]
    try:
        wait_for(lambda: "Initialization Sequence Completed" in log.read_text() or proc.poll() is not None, "the site to connect", log.read_text)
        assert "Initialization Sequence Completed" in log.read_text(), log.read_text()
        crl = lab.rooted(f"{openvpn.CRL_DIR}/{serial}")
        crl.write_text(f"organisation={ORG} serial={openvpn.serial_hex(serial)} reason=test\n")
        wait_for(lambda: f"serial={serial} is revoked" in lab.server_log(tcp), "the renegotiation to refuse the revoked site", lambda: lab.server_log(tcp)[-3000:])
    finally:
        lab.stop(proc)


# ------------------------------------------------------------------------------------------------- monitoring


def _collect(lab: Lab, out: Path) -> dict[str, float]:
    """The delivered nina-vpn-metrics, as its unit runs it, against the servers' real status files."""
    out.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "NINA_VPN_SITES": str(lab.rooted(layout.VPN_SITES_EXPECTED)),
        "NINA_TEXTFILE_DIR": str(out),
        "STATE_DIRECTORY": str(out),
        "NINA_ROOT": str(lab.root),
    }
    subprocess.run(["python3", "-I", str(lab.rooted(layout.VPN_METRICS_COMMAND))], env=env, check=True, capture_output=True, text=True)
    return samples((out / "nina_vpn.prom").read_text())


def test_the_vpn_host_reports_each_sites_tunnel_and_certificate(connected: tuple[Lab, Path]) -> None:
    """What SiteVpnDown and SiteCertificateExpiring read: metro-north connected over UDP (not TCP), seen just now,
    holding the certificate the stack issued from its CSR, not yet recorded as shipped."""
    lab, _ = connected
    out = lab.tmp / "textfile"
    site = f'federation="{FED}",organisation="{ORG}"'
    udp = lab.rooted(openvpn.instances(lab.fed)[0].status)
    tcp = lab.rooted(openvpn.instances(lab.fed)[1].status)
    wait_for(lambda: udp.exists() and f",{ORG}," in udp.read_text(), "the UDP server to list the site in its status")
    # earlier tests' TCP clients (same CN) have been stopped: wait for the TCP server's status to drop them
    wait_for(lambda: tcp.exists() and f"CLIENT_LIST,{ORG}," not in tcp.read_text(), "the TCP server to list no session of the site", tcp.read_text)
    metrics = _collect(lab, out)
    assert metrics[f'nina_vpn_site_connected{{{site},proto="udp"}}'] == 1
    assert metrics[f'nina_vpn_site_connected{{{site},proto="tcp"}}'] == 0
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    assert now - 600 < metrics[f"nina_vpn_site_last_seen_timestamp_seconds{{{site}}}"] <= now + 1
    assert now - 60 < metrics[f'nina_vpn_status_updated_timestamp_seconds{{federation="{FED}",proto="udp"}}'] <= now + 1
    assert metrics[f'nina_vpn_site_received_bytes{{{site},proto="udp"}}'] > 0
    cert = x509.load_pem_x509_certificate(lab.org_cert_pem.encode())
    assert metrics[f"nina_vpn_site_certificate_expiry_timestamp_seconds{{{site}}}"] == int(cert.not_valid_after_utc.timestamp())
    assert metrics[f"nina_vpn_site_certificate_shipped{{{site}}}"] == 0  # uat records no shipped certificate

    # A server that stopped writing its status (hung) shows its last clients forever: they count as gone, while
    # the site's last-seen time survives in the collector's state.
    for inst in openvpn.instances(lab.fed):
        stale = lab.rooted(inst.status)
        text = stale.read_text() if stale.exists() else ""
        written = re.search(r"^TIME,[^,]*,(\d+)$", text, re.M)
        if written:
            stale_root = lab.tmp / "stale-root"
            copy = Path(str(stale_root) + inst.status)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(text.replace(written.group(0), f"TIME,old,{int(written.group(1)) - 3600}"))
    stale_lab = Lab(**{**lab.__dict__, "root": lab.tmp / "stale-root"})
    (lab.tmp / "stale-root" / layout.VPN_SITES_EXPECTED.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.rooted(layout.VPN_SITES_EXPECTED), stale_lab.rooted(layout.VPN_SITES_EXPECTED))
    shutil.copy(lab.rooted(layout.VPN_METRICS_COMMAND), lab.tmp / "collector.py")
    stale_lab.rooted(layout.VPN_METRICS_COMMAND).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.tmp / "collector.py", stale_lab.rooted(layout.VPN_METRICS_COMMAND))
    later = _collect(stale_lab, out)
    assert later[f'nina_vpn_site_connected{{{site},proto="udp"}}'] == 0
    assert later[f"nina_vpn_site_last_seen_timestamp_seconds{{{site}}}"] == metrics[f"nina_vpn_site_last_seen_timestamp_seconds{{{site}}}"]


CONNECT_FROM = "import socket, sys; socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=3, source_address=(sys.argv[1], 0)).close()"


def test_monitoring_scrapes_the_sites_exporters_through_the_tunnel_and_nothing_else(routed: Routed) -> None:
    """The VPN host forwards the monitoring host's scrapes (node exporter, DCGM) to a site's tunnel address, and
    nothing else: not another port of the site, not the SuperLink's address to the exporter."""
    lab = routed.lab
    monitoring = lab.cfg.the_host_with("monitoring")
    internal = lab.cfg.network.segments[monitoring.segment]
    dev = next(line.split()[1] for line in in_ns(routed.superlink_ns, "ip", "-o", "-4", "addr", "show").stdout.splitlines() if routed.superlink_ip in line)
    in_ns(routed.superlink_ns, "ip", "addr", "add", f"{monitoring.ip}/{internal.cidr.prefixlen}", "dev", dev)
    site = str(openvpn.site_addresses(lab.fed, ORG, lab.cfg.vpn_clients(lab.fed))["udp"])
    listen(lab, lab.client_ns, site, 9900, 9400, 22)
    targets = json.loads(scrape.target_files(lab.cfg)["site-node.json"])
    assert f"{site}:9900" in [t for g in targets for t in g["targets"]]

    def reaches(source: str, port: int) -> bool:
        return in_ns(routed.superlink_ns, sys.executable, "-c", CONNECT_FROM, source, site, str(port), check=False).returncode == 0

    assert reaches(str(monitoring.ip), 9900)
    assert reaches(str(monitoring.ip), 9400)  # uat's metro-north says gpu: true
    assert not reaches(str(monitoring.ip), 22)
    assert not reaches(routed.superlink_ip, 9900)
