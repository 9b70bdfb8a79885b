"""One Grafana dashboard per federation (README "Operations"): what an operator looks at when a researcher says a
run is stuck. Its SuperLink, each on-premises site's tunnel and certificate, each SuperNode as the SuperLink hears
it, the runs by outcome, the sites' machines seen through the tunnel, and the federation's firing alerts.

Delivered beside the node overview (nina/plan/scrape.py `monitoring_files`): a federation added or removed adds or
removes its file (nina-deliver prunes what it no longer delivers), and Grafana's file provider follows.
"""

from __future__ import annotations

import json

from nina.catalog import layout
from nina.config import Federation, StackConfig

# (title, PromQL with {f} for the federation's matcher, legend, unit, panel type)
PANELS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Firing alerts", 'ALERTS{{alertstate="firing",{f}}}', "{{alertname}} {{organisation}}{{supernode}}", "none", "table"),
    ("SuperLink /health", 'probe_success{{job="superlink-health",{f}}}', "{{host}}", "none", "stat"),
    ("Site tunnels (1 = connected)", "max by (organisation) (nina_vpn_site_connected{{{f}}})", "{{organisation}}", "none", "stat"),
    ("Sites last seen (minutes ago)", "(time() - nina_vpn_site_last_seen_timestamp_seconds{{{f}}}) / 60", "{{organisation}}", "m", "timeseries"),
    ("Site VPN certificates (days left)", "(nina_vpn_site_certificate_expiry_timestamp_seconds{{{f}}} - time()) / 86400", "{{organisation}}", "d", "stat"),
    ("SuperNodes registered", "nina_supernode_registered{{{f}}}", "{{supernode}}", "none", "stat"),
    (
        "SuperNodes last heard (minutes ago)",
        "clamp_min(time() - nina_supernode_online_until_timestamp_seconds{{{f}}}, 0) / 60", "{{supernode}}", "m", "timeseries",
    ),
    ("Runs (latest 100) by status", "nina_federation_runs{{{f}}}", "{{status}}", "none", "timeseries"),
    ("Sites: CPU load (15 min) per CPU", 'node_load15{{job="site-node",{f}}} / on (instance) count by (instance) (node_cpu_seconds_total{{job="site-node",mode="idle",{f}}})', "{{organisation}}", "percentunit", "timeseries"),
    ("Sites: memory available", 'node_memory_MemAvailable_bytes{{job="site-node",{f}}} / node_memory_MemTotal_bytes{{job="site-node",{f}}}', "{{organisation}}", "percentunit", "timeseries"),
    ("Site GPUs: temperature", 'DCGM_FI_DEV_GPU_TEMP{{job="site-dcgm",{f}}}', "{{organisation}} GPU {{gpu}}", "celsius", "timeseries"),
)


def dashboard_path(fed: Federation) -> str:
    return f"{layout.DASHBOARD_DIR}/federation-{fed.name}.json"


def dashboard_json(cfg: StackConfig, fed: Federation) -> str:
    """Deterministic: same stack, same bytes. Panels use Grafana's default data source (the provisioned Prometheus)."""
    matcher = f'federation="{fed.name}"'  # names are [a-z0-9-] (nina/config): nothing to escape in PromQL
    has_gpu_site = any(cfg.organisations[o].gpu for o in cfg.vpn_clients(fed))
    panels: list[dict[str, object]] = []
    for title, expr, legend, unit, kind in PANELS:
        if "site-dcgm" in expr and not has_gpu_site:
            continue
        i = len(panels)
        wide = kind == "table"
        panels.append(
            {
                "id": i + 1,
                "type": kind,
                "title": title,
                "gridPos": {"h": 8, "w": 24 if wide else 12, "x": 0 if wide else 12 * ((i + 1) % 2), "y": 8 * ((i + 1) // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": expr.format(f=matcher), "legendFormat": legend, **({"instant": True, "format": "table"} if wide else {})}],
            }
        )
    dashboard = {
        "uid": f"nina-federation-{fed.name}"[:40],
        "title": f"NINA federation {fed.name}",
        "tags": ["nina", "federation"],
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=1, sort_keys=True) + "\n"


def dashboard_files(cfg: StackConfig) -> dict[str, str]:
    return {dashboard_path(fed): dashboard_json(cfg, fed) for fed in sorted(cfg.federations.values(), key=lambda f: f.name)}
