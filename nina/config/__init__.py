"""The stack's configuration: one typed model (model.py), parsed and validated once (parse.py) before any resource
exists. Components and plans receive the model, never raw dicts."""

from nina.config.federations import membership_fingerprint
from nina.config.model import (
    GENERATE,
    Admin,
    Cloud,
    DatabaseSettings,
    Dns,
    Federation,
    Host,
    Monitoring,
    NetworkSettings,
    Organisation,
    Person,
    Revocation,
    Segment,
    ShippedCertificate,
    Smtp,
    StackConfig,
    SuperNode,
)
from nina.config.parse import (
    KNOWN_KEYS,
    OPTIONAL_SECRETS,
    REQUIRED_SECRETS,
    SECRET_KEYS,
    parse,
)
from nina.config.reader import NAMESPACE, ConfigError

__all__ = [
    "GENERATE",
    "KNOWN_KEYS",
    "NAMESPACE",
    "OPTIONAL_SECRETS",
    "REQUIRED_SECRETS",
    "SECRET_KEYS",
    "Admin",
    "Cloud",
    "ConfigError",
    "DatabaseSettings",
    "Dns",
    "Federation",
    "Host",
    "Monitoring",
    "NetworkSettings",
    "Organisation",
    "Person",
    "Revocation",
    "Segment",
    "ShippedCertificate",
    "Smtp",
    "StackConfig",
    "SuperNode",
    "membership_fingerprint",
    "parse",
]
