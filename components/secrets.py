"""Service passwords and tokens: from `pulumi config set --secret nina:<key>` when the operator set one, generated
(pulumi-random, kept in state, stable across runs) otherwise. Every value is a Pulumi secret.

Which services read them, and under which variable names, is nina.layout.SERVICE_ENV_VARS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from nina.config import NAMESPACE, StackConfig


@dataclass(frozen=True)
class Credential:
    name: str  # resource name and the key below
    config_key: str | None  # `nina:<key>` the operator may set instead
    length: int = 32
    hex_bytes: bool = False  # JupyterHub's crypt key must be 32 random bytes, hex encoded


CREDENTIALS = (
    Credential("keycloak-admin", "keycloak_admin_password"),
    Credential("grafana-admin", "grafana_admin_password"),
    # OIDC client secrets: Keycloak's realm holds them and the client (JupyterHub, Grafana) presents them.
    Credential("jupyterhub-oidc-client", None),
    Credential("grafana-oidc-client", None),
    Credential("configproxy-auth-token", None),
    Credential("jupyterhub-crypt-key", None, length=32, hex_bytes=True),
)


class Secrets(pulumi.ComponentResource):
    values: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nina:secrets:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = pulumi.Config(NAMESPACE)
        self.values = {}
        for cred in CREDENTIALS:
            if cred.config_key and cred.config_key in cfg.secrets:
                self.values[cred.name] = config.require_secret(cred.config_key)
            elif cred.hex_bytes:
                self.values[cred.name] = pulumi.Output.secret(random.RandomBytes(cred.name, length=cred.length, opts=child).hex)
            else:
                # No special characters: these land in env files and JDBC/INI settings unquoted.
                password = random.RandomPassword(cred.name, length=cred.length, special=False, opts=child)
                self.values[cred.name] = pulumi.Output.secret(password.result)
        self.register_outputs({})

    def __getitem__(self, name: str) -> pulumi.Output[str]:
        return self.values[name]
