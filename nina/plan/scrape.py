"""What Prometheus scrapes and probes, computed from the stack config (manual §3.2.5, §5.1.1, §5.2.3).

The manual lists targets by hand in prometheus.yml. Ours change in operation (hosts and federations come and go), so
they are not in the monitoring host's user-data: `target_files(cfg)` gives the file_sd files that the SSH delivery
writes into layout.PROMETHEUS_TARGETS_DIR. Prometheus watches those files and picks up changes by itself; the
monitoring fragment's prometheus.yml names one file per job (JOB_FILES).

- node: every host's node exporter (ip:9900). Labels host, environment and roles, the host's roles between commas
  (",ingress,iam,") so an alert can select one role with roles=~".*,iam,.*" (the separator convention Prometheus'
  own service discovery uses for tag lists).
- dcgm: the DCGM exporter of every `gpu: true` host (ip:9400, §5.1.1).
- site-node, site-dcgm: each on-premises site's node exporter (and DCGM exporter when the organisation says
  `gpu: true`) through its tunnel (§3.2.5: exporters on every host, VPN clients included). The bundle makes them
  listen on the site's tunnel addresses only; the VPN host forwards only the monitoring host's scrapes to them. A
  site holds one of its two addresses at a time (the UDP or the TCP instance it reached), so both are scraped and
  labelled `tunnel`; the site-down alerts take the better of the two. Labels federation, organisation, and host
  (the organisation's name, for the host rules' summaries).
- superlink-health: HTTPS GET /health of each federation's SuperLink through its alias and port (shared/FLOWER.md:
  the gRPC health service answers SERVING even when the SuperLink cannot run apps), probed by the blackbox exporter
  on the monitoring host with the local CA.
- tls: a TLS handshake with every internal HTTPS endpoint (the services nginx forwards to, and each SuperLink),
  verified against the local CA; the blackbox exporter reports probe_ssl_earliest_cert_expiry for the expiry alert.
- public-tls: a TLS handshake with every public name nginx serves, verified against the system's trust store as a
  browser would: it fails while nginx still serves its self-signed stand-in, and its expiry shows a renewal that
  stopped (certbot renews 30 days ahead).
"""

from __future__ import annotations

import json

from nina.catalog import alerts as alert_table
from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import WEB_ROLES
from nina.config import StackConfig
from nina.plan import alerts, federation_dashboard, names, openvpn, public

PORT = {p.name: p.port for p in PORTS}
# Loopback-only blackbox exporter on the monitoring host; its default port until the port table has a row for it.
BLACKBOX_PORT = PORT.get("blackbox-exporter", 9115)
BLACKBOX_ADDRESS = f"127.0.0.1:{BLACKBOX_PORT}"

# job -> its file_sd file (prometheus.yml in the monitoring fragment names the same files)
JOB_FILES = {
    "node": "node.json",
    "dcgm": "dcgm.json",
    "site-node": "site-node.json",
    "site-dcgm": "site-dcgm.json",
    "superlink-health": "superlink-health.json",
    "tls": "tls.json",
    "public-tls": "public-tls.json",
}
# What Prometheus keeps from a site's exporters: the hospital controls that machine, so it could otherwise write any
# series into the platform's Prometheus (a forged nina_supernode_registered, ALERTS, millions of series). Only the
# metrics the alert table and dashboards read, only the labels they use, within limits that bound a hostile answer.
SITE_METRICS = {
    "site-node": (
        "node_load15", "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_vmstat_oom_kill", "node_time_seconds",
    ),
    "site-dcgm": ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_UTIL"),
}
# the target's own labels (site_targets) and the exporters' labels those metrics carry
SITE_LABELS = (
    "__name__", "job", "instance", "federation", "organisation", "host", "tunnel", "environment",
    "cpu", "mode", "device", "fstype", "mountpoint", "gpu", "UUID", "modelName",
)
SITE_LIMITS = {"sample_limit": 5000, "label_limit": 20, "label_name_length_limit": 64, "label_value_length_limit": 256, "body_size_limit": "10MB"}


def site_job_settings(job: str) -> dict[str, object]:
    """The scrape settings of a site job (prometheus.yml), from the tables above."""
    return {
        **SITE_LIMITS,
        "metric_relabel_configs": [
            {"source_labels": ["__name__"], "regex": "|".join(SITE_METRICS[job]), "action": "keep"},
            {"regex": "|".join(SITE_LABELS), "action": "labelkeep"},
        ],
    }


# job -> blackbox exporter module (cloudinit/templates/monitoring/blackbox.yml.j2)
PROBE_MODULES = {"superlink-health": "superlink_health", "tls": "tls", "public-tls": "public_tls"}


def roles_label(roles: tuple[str, ...]) -> str:
    return "," + ",".join(roles) + ","


def _group(targets: list[str], labels: dict[str, str]) -> dict[str, object]:
    return {"targets": targets, "labels": labels}


def _node(cfg: StackConfig) -> list[dict[str, object]]:
    port = PORT["node-exporter"]
    return [
        _group([f"{h.ip}:{port}"], {"host": h.name, "roles": roles_label(h.roles), "environment": cfg.environment})
        for h in sorted(cfg.hosts.values(), key=lambda h: h.name)
    ]


def _dcgm(cfg: StackConfig) -> list[dict[str, object]]:
    port = PORT["dcgm-exporter"]
    return [
        _group([f"{h.ip}:{port}"], {"host": h.name, "environment": cfg.environment})
        for h in sorted(cfg.hosts_with("gpu"), key=lambda h: h.name)
    ]


def site_targets(cfg: StackConfig, port_name: str, gpu_only: bool = False) -> list[dict[str, object]]:
    """One group per (federation, on-premises organisation, tunnel address), sorted."""
    port = PORT[port_name]
    groups = []
    for fed in sorted(cfg.federations.values(), key=lambda f: f.name):
        if fed.archived:
            continue  # its sites are switched off on purpose
        orgs = cfg.vpn_clients(fed)
        for org in sorted(orgs):
            if gpu_only and not cfg.organisations[org].gpu:
                continue
            for proto, address in sorted(openvpn.site_addresses(fed, org, orgs).items()):
                labels = {"federation": fed.name, "organisation": org, "host": org, "tunnel": proto, "environment": cfg.environment}
                groups.append(_group([f"{address}:{port}"], labels))
    return groups


def superlink_health_url(cfg: StackConfig, federation: str) -> str:
    fed = cfg.federations[federation]
    return f"https://{names.fqdn(cfg, names.superlink_alias(fed))}:{PORT['superlink']}/health"


def _superlink_health(cfg: StackConfig) -> list[dict[str, object]]:
    return [
        _group([superlink_health_url(cfg, fed.name)], {"federation": fed.name, "host": fed.superlink_host, "environment": cfg.environment})
        for fed in sorted(cfg.federations.values(), key=lambda f: f.name)
    ]


def tls_endpoints(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(service alias, host, host:port) of every internal HTTPS endpoint, sorted by alias."""
    endpoints = []
    for role in WEB_ROLES:
        assert role.alias is not None
        for host in cfg.hosts_with(role.name):
            endpoints.append((role.alias, host.name, f"{names.fqdn(cfg, role.alias)}:{public.port(role)}"))
    for fed in cfg.federations.values():
        alias = names.superlink_alias(fed)
        endpoints.append((alias, fed.superlink_host, f"{names.fqdn(cfg, alias)}:{PORT['superlink']}"))
    return sorted(endpoints)


def _tls(cfg: StackConfig) -> list[dict[str, object]]:
    return [_group([target], {"service": alias, "host": host, "environment": cfg.environment}) for alias, host, target in tls_endpoints(cfg)]


def public_tls_endpoints(cfg: StackConfig) -> list[tuple[str, str]]:
    """(service label, public name:443) of every public name nginx serves, in table order."""
    return [(role.public.label, f"{public.public_name(cfg, role)}:{PORT['https']}") for role in WEB_ROLES if role.public]


def _public_tls(cfg: StackConfig) -> list[dict[str, object]]:
    return [_group([target], {"service": label, "environment": cfg.environment}) for label, target in public_tls_endpoints(cfg)]


def target_files(cfg: StackConfig) -> dict[str, str]:
    """file name (in layout.PROMETHEUS_TARGETS_DIR) -> file_sd JSON. Deterministic: same config, same bytes. A job
    with no targets still gets its file (an empty list), so a removed GPU host's targets disappear."""
    groups = {
        "node": _node(cfg),
        "dcgm": _dcgm(cfg),
        "site-node": site_targets(cfg, "site-node-exporter"),
        "site-dcgm": site_targets(cfg, "site-dcgm-exporter", gpu_only=True),
        "superlink-health": _superlink_health(cfg),
        "tls": _tls(cfg),
        "public-tls": _public_tls(cfg),
    }
    assert set(groups) == set(JOB_FILES)
    return {JOB_FILES[job]: json.dumps(groups[job], indent=1, sort_keys=True) + "\n" for job in sorted(groups)}


# The alerts that watch one on-premises site (nina/catalog/alerts.py): its tunnel, its exporters, its certificate, its
# SuperNodes as the SuperLink hears them, and the host rules its machine's node exporter feeds.
SITE_ALERTS = ("SiteVpnDown", "SiteNodeExporterDown", "SiteCertificateExpiring", "SiteCertificateNotShipped", "SuperNodeNotSeen", "SuperNodeNotRegistered",
               "CpuLoadHigh", "MemoryLow", "DiskSpaceLow", "DiskWillFillIn24h", "OomKill")
SITE_GPU_ALERTS = ("SiteDcgmExporterDown", "GpuTemperatureHigh", "GpuMemoryHigh")


def summary(cfg: StackConfig) -> dict[str, object]:
    """The stack output `monitoring`: what Prometheus scrapes and which alerts exist, so a preview (and a reviewer)
    sees that a new site is watched. Per on-premises site and federation: the tunnel addresses scraped and the
    alerts that watch it."""
    files = target_files(cfg)
    jobs = {job: sorted(t for g in json.loads(files[name]) for t in g["targets"]) for job, name in JOB_FILES.items()}
    rules: dict[str, list[str]] = {}
    for rule in alert_table.RULES:
        rules.setdefault(rule.name, []).append(rule.severity)
    sites: dict[str, dict[str, object]] = {}
    for fed in sorted(cfg.federations.values(), key=lambda f: f.name):
        if fed.archived:
            continue
        for org in sorted(cfg.vpn_clients(fed)):
            gpu = cfg.organisations[org].gpu
            addresses = openvpn.site_addresses(fed, org, cfg.vpn_clients(fed))
            watched = SITE_ALERTS + (SITE_GPU_ALERTS if gpu else ())
            sites.setdefault(org, {})[fed.name] = {
                "scraped": [f"{a}:{PORT[p]}" for a in addresses.values() for p in ("site-node-exporter", *(("site-dcgm-exporter",) if gpu else ()))],
                "supernodes": [sn.name for sn in fed.supernodes if sn.organisation == org],
                "alerts": [name for name in watched if name in rules],
            }
    return {
        "scrape_targets": jobs,
        "alerts": {name: "/".join(levels) for name, levels in sorted(rules.items())},
        "sites": sites,
    }


def monitoring_files(cfg: StackConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Everything the SSH delivery writes on the monitoring host for Prometheus, Alertmanager and Grafana:
    path -> (content, units to act on when it changes, in nina-deliver's "reload:<unit>" form).
    No secrets: root:root 0644. Targets and the dashboard are re-read by Prometheus' file_sd and Grafana's file
    provider on change; rules and alertmanager.yml need a reload."""
    files: dict[str, tuple[str, tuple[str, ...]]] = {
        f"{layout.PROMETHEUS_TARGETS_DIR}/{name}": (content, ()) for name, content in target_files(cfg).items()
    }
    files[layout.RULES_PATH] = (alerts.rules_yaml(), ("reload:prometheus.service",))
    files[layout.ALERTMANAGER_PATH] = (alerts.alertmanager_yaml(cfg), ("reload:prometheus-alertmanager.service",))
    files[layout.DASHBOARD_PATH] = (alerts.dashboard_json(cfg), ())
    files.update({path: (content, ()) for path, content in federation_dashboard.dashboard_files(cfg).items()})
    return files
