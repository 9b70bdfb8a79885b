#!/usr/bin/env python3
"""nina-check for an on-premises site: is this machine ready to take part in the NINA federations?

Shipped in the site's bundle as ./nina-check, beside nina-check.json (what `nina bundle` knows of the site: its VPN
clients and tunnel addresses, the SuperLinks, the platform's CA, its SuperNodes and the public keys the platform
registered for them, its exporters, the GPU stack and data paths). Run it on the machine that runs the VPN client
and the SuperNodes, as root (it reads the SuperNodes' private keys to compare their public halves):

    sudo ./nina-check                 # one OK / WARN / FAIL line per check, with what to do; exit 1 if any FAIL
    sudo ./nina-check --data /srv/cardiac    # the data directory, when it is not the node_config's data-path

Python 3 standard library only (plus the system's own `ip`, `systemctl`, and where present `timedatectl`,
`nvidia-smi`, `nvidia-ctk`, `docker`/`podman`). It changes nothing. `--root DIR` reads files under DIR (tests).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FACTS = "nina-check.json"
TIMEOUT = 10  # seconds for each network check
GIB = 1024**3
# Wildcard listeners an exporter must not have: others on the site's network could read its metrics.
WILDCARD = {"00000000", "00000000000000000000000000000000"}


@dataclass
class Result:
    status: str  # OK | WARN | FAIL
    what: str
    detail: str


def run(*cmd: str) -> subprocess.CompletedProcess[str] | None:
    """The command's result, or None when it is not installed."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def local_addresses() -> dict[str, str]:
    """IPv4 address -> interface, of this machine (`ip -o -4 addr show`)."""
    done = run("ip", "-o", "-4", "addr", "show")
    found = {}
    for line in (done.stdout if done else "").splitlines():
        m = re.match(r"\d+:\s+(\S+)\s+inet\s+([0-9.]+)/", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def unit_state(unit: str) -> str:
    done = run("systemctl", "is-active", unit)
    return (done.stdout.strip() or "unknown") if done else "unknown (no systemctl)"


# -------------------------------------------------------------------------------------------------- the checks


def check_vpn_unit(client: dict[str, Any]) -> Result:
    unit = client["unit"]
    state = unit_state(unit)
    if state == "active":
        return Result("OK", f"VPN client {unit}", "running")
    return Result(
        "FAIL", f"VPN client {unit}",
        f"is {state}, so this site has no tunnel to the platform. Start it: `sudo systemctl enable --now {unit}`; "
        f"if it stops again, `journalctl -u {unit}` says why (README.md, step 2)",
    )


def tunnel_address(client: dict[str, Any], present: dict[str, str]) -> str | None:
    for proto in ("udp", "tcp"):
        if client["addresses"][proto] in present:
            return str(client["addresses"][proto])
    return None


def check_tunnel(client: dict[str, Any], present: dict[str, str]) -> Result:
    what = f"tunnel of federation {client['federation']}"
    address = tunnel_address(client, present)
    if address is not None:
        proto = "UDP" if address == client["addresses"]["udp"] else "TCP fallback"
        return Result("OK", what, f"up: {address} on {present[address]} ({proto})")
    udp, tcp = client["addresses"]["udp"], client["addresses"]["tcp"]
    return Result(
        "FAIL", what,
        f"neither of this site's tunnel addresses ({udp} over UDP, {tcp} over TCP) is on this machine: the VPN is not "
        f"connected. Your firewall must let this machine out to {client['server']} on "
        + " and ".join(f"{r['proto'].upper()} {r['port']}" for r in client["remotes"])
        + f"; `journalctl -u {client['unit']}` shows what the client tried",
    )


def check_superlink(link: dict[str, Any], ca_pem: str, tunnel: set[str]) -> Result:
    what = f"SuperLink of federation {link['federation']} ({link['name']}:{link['port']})"
    context = ssl.create_default_context(cadata=ca_pem)
    try:
        with socket.create_connection((link["ip"], link["port"]), timeout=TIMEOUT) as raw:
            source = raw.getsockname()[0]
            if source not in tunnel:
                return Result(
                    "FAIL", what,
                    f"was reached from {source}, not through the tunnel ({', '.join(sorted(tunnel)) or 'no tunnel address'}): "
                    f"a route on this machine sends {link['ip']} elsewhere (`ip route get {link['ip']}`), or the tunnel is "
                    "down (above); the SuperLink accepts the tunnel only",
                )
            with context.wrap_socket(raw, server_hostname=link["name"]) as tls:
                version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return Result(
            "FAIL", what,
            f"answers, but its certificate does not verify against the platform's CA in this bundle ({exc.verify_message}). "
            "Check this machine's clock (below) and that this bundle is the current one for your site",
        )
    except (ssl.SSLError, OSError) as exc:
        reason = "no answer" if isinstance(exc, (TimeoutError, socket.timeout)) else str(getattr(exc, "strerror", None) or exc)
        return Result(
            "FAIL", what,
            f"cannot be reached at {link['ip']}:{link['port']} ({reason}). It is reached only through the tunnel: fix the "
            "tunnel first (above); if the tunnel is up, ask the NINA operators whether your site's VPN address is allowed",
        )
    return Result("OK", what, f"TLS handshake ({version}) verified against the platform's CA, through the tunnel from {source}")


def openssh_public_blob(text: str) -> tuple[str, bool] | None:
    """(base64 public key, encrypted?) from an OpenSSH private key file; None if it is not one. The public half is
    stored in the clear at the start of the file, so nothing is decrypted."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        data = base64.b64decode(body)
    except ValueError:
        return None
    magic = b"openssh-key-v1\0"
    if not data.startswith(magic):
        return None
    pos = len(magic)
    fields = []
    for _ in range(3):  # cipher name, kdf name, kdf options
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        fields.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
    (count,) = struct.unpack(">I", data[pos : pos + 4])
    pos += 4
    if count < 1:
        return None
    (length,) = struct.unpack(">I", data[pos : pos + 4])
    blob = data[pos + 4 : pos + 4 + length]
    return base64.b64encode(blob).decode(), fields[0] != b"none"


def check_key(sn: dict[str, Any], at: Any, bundle: Path) -> Result:
    what = f"SuperNode {sn['name']}'s key"
    installed, copied = at(sn["key"]), bundle / sn["key"].lstrip("/")
    path = installed if installed.is_file() else copied if copied.is_file() else None
    if path is None:
        return Result(
            "FAIL", what,
            f"no private key at {sn['key']} (or in this bundle): create it and send us the .pub (README.md, step 1), "
            "then run install.sh again",
        )
    st = path.stat()
    if st.st_mode & 0o077:
        return Result("FAIL", what, f"{path} can be read by others (mode {st.st_mode & 0o777:04o}): `chmod 600 {path}`")
    if path == installed:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        if owner != "supernode":
            return Result("FAIL", what, f"{path} belongs to {owner}, but only the supernode user may read it: `chown supernode {path}`")
    registered = sn["public_key"].split()[1]
    text = path.read_text(errors="replace")
    parsed = openssh_public_blob(text)
    if parsed is None:  # a PEM key, say: ask ssh-keygen for its public half
        done = run("ssh-keygen", "-y", "-f", str(path))
        if done is None or done.returncode != 0 or len(done.stdout.split()) < 2:
            return Result("FAIL", what, f"{path} is not an OpenSSH private key ssh-keygen can read: create it as README.md, step 1 says")
        actual, encrypted = done.stdout.split()[1], False
    else:
        actual, encrypted = parsed
    if encrypted:
        return Result("FAIL", what, f"{path} has a passphrase, which the SuperNode cannot type: create it with -N \"\" (README.md, step 1)")
    if actual != registered:
        return Result(
            "FAIL", what,
            f"{path} is not the key the platform registered for {sn['name']} (it registered `{sn['public_key'][:40]}...`): "
            f"the SuperLink will refuse this SuperNode. Put back the key whose .pub you sent us, or send us this one's "
            f"public key (`ssh-keygen -y -f {path}`) and wait for the operators to register it",
        )
    return Result("OK", what, f"{path}: private, and its public half is the one the platform registered")


def container_running(name: str) -> str | None:
    for engine in ("docker", "podman"):
        done = run(engine, "ps", "--filter", f"name=^{name}$", "--format", "{{.Names}}")
        if done is not None and done.returncode == 0 and name in done.stdout.split():
            return engine
    return None


def check_supernode(sn: dict[str, Any]) -> Result:
    what = f"SuperNode {sn['name']}"
    states = {unit: unit_state(unit) for unit in sn["units"]}
    if all(s == "active" for s in states.values()):
        return Result("OK", what, f"{' and '.join(states)} running")
    engine = container_running(sn["container"])
    if engine is not None:
        return Result("OK", what, f"container {sn['container']} running in {engine}")
    units = " ".join(states)
    return Result(
        "FAIL", what,
        f"not running ({', '.join(f'{u} is {s}' for u, s in states.items())}; no container {sn['container']}): "
        f"`sudo systemctl enable --now {units}` (then `journalctl -u {sn['units'][0]}`), or docker/run-docker.sh {sn['name']}",
    )


def wildcard_listeners(port: int, allowed: set[str]) -> list[str]:
    """Addresses other than the tunnel and loopback where something listens on TCP `port`."""
    found = []
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":
                continue
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) != port:
                continue
            if address in WILDCARD:
                found.append("every address")
            elif len(address) == 8:
                ip = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
                if ip not in allowed and not ip.startswith("127."):
                    found.append(ip)
    return found


def check_exporter(exporter: dict[str, Any], tunnel: set[str], all_tunnel: set[str]) -> Result:
    what = f"{exporter['name']} on the tunnel, port {exporter['port']}"
    for port in exporter["private_ports"]:
        elsewhere = sorted(set(wildcard_listeners(port, all_tunnel)))
        if elsewhere:
            return Result(
                "FAIL", what,
                f"an exporter also listens on {', '.join(elsewhere)} port {port}, where others on your network can read it: "
                f"stop it ({exporter['packaged']} is the distribution's own unit: `sudo systemctl mask --now {exporter['packaged']}`)",
            )
    if not tunnel:
        return Result("FAIL", what, "cannot be checked while the tunnel is down (above)")
    address = min(tunnel)
    url = f"http://{address}:{exporter['port']}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 (the site's own tunnel address)
            body = response.read(1 << 20).decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return Result(
            "FAIL", what,
            f"nothing answers at {url} ({getattr(exc, 'reason', exc)}), so the platform cannot monitor this site: "
            f"`sudo ./install-monitoring.sh`, then `systemctl status {exporter['socket']}`",
        )
    if exporter["metric"] not in body:
        return Result("FAIL", what, f"{url} answers without {exporter['metric']} metrics: `journalctl -u {exporter['socket']}`")
    return Result("OK", what, f"answers at {url}")


def check_gpu_driver(gpu: dict[str, Any]) -> Result:
    what = "NVIDIA driver"
    need = f"NVIDIA's driver {gpu['driver_branch']} or newer (CUDA {gpu['cuda_major']})"
    done = run("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
    if done is None:
        return Result("FAIL", what, f"nvidia-smi is not installed: this GPU site needs {need} (README.md, \"GPU\")")
    versions = done.stdout.split()
    if done.returncode != 0 or not versions:
        return Result("FAIL", what, f"nvidia-smi finds no GPU or no loaded driver ({(done.stderr or done.stdout).strip()[:120]}): reboot after installing {need}")
    major = int(versions[0].split(".")[0])
    if major < gpu["driver_minimum"]:
        return Result("FAIL", what, f"driver {versions[0]} is older than {need}: install nvidia-driver-{gpu['driver_branch']} and reboot")
    return Result("OK", what, f"driver {versions[0]} (at least {gpu['driver_minimum']}: runs CUDA {gpu['cuda_major']})")


def check_gpu_toolkit() -> Result:
    what = "NVIDIA Container Toolkit"
    done = run("nvidia-ctk", "--version")
    if done is not None and done.returncode == 0:
        return Result("OK", what, done.stdout.strip().splitlines()[0] if done.stdout.strip() else "installed")
    engines = [e for e in ("docker", "podman") if shutil.which(e)]
    advice = "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker` (README.md, \"GPU\")"
    if engines:
        return Result("FAIL", what, f"not installed, so {engines[0]} containers cannot use the GPU: {advice}")
    return Result("WARN", what, f"not installed: needed only for the container route (docker/run-docker-gpu.sh): {advice}")


def check_clock() -> Result:
    what = "clock"
    done = run("timedatectl", "show", "--property=NTPSynchronized", "--value")
    if done is not None and done.returncode == 0 and done.stdout.strip():
        if done.stdout.strip() == "yes":
            return Result("OK", what, "synchronised (NTP)")
        return Result(
            "FAIL", what,
            "not synchronised: TLS certificates (VPN, SuperLink) are checked against it. `sudo timedatectl set-ntp true` "
            "and let this machine reach your NTP servers (UDP 123)",
        )
    chrony = run("chronyc", "tracking")
    if chrony is not None and chrony.returncode == 0:
        ok = re.search(r"Leap status\s*:\s*Normal", chrony.stdout) is not None
        return Result("OK" if ok else "FAIL", what, "synchronised (chrony)" if ok else "chrony is not synchronised: `chronyc sources` says why")
    return Result("WARN", what, "cannot tell whether it is synchronised (no timedatectl or chronyc): make sure NTP runs")


def check_disk(path: str, minimum_gib: int, at: Any) -> Result:
    what = f"data path {path}"
    target = at(path)
    if not target.exists():
        return Result("FAIL", what, "does not exist: put the data there, or pass its directory with --data (the container route mounts it)")
    free = shutil.disk_usage(target).free
    if free < minimum_gib * GIB:
        return Result("FAIL", what, f"only {free / GIB:.1f} GiB free (at least {minimum_gib} GiB needed for models and logs): free some space")
    return Result("OK", what, f"{free / GIB:.0f} GiB free")


def check(facts: dict[str, Any], bundle: Path, root: str = "", data: list[str] | None = None) -> list[Result]:
    def at(path: str) -> Path:
        return Path(root + path) if root else Path(path)

    present = local_addresses()
    all_tunnel = {a for c in facts["vpn"] for a in c["addresses"].values()}
    tunnel = {a for a in all_tunnel if a in present}
    results: list[Result] = []
    for client in facts["vpn"]:
        results += [check_vpn_unit(client), check_tunnel(client, present)]
    results += [check_superlink(link, facts["ca_pem"], tunnel) for link in facts["superlinks"]]
    for sn in facts["supernodes"]:
        results += [check_key(sn, at, bundle), check_supernode(sn)]
    if facts["vpn"]:
        results += [check_exporter(e, tunnel, all_tunnel) for e in facts["exporters"]]
    if facts["gpu"]:
        results += [check_gpu_driver(facts["gpu"]), check_gpu_toolkit()]
    results.append(check_clock())
    results += [check_disk(p, facts["minimum_free_gib"], at) for p in (data or facts["data_paths"])]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", help="a data directory to check (repeat; default: the SuperNodes' data-path)")
    parser.add_argument("--root", default="", help="read the SuperNodes' files under this directory (tests)")
    args = parser.parse_args(argv)
    bundle = Path(__file__).resolve().parent
    facts_path = bundle / FACTS
    if not facts_path.is_file():
        print(f"nina-check: {facts_path} is missing: run nina-check from the bundle it came with", file=sys.stderr)
        return 2
    facts = json.loads(facts_path.read_text())
    if os.geteuid() != 0:
        print("nina-check: not root: the SuperNodes' keys may be unreadable (run it with sudo)", file=sys.stderr)
    results = check(facts, bundle, args.root.rstrip("/"), args.data)
    for r in results:
        print(f"{r.status:4}  {r.what}: {r.detail}")
    failed = sum(r.status == "FAIL" for r in results)
    warned = sum(r.status == "WARN" for r in results)
    summary = f"{len(results) - failed - warned} OK, {warned} warnings, {failed} failed"
    print(f"nina-check {facts['organisation']} ({facts['environment']}): {summary}" + (": fix the FAIL lines above, then run it again" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
