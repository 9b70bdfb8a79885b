"""Where delivered material lands on each host (manual §4.1.1), shared by the templates and the SSH delivery.

Secrets and anything that changes in operation never travel in user-data: after cloud-init finishes, a
pulumi-command step (components/delivery.py) installs these files with the owner and mode given here and restarts
only the units that read them. Services whose files are missing are skipped by systemd (ConditionPathExists), not
crash-looped, until the delivery has run.
"""

from __future__ import annotations

from dataclasses import dataclass

CA_TRUST_PATH = "/usr/local/share/ca-certificates/nina-local-ca.crt"  # update-ca-certificates picks it up
CA_PEM = "/etc/ssl/certs/nina-local-ca.pem"  # the same CA, at a fixed absolute path for flwr and nginx
SECRETS_DIR = "/etc/nina/secrets"  # root:fl_system 0750; one env file per service


@dataclass(frozen=True)
class TlsPaths:
    cert: str
    key: str
    owner: str  # user:group
    units: tuple[str, ...]  # restarted when the material changes


# One tenancy's OpenVPN server runs as two instances of the stock unit: UDP 1194 and the TCP 443 fallback (nina/openvpn.py).
OPENVPN_SERVER_UNITS = ("openvpn-server@server-udp.service", "openvpn-server@server-tcp.service")

# role -> where its server certificate and key go (§4.1.2.9, §4.1.2.16.1, §4.1.2.4, Grafana §5.2)
SERVER_TLS: dict[str, TlsPaths] = {
    "superlink": TlsPaths(
        "/etc/flwr/superlink/certs/server.pem", "/etc/flwr/superlink/certs/server.key", "superlink:fl_system",
        ("superlink.service", "superlink-proxy.service"),  # nginx in front of it serves the same certificate
    ),
    "iam": TlsPaths("/opt/keycloak/conf/certs/server.pem", "/opt/keycloak/conf/certs/serverkey.pem", "keycloak:fl_system", ("keycloak.service",)),
    "notebook": TlsPaths("/etc/jupyterhub/certs/server.pem", "/etc/jupyterhub/certs/server.key", "jupyterhub:fl_system", ("jupyterhub.service",)),
    "monitoring": TlsPaths("/etc/grafana/certs/server.pem", "/etc/grafana/certs/server.key", "root:grafana", ("grafana-server.service",)),
    "ingress": TlsPaths("/etc/nginx/certs/internal.pem", "/etc/nginx/certs/internal.key", "root:www-data", ("nginx.service",)),
    "vpn": TlsPaths("/etc/openvpn/server/server.crt", "/etc/openvpn/server/server.key", "root:root", OPENVPN_SERVER_UNITS),
}

# service -> env file with its passwords/tokens (KEY=value lines, root:fl_system 0640 or owned by the service user),
# read by its unit's EnvironmentFile=. The variables each file holds are the contract between templates and delivery.
SERVICE_ENV = {
    "keycloak": f"{SECRETS_DIR}/keycloak.env",
    "jupyterhub": f"{SECRETS_DIR}/jupyterhub.env",
    "grafana": f"{SECRETS_DIR}/grafana.env",
}
SERVICE_ENV_VARS: dict[str, tuple[str, ...]] = {
    # Keycloak reads KC_* itself; the realm import file refers to the NINA_* ones as ${NINA_...} placeholders.
    "keycloak": (
        "KC_DB_URL",
        "KC_DB_USERNAME",
        "KC_DB_PASSWORD",
        "KC_BOOTSTRAP_ADMIN_USERNAME",
        "KC_BOOTSTRAP_ADMIN_PASSWORD",
        "NINA_JUPYTERHUB_CLIENT_SECRET",
        "NINA_GRAFANA_CLIENT_SECRET",
    ),
    # GenericOAuthenticator reads OAUTH_CLIENT_SECRET; JupyterHub reads JUPYTERHUB_CRYPT_KEY and CONFIGPROXY_AUTH_TOKEN.
    "jupyterhub": ("OAUTH_CLIENT_SECRET", "JUPYTERHUB_CRYPT_KEY", "CONFIGPROXY_AUTH_TOKEN"),
    # Grafana maps GF_<SECTION>_<KEY> onto grafana.ini.
    "grafana": (
        "GF_DATABASE_HOST",
        "GF_DATABASE_PASSWORD",
        "GF_SECURITY_ADMIN_PASSWORD",
        "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET",
    ),
}
# Prometheus scrape targets change in operation (hosts, SuperNodes come and go): file_sd files delivered over SSH.
PROMETHEUS_TARGETS_DIR = "/etc/prometheus/targets"

OPENVPN_TLS_CRYPT = "/etc/openvpn/server/tls-crypt.key"
# Read by OpenVPN on every connection (no restart): one CCD file per organisation and instance (ccd-exclusive: no
# file, no connection), and one empty-ish file per revoked certificate serial (crl-verify ... dir).
OPENVPN_CCD_DIR = "/etc/openvpn/server/ccd"
OPENVPN_CRL_DIR = "/etc/openvpn/server/crl"
SUPERLINK_SUPEREXEC_SECRET = "/etc/flwr/superlink/certs/superexec.secret"


# The flwr connections researchers use (components/federation.config_toml), on the JupyterHub host.
FLWR_RESEARCHER_CONFIG = "/etc/jupyterhub/flwr-config.toml"
SUPERLINK_UNITS = ("superlink.service",)
SUPEREXEC_UNIT = "superlink-superexec.service"  # isolation=process: the SuperExec beside the SuperLink
SUPERLINK_PROXY_UNIT = "superlink-proxy.service"  # nginx enforcing which networks reach which SuperLink API path
SUPERLINK_ACL_DIR = "/etc/nginx/superlink-acl"  # its allow lists, delivered: membership changes in operation
DELIVER_COMMAND = "/usr/local/sbin/nina-deliver"  # nina/deliver.py, installed by the base fragment


def supernode_unit(name: str) -> str:
    """One systemd instance per SuperNode on a host (supernode@.service)."""
    return f"supernode@{name}.service"


def supernode_dir(name: str) -> str:
    """Each SuperNode on a host has its own config dir (several may share a host, §4.1.3.3.1)."""
    return f"/etc/flwr/supernode/{name}"


def supernode_key(name: str) -> str:
    return f"{supernode_dir(name)}/certs/client_credentials"
