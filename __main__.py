"""nina-fl: the NINA federated-learning platform on Nectar. Config is validated before any resource exists."""

import pulumi

from components.platform import Platform
from nina import config

cfg = config.load()
platform = Platform(cfg)
for key, value in platform.outputs.items():
    pulumi.export(key, value)
