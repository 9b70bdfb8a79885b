#!/usr/bin/python3
"""nina-check: is this host deployed as its stack says? (manual §4.2, Deployment Validation)

Installed on every host as /usr/local/sbin/nina-check by the SSH delivery, with the host's checklist at
/etc/nina/checklist.json (nina/plan/checklist.py: read off the role, port and layout tables). Run as root (it reads
private keys and nftables):

    sudo nina-check            # one PASS / WARN / FAIL line per check; exit 1 if anything failed
    sudo nina-check --json

It checks that the bootstrap finished; that the host's nftables guards are loaded (the instance metadata service
closed to non-root users, and its roles' own); that the state volume is mounted by its label where the host has one;
that every unit of the host's roles is active; that something listens on every port of the port table
the host serves; that every TLS certificate chains to the local CA, is valid, matches its key and has more than
30 days left (WARN otherwise: `pulumi up` renews it); and that every health endpoint answers 2xx over TLS verified
against the local CA, on 127.0.0.1. Standard library and openssl only: it runs on a bare Ubuntu 24.04 host.
`--root DIR` reads the checklist and files under DIR (tests); units and sockets are always this machine's.
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CHECKLIST = "/etc/nina/checklist.json"
RENEW_WITHIN_DAYS = 30  # nina.catalog.pki.EXPIRY_WARNING_DAYS: the preview warns then too
# /proc/net files and the socket state that means "serving": TCP LISTEN; a bound UDP socket shows as CLOSE
PROC_NET = {"tcp": (("tcp", "tcp6"), "0A"), "udp": (("udp", "udp6"), "07")}


@dataclass
class Result:
    status: str  # PASS | WARN | FAIL
    kind: str  # bootstrap | guard | mount | unit | port | tls | health
    name: str
    detail: str


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=30)


def check_bootstrap(marker: Path) -> Result:
    if marker.is_file():
        return Result("PASS", "bootstrap", "nina-bootstrap", f"finished {marker.read_text().strip()}")
    return Result("FAIL", "bootstrap", "nina-bootstrap", f"{marker} is missing: a step failed (cloud-init status --long; sudo nina-bootstrap)")


def check_guard(table: str) -> Result:
    family, _, name = table.partition(" ")
    listed = run("nft", "list", "table", family, name)
    if listed.returncode == 0:
        return Result("PASS", "guard", table, "loaded")
    return Result("FAIL", "guard", table, "not loaded: " + (listed.stderr.strip().splitlines() or ["nft failed"])[-1])


def check_mount(entry: dict[str, str]) -> Result:
    label = run("findmnt", "--noheadings", "--output", "LABEL", "--mountpoint", entry["path"]).stdout.strip()
    if label == entry["label"]:
        return Result("PASS", "mount", entry["path"], f"the state volume ({label}) is mounted")
    found = f"a filesystem labelled {label!r}" if label else "nothing (the root disk)"
    return Result("FAIL", "mount", entry["path"], f"expected the state volume {entry['label']!r}, found {found}: systemctl status nina-state-volume")


def check_unit(unit: str) -> Result:
    state = run("systemctl", "is-active", unit).stdout.strip() or "unknown"
    return Result("PASS" if state == "active" else "FAIL", "unit", unit, state)


def listening_ports(protocol: str) -> set[int]:
    files, state = PROC_NET[protocol]
    ports = set()
    for name in files:
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == state:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def check_port(entry: dict[str, Any], serving: dict[str, set[int]]) -> Result:
    label = f"{entry['name']} {entry['port']}/{entry['protocol']}"
    ok = entry["port"] in serving[entry["protocol"]]
    return Result("PASS" if ok else "FAIL", "port", label, "listening" if ok else "nothing listens")


def check_tls(entry: dict[str, str], ca: Path, at: Any) -> Result:
    cert, key = at(entry["cert"]), at(entry["key"])
    name = f"{entry['role']} {entry['cert']}"
    for path in (cert, key, ca):
        if not path.is_file():
            return Result("FAIL", "tls", name, f"{path} is missing (has pulumi up delivered it?)")
    verified = run("openssl", "verify", "-CAfile", str(ca), str(cert))
    if verified.returncode != 0:
        return Result("FAIL", "tls", name, "does not chain to the local CA: " + (verified.stdout + verified.stderr).strip().splitlines()[-1])
    cert_key = run("openssl", "x509", "-noout", "-pubkey", "-in", str(cert)).stdout
    key_pub = run("openssl", "pkey", "-pubout", "-in", str(key)).stdout
    if not cert_key or cert_key != key_pub:
        return Result("FAIL", "tls", name, f"does not match its key {entry['key']}")
    expiry = run("openssl", "x509", "-noout", "-enddate", "-in", str(cert)).stdout.strip().partition("=")[2]
    if run("openssl", "x509", "-noout", "-checkend", str(RENEW_WITHIN_DAYS * 86400), "-in", str(cert)).returncode != 0:
        return Result("WARN", "tls", name, f"expires {expiry}, within {RENEW_WITHIN_DAYS} days: run pulumi up to renew it")
    return Result("PASS", "tls", name, f"valid until {expiry}")


def check_health(entry: dict[str, str], ca: Path) -> Result:
    context = ssl.create_default_context(cafile=str(ca)) if ca.is_file() else ssl.create_default_context()
    try:
        with urllib.request.urlopen(entry["url"], timeout=10, context=context) as response:  # noqa: S310 (loopback URLs from the checklist)
            return Result("PASS", "health", entry["name"], f"{entry['url']} answered {response.status}")
    except urllib.error.HTTPError as exc:
        return Result("FAIL", "health", entry["name"], f"{entry['url']} answered {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Result("FAIL", "health", entry["name"], f"{entry['url']}: {reason}")


def check(checklist: dict[str, Any], root: str = "") -> list[Result]:
    def at(path: str) -> Path:
        return Path(root + path) if root else Path(path)

    ca = at(checklist["ca"])
    serving = {protocol: listening_ports(protocol) for protocol in PROC_NET}
    results = [check_bootstrap(at(checklist["bootstrap"]))]
    results += [check_guard(g) for g in checklist["guards"]]
    results += [check_mount(m) for m in checklist["mounts"]]
    results += [check_unit(u) for u in checklist["units"]]
    results += [check_port(p, serving) for p in checklist["listening"]]
    results += [check_tls(t, ca, at) for t in checklist["tls"]]
    results += [check_health(h, ca) for h in checklist["health"]]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--root", default="", help="read the checklist and files under this directory (tests)")
    args = parser.parse_args(argv)
    root = args.root.rstrip("/")
    path = Path(root + CHECKLIST)
    if not path.is_file():
        print(f"nina-check: {path} is missing: pulumi up has not delivered this host's checklist yet", file=sys.stderr)
        return 2
    checklist = json.loads(path.read_text())
    results = check(checklist, root)
    failed = [r for r in results if r.status == "FAIL"]
    if args.json:
        print(json.dumps({"host": checklist["host"], "ok": not failed, "results": [asdict(r) for r in results]}, indent=1))
    else:
        for r in results:
            print(f"{r.status:4} {r.kind:6} {r.name}: {r.detail}")
        warned = sum(r.status == "WARN" for r in results)
        print(f"nina-check {checklist['host']} ({checklist['environment']}): {len(results) - len(failed) - warned} passed, {warned} warnings, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
