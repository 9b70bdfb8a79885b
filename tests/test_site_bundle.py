"""An on-premises site's complete kit (issue 14): its own stack output, the renewal, monitoring on the tunnel
addresses only, the GPU prerequisites and nina-check, run for real in network namespaces this test makes."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_nina, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_flower_bundle import PRIVATE

from nina.bundle import check, monitoring
from nina.catalog import layout, versions
from nina.catalog.ports import PORTS
from nina.config import topology
from nina.plan import openvpn

ORG = "metro-north"
FED = "uat-cardiac"
SERVER = "203.0.113.7"  # the floating IP a deployed stack would report
PORT = {p.name: p.port for p in PORTS}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every output of a materialised uat evaluation, secrets shown: the deployed stack's stand-in."""
    run = run_nina("preview", "--stack", "uat", "--json", "--materialize", "--show-secrets")
    assert run.returncode == 0, run.stderr
    found: dict[str, Any] = json.loads(run.stdout)["outputs"]
    found["vpn"][FED]["server"] = SERVER
    found[f"site_{ORG}"]["vpn"][FED]["server"] = SERVER
    return found


@pytest.fixture(scope="module")
def site_json(outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pulumi stack output site_metro-north --show-secrets --json > mn.json`"""
    path = tmp_path_factory.mktemp("site") / "mn.json"
    path.write_text(json.dumps(outputs[f"site_{ORG}"]))
    return path


@pytest.fixture(scope="module")
def kit(site_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(site_json), "--out", str(out))
    assert run.returncode == 0, run.stderr
    # the first kit carries the current certificate: the line that records it as shipped comes with it
    entry = json.loads(site_json.read_text())["vpn"][FED]
    assert f'    {FED}: {{serial: "{entry["serial"]}", not_after: "{entry["not_after"]}"}}\n' in run.stdout, run.stdout
    return out


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ the site's output


def test_site_output_holds_only_what_the_site_needs(outputs: dict[str, Any]) -> None:
    site = outputs[f"site_{ORG}"]
    assert set(site) == {"organisation", "environment", "ca_cert_pem", "supernode_public_keys", "vpn"}
    assert set(site["vpn"]) == {FED}
    entry = site["vpn"][FED]
    full = outputs["vpn"][FED]
    assert entry["tls_crypt_key"] == full["tls_crypt_key"] and entry["cert_pem"] == full["clients"][ORG]["cert_pem"]
    assert set(entry) == {"server", "remotes", "verify_x509_name", "tls_crypt_key", "cert_pem", "serial", "not_after", "addresses", "key"}
    assert entry["addresses"] == {p: str(a) for p, a in openvpn.site_addresses(_cfg().federations[FED], ORG, _cfg().vpn_clients(_cfg().federations[FED])).items()}
    text = json.dumps(site)
    assert not PRIVATE.search(text)
    for other in ("keycloak_admin_password", "grafana_admin_password"):
        assert outputs[other] not in text
    assert site["supernode_public_keys"] == {FED: {"mn-sn1": _cfg().federations[FED].supernodes[0].public_key}}
    assert "site_org-b" not in outputs  # Nectar-hosted: no kit


def test_site_output_is_secret_in_a_plain_preview() -> None:
    run = run_nina("preview", "--stack", "uat")
    assert run.returncode == 0, run.stderr
    assert f"  site_{ORG}: [secret]\n" in run.stdout


def test_the_site_output_and_the_older_full_form_make_the_same_kit(kit: Path, outputs: dict[str, Any], tmp_path: Path) -> None:
    full = dict(outputs)
    del full[f"site_{ORG}"]  # a stack deployed before the site output existed
    (tmp_path / "all.json").write_text(json.dumps(full))
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(tmp_path / "all.json"), "--out", str(tmp_path / "old"))
    assert run.returncode == 0, run.stderr
    old, new = tree(tmp_path / "old"), tree(kit)
    # The older form has no registered keys beyond the stack file's, which the kit reads anyway: same bytes.
    assert old == new
    again = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(tmp_path / "all.json"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0 and tree(tmp_path / "again") == old  # deterministic


def test_bundle_refuses_another_sites_or_a_masked_output(site_json: Path, tmp_path: Path) -> None:
    masked = tmp_path / "masked.json"
    masked.write_text('"[secret]"')
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(masked), "--out", str(tmp_path / "m"))
    assert run.returncode == 2 and f"pulumi stack output site_{ORG} --show-secrets --json" in run.stderr
    other = json.loads(site_json.read_text()) | {"organisation": "someone-else"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(tmp_path / "other.json"), "--out", str(tmp_path / "o"))
    assert run.returncode == 2 and "is the output of 'someone-else'" in run.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "o").exists()


def test_kit_has_the_vpn_monitoring_and_check_files_and_no_private_key(kit: Path) -> None:
    files = set(tree(kit))
    unit_dir = monitoring.UNIT_DIR
    for needed in (
        "etc/openvpn/client/client.conf", "etc/openvpn/client/client.crt", "etc/openvpn/client/tls-crypt.key", "install-monitoring.sh",
        f"{unit_dir}/nina-node-exporter.socket", f"{unit_dir}/nina-node-exporter.service", f"{unit_dir}/nina-dcgm-exporter.socket",
        f"{unit_dir}/nina-dcgm-exporter-proxy.service", f"{unit_dir}/dcgm-exporter.service", "nina-check", "nina-check.json",
    ):
        assert needed in files, needed
    assert [p for p, b in tree(kit).items() if PRIVATE.search(b.decode(errors="replace"))] == []
    readme = (kit / "README.md").read_text()
    # The VPN steps the README used to point elsewhere for: files, key and CSR, unit, firewall, check.
    assert "sudo systemctl enable --now openvpn-client@client.service" in readme
    assert f"-keyout /etc/openvpn/client/client.key -subj /CN={ORG}" in readme
    assert f"| {SERVER} | UDP {PORT['openvpn-udp']} |" in readme and f"| {SERVER} | TCP {PORT['openvpn-tcp']} |" in readme
    assert "install -m 0600 etc/openvpn/client/tls-crypt.key /etc/openvpn/client/" in readme
    assert "sudo ./install-monitoring.sh" in readme and "sudo ./nina-check" in readme


def test_gpu_prerequisites_come_from_the_pinned_versions(kit: Path) -> None:
    readme = (kit / "README.md").read_text()
    branch = versions.NVIDIA_DRIVER_BRANCH
    minimum = int(branch.split("-")[0])
    assert f"branch {branch} or newer (version {minimum}.x or higher): the runtimes' CUDA {versions.CUDA_MAJOR} needs it" in readme
    assert versions.DRIVER_CUDA[branch] == versions.CUDA_MAJOR
    assert f"docker run --rm --gpus all {versions.CUDA_IMAGE} nvidia-smi" in readme and "nvidia-ctk --version" in readme
    assert f"`{versions.DCGM_PACKAGE}`" in readme
    facts = json.loads((kit / "nina-check.json").read_text())
    assert facts["gpu"] == {"driver_branch": branch, "driver_minimum": minimum, "cuda_major": versions.CUDA_MAJOR}


# ------------------------------------------------------------------------------------------------ renewal


def test_renewal_writes_just_the_new_certificate(site_json: Path, kit: Path, outputs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "renewal"
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(site_json), "--renewal", str(out), "--previous", str(kit))
    assert run.returncode == 0, run.stderr
    entry = outputs[f"site_{ORG}"]["vpn"][FED]
    assert f"{ORG} {FED}: client.crt serial {entry['serial']} valid until {entry['not_after']}" in run.stdout
    # the line the operator records once the site installed it, in the form the config accepts
    record = f'    {FED}: {{serial: "{entry["serial"]}", not_after: "{entry["not_after"]}"}}'
    assert f"nina:organisations.{ORG}:\n  vpn_certificate_shipped:\n{record}\n" in run.stdout
    parsed = yaml.safe_load("vpn_certificate_shipped:\n" + record)["vpn_certificate_shipped"][FED]
    assert topology.SERIAL_HEX.fullmatch(parsed["serial"]) and topology.RFC3339_UTC.fullmatch(parsed["not_after"])
    assert set(tree(out)) == {"etc/openvpn/client/client.crt", "README-RENEWAL.txt"}  # the CA did not change
    assert (out / "etc/openvpn/client/client.crt").read_text() == entry["cert_pem"]
    readme = (out / "README-RENEWAL.txt").read_text()
    assert "install -m 0644 etc/openvpn/client/client.crt /etc/openvpn/client/client.crt\n" in readme
    assert "systemctl restart openvpn-client@client.service\n" in readme and entry["not_after"] in readme
    # The certificate the site installs carries the very expiry printed.
    cert = x509.load_pem_x509_certificate(entry["cert_pem"].encode())
    assert cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S") == entry["not_after"][:19]

    # A changed CA (or no previous bundle to compare with) ships ca.crt and the SuperNodes' copies too.
    previous = tmp_path / "previous"
    shutil.copytree(kit, previous)
    (previous / "etc/openvpn/client/ca.crt").write_text(_other_ca())
    changed = run_nina("bundle", "--stack", "uat", "--org", ORG, "--outputs", str(site_json), "--renewal", str(tmp_path / "r2"), "--previous", str(previous))
    assert changed.returncode == 0, changed.stderr
    assert set(tree(tmp_path / "r2")) == {
        "etc/openvpn/client/client.crt", "etc/openvpn/client/ca.crt", f"{layout.supernode_dir('mn-sn1').lstrip('/')}/certs/ca.pem", "README-RENEWAL.txt"
    }
    assert "systemctl restart supernode@mn-sn1.service" in (tmp_path / "r2/README-RENEWAL.txt").read_text()
    assert not any(PRIVATE.search(b.decode()) for b in tree(tmp_path / "r2").values())


def test_renewal_needs_an_issued_certificate(tmp_path: Path) -> None:
    """Offline, the certificate is a placeholder: nothing is written."""
    ca = tmp_path / "ca.pem"
    ca.write_text(_other_ca())
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--ca-file", str(ca), "--renewal", str(tmp_path / "r"))
    assert run.returncode == 2 and "the outputs hold no certificate for metro-north" in run.stderr
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------- units, checked by systemd


def test_monitoring_units_pass_systemd_analyze_verify(kit: Path, tmp_path: Path) -> None:
    units = sorted(p.name for p in (kit / monitoring.UNIT_DIR).glob("*") if "exporter" in p.name)
    assert units == ["dcgm-exporter.service", "nina-dcgm-exporter-proxy.service", "nina-dcgm-exporter.socket", "nina-node-exporter.service", "nina-node-exporter.socket"]
    for name in units:
        text = (kit / monitoring.UNIT_DIR / name).read_text()
        # The binaries the site installs; verify against this machine's (dcgm-exporter: a stand-in).
        (tmp_path / name).write_text(text.replace("/usr/bin/dcgm-exporter", shutil.which("true") or "/bin/true"))
    # What dcgm-exporter.service requires on a GPU machine (NVIDIA's host engine): a stand-in here.
    (tmp_path / "nvidia-dcgm.service").write_text("[Service]\nExecStart=/bin/true\n")
    verify = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in units)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    socket_text = (tmp_path / "nina-node-exporter.socket").read_text()
    assert "FreeBind=yes\n" in socket_text
    (tmp_path / "nina-node-exporter.socket").write_text(socket_text.replace("FreeBind=yes", "FreeBind=sometimes"))
    bad = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "nina-node-exporter.socket")], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 or "sometimes" in bad.stderr  # the judge speaks up


def test_install_monitoring_passes_shellcheck(kit: Path) -> None:
    done = subprocess.run(["shellcheck", str(kit / "install-monitoring.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


# ------------------------------------------------------------------------------- the exporters, run for real

UDP_ADDR, TCP_ADDR = "192.168.100.21", "192.168.100.149"  # metro-north's uat-cardiac tunnel addresses
LAN_ADDR = "10.9.9.9"  # the site machine's own network address: nothing of ours may answer there
SUPERLINK_IP = "10.50.1.20"


def _cfg() -> Any:
    from conftest import config_of

    return config_of("uat")


def test_the_lab_addresses_are_the_sites() -> None:
    fed = _cfg().federations[FED]
    assert {p: str(a) for p, a in openvpn.site_addresses(fed, ORG, _cfg().vpn_clients(fed)).items()} == {"udp": UDP_ADDR, "tcp": TCP_ADDR}
    assert str(_cfg().hosts[fed.superlink_host].ip) == SUPERLINK_IP


def _unit(path: Path) -> tuple[list[str], list[str]]:
    """(ListenStream= values, ExecStart argv) of a rendered unit, as systemd reads them."""
    listen, argv = [], []
    for line in path.read_text().splitlines():
        if line.startswith("ListenStream="):
            listen.append(line.partition("=")[2])
        elif line.startswith("ExecStart="):
            argv = shlex.split(line.partition("=")[2])
    return listen, argv


def _netns() -> None:
    from lab import unavailable

    reason = unavailable()
    if reason:
        if os.environ.get("NINA_REQUIRE_NETNS") == "1":
            pytest.fail(f"NINA_REQUIRE_NETNS=1 but the site lab cannot run: {reason}")
        pytest.skip(f"site lab: {reason}")
    for tool in ("systemd-socket-activate", "prometheus-node-exporter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/install-system-deps.sh)")


STANDIN = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[3].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


class Site:
    """The site's machine (a namespace) with a tunnel interface, and the Nectar side (another) with a SuperLink
    stand-in that serves TLS with a certificate from the test's CA for the SuperLink's name."""

    def __init__(self, tmp: Path, kit: Path) -> None:
        from lab import Namespace

        self.tmp, self.kit = tmp, kit
        self.site = Namespace(tmp, "site")
        self.nectar = Namespace(tmp, "nectar")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # FreeBind=yes in the rendered sockets, as the namespace's setting: the exporters bind the tunnel addresses
        # before they exist, as systemd lets them (systemd-socket-activate cannot set the socket option itself).
        self.site.sh("sysctl -qw net.ipv4.ip_nonlocal_bind=1")
        self.site.sh(f"ip link add tun0 type veth peer name nectar0 netns {self.nectar.pid} && ip link set tun0 up")
        self.site.sh(f"ip link add lan0 type veth peer name lan1 && ip link set lan0 up && ip link set lan1 up && ip addr add {LAN_ADDR}/24 dev lan0")
        self.nectar.sh(f"ip addr add {SUPERLINK_IP}/24 dev nectar0 && ip link set nectar0 up && ip route add 192.168.100.0/24 dev nectar0")

    def tunnel(self, address: str | None) -> None:
        """The tunnel up with this address (UDP or TCP half), or down."""
        self.site.sh("ip addr flush dev tun0")
        if address is not None:
            self.site.sh(f"ip addr add {address}/25 dev tun0 && ip route replace 10.50.1.0/24 dev tun0 src {address}")

    def start(self, name: str, ns: Any, argv: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(ns.enter(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def exporter(self) -> None:
        """The rendered node exporter socket and service, as systemd starts them: the sockets' listen addresses
        passed as fds (LISTEN_FDS) to the unit's own ExecStart."""
        listen, _ = _unit(self.kit / monitoring.UNIT_DIR / "nina-node-exporter.socket")
        _, argv = _unit(self.kit / monitoring.UNIT_DIR / "nina-node-exporter.service")
        assert argv[0] == monitoring.NODE_EXPORTER and "--web.systemd-socket" in argv
        self.start("node-exporter", self.site, ["systemd-socket-activate", *(f"--listen={a}" for a in listen), *argv])

    def dcgm(self) -> None:
        """The DCGM socket and its proxy unit, in front of a stand-in for dcgm-exporter on 127.0.0.1 (no GPU here)."""
        listen, _ = _unit(self.kit / monitoring.UNIT_DIR / "nina-dcgm-exporter.socket")
        _, proxy = _unit(self.kit / monitoring.UNIT_DIR / "nina-dcgm-exporter-proxy.service")
        _, exporter = _unit(self.kit / monitoring.UNIT_DIR / "dcgm-exporter.service")
        bind = next(a.partition("=")[2] for a in exporter if a.startswith("--address="))
        host, _, port = bind.rpartition(":")
        assert host == "127.0.0.1"
        self.start("dcgm-standin", self.site, [sys.executable, "-c", STANDIN, host, port, 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 7\n'])
        self.start("dcgm-proxy", self.site, ["systemd-socket-activate", *(f"--listen={a}" for a in listen), *proxy])

    def scrape(self, address: str, port: int) -> str | None:
        done = self.site.run(["curl", "-sS", "--max-time", "5", f"http://{address}:{port}/metrics"], check=False)
        return done.stdout if done.returncode == 0 else None

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.site.close()
        self.nectar.close()


@pytest.fixture(scope="module")
def lab(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _netns()
    tmp = tmp_path_factory.mktemp("site-lab")
    site = Site(tmp, kit)
    try:
        yield site
    finally:
        site.close()


def test_node_exporter_answers_on_the_tunnel_addresses_only(lab: Site) -> None:
    lab.tunnel(None)
    lab.exporter()  # before the tunnel is up: the sockets exist anyway
    port = PORT["node-exporter"]
    lab.tunnel(UDP_ADDR)
    wait_for(lambda: lab.scrape(UDP_ADDR, port), "node exporter on the UDP tunnel address", lambda: lab.log("node-exporter"))
    assert "node_cpu_seconds_total" in (lab.scrape(UDP_ADDR, port) or "")
    # Nowhere else: not the site's own network, not loopback, not the package's default port.
    for address, p in ((LAN_ADDR, port), ("127.0.0.1", port), (LAN_ADDR, 9100), ("127.0.0.1", 9100)):
        assert lab.scrape(address, p) is None, f"the exporter answers on {address}:{p}"
    # The TCP fallback: the other half's address, the same exporter, no restart.
    lab.tunnel(TCP_ADDR)
    assert "node_cpu_seconds_total" in (lab.scrape(TCP_ADDR, port) or "")
    # The check can fail: an exporter on every address (the package's own unit) is seen answering on the LAN.
    lab.start("wildcard", lab.site, [monitoring.NODE_EXPORTER, f"--web.listen-address=:{port + 1}", "--collector.disable-defaults", "--collector.time"])
    wait_for(lambda: lab.scrape(LAN_ADDR, port + 1), "the wildcard exporter", lambda: lab.log("wildcard"))
    lab.stop("wildcard")


def test_dcgm_exporter_reaches_the_tunnel_through_the_proxy_only(lab: Site) -> None:
    lab.dcgm()
    port = PORT["dcgm-exporter"]
    lab.tunnel(UDP_ADDR)
    wait_for(lambda: lab.scrape(UDP_ADDR, port), "the DCGM exporter through its proxy", lambda: lab.log("dcgm-proxy") + lab.log("dcgm-standin"))
    assert "DCGM_FI_DEV_GPU_UTIL" in (lab.scrape(UDP_ADDR, port) or "")
    assert lab.scrape(LAN_ADDR, port) is None


# ------------------------------------------------------------------------------------------------ nina-check


def _ca_and_superlink(tmp: Path) -> tuple[str, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    name = "superlink-uat-cardiac.uat.nina.internal"
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30)).add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    (tmp / "superlink.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "superlink.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM).decode(), tmp / "superlink.pem", tmp / "superlink.key"


def _other_ca() -> str:
    """A CA that is not the stack's."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(3)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


STUBS = {
    # Units the stub reports active are listed in $NINA_STUB/active, one a line; systemd is not PID 1 here.
    "systemctl": '#!/bin/sh\n[ "$1" = is-active ] || exit 1\nif grep -qxF "$2" "$NINA_STUB/active"; then echo active; else echo inactive; exit 3; fi\n',
    "timedatectl": '#!/bin/sh\ncat "$NINA_STUB/ntp"\n',
    "nvidia-smi": '#!/bin/sh\ncat "$NINA_STUB/driver"\n',
    "nvidia-ctk": '#!/bin/sh\necho "NVIDIA Container Toolkit CLI version 1.17.8"\n',
}


@pytest.fixture(scope="module")
def checked(lab: Site, kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Path, Path]]:
    """A site as it should be: the kit made with the test CA (--ca-file), the SuperNode's key made by the site and
    registered (its public half is what the stack registers), the VPN, SuperNode units and clock as systemd would
    report them (stubs), the real exporters on the tunnel, and a SuperLink stand-in through the tunnel."""
    tmp = tmp_path_factory.mktemp("checked")
    ca_pem, cert, key = _ca_and_superlink(tmp)
    (tmp / "ca.pem").write_text(ca_pem)
    site_kit = tmp / "kit"
    run = run_nina("bundle", "--stack", "uat", "--org", ORG, "--ca-file", str(tmp / "ca.pem"), "--out", str(site_kit))
    assert run.returncode == 0, run.stderr
    sn_key = site_kit / layout.supernode_key("mn-sn1").lstrip("/")
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "", "-f", str(sn_key)], check=True)
    facts = json.loads((site_kit / "nina-check.json").read_text())
    assert facts["supernodes"][0]["public_key"] == _cfg().federations[FED].supernodes[0].public_key  # the stack's
    facts["supernodes"][0]["public_key"] = (sn_key.with_suffix(".pub")).read_text().strip()  # ... made the site's here
    (site_kit / "nina-check.json").write_text(json.dumps(facts))
    stubs = tmp / "stubs"
    stubs.mkdir()
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (stubs / "active").write_text("openvpn-client@client.service\nsupernode@mn-sn1.service\nsupernode-superexec@mn-sn1.service\n")
    (stubs / "ntp").write_text("yes\n")
    (stubs / "driver").write_text("580.95.05\n")
    (tmp / "data").mkdir()
    lab.start("superlink", lab.nectar, ["openssl", "s_server", "-quiet", "-accept", f"{SUPERLINK_IP}:{flower_port()}", "-cert", str(cert), "-key", str(key), "-www"])
    lab.tunnel(UDP_ADDR)
    if "node-exporter" not in lab.procs:
        lab.exporter()
    if "dcgm-proxy" not in lab.procs:
        lab.dcgm()
    yield lab, site_kit, tmp


def flower_port() -> int:
    return PORT["superlink"]


def nina_check(lab: Site, site_kit: Path, tmp: Path) -> tuple[int, dict[str, str]]:
    """(exit status, check -> 'STATUS detail') of the bundle's own nina-check, run on the site's machine."""
    env = ["env", f"PATH={tmp / 'stubs'}:/usr/sbin:/usr/bin:/sbin:/bin", f"NINA_STUB={tmp / 'stubs'}"]
    done = lab.site.run([*env, "python3", str(site_kit / "nina-check"), "--data", str(tmp / "data")], check=False, timeout=120)
    lines = {}
    for line in done.stdout.splitlines()[:-1]:
        status, rest = line.split(None, 1)
        what, _, detail = rest.partition(": ")
        lines[what] = f"{status.strip()} {detail}"
    assert done.stdout.splitlines()[-1].startswith(f"nina-check {ORG} (uat): "), done.stdout + done.stderr
    return done.returncode, lines


def test_nina_check_passes_on_a_good_site(checked: tuple[Site, Path, Path]) -> None:
    lab, site_kit, tmp = checked
    wait_for(lambda: lab.scrape(UDP_ADDR, PORT["node-exporter"]), "node exporter", lambda: lab.log("node-exporter"))
    status, lines = nina_check(lab, site_kit, tmp)
    assert status == 0, lines
    assert all(v.startswith("OK ") for v in lines.values()), lines
    link = "SuperLink of federation uat-cardiac (superlink-uat-cardiac.uat.nina.internal:9092)"
    assert f"through the tunnel from {UDP_ADDR}" in lines[link]
    assert "NVIDIA driver" in lines and "clock" in lines and f"data path {tmp / 'data'}" in lines
    assert f"up: {UDP_ADDR} on tun0 (UDP)" in lines["tunnel of federation uat-cardiac"]


def test_nina_check_when_the_tunnel_is_down(checked: tuple[Site, Path, Path]) -> None:
    lab, site_kit, tmp = checked
    lab.tunnel(None)
    try:
        status, lines = nina_check(lab, site_kit, tmp)
    finally:
        lab.tunnel(UDP_ADDR)
    assert status == 1
    assert lines["tunnel of federation uat-cardiac"].startswith(f"FAIL neither of this site's tunnel addresses ({UDP_ADDR} over UDP, {TCP_ADDR} over TCP)")
    # This kit was made offline (--ca-file): the server is its public name; the firewall ports are the port table's.
    assert f"out to vpn-uat-cardiac.uat.nina.qcif.edu.au on UDP {PORT['openvpn-udp']} and TCP {PORT['openvpn-tcp']}" in lines["tunnel of federation uat-cardiac"]
    assert lines["node exporter on the tunnel, port 9900"] == "FAIL cannot be checked while the tunnel is down (above)"
    assert lines["SuperLink of federation uat-cardiac (superlink-uat-cardiac.uat.nina.internal:9092)"].startswith("FAIL ")


def test_nina_check_finds_a_wrong_or_exposed_key(checked: tuple[Site, Path, Path]) -> None:
    lab, site_kit, tmp = checked
    key = site_kit / layout.supernode_key("mn-sn1").lstrip("/")
    saved = key.read_bytes()
    try:
        key.unlink()
        key.with_suffix(".pub").unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "", "-f", str(key)], check=True)
        status, lines = nina_check(lab, site_kit, tmp)
        assert status == 1
        assert lines["SuperNode mn-sn1's key"].startswith(f"FAIL {key} is not the key the platform registered for mn-sn1")
        key.write_bytes(saved)
        key.chmod(0o644)
        status, lines = nina_check(lab, site_kit, tmp)
        assert status == 1 and lines["SuperNode mn-sn1's key"] == f"FAIL {key} can be read by others (mode 0644): `chmod 600 {key}`"
    finally:
        key.write_bytes(saved)
        key.chmod(0o600)
    assert nina_check(lab, site_kit, tmp)[1]["SuperNode mn-sn1's key"].startswith("OK ")


def test_nina_check_finds_the_exporter_absent_or_exposed(checked: tuple[Site, Path, Path]) -> None:
    lab, site_kit, tmp = checked
    lab.stop("node-exporter")
    try:
        status, lines = nina_check(lab, site_kit, tmp)
        assert status == 1
        assert lines["node exporter on the tunnel, port 9900"].startswith(f"FAIL nothing answers at http://{UDP_ADDR}:9900/metrics")
        assert "sudo ./install-monitoring.sh" in lines["node exporter on the tunnel, port 9900"]
        # The package's own unit, on every address.
        lab.start("packaged", lab.site, [monitoring.NODE_EXPORTER, "--web.listen-address=:9100", "--collector.disable-defaults", "--collector.time"])
        wait_for(lambda: lab.scrape(LAN_ADDR, 9100), "the packaged exporter", lambda: lab.log("packaged"))
        status, lines = nina_check(lab, site_kit, tmp)
        assert status == 1
        assert lines["node exporter on the tunnel, port 9900"].startswith("FAIL an exporter also listens on every address port 9100")
    finally:
        if "packaged" in lab.procs:
            lab.stop("packaged")
        lab.exporter()


def test_nina_check_gpu_driver_clock_and_supernodes(checked: tuple[Site, Path, Path]) -> None:
    lab, site_kit, tmp = checked
    stubs = tmp / "stubs"
    (stubs / "driver").write_text("570.172.08\n")
    (stubs / "ntp").write_text("no\n")
    (stubs / "active").write_text("openvpn-client@client.service\n")
    try:
        status, lines = nina_check(lab, site_kit, tmp)
    finally:
        (stubs / "driver").write_text("580.95.05\n")
        (stubs / "ntp").write_text("yes\n")
        (stubs / "active").write_text("openvpn-client@client.service\nsupernode@mn-sn1.service\nsupernode-superexec@mn-sn1.service\n")
    assert status == 1
    branch = versions.NVIDIA_DRIVER_BRANCH
    assert lines["NVIDIA driver"] == f"FAIL driver 570.172.08 is older than NVIDIA's driver {branch} or newer (CUDA {versions.CUDA_MAJOR}): install nvidia-driver-{branch} and reboot"
    assert lines["clock"].startswith("FAIL not synchronised: TLS certificates (VPN, SuperLink) are checked against it")
    assert lines["SuperNode mn-sn1"].startswith("FAIL not running (supernode@mn-sn1.service is inactive")


def test_nina_check_is_in_every_kit_with_its_facts(kit: Path) -> None:
    facts = json.loads((kit / "nina-check.json").read_text())
    assert facts["vpn"] == [
        {"federation": FED, "unit": "openvpn-client@client.service", "server": SERVER, "addresses": {"udp": UDP_ADDR, "tcp": TCP_ADDR},
         "remotes": [{"proto": "udp", "port": 1194}, {"proto": "tcp", "port": 443}]}
    ]
    assert [e["port"] for e in facts["exporters"]] == [PORT["node-exporter"], PORT["dcgm-exporter"]]
    assert facts["data_paths"] == ["/media/data/cardiac"] and facts["minimum_free_gib"] == check.MINIMUM_FREE_GIB
    assert os.access(kit / "nina-check", os.X_OK)
    assert (kit / "nina-check").read_text().startswith("#!/usr/bin/env python3\n")
