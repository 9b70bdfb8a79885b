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
OPERATOR_KEYS_DIR = "/etc/ssh/nina-operators"  # <user>: the operators' keys, delivered (sshd's AuthorizedKeysFile)
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

# ---------------------------------------------------------------------------------------------- nftables guards
# Each guard is one table ("family name"), loaded by its unit and checked by nina-check (the role table's `guards`).
METADATA_GUARD = "inet nina_metadata_guard"  # every host: only root asks the instance metadata service
APPS_GUARD_TABLE = "inet nina_apps"  # where researchers' Flower apps may connect (nina/plan/apps.py)
NOTEBOOK_GUARD = "inet nina_jupyter_guard"  # where researchers' notebook containers may connect (nina/plan/notebook.py)
VPN_FORWARD = "inet nina_vpn"  # what a tenancy's VPN forwards (nina/plan/openvpn.py)
NOTEBOOK_GUARD_RULES = "/etc/jupyterhub/container-guard.nft"  # delivered: its SuperLinks change with the federations
NOTEBOOK_GUARD_UNIT = "nina-jupyter-guard.service"

# ------------------------------------------------------------------------------------------------------ OpenVPN
# One tenancy's OpenVPN server runs as two instances of the stock unit: UDP 1194 and the TCP 443 fallback.
OPENVPN_SERVER_UNITS = ("openvpn-server@server-udp.service", "openvpn-server@server-tcp.service")
OPENVPN_TLS_CRYPT = "/etc/openvpn/server/tls-crypt.key"
# Read by OpenVPN on every connection (no restart): one CCD file per organisation and instance (ccd-exclusive: no
# file, no connection), and one empty-ish file per revoked certificate serial (crl-verify ... dir).
OPENVPN_CCD_DIR = "/etc/openvpn/server/ccd"
OPENVPN_CRL_DIR = "/etc/openvpn/server/crl"

# Keycloak's realm as the stack describes it (nina/plan/realm.py), applied by nina-realm (nina/onhost/nina_realm.py)
# through the admin API: on every `pulumi up` that changes it, and hourly against drift.
REALM_DESIRED = "/etc/nina/realm.json"
REALM_COMMAND = "/usr/local/sbin/nina-realm"
REALM_UNIT = "nina-realm.service"
REALM_TIMER = "nina-realm.timer"  # re-applies the realm hourly against drift
KEYCLOAK_SMTP_PASSWORD = "/etc/nina/secrets/keycloak-smtp-password"  # with nina:smtp.username

# ------------------------------------------------------------------------------------------------- JupyterHub
JUPYTERHUB_CONFIG = "/etc/jupyterhub/config/jupyterhub_config.py"  # delivered: the per-container limits change in operation
JUPYTERHUB_STATE = f"{STATE_DIR}/jupyterhub"  # the hub's database, cookie secret, researchers' work directories
# The containers' Docker network (made by the bootstrap; bridge.enable_icc=false: no traffic between containers).
NOTEBOOK_BRIDGE = "nina-jupyter"
NOTEBOOK_SUBNET = "172.31.255.0/24"
NOTEBOOK_GATEWAY = "172.31.255.1"  # the hub API listens here, the containers' only way to this host
# Who reaches which federation (README "People and federations"): at each spawn the hub gives the container an
# address of its own and runs NOTEBOOK_ACCESS_COMMAND, which records (address, federations) in NOTEBOOK_ACCESS_DIR
# and fills the container guard's set NOTEBOOK_ACCESS_SET with (address . SuperLink) pairs; at stop, removes them.
NOTEBOOK_FEDERATIONS = "/etc/jupyterhub/federations.json"  # delivered (nina/plan/notebook.py): groups, SuperLinks, flwr connections
NOTEBOOK_ACCESS_COMMAND = "/usr/local/sbin/nina-jupyter-access"
NOTEBOOK_ACCESS_DIR = f"{JUPYTERHUB_STATE}/access"
NOTEBOOK_ACCESS_SET = "access"
# The researchers' image: the pinned Jupyter image plus flwr at the platform's pin, built on the hub from the
# delivered Dockerfile and tagged with its digest (nina-notebook:<12 hex>), so a new pin is a delivery, not a VM.
NOTEBOOK_IMAGE_DIR = "/etc/jupyterhub/image"
NOTEBOOK_IMAGE_REPOSITORY = "nina-notebook"
NOTEBOOK_IMAGE_COMMAND = "/usr/local/sbin/nina-notebook-image"
NOTEBOOK_IMAGE_UNIT = "nina-notebook-image.service"

# ------------------------------------------------------------------------------------------------------- Flower
# Researchers' code (ServerApps beside the SuperLink, ClientApps beside each SuperNode) runs as APP_USER. Its
# flower-superexec runs as SUPEREXEC_USER without capabilities and holds the SuperExec secret; it starts each app
# through APP_LAUNCHER, which may only `sudo` to APP_USER and run APP_RUNNER (APP_SUDOERS): each app gets a fresh
# home, removed when it exits. Neither user is in fl_system, so neither reads the SuperLink's or SuperNodes' keys,
# state or secrets; nftables (the apps guard) keeps both off the platform's ports. README "Threat model".
# The federation's ML runtime beside a SuperLink or SuperNode (README "Runtimes"): the lock delivered, a venv built
# from it per lock digest by RUNTIME_COMMAND, and RUNTIME_CURRENT pointing at the one apps start from.
RUNTIME_LOCK = "/etc/nina/runtime/requirements.txt"
RUNTIME_ROOT = "/opt/python/runtime"
RUNTIME_CURRENT = f"{RUNTIME_ROOT}/current"
RUNTIME_MARKER = ".nina-lock-sha256"  # in a built venv: the sha256 of the lock it was installed from, written last
RUNTIME_IN_USE = ".in-use"  # in a built venv: each app holds a shared flock on it; the builder removes only unheld ones
RUNTIME_COMMAND = "/usr/local/sbin/nina-runtime"
RUNTIME_UNIT = "nina-runtime.service"
SUPEREXEC_USER = "superexec"
APP_USER = "flwr-app"
# The apps' HOME and FLWR_HOME (installed FABs), APP_USER's alone: not under STATE_DIR, which only fl_system enters.
APP_HOME = "/var/lib/flwr-app"
APP_LAUNCHER = "/usr/local/lib/nina/flwr-app/launch"  # as SUPEREXEC_USER: sudo to APP_USER, APP_RUNNER
APP_RUNNER = "/usr/local/lib/nina/flwr-app/run-app"  # as APP_USER: a fresh home, the app, the home removed
APP_SUDOERS = "/etc/sudoers.d/nina-flwr-app"  # SUPEREXEC_USER may run APP_RUNNER as APP_USER, and nothing else
APP_LAUNCHER_DIR = "/usr/local/lib/nina/flwr-app/bin"  # first on the SuperExec's PATH: each app command -> APP_LAUNCHER
# What flower-superexec may start, as APP_USER: ServerApps, ClientApps, simulations. flwr 1.41's other task types
# (agent apps, models, connectors) are refused by the launcher: they need runtime calls the proxy does not pass.
APP_COMMANDS = ("flwr-serverapp", "flwr-clientapp", "flwr-simulation")
APPS_GUARD = "/etc/nina/apps-guard.nft"  # the APPS_GUARD_TABLE ruleset
APPS_GUARD_UNIT = "nina-apps-guard.service"
# In the site kit's container image the users have fixed ids, so a site can grant the apps its data by number.
IMAGE_IDS = {"fl_system": 10000, "supernode": 10001, SUPEREXEC_USER: 10002, APP_USER: 10003}
SUPEREXEC_DIR = "/etc/flwr/superexec"  # root:superexec 0750: the SuperExec secrets, read by the SuperExec and its peer
SUPERLINK_SUPEREXEC_SECRET = f"{SUPEREXEC_DIR}/superlink.secret"
SUPERLINK_UNITS = ("superlink.service",)
SUPEREXEC_UNIT = "superlink-superexec.service"  # the SuperExec beside the SuperLink: it starts the ServerApps
SUPERLINK_PROXY_UNIT = "superlink-proxy.service"  # nginx enforcing which networks reach which SuperLink API path
# When the SuperLink last heard from each registered SuperNode, for monitoring (README "Operations"): the expected
# SuperNodes delivered, a collector asking the loopback Control API each minute, node exporter's textfile.
SUPERNODES_EXPECTED = "/etc/nina/supernodes.json"
SUPERNODE_METRICS_COMMAND = "/usr/local/lib/nina/nina-supernode-metrics.py"
SUPERNODE_METRICS_UNIT = "nina-supernode-metrics.service"
SUPERNODE_METRICS_TIMER = "nina-supernode-metrics.timer"
# Each on-premises site's tunnel, for monitoring (README "Operations"): the sites delivered to the VPN host and a
# collector reading the OpenVPN servers' status files each minute into node exporter's textfile.
VPN_SITES_EXPECTED = "/etc/nina/vpn-sites.json"
VPN_METRICS_COMMAND = "/usr/local/lib/nina/nina-vpn-metrics.py"
VPN_METRICS_UNIT = "nina-vpn-metrics.service"
VPN_METRICS_TIMER = "nina-vpn-metrics.timer"
FLWR_LOCAL_CONFIG = "/etc/nina/flwr-local.toml"  # a flwr connection "local" to the loopback SuperLink
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
# Alertmanager (user prometheus) reads it itself; only with nina:smtp.username.
SMTP_PASSWORD_PATH = "/etc/prometheus/alertmanager-smtp-password"
DASHBOARD_DIR = "/etc/grafana/dashboards/nina"  # Grafana's file provider rescans the folder
DASHBOARD_PATH = f"{DASHBOARD_DIR}/node-overview.json"

# The log patterns of manual §5.3 (nina/catalog/logs.py): the mtail program, the service that feeds it the journal,
# and the job that publishes its counters through node exporter's textfile collector.
LOG_PATTERNS_DIR = "/usr/local/lib/nina/mtail"
LOG_PATTERNS_COMMAND = "/usr/local/sbin/nina-log-patterns"
LOG_PATTERNS_UNIT = "nina-log-patterns.service"
LOG_PATTERNS_PUBLISH_UNIT = "nina-log-patterns-publish.service"

# The third-party APT repositories' keys (nina/catalog/apt.py), re-checked against their pins weekly on every host.
APT_KEYS_COMMAND = "/usr/local/sbin/nina-apt-keys"
APT_KEYS_UNIT = "nina-apt-keys.service"
APT_KEYS_TIMER = "nina-apt-keys.timer"
