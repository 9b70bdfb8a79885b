"""The whole NINA stack for one environment: network, security groups, managed Postgres, the PKI and service
secrets, one VM per host, the SSH delivery that hands each host its secret material after boot, and the SuperNode
registrations. `stack_config()` reads the `nina:` keys the running program was given."""

from __future__ import annotations

import pulumi

import cloudinit
from components import outputs
from components.database import ManagedPostgres
from components.delivery import Delivery
from components.delivery_payload import Sources
from components.dns import PublicDns
from components.host import Vm
from components.network import NetworkPartition
from components.offsite import OffsiteBackups
from components.pki import Pki
from components.realm import Realm
from components.registrations import Registrations
from components.secrets import Secrets
from components.security import SecurityGroups
from components.site_certificates import warn_until_shipped
from nina.config import NAMESPACE, StackConfig, parse
from nina.plan import firewall, openvpn, public
from nina.plan.backups import backed_up_on
from nina.plan.pki import issuance


def stack_config() -> StackConfig:
    """Every `nina:` key the running Pulumi program was given, validated (unknown keys are errors too)."""
    from pulumi.runtime.config import CONFIG, get_config_env

    # The language host passes config in PULUMI_CONFIG; set_all_config (mocks) fills CONFIG.
    given = {**get_config_env(), **CONFIG.get()}
    return parse({k: v for k, v in given.items() if k.startswith(f"{NAMESPACE}:")})


def _warn(cfg: StackConfig) -> None:
    """What `pulumi preview` should say about a valid stack that will not work as an operator expects."""
    if not cfg.monitoring.configured:
        pulumi.log.warn("nina:monitoring.test_stack: alerts reach nobody on this stack (README: Configuration reference).")
    if not cfg.smtp.configured:
        pulumi.log.warn(
            "nina:smtp is not set: alerts and Keycloak's invitations would go through localhost:25, where no relay listens. "
            "Set nina:smtp.host (README: Configuration reference)."
        )
    for host in cfg.hosts.values():
        backed_up = [d.name for d in backed_up_on(cfg, host)]
        if backed_up and not host.volume_gb:
            pulumi.log.warn(
                f"nina:hosts.{host.name} has no volume_gb: the backups of {', '.join(backed_up)} are kept on its root "
                "disk and lost when the VM is replaced. Give it a state volume (README: Backups)."
            )


class Platform(pulumi.ComponentResource):
    def __init__(self, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        name = f"nina-{cfg.environment}"
        super().__init__("nina:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        _warn(cfg)
        env = cfg.environment
        self.network = NetworkPartition("net", env, cfg.cloud, cfg.network.segments, openvpn.router_routes(cfg), child)
        self.security = SecurityGroups("sg", env, firewall.all_groups(cfg), firewall.plan(cfg), firewall.egress_plan(cfg), child)
        self.database = ManagedPostgres("postgres", env, cfg.database, self.network.networks["internal"].id, child)
        self.pki = Pki("pki", issuance(cfg), child)
        warn_until_shipped(cfg, self.pki)
        self.secrets = Secrets("secrets", cfg.secrets, child)
        self.offsite = OffsiteBackups("backups", cfg, child)
        self.vms = {
            h.name: Vm(
                env,
                cfg.cloud,
                h,
                self.network,
                self.security.ids(firewall.host_groups(cfg, h)),
                cloudinit.user_data(cfg, h),
                [str(f.vpn_client_range) for f in cfg.federations_served_by(h.name, "vpn") if f.vpn_client_range],
                child,
            )
            for h in cfg.hosts.values()
        }
        self.dns = PublicDns("dns", env, cfg.dns.public_zone, public.public_records(cfg), self.vms, child)
        sources = Sources(cfg, self.pki, self.secrets, self.database, self.offsite)
        self.delivery = Delivery("delivery", sources, self.vms, child)
        # One registration command per SuperNode, run on its SuperLink host after that host's delivery.
        self.registrations = Registrations("federations", sources, self.vms, self.delivery.commands, child)
        # Keycloak's realm (settings, clients, groups, people) applied in place after the Keycloak host's delivery.
        self.realm = Realm("realm", sources, self.vms, self.delivery.commands, child)
        self.outputs = outputs.stack_outputs(cfg, self.vms, self.pki, self.secrets, self.database, self.dns)
        self.register_outputs(self.outputs)
