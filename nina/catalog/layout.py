"""Where things land on each host (manual §4.1.1): paths and unit names shared by the templates, the SSH delivery
and the deployment checklist.

Secrets and anything that changes in operation never travel in user-data: after cloud-init finishes, a
pulumi-command step (components/delivery.py) installs them with the owner and mode the delivery gives and restarts
only the units that read them. Services whose files are missing are skipped by systemd (ConditionPathExists), not
crash-looped, until the delivery has run. Each role's server certificate and secrets file are in its row of the role
table (nina/catalog/roles.py).
"""

from __future__ import annotations

CA_TRUST_PATH = "/usr/local/share/ca-certificates/nina-local-ca.crt"  # update-ca-certificates picks it up
CA_PEM = "/etc/ssl/certs/nina-local-ca.pem"  # the same CA, at a fixed absolute path for flwr and nginx
SECRETS_DIR = "/etc/nina/secrets"  # root:fl_system 0750; one env file per service
STATE_DIR = "/var/lib/nina"  # on the host's state volume when it has one (§4.1.1), which outlives the VM
STATE_LABEL = "nina-state"  # the state volume's filesystem label
DELIVER_COMMAND = "/usr/local/sbin/nina-deliver"  # nina/onhost/nina_deliver.py, installed by each delivery
CHECK_COMMAND = "/usr/local/sbin/nina-check"  # nina/onhost/nina_check.py (§4.2)
CHECKLIST_PATH = "/etc/nina/checklist.json"  # what nina-check checks (nina/plan/checklist.py)
# Written by nina-bootstrap when every bootstrap step succeeded; per cloud-init instance, so a replaced VM starts
# without it. The SSH delivery refuses a host without it.
BOOTSTRAP_MARKER = "/var/lib/cloud/instance/nina-bootstrapped"

# ------------------------------------------------------------------------------------------------------ OpenVPN
# One tenancy's OpenVPN server runs as two instances of the stock unit: UDP 1194 and the TCP 443 fallback.
OPENVPN_SERVER_UNITS = ("openvpn-server@server-udp.service", "openvpn-server@server-tcp.service")
OPENVPN_TLS_CRYPT = "/etc/openvpn/server/tls-crypt.key"
# Read by OpenVPN on every connection (no restart): one CCD file per organisation and instance (ccd-exclusive: no
# file, no connection), and one empty-ish file per revoked certificate serial (crl-verify ... dir).
OPENVPN_CCD_DIR = "/etc/openvpn/server/ccd"
OPENVPN_CRL_DIR = "/etc/openvpn/server/crl"

# ------------------------------------------------------------------------------------------------------- Flower
# Researchers' code (ServerApps beside the SuperLink, ClientApps beside each SuperNode) runs as APP_USER. Its
# flower-superexec runs as SUPEREXEC_USER, holds the SuperExec secret and starts each app through APP_LAUNCHER, which
# drops to APP_USER. Neither user is in fl_system, so neither reads the SuperLink's or SuperNodes' keys, state or
# secrets; nftables (the apps guard) keeps both off the platform's ports. README "Threat model".
SUPEREXEC_USER = "superexec"
APP_USER = "flwr-app"
APP_HOME = "/var/lib/nina/flwr-app"  # the apps' HOME and FLWR_HOME (installed FABs); APP_USER's alone
APP_LAUNCHER = "/usr/local/lib/nina/flwr-app/launch"
APP_LAUNCHER_DIR = "/usr/local/lib/nina/flwr-app/bin"  # first on the SuperExec's PATH: each app command -> APP_LAUNCHER
# What flower-superexec may start (flwr's TASK_TYPE_TO_COMMAND): each one only as APP_USER.
APP_COMMANDS = ("flwr-serverapp", "flwr-clientapp", "flwr-simulation", "flwr-agentapp", "flwr-model", "flwr-connector")
APPS_GUARD = "/etc/nina/apps-guard.nft"
APPS_GUARD_UNIT = "nina-apps-guard.service"
SUPEREXEC_DIR = "/etc/flwr/superexec"  # root:superexec 0750: the SuperExec secrets, read by the SuperExec and its peer
SUPERLINK_SUPEREXEC_SECRET = f"{SUPEREXEC_DIR}/superlink.secret"
# The flwr connections researchers use (nina/plan/flower.config_toml), on the JupyterHub host.
FLWR_RESEARCHER_CONFIG = "/etc/jupyterhub/flwr-config.toml"
SUPERLINK_UNITS = ("superlink.service",)
SUPEREXEC_UNIT = "superlink-superexec.service"  # the SuperExec beside the SuperLink: it starts the ServerApps
SUPERLINK_PROXY_UNIT = "superlink-proxy.service"  # nginx enforcing which networks reach which SuperLink API path
SUPERLINK_ACL_DIR = "/etc/nginx/superlink-acl"  # its allow lists, delivered: membership changes in operation


def supernode_unit(name: str) -> str:
    """One systemd instance per SuperNode on a host (supernode@.service)."""
    return f"supernode@{name}.service"


def supernode_superexec_unit(name: str) -> str:
    """The SuperExec beside SuperNode `name`: it starts the ClientApps (supernode-superexec@.service)."""
    return f"supernode-superexec@{name}.service"


def supernode_superexec_secret(name: str) -> str:
    return f"{SUPEREXEC_DIR}/{name}.secret"


def supernode_dir(name: str) -> str:
    """Each SuperNode on a host has its own config dir (several may share a host, §4.1.3.3.1)."""
    return f"/etc/flwr/supernode/{name}"


def supernode_key(name: str) -> str:
    return f"{supernode_dir(name)}/certs/client_credentials"


# --------------------------------------------------------------------------------------------------- monitoring
# Prometheus scrape targets change in operation (hosts, SuperNodes come and go): file_sd files delivered over SSH.
PROMETHEUS_TARGETS_DIR = "/etc/prometheus/targets"
# Delivered over SSH next to the scrape targets; prometheus.yml loads /etc/prometheus/rules/*.yml.
RULES_DIR = "/etc/prometheus/rules"
RULES_PATH = f"{RULES_DIR}/nina-alerts.yml"
ALERTMANAGER_PATH = "/etc/prometheus/alertmanager.yml"  # the Ubuntu package's path; replaces its example
# Alertmanager (user prometheus) reads it itself; only with nina:monitoring.smtp_username.
SMTP_PASSWORD_PATH = "/etc/prometheus/alertmanager-smtp-password"
DASHBOARD_PATH = "/etc/grafana/dashboards/nina/node-overview.json"  # Grafana's file provider rescans the folder
