"""What a rogue app can do from where it runs: each probe returns a short outcome the test asserts on."""

import errno
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path


def identity() -> dict[str, object]:
    status = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line)
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(), "cap_amb": status["CapAmb"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
    }


def read(path: str) -> str:
    try:
        Path(path).read_bytes()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "read"


def connect(address: str, timeout: float = 3.0) -> str:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def connect_unix(path: str) -> str:
    """A Unix socket (a resolver's, D-Bus's): packets filters do not see these."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(path)
            return "connected"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def post(url: str, ca: str) -> str:
    """An HTTPS POST (the CA is public): the HTTP status, or why there was none."""
    request = urllib.request.Request(url, data=b"", method="POST", headers={"Content-Type": "application/protobuf"})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=10) as answer:
            return f"status {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"error {getattr(exc, 'reason', exc)}"


def other_processes_environ(names: tuple[str, ...]) -> dict[str, str]:
    """Try to read the environment of the platform's processes (another user's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name in names:
            if name in cmdline and name not in found:
                found[name] = read(str(entry / "environ"))
    return found


def register_rogue_supernode(connections: list[str], ca: str) -> dict[str, object]:
    """`flwr supernode register` of a fresh key at every address given: what a rogue ServerApp would try."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    home = Path.home() / "rogue-flwr"
    home.mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    (home / "rogue.pub").write_text(pub + "\n")
    toml = "[superlink]\ndefault = \"c0\"\n" + "".join(
        f'\n[superlink.c{i}]\naddress = "{address}"\nroot-certificates = "{ca}"\n' for i, address in enumerate(connections)
    )
    (home / "config.toml").write_text(toml)
    env = {**os.environ, "FLWR_HOME": str(home)}
    outcomes = {}
    for i, address in enumerate(connections):
        try:
            done = subprocess.run(
                ["flwr", "supernode", "register", str(home / "rogue.pub"), f"c{i}"], env=env, capture_output=True, text=True, timeout=90
            )
            text = (done.stdout + done.stderr).strip().splitlines()
            outcomes[address] = {"returncode": done.returncode, "said": " ".join(text[-3:])[-300:]}
        except subprocess.TimeoutExpired:
            outcomes[address] = {"returncode": None, "said": "timeout"}
    return {"public_key": pub, "attempts": outcomes}


def report(name: str, result: dict[str, object]) -> None:
    """Into the app user's own directory: this run's home (inside it) is removed when the app exits."""
    (Path.home().parent / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True))
