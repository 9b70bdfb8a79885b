"""The whole NINA stack for one environment: network, security groups, managed Postgres, the PKI and service
secrets, one Host per VM, and the SSH delivery that hands each host its secret material after boot."""

from __future__ import annotations

import pulumi

from cloudinit.render import user_data
from components.database import Database
from components.deliverables import Sources
from components.delivery import Delivery
from components.dns import PublicDns
from components.federation import Federations
from components.host import Host
from components.network import Network
from components.pki import Pki
from components.secrets import Secrets
from components.security import SecurityGroups
from components import vpn
from nina import databases, names, services
from nina.config import StackConfig


class Platform(pulumi.ComponentResource):
    def __init__(self, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        name = f"nina-{cfg.environment}"
        super().__init__("nina:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = Network("net", cfg, child)
        self.security = SecurityGroups("sg", cfg, child)
        self.database = Database("postgres", cfg, self.network, child)
        if not cfg.monitoring.configured:
            pulumi.log.warn(
                f"nina:monitoring is not set: alerts would mail ops@{cfg.dns.public_domain} through localhost:25, where no "
                "relay listens. Set nina:monitoring.alert_email and .smarthost (README: Configuration reference)."
            )
        for host in cfg.hosts.values():
            backed_up = [d.name for d in databases.backed_up_on(cfg, host)]
            if backed_up and not host.volume_gb:
                pulumi.log.warn(
                    f"nina:hosts.{host.name} has no volume_gb: the backups of {', '.join(backed_up)} are kept on its root "
                    "disk and lost when the VM is replaced. Give it a state volume (README: Backups)."
                )
        self.pki = Pki("pki", cfg, child)
        self.secrets = Secrets("secrets", cfg, child)
        self.hosts = {
            h.name: Host(cfg, h, self.network, self.security, user_data(cfg, h), child) for h in cfg.hosts.values()
        }
        self.dns = PublicDns("dns", cfg, self.hosts, child)
        sources = Sources(cfg, self.pki, self.secrets, self.database)
        self.delivery = Delivery("delivery", sources, self.hosts, child)
        # One registration command per SuperNode, run on its SuperLink host after that host's delivery.
        self.federations = Federations("federations", sources, self.hosts, self.delivery.commands, child)
        self.outputs = {
            "environment": cfg.environment,
            "hosts": {
                n: {"private_ip": h.private_ip, "public_ip": h.public_ip, "roles": list(cfg.hosts[n].roles)}
                for n, h in self.hosts.items()
            },
            "jump_host": self.hosts[cfg.admin.jump_host].public_ip,
            "public_urls": {s.public: f"https://{services.public_name(cfg, s)}/" for s in services.PUBLIC_SERVICES},
            # The A records the public names need (kept in nina:dns.public_zone when set; otherwise create them).
            "public_dns": self.dns.records,
            "internal_names": {n: [names.fqdn(cfg, a) for a in names.aliases(cfg, h)] for n, h in cfg.hosts.items()},
            "postgres_address": self.database.address,
            # Distribute to anyone who must trust NINA's internal endpoints (researchers' flwr, hospital sites).
            "ca_cert_pem": self.pki.ca_cert_pem,
            # Monitoring alerts on these; the preview warns within pki_spec.EXPIRY_WARNING_DAYS.
            "certificate_expiry": self.pki.expiry,
            "supernode_public_keys": {
                fed: {sn: key.public_key_openssh for (f, sn), key in self.pki.supernode_keys.items() if f == fed}
                for fed in cfg.federations
            },
            # Per federation: the VPN server's address and each on-premises site's certificate (README: VPN).
            "vpn": vpn.outputs(cfg, self.pki, self.hosts),
            # Researchers' ~/.flwr/config.toml: one connection per federation (README: Federations).
            "flwr_connections": self.federations.connections,
            "flwr_config_toml": self.federations.config_toml,
            "keycloak_admin_password": self.secrets["keycloak-admin"],
            "grafana_admin_password": self.secrets["grafana-admin"],
        }
        self.register_outputs(self.outputs)
