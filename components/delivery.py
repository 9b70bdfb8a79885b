"""Hand each host its secret and operational material over SSH (pulumi-command), never through user-data.

One `command.remote.Command` per host. It connects through the jump host with the operators' key
(`nina:ssh_private_key`), waits for cloud-init to finish, and pipes a JSON payload (a Pulumi secret, so encrypted in
state and masked in diffs) into /usr/local/sbin/nina-deliver, which installs files with their owner and mode and
restarts only the units whose files changed. The command re-runs when the payload changes (a renewed certificate, a
new password) or when the instance is replaced (`triggers`), and at no other time.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pulumi
import pulumi_command as command

from components.delivery_payload import (
    DIRECTORIES,
    Deliverable,
    Sources,
    for_host,
    hosts_units,
)
from components.host import Vm
from nina.catalog import layout
from nina.config import NAMESPACE, Host
from nina.onhost import DELIVER, program_source
from nina.plan.names import hosts_block

# cloud-init exits 2 when it finished with recoverable warnings: the host is usable; 1 means it failed. Then the
# bootstrap's own marker: every step succeeded (guards, state volume, SSH hardening) before any secret arrives.
WAIT_FOR_CLOUD_INIT = (
    "s=0; sudo cloud-init status --wait >/dev/null || s=$?; "
    '[ $s -eq 0 ] || [ $s -eq 2 ] || { echo "cloud-init failed on this host (cloud-init status --long)" >&2; exit 1; }; '
    f'sudo test -f {layout.BOOTSTRAP_MARKER} || {{ echo "nina-bootstrap did not finish on this host (journalctl -u cloud-final)" >&2; exit 1; }}'
)


def install_deliver() -> str:
    """Shell that installs nina-deliver itself, carried in the command rather than in user-data: an improvement to
    the installer then re-runs the deliveries (idempotent) instead of replacing every VM. gzip's mtime is fixed so
    the command, and so the plan, only changes when the script does."""
    packed = base64.b64encode(gzip.compress(program_source(DELIVER), compresslevel=9, mtime=0)).decode()
    return f"printf %s '{packed}' | base64 -d | gunzip | sudo install -m 0755 -o root -g root /dev/stdin {layout.DELIVER_COMMAND}"


CREATE = f"set -eu; {WAIT_FOR_CLOUD_INIT}; {install_deliver()}; sudo {layout.DELIVER_COMMAND}"


def payload(files: list[Deliverable], hosts: str, hosts_units: tuple[str, ...] = ()) -> pulumi.Output[str]:
    """The JSON nina-deliver reads; deterministic (sorted keys, files in producer order)."""

    def document(contents: list[Any]) -> str:
        return json.dumps(
            {
                "dirs": list(DIRECTORIES),
                "files": [
                    {"path": f.path, "content": c, "owner": f.owner, "mode": f.mode, "units": list(f.units)}
                    for f, c in zip(files, contents)
                ],
                "hosts": hosts,
                "hosts_units": list(hosts_units),
            },
            sort_keys=True,
            indent=1,
        )

    return pulumi.Output.secret(pulumi.Output.all(*(f.content for f in files)).apply(document))


def connection(src: Sources, host: Host, vms: dict[str, Vm]) -> command.remote.ConnectionArgs:
    """SSH to a host with the operators' key, through the jump host unless it is the jump host."""
    cfg = src.cfg
    key = pulumi.Config(NAMESPACE).require_secret("ssh_private_key")
    jump = vms[cfg.admin.jump_host]
    assert jump.public_ip is not None  # config guarantees the jump host faces the internet
    if host.name == cfg.admin.jump_host:
        return command.remote.ConnectionArgs(host=jump.public_ip, user=cfg.admin.ssh_user, private_key=key)
    return command.remote.ConnectionArgs(
        host=str(host.ip),
        user=cfg.admin.ssh_user,
        private_key=key,
        proxy=command.remote.ProxyConnectionArgs(host=jump.public_ip, user=cfg.admin.ssh_user, private_key=key),
    )


class Delivery(pulumi.ComponentResource):
    commands: dict[str, command.remote.Command]

    def __init__(self, name: str, src: Sources, vms: dict[str, Vm], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:delivery:Delivery", name, None, opts)
        block = hosts_block(src.cfg)
        self.commands = {}
        for host in src.cfg.hosts.values():
            vm = vms[host.name]
            self.commands[host.name] = command.remote.Command(
                f"deliver-{host.name}",
                connection=connection(src, host, vms),
                create=CREATE,
                stdin=payload(for_host(src, host), block, hosts_units(host)),
                triggers=[vm.instance.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[vm]),
            )
        self.register_outputs({})
