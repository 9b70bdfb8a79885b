"""SuperNode registrations (shared/FLOWER.md): one `register-<federation>-<supernode>` command per SuperNode, run
over SSH on its federation's SuperLink host against the loopback SuperLink, after that host's delivery.

Adding or removing a site touches only that site's resource: no SuperLink restart, no other host. The command
(nina/plan/flower.py) is idempotent; deleting the resource unregisters the key. Its trigger is the key itself, so a
new key pair re-registers and nothing else does.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components.delivery import connection
from components.delivery_payload import Sources
from components.host import Vm
from nina.plan import flower


class Registrations(pulumi.ComponentResource):
    registrations: dict[tuple[str, str], command.remote.Command]

    def __init__(
        self,
        name: str,
        src: Sources,
        vms: dict[str, Vm],
        deliver: dict[str, command.remote.Command],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The type token predates the class name; changing it would change every registration's URN (delete + create).
        super().__init__("nina:federation:Federations", name, None, opts)
        cfg = src.cfg
        self.registrations = {}
        for fed in cfg.federations.values():
            superlink = cfg.hosts[fed.superlink_host]
            for sn in fed.supernodes:
                key: pulumi.Input[str] = (
                    sn.public_key if sn.public_key is not None else src.pki.supernode_keys[(fed.name, sn.name)].public_key_openssh
                )
                key_out = pulumi.Output.from_input(key).apply(flower.identity)
                self.registrations[(fed.name, sn.name)] = command.remote.Command(
                    f"register-{fed.name}-{sn.name}",
                    connection=connection(src, superlink, vms),
                    create=key_out.apply(flower.register_command),
                    delete=key_out.apply(flower.unregister_command),
                    triggers=[key_out],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[deliver[superlink.name]]),
                )
        self.register_outputs({})
