#!/usr/bin/python3
"""nina-jupyter-access: which researcher's notebook container may reach which federation's SuperLink, on the
JupyterHub host (README "People and federations").

At each spawn JupyterHub runs `grant NAME --group G...` with the groups Keycloak gave the researcher: it picks the
container's address (the one this researcher had, else the lowest free one), records the address and the
federations those groups reach in ACCESS_DIR/NAME.json, makes the container guard's set hold exactly the
(container address . SuperLink address) pairs of every record, and prints the address and the researcher's flwr
config.toml (only their federations). At stop JupyterHub runs `revoke NAME`. nina-jupyter-guard.service runs
`apply` after loading the guard (a new guard starts with an empty set). Anything not recorded reaches no SuperLink:
the guard's default is to refuse.

Records are the hub's (user jupyterhub); they are read back strictly (the name, an address of the containers'
network, federations the delivered description knows) and a record that fails is left out, never half-used.
The federations file (layout.NOTEBOOK_FEDERATIONS, nina/plan/notebook.py) is the only source of SuperLink
addresses, group names and TOML.

Usage: nina-jupyter-access --federations FILE --access-dir DIR grant NAME [--group G]... [--in-use IP]...
       nina-jupyter-access --federations FILE --access-dir DIR revoke NAME
       nina-jupyter-access --federations FILE --access-dir DIR apply
Standard library only: the hub's venv is not needed, and root runs it too.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,254}")  # JupyterHub's escaped user names
NFT = "/usr/sbin/nft"


class AccessError(RuntimeError):
    pass


class Access:
    def __init__(self, federations_file: str, directory: str, nft: str = NFT) -> None:
        with open(federations_file, encoding="utf-8") as f:
            self.known: dict[str, Any] = json.load(f)
        self.directory = directory
        self.nft = nft
        self.network = ipaddress.ip_network(self.known["network"]["subnet"])
        self.gateway = ipaddress.ip_address(self.known["network"]["gateway"])
        self.federations: dict[str, dict[str, str]] = {f["name"]: f for f in self.known["federations"]}

    # ------------------------------------------------------------------------------------------------ records

    def _path(self, name: str) -> str:
        if not NAME.fullmatch(name):
            raise AccessError(f"{name!r} is not a JupyterHub user name")
        return os.path.join(self.directory, f"{name}.json")

    def _valid_address(self, text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            address = ipaddress.ip_address(text)
        except (TypeError, ValueError):
            return None
        if address not in self.network or address in (self.gateway, self.network.network_address, self.network.broadcast_address):
            return None
        return address

    def records(self) -> dict[str, dict[str, Any]]:
        """NAME -> {"ip", "federations"} for every record that holds up; the others are reported and left out."""
        found: dict[str, dict[str, Any]] = {}
        for entry in sorted(os.listdir(self.directory)):
            if not entry.endswith(".json") or not NAME.fullmatch(entry[:-5]):
                continue
            path = os.path.join(self.directory, entry)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, encoding="utf-8") as f:
                    record = json.load(f)
                address = self._valid_address(record["ip"])
                federations = record["federations"]
                if address is None or not isinstance(federations, list) or not all(f in self.federations for f in federations):
                    raise ValueError("an address outside the containers' network or an unknown federation")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"nina-jupyter-access: ignoring {path}: {exc}", file=sys.stderr)
                continue
            found[entry[:-5]] = {"ip": str(address), "federations": list(federations)}
        # Two records claiming one address grant neither: the address is in doubt.
        claims: dict[str, list[str]] = {}
        for name, record in found.items():
            claims.setdefault(record["ip"], []).append(name)
        for ip, names in claims.items():
            if len(names) > 1:
                print(f"nina-jupyter-access: {ip} is claimed by {', '.join(names)}: neither reaches a SuperLink", file=sys.stderr)
                for name in names:
                    del found[name]
        return found

    def _write(self, name: str, record: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".record-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self._path(name))

    # ------------------------------------------------------------------------------------------------ the set

    def apply(self) -> list[tuple[str, str]]:
        """Make the guard's set exactly the recorded pairs, in one nftables transaction."""
        pairs = sorted(
            {(r["ip"], self.federations[f]["superlink"]) for r in self.records().values() for f in r["federations"]},
            key=lambda p: (ipaddress.ip_address(p[0]), ipaddress.ip_address(p[1])),
        )
        table, set_name = self.known["guard"]["table"], self.known["guard"]["set"]
        script = f"flush set {table} {set_name}\n"
        if pairs:
            script += f"add element {table} {set_name} {{ " + ", ".join(f"{a} . {b}" for a, b in pairs) + " }\n"
        done = subprocess.run([self.nft, "-f", "-"], input=script, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AccessError(f"the container guard ({table}) refused the access set: {done.stderr.strip()} (systemctl status nina-jupyter-guard)")
        return pairs

    # ------------------------------------------------------------------------------------------------ commands

    def reachable(self, groups: list[str]) -> list[str]:
        """The federations these Keycloak groups reach, in the stack's order."""
        if self.known["all_federations_group"] in groups:
            return list(self.federations)
        return [name for name, fed in self.federations.items() if fed["group"] in groups]

    def config_toml(self, federations: list[str]) -> str:
        defaults = [self.federations[f]["default"] for f in federations if self.federations[f]["default"]]
        head = defaults[0] if defaults else self.known["no_federation"]
        return "\n".join([head, *(self.federations[f]["connection"] for f in federations)])

    def grant(self, name: str, groups: list[str], in_use: list[str]) -> dict[str, Any]:
        self._path(name)  # the name is checked before anything changes
        records = self.records()
        taken = {r["ip"] for n, r in records.items() if n != name} | {str(ipaddress.ip_address(ip)) for ip in in_use}
        previous = records[name]["ip"] if name in records else None
        if previous is not None and previous not in taken:
            address = previous
        else:
            free = (str(a) for a in self.network.hosts() if a != self.gateway and str(a) not in taken)
            address = next(free, "")
            if not address:
                raise AccessError(f"no free address left in {self.network} for another notebook")
        federations = self.reachable(groups)
        self._write(name, {"ip": address, "federations": federations})
        self.apply()
        return {"ip": address, "federations": federations, "config_toml": self.config_toml(federations)}

    def revoke(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        self.apply()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nina-jupyter-access", description=__doc__.split("\n\n")[0])
    parser.add_argument("--federations", required=True)
    parser.add_argument("--access-dir", required=True)
    parser.add_argument("--nft", default=NFT)
    commands = parser.add_subparsers(dest="command", required=True)
    grant = commands.add_parser("grant")
    grant.add_argument("name")
    grant.add_argument("--group", action="append", default=[])
    grant.add_argument("--in-use", action="append", default=[])
    revoke = commands.add_parser("revoke")
    revoke.add_argument("name")
    commands.add_parser("apply")
    args = parser.parse_args(argv)
    try:
        access = Access(args.federations, args.access_dir, args.nft)
        # One change at a time: the hub's spawns and stops and the guard's reload each rewrite the whole set.
        # (Opened read-only: root, the guard's reload, may be the one that creates it, and the hub must still open it.)
        lock = os.open(os.path.join(args.access_dir, ".lock"), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if args.command == "grant":
                print(json.dumps(access.grant(args.name, args.group, args.in_use), sort_keys=True))
            elif args.command == "revoke":
                access.revoke(args.name)
            else:
                print(json.dumps({"pairs": [f"{a} . {b}" for a, b in access.apply()]}))
        finally:
            os.close(lock)
    except (AccessError, OSError, ValueError, KeyError) as exc:
        print(f"nina-jupyter-access: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
