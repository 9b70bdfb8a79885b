"""The alert rules: the manual's §5.3 alerts (and the ones it implies elsewhere) as one table of Prometheus rules.

One row per rule. nina/plan/alerts.py renders the table into the Prometheus rules file, Alertmanager's routing
(alertmanager.yml) and the alert dashboard of §5.5.1; tests/test_alerts.py turns each row's `Sample` into a
`promtool test rules` case that must fire the alert, and one that must not. A row without samples cannot be written,
so a new rule always comes with its test.

The manual writes its alerts as Grafana queries with severities low / medium / high (§5.3.1-§5.3.6); we keep its
queries, thresholds, durations and severity words, and evaluate them in Prometheus, routed by Alertmanager.
Rows that share a name are severity levels of one condition with nested thresholds (disk < 0.3 / 0.2 / 0.1): a sample
that fires one level fires every lower level too, and Alertmanager's inhibition mails only the highest.

Labels the rules rely on come from nina/plan/scrape.py: every node-exporter target carries `host`, `environment` and
`roles` (the host's roles between commas, `,ingress,iam,`, so `roles=~".*,iam,.*"` matches exactly one role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nina.catalog import apt, layout, logs
from nina.catalog.databases import SUPERLINK_BACKUP_UNIT, SUPERLINK_STATE_ALERT_BYTES
from nina.catalog.pki import EXPIRY_WARNING_DAYS
from nina.catalog.roles import BASE_UNITS, ROLES

SEVERITIES = ("low", "medium", "high")  # the manual's words (§5.3.3), lowest first
# Mount points the disk alerts watch (§5.3.3 "each priority mount point"): the root disk and the state volume.
PRIORITY_MOUNTS = ("/", "/var/lib/nina")
NODE_EXPORTER_UNIT = "prometheus-node-exporter.service"
# Oneshot jobs of the platform whose failure leaves the stack's description unapplied.
PLATFORM_JOBS = (
    layout.REALM_UNIT, layout.NOTEBOOK_IMAGE_UNIT, layout.RUNTIME_UNIT, layout.SUPERNODE_METRICS_UNIT, layout.VPN_METRICS_UNIT,
    layout.LOG_PATTERNS_PUBLISH_UNIT, layout.APT_KEYS_UNIT,
)
# A registered SuperNode the SuperLink has not heard from for this long cannot take part in a run (its heartbeat
# holds for a few minutes; a restart or a short network outage stays below it).
SUPERNODE_UNSEEN_MINUTES = 30
# A site without a tunnel this long is down, not reconnecting (OpenVPN's keepalive restarts a dead session in 60 s).
SITE_VPN_DOWN_MINUTES = 15
# A site's VPN certificate: warn a month ahead (time to ship and install it), then urgently a week ahead.
SITE_CERT_WARNING_DAYS = (30, 7)
# promtool evaluates every sample at EVAL, after POINTS one-minute points from time 0: long enough for the longest
# `for` (1h) plus the 30m windows; every extra hour costs seconds per case.
POINTS = 120
EVAL_SECONDS = POINTS * 60
EVAL = f"{POINTS}m"
EVALUATION_INTERVAL = "5m"  # promtool's rule evaluation step: every `for` here is a multiple of it


@dataclass(frozen=True)
class Sample:
    """Series (promtool's expanding notation, one point a minute) that must fire the rule, and that must not.

    The alert's expected labels are those of the first `firing` series (without __name__), plus the rule's own
    labels: order the series so the one whose labels the alert keeps comes first.
    """

    firing: dict[str, str]
    healthy: dict[str, str]
    keeps: tuple[str, ...] = ()  # an aggregating rule's `by` labels: the alert keeps only these of the first series


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str  # may use {{ $labels.<name> }} only, so tests can predict the rendered text
    manual: str  # the manual section the rule comes from
    sample: Sample
    labels: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- sample series helpers

_TARGET = 'instance="10.0.0.5:9900",job="node",host="h1",environment="test"'


def _node(roles: str = "monitoring") -> str:
    return f'{_TARGET},roles=",{roles},"'


def _s(metric: str, labels: str) -> str:
    return f"{metric}{{{labels}}}"


_FS = _node() + ',device="/dev/vda1",fstype="ext4",mountpoint="/"'
_PROBE_SL = 'instance="https://superlink-fl.test.nina.internal:9092/health",job="superlink-health",federation="fl",host="h2",environment="test"'
_PROBE_TLS = 'instance="keycloak.test.nina.internal:8443",job="tls",service="keycloak",host="h1",environment="test"'
_PROBE_PUBLIC = 'instance="flhub.test.nina.qcif.edu.au:443",job="public-tls",service="flhub",environment="test"'
PUBLIC_RENEWAL_DAYS = 30  # certbot's default: it renews a certificate with 30 days left
PUBLIC_EXPIRY_DAYS = 21
_GPU = 'instance="10.0.0.7:9400",job="dcgm",host="h3",environment="test",gpu="0",UUID="GPU-1",device="nvidia0",modelName="Tesla"'
_DAY = 86400
_BACKUP = _node() + ',backup="grafanadb_server"'
_SUPERNODE = _node("superlink") + ',federation="fl",supernode="sn1"'
_SITE = 'instance="10.0.0.11:9900",job="node",host="vpn",environment="test",roles=",vpn,",federation="fl",organisation="hosp"'
_SITE_NODE = 'job="site-node",federation="fl",organisation="hosp",host="hosp",environment="test"'


def _const(value: float | int) -> str:
    return f"{value}+0x{POINTS}"


def _rising(step: float | int, start: float | int = 0) -> str:
    sign = "+" if step >= 0 else "-"
    return f"{start}{sign}{abs(step)}x{POINTS}"


# -------------------------------------------------------------------------------------------------------- the table


def _host_rules() -> list[Rule]:
    load = "node_load15 / count without (cpu, mode) (node_cpu_seconds_total{mode=\"idle\"})"
    mem = "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"
    mounts = "|".join(PRIORITY_MOUNTS)  # plain paths: no regex metacharacters to escape
    disk = f'node_filesystem_avail_bytes{{mountpoint=~"{mounts}"}} / node_filesystem_size_bytes{{mountpoint=~"{mounts}"}}'

    def cpu(load15: float) -> dict[str, str]:
        # two CPUs: load15 / 2 is the ratio §5.3.1 alerts on
        return {
            _s("node_load15", _node()): _const(load15),
            _s("node_cpu_seconds_total", _node() + ',cpu="0",mode="idle"'): _rising(1),
            _s("node_cpu_seconds_total", _node() + ',cpu="1",mode="idle"'): _rising(1),
        }

    def memory(available: float) -> dict[str, str]:
        return {_s("node_memory_MemAvailable_bytes", _node()): _const(available), _s("node_memory_MemTotal_bytes", _node()): _const(100)}

    def free(avail: float) -> dict[str, str]:
        return {_s("node_filesystem_avail_bytes", _FS): _const(avail), _s("node_filesystem_size_bytes", _FS): _const(100)}

    up = {_s("up", _node()): _const(0)}
    return [
        Rule(
            "HostDown", 'up{job="node"} == 0', "5m", "high",
            "{{ $labels.host }} ({{ $labels.instance }}): node exporter unreachable, host or exporter down",
            "§3.2.5, §5.2.2", Sample(up, {_s("up", _node()): _const(1)}),
        ),
        # §5.3.1: the 15-minute load average over the number of CPUs; > 0.8 medium, > 0.95 high, for 30 minutes.
        Rule("CpuLoadHigh", f"{load} > 0.8", "30m", "medium", "{{ $labels.host }}: 15-minute load above 80% of its CPUs for 30 minutes",
             "§5.3.1", Sample(cpu(1.7), cpu(1.5))),
        Rule("CpuLoadHigh", f"{load} > 0.95", "30m", "high", "{{ $labels.host }}: 15-minute load above 95% of its CPUs for 30 minutes",
             "§5.3.1", Sample(cpu(1.95), cpu(1.5))),
        # §5.3.2 says "free memory over total memory" but writes MemFree / MemAvailable, which is low whenever the
        # page cache is large (normal). MemAvailable / MemTotal is the ratio its text describes.
        Rule("MemoryLow", f"{mem} < 0.1", "30m", "medium", "{{ $labels.host }}: less than 10% of memory available for 30 minutes",
             "§5.3.2", Sample(memory(8), memory(40))),
        Rule("MemoryLow", f"{mem} < 0.05", "30m", "high", "{{ $labels.host }}: less than 5% of memory available for 30 minutes",
             "§5.3.2", Sample(memory(3), memory(40))),
        # §5.3.3: free / size of each priority mount point; < 0.3 low, < 0.2 medium, < 0.1 high.
        Rule("DiskSpaceLow", f"{disk} < 0.3", "10m", "low", "{{ $labels.host }}: {{ $labels.mountpoint }} has less than 30% free",
             "§5.3.3", Sample(free(25), free(50))),
        Rule("DiskSpaceLow", f"{disk} < 0.2", "10m", "medium", "{{ $labels.host }}: {{ $labels.mountpoint }} has less than 20% free",
             "§5.3.3", Sample(free(15), free(50))),
        Rule("DiskSpaceLow", f"{disk} < 0.1", "10m", "high", "{{ $labels.host }}: {{ $labels.mountpoint }} has less than 10% free",
             "§5.3.3", Sample(free(5), free(50))),
        # §5.3.3 warns that unrotated logs fill disks: say so a day ahead, from the last 6 hours' trend.
        Rule(
            "DiskWillFillIn24h", f'predict_linear(node_filesystem_avail_bytes{{mountpoint=~"{mounts}"}}[6h], 86400) < 0', "1h", "medium",
            "{{ $labels.host }}: {{ $labels.mountpoint }} will be full within 24 hours at the current rate", "§5.3.3",
            Sample({_s("node_filesystem_avail_bytes", _FS): _rising(-1e9, 1e11)}, {_s("node_filesystem_avail_bytes", _FS): _const(1e11)}),
        ),
        # §4.3.1: database backups (the role table's databases). Each backup publishes, through node exporter's textfile
        # collector, the time of its last success and how old that may grow on the stack's schedule.
        Rule(
            "BackupStale", "time() - nina_backup_last_success_timestamp_seconds > nina_backup_max_age_seconds", "1h", "medium",
            "{{ $labels.host }}: the last successful {{ $labels.backup }} backup is older than its schedule allows", "§4.3.1",
            # the series' value is the backup's Unix time; samples are evaluated at EVAL, two hours after time 0
            Sample(
                {_s("nina_backup_last_success_timestamp_seconds", _BACKUP): _const(-40 * _DAY), _s("nina_backup_max_age_seconds", _BACKUP): _const(35 * _DAY)},
                {_s("nina_backup_last_success_timestamp_seconds", _BACKUP): _const(0), _s("nina_backup_max_age_seconds", _BACKUP): _const(35 * _DAY)},
            ),
        ),
        Rule(
            "BackupFailed", f'node_systemd_unit_state{{{_unit_matcher("nina-backup@.service")},state="failed"}} == 1', "5m", "medium",
            "{{ $labels.host }}: {{ $labels.name }} failed (journalctl -u {{ $labels.name }})", "§4.3.1",
            Sample(
                {_s("node_systemd_unit_state", _node("iam") + ',name="nina-backup@keycloakdb_server.service",state="failed",type="oneshot"'): _const(1)},
                {_s("node_systemd_unit_state", _node("iam") + ',name="nina-backup@keycloakdb_server.service",state="failed",type="oneshot"'): _const(0)},
            ),
        ),
        # Federated runs need their SuperNodes: what the SuperLink itself says (nina-supernode-metrics on its host).
        Rule(
            "SuperNodeNotSeen",
            f"nina_supernode_registered == 1 and time() - nina_supernode_online_until_timestamp_seconds > {SUPERNODE_UNSEEN_MINUTES * 60}",
            "5m", "high",
            "{{ $labels.supernode }} of {{ $labels.federation }}: the SuperLink has not heard from it for over "
            + f"{SUPERNODE_UNSEEN_MINUTES} minutes (the site's tunnel, its SuperNode, or its key); runs wait for it", "§5.3",
            Sample(
                {_s("nina_supernode_registered", _SUPERNODE): _const(1), _s("nina_supernode_online_until_timestamp_seconds", _SUPERNODE): _const(0)},
                # never heard of, and not registered: SuperNodeNotRegistered's, not this one's
                {_s("nina_supernode_registered", _SUPERNODE): _const(0), _s("nina_supernode_online_until_timestamp_seconds", _SUPERNODE): _const(0)},
            ),
        ),
        Rule(
            "SuperNodeNotRegistered", "nina_supernode_registered == 0", "15m", "high",
            "{{ $labels.supernode }} of {{ $labels.federation }}: the stack registers it but the SuperLink does not know its key "
            "(a restored or lost database: README, Federations)", "§5.3",
            Sample({_s("nina_supernode_registered", _SUPERNODE): _const(0)}, {_s("nina_supernode_registered", _SUPERNODE): _const(1)}),
        ),
        # The platform's own jobs: the realm applied in place (people, groups), the researchers' notebook image built.
        Rule(
            "PlatformJobFailed",
            f'node_systemd_unit_state{{name=~"{"|".join(_regex(u) for u in PLATFORM_JOBS)}",state="failed"}} == 1', "15m", "medium",
            "{{ $labels.host }}: {{ $labels.name }} failed: what the stack describes (realm, notebook image, ML runtime, metrics, "
            "APT keys) is not what the host has (journalctl -u {{ $labels.name }})",
            "§5.3.4",
            Sample(
                {_s("node_systemd_unit_state", _node("iam") + f',name="{layout.REALM_UNIT}",state="failed",type="oneshot"'): _const(1)},
                {_s("node_systemd_unit_state", _node("iam") + f',name="{layout.REALM_UNIT}",state="failed",type="oneshot"'): _const(0)},
            ),
        ),
    ]


def _regex(unit: str) -> str:
    """A unit name as an exact PromQL regex, inside a PromQL string ("." escaped for the regex, then the string)."""
    return unit.replace(".", "\\\\.")


def _camel(unit: str) -> str:
    """openvpn-server@server.service -> OpenvpnServer (an instance's name adds nothing to the alert's)."""
    base = unit.removesuffix(".service").split("@")[0]
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", base) if part)


def _unit_matcher(unit: str) -> str:
    # A template unit (supernode@.service) covers every instance of it. Unit names hold no regex metacharacter
    # but "."; it is escaped twice, once for the regex and once for the PromQL string.
    if unit.endswith("@.service"):
        return f'name=~"{unit.removesuffix(".service")}.+\\\\.service"'
    return f'name="{unit}"'


def unit_roles() -> dict[str, tuple[str, ...]]:
    """unit -> roles whose hosts run it; () for units every host runs (BASE_UNITS)."""
    units: dict[str, tuple[str, ...]] = {u: () for u in BASE_UNITS}
    for role in ROLES.values():
        for unit in role.units:
            if units.get(unit) == ():
                continue
            units[unit] = units.get(unit, ()) + (role.name,)
    return units


def _unit_rules() -> list[Rule]:
    """§5.3.4: one rule per key unit: not active for 30 minutes (high), and restarting repeatedly (medium).

    "Not active" covers failed, inactive, and a unit that does not exist at all on a host whose roles need it
    (the manual's state=~"failed|inactive" misses the last): every up node target of the role's hosts, unless the
    unit reports active there. Restarts come from the systemd collector's restart counter, which counts each
    automatic restart; the manual's sum of "activating" samples also counts one slow start.
    """
    rules = []
    for unit, roles in unit_roles().items():
        match = _unit_matcher(unit)
        role_filter = f',roles=~".*,({"|".join(roles)}),.*"' if roles else ""
        where = f"the {'/'.join(roles)} host" if roles else "every host"
        target = _node(roles[0] if roles else "monitoring")
        instance = unit.replace("@.service", "@x.service")
        state = f'{target},name="{instance}",state="active",type="simple"'
        # The node exporter cannot report its own state while it is down (HostDown says so); its restarts it can.
        if unit != NODE_EXPORTER_UNIT:
            rules.append(
                Rule(
                    f"{_camel(unit)}Down",
                    f'up{{job="node"{role_filter}}} == 1 unless on (instance) node_systemd_unit_state{{{match},state="active"}} == 1'
                    # one failed instance of a template unit, while its siblings run, is down too
                    + (f' or node_systemd_unit_state{{{match},state="failed"}} == 1' if unit.endswith("@.service") else ""),
                    "30m", "high", "{{ $labels.host }}: " + f"{unit} is not active (failed, stopped or missing) on {where}", "§5.3.4",
                    Sample(
                        {_s("up", target): _const(1), _s("node_systemd_unit_state", state): _const(0)},
                        {_s("up", target): _const(1), _s("node_systemd_unit_state", state): _const(1)},
                    ),
                    labels={"unit": unit},
                )
            )
        rules.append(
            Rule(
                f"{_camel(unit)}Restarting",
                f"increase(node_systemd_service_restart_total{{{match}}}[30m]) > 1",
                "0m", "medium", "{{ $labels.host }}: {{ $labels.name }} restarted more than once in 30 minutes", "§5.3.4",
                Sample(
                    {_s("node_systemd_service_restart_total", f'{target},name="{instance}"'): _rising(1)},
                    {_s("node_systemd_service_restart_total", f'{target},name="{instance}"'): _const(3)},
                ),
                labels={"unit": unit},
            )
        )
    return rules


def _probe_rules() -> list[Rule]:
    expiry = EXPIRY_WARNING_DAYS * _DAY
    return [
        # shared/FLOWER.md: HTTPS /health on the SuperLink port is the check that means something (gRPC health lies).
        Rule(
            "SuperLinkHealthDown", 'probe_success{job="superlink-health"} == 0', "5m", "high",
            "SuperLink of federation {{ $labels.federation }} ({{ $labels.instance }}) does not answer /health", "§5.3.4",
            Sample({_s("probe_success", _PROBE_SL): _const(0)}, {_s("probe_success", _PROBE_SL): _const(1)}),
        ),
        Rule(
            "TlsEndpointDown", 'probe_success{job="tls"} == 0', "15m", "medium",
            "{{ $labels.instance }}: TLS handshake with the local CA failed or the endpoint is unreachable", "§4.1.2.2",
            Sample({_s("probe_success", _PROBE_TLS): _const(0)}, {_s("probe_success", _PROBE_TLS): _const(1)}),
        ),
        # Leaves are renewed EXPIRY_WARNING_DAYS early by `pulumi up` (nina/catalog/pki.py): reaching the window means
        # nobody has run it.
        Rule(
            "CertificateExpiringSoon", f'probe_ssl_earliest_cert_expiry{{job="tls"}} - time() < {expiry}', "1h", "medium",
            "{{ $labels.instance }}: certificate expires within " + f"{EXPIRY_WARNING_DAYS} days; run pulumi up to renew it", "§4.1.2.2",
            Sample(
                {_s("probe_ssl_earliest_cert_expiry", _PROBE_TLS): _const(EVAL_SECONDS + 10 * _DAY)},
                {_s("probe_ssl_earliest_cert_expiry", _PROBE_TLS): _const(EVAL_SECONDS + 300 * _DAY)},
            ),
        ),
        # certbot renews PUBLIC_RENEWAL_DAYS ahead (its default); below PUBLIC_EXPIRY_DAYS the renewal has failed
        # for over a week, long enough to act before browsers refuse the platform.
        Rule(
            "PublicCertificateExpiring", f'probe_ssl_earliest_cert_expiry{{job="public-tls"}} - time() < {PUBLIC_EXPIRY_DAYS * _DAY}', "1h", "high",
            "{{ $labels.instance }}: the public certificate expires within " + f"{PUBLIC_EXPIRY_DAYS} days: certbot has not renewed it "
            "(journalctl -u certbot.service on the ingress host)", "§4.1.2.7",
            Sample(
                {_s("probe_ssl_earliest_cert_expiry", _PROBE_PUBLIC): _const(EVAL_SECONDS + 10 * _DAY)},
                {_s("probe_ssl_earliest_cert_expiry", _PROBE_PUBLIC): _const(EVAL_SECONDS + 60 * _DAY)},
            ),
        ),
        Rule(
            "PublicTlsInvalid", 'probe_success{job="public-tls"} == 0', "30m", "high",
            "{{ $labels.instance }}: browsers refuse the public certificate (still the self-signed stand-in, expired, or the "
            "name is not on it) or the name does not answer", "§4.1.2.7",
            Sample({_s("probe_success", _PROBE_PUBLIC): _const(0)}, {_s("probe_success", _PROBE_PUBLIC): _const(1)}),
        ),
        Rule(
            "AlertmanagerNotificationsFailing", "increase(alertmanager_notifications_failed_total[1h]) > 0", "0m", "medium",
            "Alertmanager cannot deliver {{ $labels.integration }} notifications: alerts reach no one", "§5.2.1",
            Sample(
                {_s("alertmanager_notifications_failed_total", 'instance="127.0.0.1:9093",job="alertmanager",integration="email"'): _rising(1)},
                {_s("alertmanager_notifications_failed_total", 'instance="127.0.0.1:9093",job="alertmanager",integration="email"'): _const(2)},
            ),
        ),
    ]


def _site_rules() -> list[Rule]:
    """On-premises sites, seen from the VPN host (nina-vpn-metrics: tunnels and certificates) and through the tunnel
    (the sites' exporters, scraped at both of a site's tunnel addresses: the better one counts)."""

    def tunnels(udp: int, tcp: int) -> dict[str, str]:
        return {
            _s("nina_vpn_site_connected", _SITE + ',proto="udp"'): _const(udp),
            _s("nina_vpn_site_connected", _SITE + ',proto="tcp"'): _const(tcp),
        }

    def exporter(job: str, udp: int, tcp: int, connected: int) -> dict[str, str]:
        site = _SITE_NODE.replace('job="site-node"', f'job="{job}"')
        return {
            _s("up", f'instance="192.168.100.2:9900",{site},tunnel="udp"'): _const(udp),
            _s("up", f'instance="192.168.100.130:9900",{site},tunnel="tcp"'): _const(tcp),
            **tunnels(connected, 0),
        }

    def expiry(days: float, shipped: int = 1) -> dict[str, str]:
        return {
            _s("nina_vpn_site_certificate_expiry_timestamp_seconds", _SITE): _const(EVAL_SECONDS + days * _DAY),
            _s("nina_vpn_site_certificate_shipped", _SITE): _const(shipped),
        }

    by_site = "max by (federation, organisation)"
    rules = [
        Rule(
            "SiteVpnDown", f"{by_site} (nina_vpn_site_connected) == 0", f"{SITE_VPN_DOWN_MINUTES}m", "high",
            "{{ $labels.organisation }} has no VPN tunnel to {{ $labels.federation }}: its SuperNodes cannot reach the SuperLink "
            "(the site runs nina-check; README: On-premises sites)", "§3.2.4, §5.3",
            Sample(tunnels(0, 0), tunnels(0, 1), ("federation", "organisation")),
        ),
        Rule(
            "VpnStatusStale", "time() - nina_vpn_status_updated_timestamp_seconds > 300", "10m", "medium",
            "{{ $labels.host }}: the {{ $labels.proto }} OpenVPN server of {{ $labels.federation }} has not written its status "
            "for 5 minutes (stopped or hung): no site's tunnel can be seen", "§5.3.4",
            Sample(
                {_s("nina_vpn_status_updated_timestamp_seconds", _SITE.replace(',organisation="hosp"', "") + ',proto="udp"'): _const(0)},
                {_s("nina_vpn_status_updated_timestamp_seconds", _SITE.replace(',organisation="hosp"', "") + ',proto="udp"'): _rising(60, 0)},
            ),
        ),
    ]
    for job, what in (("site-node", "node exporter"), ("site-dcgm", "DCGM exporter")):
        rules.append(
            Rule(
                f"Site{'Node' if job == 'site-node' else 'Dcgm'}ExporterDown",
                f'{by_site} (up{{job="{job}"}}) == 0 and on (federation, organisation) {by_site} (nina_vpn_site_connected) == 1',
                "30m", "medium",
                "{{ $labels.organisation }}: its tunnel to {{ $labels.federation }} is up but its " + what
                + " does not answer on the tunnel address (the site's bundle: monitoring)", "§3.2.5",
                Sample(exporter(job, 0, 0, 1), exporter(job, 1, 0, 1), ("federation", "organisation")),
            )
        )
    # Until the operator records what the site holds, the expiry alerts can only watch the certificate the stack
    # issued, which jumps a year ahead at each re-issue while the site may still hold the old one: say so, daily.
    rules.append(
        Rule(
            "SiteCertificateNotShipped", "nina_vpn_site_certificate_shipped == 0", "1h", "low",
            "{{ $labels.organisation }}: the stack has not recorded that the site holds its current VPN certificate for "
            "{{ $labels.federation }}; until then its expiry cannot be watched. Ship it (nina bundle --renewal) and record "
            "vpn_certificate_shipped (README: Site certificates)", "§4.1.2.4",
            Sample(expiry(200, 0), expiry(200, 1)),
        )
    )
    for days, severity in zip(SITE_CERT_WARNING_DAYS, ("medium", "high")):
        rules.append(
            Rule(
                "SiteCertificateExpiring", f"nina_vpn_site_certificate_expiry_timestamp_seconds - time() < {days * _DAY}", "1h", severity,
                "{{ $labels.organisation }}: the VPN certificate it holds for {{ $labels.federation }} ends within " + f"{days} days; "
                "its tunnel stops then. pulumi up, nina bundle --renewal, ship it (README: Site certificates)", "§4.1.2.4",
                Sample(expiry(days - 2, 0), expiry(SITE_CERT_WARNING_DAYS[0] + 30)),
            )
        )
    return rules


def _gpu_rules() -> list[Rule]:
    fb = {"used": _s("DCGM_FI_DEV_FB_USED", _GPU), "free": _s("DCGM_FI_DEV_FB_FREE", _GPU)}
    return [
        Rule(
            "DcgmTargetDown", 'up{job="dcgm"} == 0', "10m", "medium", "{{ $labels.host }}: DCGM exporter unreachable, no GPU metrics", "§5.1.1",
            Sample({_s("up", _GPU): _const(0)}, {_s("up", _GPU): _const(1)}),
        ),
        # §5.3.5: >= 85 °C for 30 minutes may mean failing hardware (70 °C is normal under load).
        Rule(
            "GpuTemperatureHigh", "DCGM_FI_DEV_GPU_TEMP >= 85", "30m", "high",
            "{{ $labels.host }}: GPU {{ $labels.gpu }} at or above 85 °C for 30 minutes", "§5.3.5",
            Sample({_s("DCGM_FI_DEV_GPU_TEMP", _GPU): _const(88)}, {_s("DCGM_FI_DEV_GPU_TEMP", _GPU): _const(72)}),
        ),
        # §5.3.6: memory above 90% for an hour; low priority, long training runs hold memory for days.
        Rule(
            "GpuMemoryHigh", "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.9", "1h", "low",
            "{{ $labels.host }}: GPU {{ $labels.gpu }} memory above 90% for an hour", "§5.3.6",
            Sample({fb["used"]: _const(95), fb["free"]: _const(5)}, {fb["used"]: _const(50), fb["free"]: _const(50)}),
        ),
    ]


def _oom_rules() -> list[Rule]:
    """The kernel's OOM killer: node exporter's vmstat collector counts its kills (node_vmstat_oom_kill, in its default
    field set on Ubuntu 24.04). Which unit lost a process is in the journal: the log patterns count systemd's
    "killed by the OOM killer" lines per unit (OutOfMemoryInLogs)."""
    oom = _s("node_vmstat_oom_kill", _node("supernode"))
    return [
        Rule(
            "OomKill", "increase(node_vmstat_oom_kill[30m]) > 0", "0m", "medium",
            "{{ $labels.host }}: the kernel's OOM killer ended a process in the last 30 minutes "
            "(journalctl -k -g 'Out of memory' on {{ $labels.host }} names it)", "§5.3",
            # a kill 10 minutes before the evaluation; then none for an hour
            Sample({oom: f"0+0x{POINTS - 10} 1+0x10"}, {oom: f"0+0x{POINTS - 60} 1+0x60"}),
        ),
    ]


# ---------------------------------------------------------------------------- backups off the host (issue 14, part 5)
_OFFSITE = _node("iam") + ',backup="keycloakdb_server"'
_STATE = _node("superlink") + ',federation="fl"'


def _offsite_rules() -> list[Rule]:
    """§4.3.1 "archived": each backup host copies its backups into the stack's container and publishes the time of
    the last verified copy; the SuperLink host publishes its state database's size (§4.1.2.17.3)."""
    offsite, local, max_age = "nina_offsite_backup_last_success_timestamp_seconds", "nina_backup_last_success_timestamp_seconds", "nina_backup_max_age_seconds"
    failed_unit = f'{_node("superlink")},name="{SUPERLINK_BACKUP_UNIT}",state="failed",type="oneshot"'
    return [
        # The copy's age against the same schedule as the local backup's (a failed upload fails the backup run too:
        # BackupFailed); and a host that backs up but has never copied anything off (no credential, no package).
        Rule(
            "OffsiteBackupStale",
            f"time() - {offsite} > {max_age} or ({local} unless on (instance, backup) {offsite})", "1h", "medium",
            "{{ $labels.host }}: the newest off-host copy of {{ $labels.backup }} in the object store is older than its schedule "
            "allows, or there is none (journalctl -u the backup's unit; README: Backups)", "§4.3.1",
            Sample(
                {_s(offsite, _OFFSITE): _const(-40 * _DAY), _s(max_age, _OFFSITE): _const(35 * _DAY), _s(local, _OFFSITE): _const(0)},
                {_s(offsite, _OFFSITE): _const(0), _s(max_age, _OFFSITE): _const(35 * _DAY), _s(local, _OFFSITE): _const(0)},
            ),
        ),
        Rule(
            "SuperLinkBackupFailed", f'node_systemd_unit_state{{name="{SUPERLINK_BACKUP_UNIT}",state="failed"}} == 1', "5m", "medium",
            "{{ $labels.host }}: the SuperLink state backup or its off-host copy failed (journalctl -u {{ $labels.name }})", "§4.3.1",
            Sample({_s("node_systemd_unit_state", failed_unit): _const(1)}, {_s("node_systemd_unit_state", failed_unit): _const(0)}),
        ),
        # §4.1.2.17.3: the state file may need purging when it grows too large (catalog/databases.py says why 1 GiB).
        Rule(
            "SuperLinkStateLarge", f"nina_superlink_state_size_bytes > {SUPERLINK_STATE_ALERT_BYTES}", "1h", "low",
            "{{ $labels.federation }}: the SuperLink's state database has grown above "
            + f"{SUPERLINK_STATE_ALERT_BYTES >> 30} GiB: archive and purge old runs (manual §4.1.2.17.3; README: Backups)", "§4.1.2.17.3",
            Sample(
                {_s("nina_superlink_state_size_bytes", _STATE): _const(3 * SUPERLINK_STATE_ALERT_BYTES)},
                {_s("nina_superlink_state_size_bytes", _STATE): _const(SUPERLINK_STATE_ALERT_BYTES // 100)},
            ),
        ),
    ]


# The managed Postgres probe (nina-db-probe@<database>, every minute on the hosts that back each database up).
POSTGRES_PROBE_STALE_SECONDS = 300


def _postgres_rules() -> list[Rule]:
    pg = _node("iam") + ',database="keycloakdb_server"'
    probed = {_s("nina_postgres_probe_timestamp_seconds", pg): _rising(60)}  # one probe a minute
    return [
        Rule(
            "PostgresDown", "nina_postgres_up == 0", "5m", "high",
            "{{ $labels.host }}: the managed PostgreSQL does not serve {{ $labels.database }} (pg_isready or SELECT 1 with the "
            "host's credentials failed: journalctl -u nina-db-probe@{{ $labels.database }}); its service and backups fail", "§5.3",
            Sample({_s("nina_postgres_up", pg): _const(0)}, {_s("nina_postgres_up", pg): _const(1)}),
        ),
        Rule(
            "PostgresProbeStale", f"time() - nina_postgres_probe_timestamp_seconds > {POSTGRES_PROBE_STALE_SECONDS}", "10m", "medium",
            "{{ $labels.host }}: the probe of {{ $labels.database }} has not run for over "
            + f"{POSTGRES_PROBE_STALE_SECONDS // 60} minutes (systemctl status nina-db-probe@{{{{ $labels.database }}}}.timer): "
            "PostgresDown cannot fire", "§5.3",
            # the last probe at time 0, two hours before the evaluation; healthy: one every minute
            Sample({_s("nina_postgres_probe_timestamp_seconds", pg): _const(0)}, probed),
        ),
    ]


# The log patterns of §5.3 (nina/catalog/logs.py): any out-of-memory line in LOG_OOM_WINDOW; more than
# LOG_ERRORS_THRESHOLD error lines of one pattern and unit in LOG_ERRORS_WINDOW (one is noise, a burst is a failure).
LOG_OOM_WINDOW = "30m"
LOG_ERRORS_WINDOW = "15m"
LOG_ERRORS_THRESHOLD = 5


def _log_counted(kind: str, window: str, threshold: int) -> str:
    """Lines of the patterns of `kind` counted in `window`, more than `threshold`. mtail creates a series at its first
    match, so a series that did not exist `window` ago counts with its whole value (increase() cannot see that step)."""
    series = f'{logs.METRIC}{{pattern=~"{"|".join(logs.names(kind))}"}}'
    return f"(increase({series}[{window}]) > {threshold}) or (({series} unless {series} offset {window}) > {threshold})"


def _log_rules() -> list[Rule]:
    oom = _s(logs.METRIC, _node("supernode") + ',pattern="cuda_out_of_memory",unit="supernode@sn1.service"')
    err = _s(logs.METRIC, _node("iam") + ',pattern="postgres_connection_failed",unit="keycloak.service"')
    return [
        Rule(
            "OutOfMemoryInLogs", _log_counted(logs.OOM, LOG_OOM_WINDOW, 0), "0m", "medium",
            "{{ $labels.host }}: {{ $labels.unit }} logged running out of memory ({{ $labels.pattern }}) in the last "
            + f"{LOG_OOM_WINDOW} (journalctl -u {{{{ $labels.unit }}}})", "§5.3",
            # firing: the series appears with its first match 10 minutes before the evaluation; healthy: an old match
            Sample({oom: f"_x{POINTS - 10} 1+0x10"}, {oom: f"0+0x{POINTS - 60} 1+0x60"}),
        ),
        Rule(
            "ServiceErrorsInLogs", _log_counted(logs.ERROR, LOG_ERRORS_WINDOW, LOG_ERRORS_THRESHOLD), "0m", "medium",
            "{{ $labels.host }}: {{ $labels.unit }} logged more than " + f"{LOG_ERRORS_THRESHOLD} {{{{ $labels.pattern }}}} errors in "
            + f"{LOG_ERRORS_WINDOW} (journalctl -u {{{{ $labels.unit }}}})", "§5.3",
            Sample({err: _rising(1)}, {err: f"0+0x{POINTS - 60} 3+0x60"}),
        ),
    ]


def _apt_rules() -> list[Rule]:
    """The third-party APT repositories' keys (nina/catalog/apt.py), as nina-apt-keys finds them on each host."""
    repo = _node("gpu") + ',repository="cuda"'
    current, expiry = _s("nina_apt_key_current", repo), _s("nina_apt_key_expiry_timestamp_seconds", repo)
    checked = _s("nina_apt_key_check_timestamp_seconds", _node())
    return [
        Rule(
            "AptKeyNotCurrent", "nina_apt_key_current == 0", "1h", "medium",
            "{{ $labels.host }}: the keyring of APT repository {{ $labels.repository }} does not hold its pinned key unexpired: "
            "apt updates from it fail (journalctl -u " + layout.APT_KEYS_UNIT + "; README: Upgrading pinned versions)", "§5.1, §5.3",
            Sample({current: _const(0)}, {current: _const(1)}),
        ),
        Rule(
            "AptKeyExpiringSoon", f"(nina_apt_key_expiry_timestamp_seconds - time() < {apt.KEY_WARNING_DAYS * _DAY}) > 0", "1h", "medium",
            "{{ $labels.host }}: the pinned key of APT repository {{ $labels.repository }} expires within "
            + f"{apt.KEY_WARNING_DAYS} days and the vendor's URL offers no extended key: its pin in nina/catalog/apt.py may "
            "need to change (README: Upgrading pinned versions)", "§5.1, §5.3",
            # healthy: a key that never expires (0)
            Sample({expiry: _const(EVAL_SECONDS + 10 * _DAY)}, {expiry: _const(0)}),
        ),
        Rule(
            "AptKeyCheckStale", f"time() - nina_apt_key_check_timestamp_seconds > {apt.KEY_CHECK_STALE_DAYS * _DAY}", "1h", "low",
            "{{ $labels.host }}: the APT keys have not been checked for " + f"{apt.KEY_CHECK_STALE_DAYS} days "
            "(systemctl status " + layout.APT_KEYS_TIMER + "): an expiring key would go unnoticed", "§5.1, §5.3",
            Sample({checked: _const(EVAL_SECONDS - (apt.KEY_CHECK_STALE_DAYS + 1) * _DAY)}, {checked: _const(0)}),
        ),
    ]


RULES: tuple[Rule, ...] = tuple(
    _host_rules() + _unit_rules() + _probe_rules() + _site_rules() + _gpu_rules() + _oom_rules() + _offsite_rules() + _postgres_rules()
    + _log_rules() + _apt_rules()
)
