"""Keycloak's realm as the stack describes it (nina/plan/realm.py), applied in place on the Keycloak host.

One `command.remote.Command` after that host's delivery: it writes the description to layout.REALM_DESIRED and runs
nina-realm.service (nina/onhost/nina_realm.py), which makes the realm match through the admin API and prints what it
changed. The description holds no secret, so `pulumi preview` and a pull request show a person added, removed or
moved between federations as a diff of this resource's stdin; no VM is replaced. It re-runs when the description or
what nina-realm reads from the delivery changes (the program, a rotated client secret, the mail relay's password), and
not for the rest of the host's delivery; nina-realm.timer re-applies it hourly against drift.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components.delivery import connection
from components.delivery_payload import Sources, for_host
from components.host import Vm
from nina.catalog import layout
from nina.catalog.roles import ROLES
from nina.plan import realm

# The description in place, then one run of nina-realm.service; its output (what changed) shows in `pulumi up`, and
# a failed run fails the update.
APPLY = (
    f"set -eu; sudo install -D -m 0644 -o root -g root /dev/stdin {layout.REALM_DESIRED}; "
    f"status=0; sudo systemctl start {layout.REALM_UNIT} || status=$?; "
    f'sudo journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value {layout.REALM_UNIT})"; '
    'exit "$status"'
)

_KEYCLOAK_ENV = ROLES["iam"].env
assert _KEYCLOAK_ENV is not None, "Keycloak's secrets file (the admin's and the clients' secrets)"
# The delivered files nina-realm.service reads besides the description.
READS = (layout.REALM_COMMAND, _KEYCLOAK_ENV.path, layout.KEYCLOAK_SMTP_PASSWORD)


class Realm(pulumi.ComponentResource):
    apply: command.remote.Command

    def __init__(
        self,
        name: str,
        src: Sources,
        vms: dict[str, Vm],
        deliver: dict[str, command.remote.Command],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nina:iam:Realm", name, None, opts)
        iam = src.cfg.the_host_with("iam")
        self.apply = command.remote.Command(
            f"realm-{realm.REALM}",
            connection=connection(src, iam, vms),
            create=APPLY,
            stdin=realm.desired_json(src.cfg),
            triggers=[pulumi.Output.secret(d.content) for d in for_host(src, iam) if d.path in READS],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deliver[iam.name]]),
        )
        self.register_outputs({})
