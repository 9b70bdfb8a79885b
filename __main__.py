"""nina-fl: the NINA federated-learning platform on Nectar. Config is validated before any resource exists."""

import pulumi

from components.platform import Platform, stack_config

platform = Platform(stack_config())
for key, value in platform.outputs.items():
    pulumi.export(key, value)
