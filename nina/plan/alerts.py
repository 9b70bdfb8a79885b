"""Alerting as files: the alert table (nina/catalog/alerts.py) rendered into the Prometheus rules file, and
Alertmanager's routing (alertmanager.yml) and the alert dashboard of §5.5.1 for one stack.

Where these files live on the host: they change with the table or with the stack's mail settings, not with the
host, so they are delivered over SSH (with the scrape targets: nina/plan/scrape.py `monitoring_files`) and the
service reloaded; a threshold or an address change never replaces the monitoring VM.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from nina.catalog.alerts import PRIORITY_MOUNTS, RULES, Rule
from nina.catalog.layout import SMTP_PASSWORD_PATH
from nina.config import StackConfig

# ------------------------------------------------------------------------------------------------------- rendering


def _prometheus_rule(rule: Rule) -> dict[str, object]:
    out: dict[str, object] = {"alert": rule.name, "expr": rule.expr}
    if rule.for_ != "0m":
        out["for"] = rule.for_
    out["labels"] = {"severity": rule.severity, **rule.labels}
    out["annotations"] = {"summary": rule.summary, "manual": rule.manual}
    return out


def rules_document() -> dict[str, Any]:
    return {"groups": [{"name": "nina", "rules": [_prometheus_rule(r) for r in RULES]}]}


def rules_yaml() -> str:
    """The Prometheus rules file (RULES_PATH), deterministic: same table, same bytes."""
    header = "# Managed by nina-fl from nina/alerts.py (manual §5.3); delivered over SSH, edits are overwritten.\n"
    return header + yaml.safe_dump(rules_document(), sort_keys=False, allow_unicode=True, width=200)


# ------------------------------------------------------------------------------------------------------ Alertmanager


def _mail(cfg: StackConfig) -> dict[str, object]:
    """The relay from `nina:smtp` (shared with Keycloak); config validation requires one for `alert_email`."""
    user = cfg.smtp.username
    auth: dict[str, object] = {"smtp_auth_username": user, "smtp_auth_password_file": SMTP_PASSWORD_PATH} if user else {}
    return {"smtp_smarthost": cfg.smtp.smarthost, "smtp_from": cfg.mail_sender, **auth}


WEBHOOK_PLACEHOLDER = "https://webhook.invalid/nina:alert_webhook_url"  # where the secret URL goes at delivery


def _receiver(cfg: StackConfig, webhook_url: str) -> dict[str, Any]:
    """Operations: a mail to each of `alert_email` and/or a POST of Alertmanager's JSON to the webhook. Neither only
    in a stack that says test_stack: true (config validation). The webhook's URL is a secret (it carries the
    channel's token) and goes into the file itself, readable by Alertmanager's group only: Ubuntu 24.04's
    Alertmanager has no url_file."""
    subject = f"[NINA {cfg.environment}] " + "{{ .CommonLabels.severity }}: {{ .GroupLabels.alertname }} on {{ .GroupLabels.host }}"
    receiver: dict[str, Any] = {"name": "ops"}
    if cfg.monitoring.alert_email:
        receiver["email_configs"] = [
            {"to": address, "send_resolved": True, "headers": {"Subject": subject}} for address in cfg.monitoring.alert_email
        ]
    if cfg.monitoring.webhook:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return receiver


def alertmanager_document(cfg: StackConfig, webhook_url: str = WEBHOOK_PLACEHOLDER) -> dict[str, Any]:
    """Every alert reaches operations, paced by severity (§5.3: high now and hourly, low as a daily reminder)."""
    return {
        "global": _mail(cfg),
        "route": {
            "receiver": "ops",
            "group_by": ["alertname", "host"],
            "group_wait": "1m",
            "repeat_interval": "4h",
            "routes": [
                {"matchers": ['severity="high"'], "receiver": "ops", "group_wait": "30s", "repeat_interval": "1h"},
                {"matchers": ['severity="low"'], "receiver": "ops", "group_interval": "1h", "repeat_interval": "24h"},
            ],
        },
        # Severity ladders share an alert name: mail only the highest level that fires.
        "inhibit_rules": [
            {"source_matchers": ['severity="high"'], "target_matchers": ['severity=~"medium|low"'], "equal": ["alertname", "instance", "mountpoint"]},
            {"source_matchers": ['severity="medium"'], "target_matchers": ['severity="low"'], "equal": ["alertname", "instance", "mountpoint"]},
        ],
        "receivers": [_receiver(cfg, webhook_url)],
    }


def alertmanager_yaml(cfg: StackConfig, webhook_url: str = WEBHOOK_PLACEHOLDER) -> str:
    header = "# Managed by nina-fl from nina/alerts.py (manual §5.2.1, §5.3); delivered over SSH, edits are overwritten.\n"
    return header + yaml.safe_dump(alertmanager_document(cfg, webhook_url), sort_keys=False, width=200)


# -------------------------------------------------------------------------------------------------------- dashboard


def dashboard_json(cfg: StackConfig) -> str:
    """§5.5.1: the firing alerts beside the metrics they watch (§5.3.1-§5.3.3, and §5.3.5 when the stack has a GPU
    host), one line per host. Panels use Grafana's default data source, the provisioned Prometheus."""
    mounts = f'mountpoint=~"{"|".join(PRIORITY_MOUNTS)}"'
    panels = [
        ("CPU load (15 min) per CPU", 'node_load15 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})', "{{host}}"),
        ("Memory available", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{host}}"),
        ("Disk free", f"node_filesystem_avail_bytes{{{mounts}}} / node_filesystem_size_bytes{{{mounts}}}", "{{host}} {{mountpoint}}"),
    ]
    if cfg.hosts_with("gpu"):
        panels.append(("GPU temperature", "DCGM_FI_DEV_GPU_TEMP", "{{host}} GPU {{gpu}}"))
    out: list[dict[str, object]] = [
        {
            "id": 1,
            "type": "table",
            "title": "Firing alerts",
            "gridPos": {"h": 8, "w": 24, "x": 0, "y": 0},
            "targets": [{"refId": "A", "expr": 'ALERTS{alertstate="firing"}', "instant": True, "format": "table"}],
        }
    ]
    for i, (title, expr, legend) in enumerate(panels):
        out.append(
            {
                "id": i + 2,
                "type": "timeseries",
                "title": title,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 + 8 * (i // 2)},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
            }
        )
    dashboard = {
        "uid": "nina-node-overview",
        "title": "NINA node overview",
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "panels": out,
    }
    return json.dumps(dashboard, indent=1, sort_keys=True) + "\n"
