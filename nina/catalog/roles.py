"""The role table: everything a role a host can carry is, in the Operations Manual's words, one row per role.

A row says which service users and venv the role needs, which units it runs, where it may be placed, whether it
faces the internet, whether one host carries it (singleton) or one instance serves each federation (tenancy), the
internal name clients use for it, where its server certificate and its secrets file land and where each secret in
that file comes from, the public name nginx serves it under, the OIDC client it registers in Keycloak, the
credentials it needs and the databases it owns.

Everything else reads this table: the config model (which roles exist, placement, singletons), the firewall plan,
the PKI, the SSH delivery (certificates, env files, credentials), cloud-init (users, venvs, fragments), the ingress,
Keycloak's realm, the alerts and the deployment checklist. The ports a role serves are rows of the port table
(nina/catalog/ports.py) naming the role; the files it installs are its template folder (cloudinit/templates/<role>).
Adding a role is one row here, its port rows and its template folder (README "Adding a role").
"""

from __future__ import annotations

from dataclasses import dataclass

from nina.catalog import layout
from nina.catalog.databases import Database

# Every host, whatever its roles (§4.1.2.1: "this needs to be executed on all servers").
SYSTEM_GROUP = "fl_system"
BASE_UNITS = ("ssh.service", "prometheus-node-exporter.service", layout.LOG_PATTERNS_UNIT)
# The users researchers' apps and their SuperExec run as, on hosts whose roles run apps: not in fl_system.
APP_USERS = (layout.SUPEREXEC_USER, layout.APP_USER)
# nftables tables every host loads: only root may ask the instance metadata service (user-data is readable there).
BASE_GUARDS = (layout.METADATA_GUARD,)

# Where a role may sit: the kinds of segment of nina:network.segments (§3.3).
PUBLIC, INTERNAL, ORGANISATION = "public", "internal", "organisation"
SERVER_SEGMENTS = frozenset({PUBLIC, INTERNAL})


# ------------------------------------------------------------------------------------------ where a secret comes from


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class FromCredential:
    """A password or token of CREDENTIALS: set with `pulumi config set --secret`, or generated."""

    name: str


@dataclass(frozen=True)
class DatabaseAddress:
    """Where the managed Postgres listens, formatted with {address}, {port} and {database}."""

    database: str
    template: str


@dataclass(frozen=True)
class DatabasePassword:
    """The password of the role that owns the database."""

    database: str


Source = Literal | FromCredential | DatabaseAddress | DatabasePassword


@dataclass(frozen=True)
class EnvVar:
    name: str
    source: Source


# -------------------------------------------------------------------------------------------------- a row's parts


@dataclass(frozen=True)
class ServerTls:
    """Where the role's server certificate from the local CA, and its key, land; the units restarted on renewal."""

    cert: str
    key: str
    owner: str  # user:group
    units: tuple[str, ...]


@dataclass(frozen=True)
class ServiceEnv:
    """The secrets file a service reads with EnvironmentFile= (KEY=value lines, delivered over SSH)."""

    service: str  # names the file: layout.SECRETS_DIR/<service>.env
    unit: str  # restarted when the file changes
    variables: tuple[EnvVar, ...]
    oidc_client_secrets: bool = False  # plus NINA_<CLIENT>_CLIENT_SECRET for every OIDC client (Keycloak's realm)

    @property
    def path(self) -> str:
        return f"{layout.SECRETS_DIR}/{self.service}.env"


@dataclass(frozen=True)
class PublicService:
    """`<label>.<nina:dns.public_domain>`: nginx on the ingress host forwards it to the role's alias on `port`."""

    label: str
    port: str  # a row of the port table


@dataclass(frozen=True)
class OidcClient:
    """A confidential client of Keycloak's realm `nina`; its secret is the credential `<client_id>-oidc-client`."""

    client_id: str
    callback: str  # path of the redirect URI under the role's public name
    pkce: bool

    @property
    def credential(self) -> str:
        return f"{self.client_id}-oidc-client"

    @property
    def env_var(self) -> str:
        return f"NINA_{self.client_id.upper()}_CLIENT_SECRET"


@dataclass(frozen=True)
class Credential:
    """A service password or token: from `pulumi config set --secret nina:<config_key>` when set, else generated
    (pulumi-random, kept in state). Every one is a Pulumi secret."""

    name: str  # the resource name and the key the delivery refers to
    config_key: str | None = None
    length: int = 32
    hex_bytes: bool = False  # random bytes, hex encoded (JupyterHub's crypt key must be 32 bytes)


@dataclass(frozen=True)
class Role:
    name: str  # as written in a stack's `roles:` list
    component: str  # the manual's name for it (§3.2)
    segments: frozenset[str]  # kinds of segment it may sit in (§3.3)
    service_users: tuple[str, ...] = ()  # §4.1.2.1: system users, no shell, group fl_system
    python_venv: str | None = None  # §4.1.2.11
    units: tuple[str, ...] = ()  # systemd units the role runs (alerting watches these, §5.3.4)
    public_facing: bool = False  # gets a floating IP (§3.3: the public-facing partition)
    singleton: bool = False  # exactly one host carries it (its names are single)
    tenancy_scoped: bool = False  # one instance per federation (its own security group)
    assignable: bool = True  # False: implied by other host settings, never written in `roles:`
    alias: str | None = None  # internal service name; "{federation}" is filled per tenancy
    tls: ServerTls | None = None
    env: ServiceEnv | None = None
    public: PublicService | None = None
    oidc_client: OidcClient | None = None
    credentials: tuple[Credential, ...] = ()
    databases: tuple[Database, ...] = ()  # §4.3.1; the role's host backs them up
    reload_on_hosts_change: tuple[str, ...] = ()  # units that read peers' addresses from /etc/hosts only at start
    guards: tuple[str, ...] = ()  # nftables tables ("family name") the role's host must have loaded (nina-check)
    runs_apps: bool = False  # researchers' apps run here: the SuperExec and app users, their launcher and guard
    apps_reach_internet: bool = False  # its apps may open public addresses (never private ones, never this host's ports)

    def alias_for(self, federation: str) -> str:
        assert self.alias is not None
        return self.alias.format(federation=federation)



ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            "ingress",
            "ReverseProxy nginx",
            frozenset({PUBLIC}),
            units=("nginx.service",),
            public_facing=True,
            singleton=True,
            alias="ingress",
            tls=ServerTls("/etc/nginx/certs/internal.pem", "/etc/nginx/certs/internal.key", "root:www-data", ("nginx.service",)),
            # nginx resolves its upstreams when it loads its configuration
            reload_on_hosts_change=("reload:nginx.service",),
        ),
        Role(
            "iam",
            "IAM Keycloak",
            SERVER_SEGMENTS,
            service_users=("keycloak",),
            units=("keycloak.service",),
            singleton=True,
            alias="keycloak",
            tls=ServerTls("/opt/keycloak/conf/certs/server.pem", "/opt/keycloak/conf/certs/serverkey.pem", "keycloak:fl_system", ("keycloak.service",)),
            # Keycloak reads KC_* itself; nina-realm reads the admin's and sets the clients' NINA_*_CLIENT_SECRET.
            env=ServiceEnv(
                "keycloak",
                "keycloak.service",
                (
                    EnvVar("KC_DB_URL", DatabaseAddress("keycloakdb_server", "jdbc:postgresql://{address}:{port}/{database}")),
                    EnvVar("KC_DB_USERNAME", Literal("keycloak")),
                    EnvVar("KC_DB_PASSWORD", DatabasePassword("keycloakdb_server")),
                    EnvVar("KC_BOOTSTRAP_ADMIN_USERNAME", Literal("admin")),
                    EnvVar("KC_BOOTSTRAP_ADMIN_PASSWORD", FromCredential("keycloak-admin")),
                ),
                oidc_client_secrets=True,
            ),
            public=PublicService("keycloak", "keycloak"),
            credentials=(Credential("keycloak-admin", "keycloak_admin_password"),),
            databases=(Database("keycloakdb_server", "keycloak", "keycloak.service"),),
        ),
        Role(
            "notebook",
            "UserInterface JupyterHub",
            SERVER_SEGMENTS,
            service_users=("jupyterhub",),
            python_venv="/opt/python/jupyter_env",
            units=("jupyterhub.service", "docker.service", layout.NOTEBOOK_GUARD_UNIT),
            singleton=True,
            alias="jupyterhub",
            tls=ServerTls("/etc/jupyterhub/certs/server.pem", "/etc/jupyterhub/certs/server.key", "jupyterhub:fl_system", ("jupyterhub.service",)),
            # GenericOAuthenticator reads OAUTH_CLIENT_SECRET; JupyterHub reads JUPYTERHUB_CRYPT_KEY and CONFIGPROXY_AUTH_TOKEN.
            env=ServiceEnv(
                "jupyterhub",
                "jupyterhub.service",
                (
                    EnvVar("OAUTH_CLIENT_SECRET", FromCredential("jupyterhub-oidc-client")),
                    EnvVar("JUPYTERHUB_CRYPT_KEY", FromCredential("jupyterhub-crypt-key")),
                    EnvVar("CONFIGPROXY_AUTH_TOKEN", FromCredential("configproxy-auth-token")),
                ),
            ),
            public=PublicService("flhub", "jupyterhub"),
            oidc_client=OidcClient("jupyterhub", "/hub/oauth_callback", pkce=True),
            credentials=(Credential("configproxy-auth-token"), Credential("jupyterhub-crypt-key", length=32, hex_bytes=True)),
            guards=(layout.NOTEBOOK_GUARD,),
        ),
        Role(
            "superlink",
            "Flower SuperLink",
            SERVER_SEGMENTS,
            service_users=("superlink",),
            python_venv="/opt/python/flower_env",
            units=("superlink.service", layout.SUPERLINK_PROXY_UNIT, layout.SUPEREXEC_UNIT, layout.APPS_GUARD_UNIT),
            tenancy_scoped=True,
            alias="superlink-{federation}",
            # nginx in front of the SuperLink serves the same certificate
            tls=ServerTls("/etc/flwr/superlink/certs/server.pem", "/etc/flwr/superlink/certs/server.key", "superlink:fl_system", ("superlink.service", layout.SUPERLINK_PROXY_UNIT)),
            guards=(layout.APPS_GUARD_TABLE,),
            runs_apps=True,
            # ServerApps hold no site's data: runtime dependency installs (uv) and public datasets are allowed.
            apps_reach_internet=True,
        ),
        Role(
            "supernode",
            "Flower SuperNode",
            frozenset({ORGANISATION}),
            service_users=("supernode",),
            python_venv="/opt/python/flower_env",
            # one instance each per SuperNode on the host (layout.supernode_unit, layout.supernode_superexec_unit)
            units=("supernode@.service", "supernode-superexec@.service", layout.APPS_GUARD_UNIT),
            tenancy_scoped=True,
            guards=(layout.APPS_GUARD_TABLE,),
            runs_apps=True,
        ),
        Role(
            "vpn",
            "Nectar.VPN OpenVPN server",
            frozenset({PUBLIC}),
            units=("openvpn-server@.service",),  # its UDP and TCP instances (layout.OPENVPN_SERVER_UNITS)
            public_facing=True,
            tenancy_scoped=True,
            alias="vpn-{federation}",
            tls=ServerTls("/etc/openvpn/server/server.crt", "/etc/openvpn/server/server.key", "root:root", layout.OPENVPN_SERVER_UNITS),
            guards=(layout.VPN_FORWARD,),
        ),
        Role(
            "monitoring",
            "Monitoring Prometheus + Grafana",
            SERVER_SEGMENTS,
            units=("prometheus.service", "prometheus-alertmanager.service", "prometheus-blackbox-exporter.service", "grafana-server.service"),
            singleton=True,
            alias="grafana",
            tls=ServerTls("/etc/grafana/certs/server.pem", "/etc/grafana/certs/server.key", "root:grafana", ("grafana-server.service",)),
            # Grafana maps GF_<SECTION>_<KEY> onto grafana.ini.
            env=ServiceEnv(
                "grafana",
                "grafana-server.service",
                (
                    EnvVar("GF_DATABASE_HOST", DatabaseAddress("grafanadb_server", "{address}:{port}")),
                    EnvVar("GF_DATABASE_PASSWORD", DatabasePassword("grafanadb_server")),
                    EnvVar("GF_SECURITY_ADMIN_PASSWORD", FromCredential("grafana-admin")),
                    EnvVar("GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET", FromCredential("grafana-oidc-client")),
                ),
            ),
            public=PublicService("grafana", "grafana"),
            oidc_client=OidcClient("grafana", "/login/generic_oauth", pkce=False),
            credentials=(Credential("grafana-admin", "grafana_admin_password"),),
            databases=(Database("grafanadb_server", "grafana", "grafana-server.service"),),
        ),
        # A host with `gpu: true` carries this role: NVIDIA driver, DCGM and its exporter (§3.2.2, §5.1.1).
        Role(
            "gpu",
            "Nvidia.GPU drivers + DCGM exporter",
            frozenset({PUBLIC, INTERNAL, ORGANISATION}),
            units=("nvidia-persistenced.service", "nvidia-dcgm.service", "dcgm-exporter.service"),
            assignable=False,
        ),
    )
}

# ------------------------------------------------------------------------------------------- read off the rows

ASSIGNABLE_ROLES = tuple(name for name, role in ROLES.items() if role.assignable)
SINGLETON_ROLES = tuple(name for name, role in ROLES.items() if role.singleton)
WEB_ROLES = tuple(role for role in ROLES.values() if role.public is not None)  # what nginx serves, in table order
OIDC_CLIENTS = tuple(role.oidc_client for role in ROLES.values() if role.oidc_client is not None)
# §4.3.1: every database of the platform, in table order.
DATABASES: dict[str, Database] = {db.name: db for role in ROLES.values() for db in role.databases}
# Every service credential: each role's own, then each OIDC client's secret (held by Keycloak and by the client).
CREDENTIALS: tuple[Credential, ...] = tuple(c for role in ROLES.values() for c in role.credentials) + tuple(
    Credential(client.credential) for client in OIDC_CLIENTS
)


def env_variables(env: ServiceEnv) -> tuple[EnvVar, ...]:
    """The variables of a secrets file: the row's own, and every OIDC client's secret where the service asks for them."""
    extra = tuple(EnvVar(client.env_var, FromCredential(client.credential)) for client in OIDC_CLIENTS) if env.oidc_client_secrets else ()
    return env.variables + extra


def server_tls(role: str) -> ServerTls:
    """Where a role's server certificate lands (for roles known to have one)."""
    tls = ROLES[role].tls
    assert tls is not None, f"role {role} has no server certificate"
    return tls
