"""Service passwords and tokens (the role table's credentials): from `pulumi config set --secret nina:<key>` when the
operator set one, generated (pulumi-random, kept in state, stable across runs) otherwise. Every value is a Pulumi
secret. Which services read them, and under which variable names, is each role's `env` in nina/catalog/roles.py.
"""

from __future__ import annotations

from collections.abc import Collection

import pulumi
import pulumi_random as random

from nina.catalog.roles import CREDENTIALS
from nina.config import NAMESPACE


class Secrets(pulumi.ComponentResource):
    values: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, given: Collection[str], opts: pulumi.ResourceOptions | None = None) -> None:
        """`given`: the `nina:` secret keys the stack sets (StackConfig.secrets)."""
        super().__init__("nina:secrets:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = pulumi.Config(NAMESPACE)
        self.values = {}
        for cred in CREDENTIALS:
            if cred.config_key and cred.config_key in given:
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
