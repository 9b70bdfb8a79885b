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
DELIVER_COMMAND = "/usr/local/sbin/nina-deliver"  # nina/onhost/nina_deliver.py, installed by each delivery
CHECK_COMMAND = "/usr/local/sbin/nina-check"  # nina/onhost/nina_check.py (§4.2)
CHECKLIST_PATH = "/etc/nina/checklist.json"  # what nina-check checks (nina/plan/checklist.py)

# ------------------------------------------------------------------------------------------------------ OpenVPN
# One tenancy's OpenVPN server runs as two instances of the stock unit: UDP 1194 and the TCP 443 fallback.
OPENVPN_SERVER_UNITS = ("openvpn-server@server-udp.service", "openvpn-server@server-tcp.service")
OPENVPN_TLS_CRYPT = "/etc/openvpn/server/tls-crypt.key"
# Read by OpenVPN on every connection (no restart): one CCD file per organisation and instance (ccd-exclusive: no
# file, no connection), and one empty-ish file per revoked certificate serial (crl-verify ... dir).
OPENVPN_CCD_DIR = "/etc/openvpn/server/ccd"
OPENVPN_CRL_DIR = "/etc/openvpn/server/crl"

# ------------------------------------------------------------------------------------------------------- Flower
SUPERLINK_SUPEREXEC_SECRET = "/etc/flwr/superlink/certs/superexec.secret"
# The flwr connections researchers use (nina/plan/flower.config_toml), on the JupyterHub host.
FLWR_RESEARCHER_CONFIG = "/etc/jupyterhub/flwr-config.toml"
SUPERLINK_UNITS = ("superlink.service",)
SUPEREXEC_UNIT = "superlink-superexec.service"  # isolation=process: the SuperExec beside the SuperLink
SUPERLINK_PROXY_UNIT = "superlink-proxy.service"  # nginx enforcing which networks reach which SuperLink API path
SUPERLINK_ACL_DIR = "/etc/nginx/superlink-acl"  # its allow lists, delivered: membership changes in operation


def supernode_unit(name: str) -> str:
    """One systemd instance per SuperNode on a host (supernode@.service)."""
    return f"supernode@{name}.service"


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
