"""Deployment validation (manual §4.2): each host's checklist follows the role and port tables, is delivered with the
checker, and the real checker tells a healthy host from a broken one: real sockets on 127.0.0.1, the certificates
the program issued (faithful PKI emulation), a real HTTPS health endpoint, and a stand-in systemctl."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import COMMAND, ROOT, Preview, config_of, delivered, free_port

from nina.catalog import layout
from nina.catalog.ports import listeners
from nina.catalog.roles import BASE_UNITS, ROLES, server_tls
from nina.plan import checklist

# ------------------------------------------------------------------------------------------------ the checklist


def test_every_host_checks_what_its_roles_run_and_serve(preview: Preview) -> None:
    cfg = preview.cfg
    for host in cfg.hosts.values():
        items = checklist.checklist(cfg, host)
        units = set(items["units"])
        assert set(BASE_UNITS) <= units, host.name
        for role in host.roles:
            for unit in ROLES[role].units:
                if "@." in unit:  # a template: each instance this host runs
                    assert any(u.startswith(unit.split("@")[0] + "@") for u in units), (host.name, unit)
                else:
                    assert unit in units, (host.name, unit)
        ports = {(p["protocol"], p["port"]) for p in items["listening"]}
        for port in listeners(host.roles):
            if port.port == port.port_max:
                assert (port.protocol, port.port) in ports, (host.name, port.name)
        for fed, sn in cfg.supernodes_on(host.name):
            assert layout.supernode_unit(sn.name) in units and ("tcp", sn.port) in ports
        assert {t["role"] for t in items["tls"]} == {r for r in host.roles if ROLES[r].tls is not None}
        for h in items["health"]:
            assert h["url"].startswith(("https://127.0.0.1:", "http://127.0.0.1:")), h


def test_the_checklist_and_the_checker_are_delivered_not_in_user_data(previews: dict[str, Preview]) -> None:
    for preview in previews.values():
        for host in preview.cfg.hosts.values():
            written = {f["path"] for f in preview.hosts[host.name].write_files}
            assert layout.CHECKLIST_PATH not in written and layout.CHECK_COMMAND not in written
    # the payload is secret in a plain preview; the materialized one shows it
    preview = previews["test"]
    assert preview.named(COMMAND, "deliver-superlink")["inputs"]["stdin"] == "[secret]"


def test_delivered_checklist_is_the_hosts_own(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        for host in preview.cfg.hosts.values():
            files = delivered(preview, host.name)
            assert json.loads(files[layout.CHECKLIST_PATH]["content"]) == checklist.checklist(preview.cfg, host)
            checker = files[layout.CHECK_COMMAND]
            assert checker["content"] == (ROOT / "nina" / "onhost" / "nina_check.py").read_text() and checker["mode"] == "0755"


# ------------------------------------------------------------------------------------------------- the checker


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def superlink_host(materialized: dict[str, Preview], tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """The test stack's SuperLink host material, installed by the real nina-deliver under a root directory, and an
    HTTPS health endpoint on 127.0.0.1 serving its delivered certificate. Yields (root, health port, listening port)."""
    root = tmp_path / "root"
    stdin = materialized["test"].named(COMMAND, "deliver-superlink")["inputs"]["stdin"]
    done = subprocess.run([sys.executable, str(ROOT / "nina" / "onhost" / "nina_deliver.py"), "--root", str(root)], input=stdin, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # what update-ca-certificates does on the host
    (root / layout.CA_PEM.lstrip("/")).parent.mkdir(parents=True)
    shutil.copy(root / layout.CA_TRUST_PATH.lstrip("/"), root / layout.CA_PEM.lstrip("/"))
    tls = server_tls("superlink")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / tls.cert.lstrip("/"), root / tls.key.lstrip("/"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        try:
            yield root, server.server_address[1], listener.getsockname()[1]
        finally:
            server.shutdown()
            server.server_close()


def nina_check(root: Path, items: dict[str, Any], active: set[str], tables: set[str] = frozenset(), mounted: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run the real checker on `items` (no bootstrap, guard or mount entries unless given), with a systemctl that
    reports only `active` units as active, an nft that knows only `tables`, and a findmnt that reports `mounted`
    (mount point -> label)."""
    items = {"bootstrap": "/bootstrapped", "guards": [], "mounts": [], **items}
    (root / "bootstrapped").write_text("2026-11-30T06:00:00Z\n")
    (root / layout.CHECKLIST_PATH.lstrip("/")).write_text(json.dumps(items))
    fake = root.parent / "bin"
    fake.mkdir(exist_ok=True)
    cases = "".join(f'  "is-active {u}") echo active; exit 0 ;;\n' for u in sorted(active))
    (fake / "systemctl").write_text(f'#!/bin/sh\ncase "$*" in\n{cases}  *) echo failed; exit 3 ;;\nesac\n')
    known = "".join(f'  "list table {t}") exit 0 ;;\n' for t in sorted(tables))
    (fake / "nft").write_text(f'#!/bin/sh\ncase "$*" in\n{known}  *) echo "Error: No such file or directory" >&2; exit 1 ;;\nesac\n')
    labels = "".join(f'  "--noheadings --output LABEL --mountpoint {p}") echo {label} ;;\n' for p, label in (mounted or {}).items())
    (fake / "findmnt").write_text(f'#!/bin/sh\ncase "$*" in\n{labels}  *) exit 1 ;;\nesac\n')
    for tool in ("systemctl", "nft", "findmnt"):
        (fake / tool).chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(ROOT / "nina" / "onhost" / "nina_check.py"), "--root", str(root), "--json"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_a_healthy_host_passes(superlink_host: tuple[Path, int, int]) -> None:
    root, health_port, listening = superlink_host
    items = {
        "host": "superlink", "environment": "test", "ca": layout.CA_PEM,
        "units": ["superlink.service", "superlink-proxy.service"],
        "listening": [{"name": "superlink", "protocol": "tcp", "port": listening}],
        "tls": checklist.tls(config_of("test").hosts["superlink"]),
        "health": [{"name": "superlink", "url": f"https://127.0.0.1:{health_port}/health"}],
    }
    code, report = nina_check(root, items, {"superlink.service", "superlink-proxy.service"})
    assert code == 0 and report["ok"], report
    assert [r["status"] for r in report["results"]] == ["PASS"] * 6  # the bootstrap marker too


def test_a_broken_host_fails_with_a_line_per_problem(superlink_host: tuple[Path, int, int], tmp_path: Path) -> None:
    root, health_port, _ = superlink_host
    tls = server_tls("superlink")
    # the delivered certificate with a key that is not its own
    stray_key = tmp_path / "stray.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(stray_key)], check=True, capture_output=True)
    shutil.copy(stray_key, root / "stray.key")
    items = {
        "host": "superlink", "environment": "test", "ca": layout.CA_PEM,
        "units": ["superlink.service", "superlink-proxy.service"],
        "listening": [{"name": "superlink", "protocol": "tcp", "port": free_port()}],
        "tls": [
            {"role": "superlink", "cert": tls.cert, "key": "/stray.key"},
            {"role": "superlink", "cert": "/etc/flwr/superlink/certs/missing.pem", "key": tls.key},
        ],
        "health": [{"name": "superlink", "url": f"https://127.0.0.1:{health_port}/not-health"}],
    }
    code, report = nina_check(root, items, {"superlink.service"})
    assert code == 1 and not report["ok"]
    results = {(r["kind"], r["name"]): (r["status"], r["detail"]) for r in report["results"]}
    assert results[("unit", "superlink.service")][0] == "PASS"
    assert results[("unit", "superlink-proxy.service")] == ("FAIL", "failed")
    assert results[("port", f"superlink {items['listening'][0]['port']}/tcp")] == ("FAIL", "nothing listens")
    assert results[("tls", f"superlink {tls.cert}")] == ("FAIL", "does not match its key /stray.key")
    assert results[("tls", "superlink /etc/flwr/superlink/certs/missing.pem")][0] == "FAIL"
    assert results[("health", "superlink")] == ("FAIL", f"https://127.0.0.1:{health_port}/not-health answered 503")


def test_a_certificate_from_another_ca_fails(superlink_host: tuple[Path, int, int], tmp_path: Path) -> None:
    root, _, _ = superlink_host
    other = tmp_path / "other"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=impostor",
         "-days", "365", "-keyout", f"{other}.key", "-out", f"{other}.pem"],
        check=True, capture_output=True,
    )
    shutil.copy(f"{other}.pem", root / "impostor.pem")
    shutil.copy(f"{other}.key", root / "impostor.key")
    items = {"host": "superlink", "environment": "test", "ca": layout.CA_PEM, "units": [], "listening": [],
             "tls": [{"role": "superlink", "cert": "/impostor.pem", "key": "/impostor.key"}], "health": []}
    code, report = nina_check(root, items, set())
    _, result = report["results"]
    assert code == 1 and result["status"] == "FAIL" and result["detail"].startswith("does not chain to the local CA")


def test_guards_the_state_volume_and_the_bootstrap_are_checked(superlink_host: tuple[Path, int, int]) -> None:
    """A host whose metadata guard is not loaded, whose state volume is not mounted or whose bootstrap did not finish
    fails nina-check, each with its own line; the same host with them in place passes."""
    root, _, _ = superlink_host
    items = {"host": "superlink", "environment": "test", "ca": layout.CA_PEM, "units": [], "listening": [], "tls": [], "health": [],
             "guards": ["inet nina_metadata_guard"], "mounts": [{"path": "/var/lib/nina", "label": "nina-state"}]}
    code, report = nina_check(root, items, set(), tables={"inet nina_metadata_guard"}, mounted={"/var/lib/nina": "nina-state"})
    assert code == 0 and [(r["kind"], r["status"]) for r in report["results"]] == [("bootstrap", "PASS"), ("guard", "PASS"), ("mount", "PASS")]
    code, report = nina_check(root, {**items, "bootstrap": "/not-bootstrapped"}, set())
    results = {r["kind"]: (r["status"], r["detail"]) for r in report["results"]}
    assert code == 1
    assert results["bootstrap"][0] == "FAIL" and "a step failed" in results["bootstrap"][1]
    assert results["guard"] == ("FAIL", "not loaded: Error: No such file or directory")
    assert results["mount"][0] == "FAIL" and "found nothing (the root disk)" in results["mount"][1]


def test_every_checklist_names_the_hosts_guards_and_state_volume(previews: dict[str, Preview]) -> None:
    uat = previews["uat"].cfg
    items = checklist.checklist(uat, uat.hosts["vpn"])
    assert items["guards"] == ["inet nina_metadata_guard", "inet nina_vpn"] and items["mounts"] == []
    assert items["bootstrap"] == layout.BOOTSTRAP_MARKER
    assert checklist.checklist(uat, uat.hosts["superlink"])["mounts"] == [{"path": "/var/lib/nina", "label": "nina-state"}]
