"""The monitoring fragment (manual §5): Prometheus, Alertmanager and the blackbox exporter on loopback, Grafana on
HTTPS with Keycloak login, and what the SSH delivery adds (nina/plan/scrape.py, nina/plan/alerts.py).

Judged by the real tools: `promtool check config` on the rendered prometheus.yml with the delivered targets and
rules beside it, `amtool check-config` on alertmanager.yml, `prometheus-blackbox-exporter --config.check`,
`systemd-analyze verify` on the drop-ins over the distribution's units, shellcheck on the bootstrap, apt itself on
the Grafana version pin; grafana.ini through configparser. Files come from `nina preview --out` (tests/conftest.py).
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from nina.catalog import alerts as alert_table
from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import ROLES, server_tls
from nina.config import Monitoring, Smtp, StackConfig
from nina.plan import alerts, federation_dashboard, names, openvpn, scrape
from tests.conftest import BOOTSTRAP, Preview, env_path, env_var_names, role_files

PORT = {p.name: p for p in PORTS}
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
BLACKBOX_YML = "/etc/prometheus/blackbox.yml"
GRAFANA_INI = "/etc/grafana/grafana.ini"
GRAFANA_DROPIN = "/etc/systemd/system/grafana-server.service.d/nina.conf"
PROMETHEUS_DROPIN = "/etc/systemd/system/prometheus.service.d/nina.conf"
DATASOURCES = "/etc/grafana/provisioning/datasources/nina.yaml"
DASHBOARDS = "/etc/grafana/provisioning/dashboards/nina.yaml"
GRAFANA_PIN = "/etc/apt/preferences.d/nina-grafana"
DEFAULTS = {
    "prometheus": "/etc/default/prometheus",
    "alertmanager": "/etc/default/prometheus-alertmanager",
    "blackbox": "/etc/default/prometheus-blackbox-exporter",
}
STACKS = ("test", "uat")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (scripts/install-system-deps.sh)")
    return path


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest, previews: dict[str, Preview]) -> Preview:
    result: Preview = previews[request.param]
    return result


def monitoring_files(preview: Preview) -> dict[str, str]:
    files = role_files(preview, "monitoring")
    assert BOOTSTRAP in files
    return files


def args_of(default_file: str) -> list[str]:
    (line,) = [line for line in default_file.splitlines() if line.startswith("ARGS=")]
    return line.removeprefix("ARGS=").strip('"').split()


# --------------------------------------------------------------------------------------------------- the fragment


def test_only_the_monitoring_host_carries_the_fragment(stack: Preview) -> None:
    mon = stack.cfg.the_host_with("monitoring").name
    for name, host in stack.hosts.items():
        paths = {f["path"] for f in host.write_files}
        assert (PROMETHEUS_YML in paths) == (name == mon), name
        assert (GRAFANA_INI in paths) == (name == mon), name
    packages = stack.hosts[mon].cloud_config["packages"]
    assert {"prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"} <= set(packages)


def test_servers_listen_on_loopback_at_their_port_table_rows(stack: Preview) -> None:
    files = monitoring_files(stack)
    assert PORT["prometheus"].loopback_only and PORT["alertmanager"].loopback_only
    assert f"--web.listen-address=127.0.0.1:{PORT['prometheus'].port}" in args_of(files[DEFAULTS["prometheus"]])
    am = args_of(files[DEFAULTS["alertmanager"]])
    assert f"--web.listen-address=127.0.0.1:{PORT['alertmanager'].port}" in am
    # Alertmanager's gossip listener would take :9094, a SuperNode ClientAppIO port.
    assert "--cluster.listen-address=" in am
    assert f"--web.listen-address={scrape.BLACKBOX_ADDRESS}" in args_of(files[DEFAULTS["blackbox"]])
    assert "--config.file=/etc/prometheus/blackbox.yml" in args_of(files[DEFAULTS["blackbox"]])


def test_prometheus_keeps_its_series_on_the_state_volume(stack: Preview) -> None:
    host = stack.cfg.the_host_with("monitoring")
    files = monitoring_files(stack)
    assert host.volume_gb, "both stacks give the monitoring host a state volume"
    assert "BindPaths=/var/lib/nina/prometheus:/var/lib/prometheus/metrics2" in files[PROMETHEUS_DROPIN]
    assert "ensure_dir /var/lib/nina/prometheus prometheus prometheus 0750" in files[BOOTSTRAP]
    assert f"--storage.tsdb.retention.size={host.volume_gb // 2}GB" in args_of(files[DEFAULTS["prometheus"]])


def test_nothing_secret_in_the_fragment(stack: Preview) -> None:
    files = monitoring_files(stack)
    text = "\n".join(files.values())
    assert "BEGIN" not in text and "PRIVATE" not in text
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(files[GRAFANA_INI])
    for section in ini.sections():
        for key in ini[section]:
            assert not re.search(r"password|secret", key), f"[{section}] {key} belongs in the delivered env file"


# ------------------------------------------------------------------------------------------------------ Prometheus


def _prometheus_dir(preview: Preview, tmp_path: Path) -> Path:
    """prometheus.yml as rendered, beside the delivered files, paths moved into tmp_path."""
    text = monitoring_files(preview)[PROMETHEUS_YML]
    text = text.replace(layout.PROMETHEUS_TARGETS_DIR, str(tmp_path / "targets")).replace(layout.RULES_DIR, str(tmp_path / "rules"))
    (tmp_path / "targets").mkdir()
    (tmp_path / "rules").mkdir()
    for name, content in scrape.target_files(preview.cfg).items():
        (tmp_path / "targets" / name).write_text(content)
    (tmp_path / "rules" / Path(layout.RULES_PATH).name).write_text(alerts.rules_yaml())
    (tmp_path / "prometheus.yml").write_text(text)
    return tmp_path


def test_promtool_accepts_prometheus_yml_with_the_delivered_targets_and_rules(stack: Preview, tmp_path: Path) -> None:
    promtool = tool("promtool")
    work = _prometheus_dir(stack, tmp_path)
    result = run(promtool, "check", "config", "prometheus.yml", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert f"SUCCESS: {len(alert_table.RULES)} rules found" in result.stdout


def test_promtool_rejects_a_broken_target_file(stack: Preview, tmp_path: Path) -> None:
    """The check reads the file_sd files too: a bad delivery would be caught here, not on the host."""
    promtool = tool("promtool")
    work = _prometheus_dir(stack, tmp_path)
    (work / "targets" / scrape.JOB_FILES["node"]).write_text('[{"targets": "10.0.0.1:9900"}]')
    result = run(promtool, "check", "config", "prometheus.yml", cwd=work)
    assert result.returncode != 0


def test_prometheus_jobs_read_the_files_scrape_writes(stack: Preview) -> None:
    config = yaml.safe_load(monitoring_files(stack)[PROMETHEUS_YML])
    assert config["rule_files"] == [f"{layout.RULES_DIR}/*.yml"]
    assert Path(layout.RULES_PATH).parent == Path(layout.RULES_DIR)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job, name in scrape.JOB_FILES.items():
        assert jobs[job]["file_sd_configs"] == [{"files": [f"{layout.PROMETHEUS_TARGETS_DIR}/{name}"]}], job
    assert set(scrape.target_files(stack.cfg)) == set(scrape.JOB_FILES.values())
    for job, module in scrape.PROBE_MODULES.items():
        assert jobs[job]["params"] == {"module": [module]}
        assert jobs[job]["metrics_path"] == "/probe"
        assert {"target_label": "__address__", "replacement": scrape.BLACKBOX_ADDRESS} in jobs[job]["relabel_configs"]
    alerting = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alerting == [f"127.0.0.1:{PORT['alertmanager'].port}"]
    assert config["global"]["external_labels"] == {"environment": stack.cfg.environment}


def test_blackbox_modules_verify_against_the_local_ca(stack: Preview, tmp_path: Path) -> None:
    text = monitoring_files(stack)[BLACKBOX_YML]
    modules = yaml.safe_load(text)["modules"]
    assert set(scrape.PROBE_MODULES.values()) <= set(modules)
    health = modules[scrape.PROBE_MODULES["superlink-health"]]
    assert health["prober"] == "http" and health["http"]["valid_status_codes"] == [200] and health["http"]["fail_if_not_ssl"]
    assert health["http"]["tls_config"] == {"ca_file": layout.CA_PEM}
    tls = modules[scrape.PROBE_MODULES["tls"]]
    assert tls["prober"] == "tcp" and tls["tcp"] == {"tls": True, "tls_config": {"ca_file": layout.CA_PEM}}
    exporter = shutil.which("prometheus-blackbox-exporter")
    if exporter is None:
        pytest.skip("prometheus-blackbox-exporter not installed (scripts/install-system-deps.sh)")
    (tmp_path / "blackbox.yml").write_text(text)
    result = run(exporter, "--config.check", f"--config.file={tmp_path / 'blackbox.yml'}")
    assert result.returncode == 0, result.stderr
    (tmp_path / "blackbox.yml").write_text(text.replace("fail_if_not_ssl", "fail_if_not_tls"))
    assert run(exporter, "--config.check", f"--config.file={tmp_path / 'blackbox.yml'}").returncode != 0


# ------------------------------------------------------------------------------------------------- scrape targets


def _groups(cfg: StackConfig, job: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = json.loads(scrape.target_files(cfg)[scrape.JOB_FILES[job]])
    return groups


@pytest.mark.parametrize("stack_name", STACKS)
def test_every_host_node_exporter_is_scraped_with_its_roles(previews: dict[str, Preview], stack_name: str) -> None:
    cfg = previews[stack_name].cfg
    groups = _groups(cfg, "node")
    by_host = {g["labels"]["host"]: g for g in groups}
    assert set(by_host) == set(cfg.hosts)
    for host in cfg.hosts.values():
        group = by_host[host.name]
        assert group["targets"] == [f"{host.ip}:{PORT['node-exporter'].port}"]
        assert group["labels"] == {"host": host.name, "environment": cfg.environment, "roles": "," + ",".join(host.roles) + ","}
        # the unit alerts select hosts with roles=~".*,<role>,.*"
        for role in ROLES:
            assert bool(re.fullmatch(f".*,{role},.*", group["labels"]["roles"])) == (role in host.roles)


@pytest.mark.parametrize("stack_name", STACKS)
def test_gpu_hosts_dcgm_exporters_are_scraped(previews: dict[str, Preview], stack_name: str) -> None:
    cfg = previews[stack_name].cfg
    expected = {h.name: [f"{h.ip}:{PORT['dcgm-exporter'].port}"] for h in cfg.hosts_with("gpu")}
    assert {g["labels"]["host"]: g["targets"] for g in _groups(cfg, "dcgm")} == expected
    assert bool(expected) == (stack_name == "uat")  # the UAT SuperLink is the GPU host


@pytest.mark.parametrize("stack_name", STACKS)
def test_each_federation_superlink_health_is_probed(previews: dict[str, Preview], stack_name: str) -> None:
    cfg = previews[stack_name].cfg
    groups = _groups(cfg, "superlink-health")
    assert len(groups) == len(cfg.federations) > 0
    for fed in cfg.federations.values():
        url = f"https://{names.fqdn(cfg, names.superlink_alias(fed))}:{PORT['superlink'].port}/health"
        (group,) = [g for g in groups if g["labels"]["federation"] == fed.name]
        assert group["targets"] == [url]
        assert group["labels"]["host"] == fed.superlink_host


@pytest.mark.parametrize("stack_name", STACKS)
def test_tls_probes_cover_internal_https_endpoints(previews: dict[str, Preview], stack_name: str) -> None:
    cfg = previews[stack_name].cfg
    targets = {g["targets"][0]: g["labels"] for g in _groups(cfg, "tls")}
    expected = {
        f"{names.fqdn(cfg, 'keycloak')}:{PORT['keycloak'].port}",
        f"{names.fqdn(cfg, 'jupyterhub')}:{PORT['jupyterhub'].port}",
        f"{names.fqdn(cfg, 'grafana')}:{PORT['grafana'].port}",
    } | {f"{names.fqdn(cfg, names.superlink_alias(f))}:{PORT['superlink'].port}" for f in cfg.federations.values()}
    assert set(targets) == expected
    assert all(labels["environment"] == cfg.environment for labels in targets.values())


def test_on_premises_sites_are_scraped_through_both_tunnel_addresses(previews: dict[str, Preview]) -> None:
    """UAT's metro-north runs at the hospital: its node exporter (and, being a GPU site, its DCGM exporter) are
    scraped at its fixed address in each OpenVPN instance; the Nectar-hosted org-b is a host like any other."""
    cfg = previews["uat"].cfg
    fed = cfg.federations["uat-cardiac"]
    addresses = openvpn.site_addresses(fed, "metro-north", cfg.vpn_clients(fed))
    for job, port in (("site-node", PORT["node-exporter"].port), ("site-dcgm", PORT["dcgm-exporter"].port)):
        groups = _groups(cfg, job)
        assert {g["targets"][0]: g["labels"]["tunnel"] for g in groups} == {f"{a}:{port}": proto for proto, a in addresses.items()}
        assert all(g["labels"]["organisation"] == g["labels"]["host"] == "metro-north" and g["labels"]["federation"] == fed.name for g in groups)
    # a site without GPUs has no DCGM target; the test stack has no on-premises site at all
    no_gpu = dataclasses.replace(cfg, organisations={**cfg.organisations, "metro-north": dataclasses.replace(cfg.organisations["metro-north"], gpu=False)})
    assert _groups(no_gpu, "site-dcgm") == [] and len(_groups(no_gpu, "site-node")) == 2
    assert _groups(previews["test"].cfg, "site-node") == []


def test_target_files_are_deterministic_and_sorted(previews: dict[str, Preview]) -> None:
    cfg = previews["uat"].cfg
    assert scrape.target_files(cfg) == scrape.target_files(cfg)
    hosts = [g["labels"]["host"] for g in _groups(cfg, "node")]
    assert hosts == sorted(hosts)


def test_monitoring_files_for_the_delivery(previews: dict[str, Preview]) -> None:
    cfg = previews["test"].cfg
    files = scrape.monitoring_files(cfg)
    assert {p for p in files if p.startswith(layout.PROMETHEUS_TARGETS_DIR + "/")} == {
        f"{layout.PROMETHEUS_TARGETS_DIR}/{n}" for n in scrape.JOB_FILES.values()
    }
    assert files[layout.RULES_PATH] == (alerts.rules_yaml(), ("reload:prometheus.service",))
    assert files[layout.ALERTMANAGER_PATH][1] == ("reload:prometheus-alertmanager.service",)
    assert layout.DASHBOARD_PATH in files


# ---------------------------------------------------------------------------------------------------- Alertmanager


def _amtool_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "alertmanager.yml").write_text(text)
    return run(tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml"))


def test_amtool_accepts_alertmanager_yml(stack: Preview, tmp_path: Path) -> None:
    result = _amtool_check(alerts.alertmanager_yaml(stack.cfg), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = alerts.alertmanager_yaml(stack.cfg).replace("receiver: ops", "receiver: nobody", 1)
    assert _amtool_check(broken, tmp_path).returncode != 0


def test_alerts_reach_operations_by_severity(stack: Preview, tmp_path: Path) -> None:
    document = alerts.alertmanager_document(stack.cfg)
    (receiver,) = document["receivers"]
    if stack.cfg.monitoring.test_stack:  # the offline test stack: nobody, on purpose (and said in the stack file)
        assert receiver == {"name": "ops"}
    else:
        assert [c["to"] for c in receiver["email_configs"]] == list(stack.cfg.monitoring.alert_email)
        assert document["global"]["smtp_smarthost"] == stack.cfg.smtp.smarthost != "localhost:25"
    routes = {r["matchers"][0]: r for r in document["route"]["routes"]}
    assert routes['severity="high"']["repeat_interval"] == "1h"
    assert routes['severity="low"']["repeat_interval"] == "24h"
    # amtool routes every severity of the table somewhere, and the ladders' inhibition uses labels rules carry
    (tmp_path / "alertmanager.yml").write_text(alerts.alertmanager_yaml(stack.cfg))
    for severity in alert_table.SEVERITIES:
        result = run(tool("amtool"), "config", "routes", "test", f"--config.file={tmp_path / 'alertmanager.yml'}", f"severity={severity}")
        assert result.returncode == 0 and result.stdout.strip() == "ops", result.stdout + result.stderr


def test_mail_settings_follow_the_monitoring_and_smtp_config_keys(previews: dict[str, Preview], tmp_path: Path) -> None:
    """`nina:monitoring` (who) and `nina:smtp` (the relay, shared with Keycloak), as the config model hands them over."""
    base = previews["uat"].cfg
    cfg = dataclasses.replace(
        base, monitoring=Monitoring(("ops@qcif.edu.au", "oncall@qcif.edu.au")), smtp=Smtp("smtp.qcif.edu.au", 587, "nina@qcif.edu.au", "nina")
    )
    document = alerts.alertmanager_document(cfg)
    assert document["global"] == {
        "smtp_smarthost": "smtp.qcif.edu.au:587",
        "smtp_from": "nina@qcif.edu.au",
        "smtp_auth_username": "nina",
        "smtp_auth_password_file": layout.SMTP_PASSWORD_PATH,
    }
    assert [c["to"] for c in document["receivers"][0]["email_configs"]] == ["ops@qcif.edu.au", "oncall@qcif.edu.au"]
    result = _amtool_check(alerts.alertmanager_yaml(cfg), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_fired_alert_reaches_the_webhook_through_the_real_alertmanager(previews: dict[str, Preview], tmp_path: Path) -> None:
    """The rendered routing, run by Debian's Alertmanager on loopback: an alert posted to its API arrives at the
    webhook (a chat channel's bridge) the stack's secret names."""
    import http.server
    import json as json_
    import socket
    import threading
    import urllib.request

    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            received.append(json_.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cfg = dataclasses.replace(previews["uat"].cfg, monitoring=Monitoring(("ops@qcif.edu.au",), webhook=True))
    # The delivered config with the secret URL in it: here, this test's listener.
    document = alerts.alertmanager_document(cfg, f"http://127.0.0.1:{hook.server_port}/nina")
    (webhook,) = document["receivers"][0]["webhook_configs"]
    assert webhook == {"url": f"http://127.0.0.1:{hook.server_port}/nina", "send_resolved": True}
    assert [c["to"] for c in document["receivers"][0]["email_configs"]] == ["ops@qcif.edu.au"]
    for route in [document["route"], *document["route"]["routes"]]:
        route["group_wait"] = "1s"  # the same routes, without the minute's wait
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(document))
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        api = s_.getsockname()[1]
    manager = subprocess.Popen(
        [tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{api}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        alert = [{"labels": {"alertname": "SiteVpnDown", "severity": "high", "host": "vpn", "instance": "metro-north"},
                  "annotations": {"summary": "metro-north's tunnel is down"}}]
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{api}/api/v2/alerts", json_.dumps(alert).encode(), {"Content-Type": "application/json"})
                urllib.request.urlopen(request, timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline and manager.poll() is None, manager.stderr.read() if manager.stderr else ""
                time.sleep(0.3)
        while not received and time.monotonic() < deadline:
            time.sleep(0.3)
        assert received, "no notification reached the webhook"
        (notification,) = received[:1]
        assert notification["receiver"] == "ops" and notification["status"] == "firing"
        assert [a["labels"]["alertname"] for a in notification["alerts"]] == ["SiteVpnDown"]
    finally:
        manager.terminate()
        manager.wait(timeout=30)
        hook.shutdown()


# --------------------------------------------------------------------------------------------------------- Grafana


def grafana_ini(preview: Preview) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(monitoring_files(preview)[GRAFANA_INI])
    return ini


def test_grafana_serves_https_with_the_delivered_certificate(stack: Preview) -> None:
    server = grafana_ini(stack)["server"]
    public = stack.cfg.dns.public_domain
    assert server["protocol"] == "https"
    assert server["http_port"] == str(PORT["grafana"].port)
    assert server["cert_file"] == server_tls("monitoring").cert
    assert server["cert_key"] == server_tls("monitoring").key
    assert server["root_url"] == f"https://grafana.{public}/"
    assert server["domain"] == f"grafana.{public}"
    assert grafana_ini(stack)["security"]["cookie_secure"] == "true"


def test_grafana_uses_its_postgres_database(stack: Preview) -> None:
    database = grafana_ini(stack)["database"]
    assert database["type"] == "postgres"
    assert database["name"] == "grafanadb_server" and database["name"] in stack.cfg.database.databases
    assert database["user"] == "grafana"


def test_grafana_logs_in_through_keycloak(stack: Preview) -> None:
    oauth = grafana_ini(stack)["auth.generic_oauth"]
    realm = f"https://keycloak.{stack.cfg.dns.public_domain}/realms/nina/protocol/openid-connect"
    assert oauth["enabled"] == "true" and oauth["client_id"] == "grafana"
    assert (oauth["auth_url"], oauth["token_url"], oauth["api_url"]) == (f"{realm}/auth", f"{realm}/token", f"{realm}/userinfo")
    assert "openid" in oauth["scopes"].split()
    # only the realm's administrators get in (the realm's groups claim)
    assert "nina-admins" in oauth["role_attribute_path"] and oauth["role_attribute_strict"] == "true"
    # ... and only through Keycloak: no login form to guess the local admin's password at, no basic auth on the API.
    ini = grafana_ini(stack)
    assert ini["auth"]["disable_login_form"] == "true" and ini["auth.basic"]["enabled"] == "false"
    assert oauth["auto_login"] == "true"


def test_every_delivered_grafana_variable_maps_onto_grafana_ini(stack: Preview) -> None:
    """GF_<SECTION>_<KEY>: each variable the env file holds names a section this grafana.ini uses (or one Grafana
    has anyway), and grafana.ini does not set the key itself."""
    ini = grafana_ini(stack)
    sections = {s.upper().replace(".", "_"): s for s in ini.sections()}
    for var in env_var_names("monitoring"):
        body = var.removeprefix("GF_")
        section = max((s for s in sections if body.startswith(s + "_")), key=len)  # AUTH_GENERIC_OAUTH, not AUTH
        key = body.removeprefix(section + "_").lower()
        assert key not in ini[sections[section]], var


def test_grafana_waits_for_its_delivered_files(stack: Preview) -> None:
    dropin = monitoring_files(stack)[GRAFANA_DROPIN]
    conditions = {line.split("=", 1)[1] for line in dropin.splitlines() if line.startswith("ConditionPathExists=")}
    tls = server_tls("monitoring")
    assert conditions == {env_path("monitoring"), tls.cert, tls.key}
    assert f"EnvironmentFile={env_path('monitoring')}" in dropin
    assert "grafana-server.service" in tls.units and "grafana-server.service" in ROLES["monitoring"].units


def test_grafana_provisioning(stack: Preview) -> None:
    files = monitoring_files(stack)
    sources = {d["name"]: d for d in yaml.safe_load(files[DATASOURCES])["datasources"]}
    assert sources["Prometheus"]["url"] == f"http://127.0.0.1:{PORT['prometheus'].port}" and sources["Prometheus"]["isDefault"]
    assert sources["Alertmanager"]["url"] == f"http://127.0.0.1:{PORT['alertmanager'].port}"
    (provider,) = yaml.safe_load(files[DASHBOARDS])["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == str(Path(layout.DASHBOARD_PATH).parent)


def test_dashboard_queries_parse(stack: Preview, tmp_path: Path) -> None:
    """The dashboard's PromQL, checked by promtool as recording rules (promtool has no bare query parser)."""
    dashboard = json.loads(alerts.dashboard_json(stack.cfg))
    assert dashboard["uid"] and dashboard["panels"][0]["targets"][0]["expr"] == 'ALERTS{alertstate="firing"}'
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert any("DCGM_FI_DEV_GPU_TEMP" in e for e in exprs) == bool(stack.cfg.hosts_with("gpu"))
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"nina:panel{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", str(tmp_path / "panels.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_major_version_is_pinned_by_apt(stack: Preview, tmp_path: Path) -> None:
    """apt itself, on a local repository offering Grafana 12.1.0 and 13.0.0: with the pin, 12.1.0 is the candidate."""
    for name in ("dpkg-deb", "dpkg-scanpackages", "apt-cache"):
        tool(name)
    repo = tmp_path / "repo"
    repo.mkdir()
    for version in ("12.1.0", "13.0.0"):
        pkg = tmp_path / f"grafana-{version}"
        (pkg / "DEBIAN").mkdir(parents=True)
        (pkg / "DEBIAN" / "control").write_text(
            f"Package: grafana\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: stand-in\n"
        )
        assert run("dpkg-deb", "--build", str(pkg), str(repo / f"grafana_{version}_all.deb")).returncode == 0
    packages = run("dpkg-scanpackages", "--multiversion", ".", cwd=repo)
    (repo / "Packages").write_text(packages.stdout)
    root = tmp_path / "root"
    for d in ("etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")

    def candidate(with_pin: bool) -> str:
        pin = root / "etc/apt/preferences.d/nina-grafana"
        if with_pin:
            pin.write_text(monitoring_files(stack)[GRAFANA_PIN])
        elif pin.exists():
            pin.unlink()
        opts = [f"-oDir={root}", "-oDir::State::status=" + str(root / "var/lib/dpkg/status"), "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root"]
        assert run("apt-get", *opts, "update").returncode == 0
        policy = run("apt-cache", *opts, "policy", "grafana").stdout
        (found,) = re.findall(r"Candidate: (\S+)", policy)
        return found

    assert candidate(with_pin=False) == "13.0.0"
    assert candidate(with_pin=True) == "12.1.0"


# -------------------------------------------------------------------------------------------- bootstrap and units


def test_bootstrap_installs_grafana_from_its_signed_repository(stack: Preview) -> None:
    script = monitoring_files(stack)[BOOTSTRAP]
    # lib.sh's apt_repo trusts only the key with this fingerprint (tests/test_apt_repo.py runs it for real); the key
    # Grafana revoked in 2023 (0E22EB88...) is not trusted.
    (call,) = [line for line in script.splitlines() if line.startswith("apt_repo grafana ")]
    assert shlex.split(call)[2:] == [
        "https://apt.grafana.com/gpg.key",
        "B53AE77BADB630A683046005963FA27710458545",
        "https://apt.grafana.com stable main",
    ]
    assert f"ensure_dir {layout.PROMETHEUS_TARGETS_DIR} root root 0755" in script
    assert f"ensure_dir {layout.RULES_DIR} root root 0755" in script
    assert f"ensure_dir {Path(server_tls('monitoring').cert).parent} root grafana 0750" in script
    assert f"ensure_dir {Path(layout.DASHBOARD_PATH).parent} root grafana 0750" in script
    for unit in ROLES["monitoring"].units + ("prometheus-alertmanager.service", "prometheus-blackbox-exporter.service"):
        assert unit in script.split("enable_unit", 1)[1].splitlines()[0], unit


def _verify_dropin(unit: str, base: str, dropin: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on `unit` (its distribution file, or a stand-in) with our drop-in beside it."""
    units = tmp_path / unit
    (units / f"{unit}.d").mkdir(parents=True, exist_ok=True)
    (units / unit).write_text(base)
    (units / f"{unit}.d" / "nina.conf").write_text(dropin)
    return run(tool("systemd-analyze"), "verify", str(units / unit))


def _ours(result: subprocess.CompletedProcess[str], tmp_path: Path) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "nina.conf" in line or str(tmp_path) in line]


# ----------------------------------------------------------------------------------------------- security groups


def _unreachable_probes(cfg: StackConfig) -> list[str]:
    """Probe targets whose port-table row admits none of the monitoring host's roles (and that are not on it)."""
    monitor = cfg.the_host_with("monitoring")
    rows = {PORT["superlink"].port: PORT["superlink"]} | {PORT[r].port: PORT[r] for r in ("keycloak", "jupyterhub", "grafana")}
    blocked = []
    for job in ("tls", "superlink-health"):
        for group in _groups(cfg, job):
            target = group["targets"][0]
            port = int(re.findall(r":(\d+)", target)[-1])
            if group["labels"]["host"] != monitor.name and not set(monitor.roles) & set(rows[port].sources):
                blocked.append(f"{job} {target}")
    return blocked


def test_probes_of_the_test_stack_pass_its_security_groups(previews: dict[str, Preview]) -> None:
    assert _unreachable_probes(previews["test"].cfg) == []


def test_probes_of_a_dedicated_monitoring_host_pass_its_security_groups(previews: dict[str, Preview]) -> None:
    """UAT's monitoring VM carries no other role: SuperLink /health and the JupyterHub TLS probe need their rows to
    name it as a source (the SuperLink proxy's health.conf already allows the monitoring host's address)."""
    assert _unreachable_probes(previews["uat"].cfg) == []


def test_the_webhook_url_is_delivered_inside_the_config_for_alertmanager_only(project_copy: Any) -> None:
    """The URL carries the channel's token: a Pulumi secret, in alertmanager.yml delivered root:prometheus 0640 (and
    never in user-data); without --show-secrets the preview does not print it."""
    import yaml as yaml_

    from tests.conftest import ROOT, run_nina

    raw = yaml_.safe_load((ROOT / "Pulumi.uat.yaml").read_text())["config"]
    url = "https://chat.example.org/hooks/nina-ops-7f3a"
    project = project_copy("uat", {**raw, "nina:alert_webhook_url": url})
    shown = run_nina("preview", "--stack", "uat", "--json", "--show-secrets", "--cwd", str(project))
    assert shown.returncode == 0, shown.stderr
    resources = json.loads(shown.stdout)["resources"]
    (deliver,) = [r for r in resources if r["name"] == "deliver-monitoring"]
    files = {f["path"]: f for f in json.loads(deliver["inputs"]["stdin"])["files"]}
    config = files[layout.ALERTMANAGER_PATH]
    assert (config["owner"], config["mode"]) == ("root:prometheus", "0640")
    assert yaml.safe_load(config["content"])["receivers"][0]["webhook_configs"] == [{"url": url, "send_resolved": True}]
    from nina.review.files import decode_user_data

    user_data = [decode_user_data(r["inputs"]["userData"]) for r in resources if r["type"] == "openstack:compute/instance:Instance"]
    assert len(user_data) == 7 and all("#cloud-config" in u and url not in u for u in user_data)  # decoded: most are gzip'd
    hidden = run_nina("preview", "--stack", "uat", "--json", "--cwd", str(project))
    assert hidden.returncode == 0 and url not in hidden.stdout


def test_each_federation_has_a_dashboard_of_its_own(previews: dict[str, Preview], tmp_path: Path) -> None:
    """A dashboard file per federation, delivered with the monitoring files; every query parses (promtool) and
    selects that federation only: run as recording rules over two federations' series, the tunnel panel shows
    only its own federation's sites."""
    cfg = previews["uat"].cfg
    fed = cfg.federations["uat-cardiac"]
    files = scrape.monitoring_files(cfg)
    path = federation_dashboard.dashboard_path(fed)
    assert path.startswith(layout.DASHBOARD_DIR + "/") and files[path] == (federation_dashboard.dashboard_json(cfg, fed), ())
    assert {p for p in files if p.endswith(".json") and p.startswith(layout.DASHBOARD_DIR)} == {layout.DASHBOARD_PATH} | {
        federation_dashboard.dashboard_path(f) for f in cfg.federations.values()
    }
    dashboard = json.loads(files[path][0])
    exprs = {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"]}
    assert all('federation="uat-cardiac"' in e for e in exprs.values())
    assert "Site GPUs: temperature" in exprs  # metro-north says gpu: true
    rules = {"groups": [{"name": "panels", "rules": [{"record": f"nina:panel{i}", "expr": e} for i, e in enumerate(exprs.values())]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", str(tmp_path / "panels.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tunnels = list(exprs).index("Site tunnels (1 = connected)")
    series = [
        {"series": 'nina_vpn_site_connected{federation="uat-cardiac",organisation="metro-north",proto="udp"}', "values": "1x10"},
        {"series": 'nina_vpn_site_connected{federation="uat-cardiac",organisation="metro-north",proto="tcp"}', "values": "0x10"},
        {"series": 'nina_vpn_site_connected{federation="other",organisation="elsewhere",proto="udp"}', "values": "0x10"},
    ]
    case = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [{"expr": f"nina:panel{tunnels}", "eval_time": "5m", "exp_samples": [{"labels": 'nina:panel%d{organisation="metro-north"}' % tunnels, "value": 1}]}],
    }
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": ["panels.yml"], "evaluation_interval": "1m", "tests": [case]}))
    result = run(tool("promtool"), "test", "rules", str(tmp_path / "t.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_preview_shows_what_watches_the_on_premises_site(previews: dict[str, Preview]) -> None:
    """`nina preview --stack uat` lists the scrape targets and alerts of the on-premises site (stack output
    `monitoring`), read from the same files and table Prometheus gets."""
    preview = previews["uat"]
    summary = preview.data["outputs"]["monitoring"]
    fed = preview.cfg.federations["uat-cardiac"]
    addresses = openvpn.site_addresses(fed, "metro-north", preview.cfg.vpn_clients(fed)).values()
    site = summary["sites"]["metro-north"]["uat-cardiac"]
    assert sorted(site["scraped"]) == sorted(f"{a}:{p}" for a in addresses for p in (9900, 9400))
    assert {"SiteVpnDown", "SiteCertificateExpiring", "SiteDcgmExporterDown", "SuperNodeNotSeen"} <= set(site["alerts"])
    assert set(site["alerts"]) <= {r.name for r in alert_table.RULES}
    assert site["supernodes"] == ["mn-sn1"]
    assert set(site["scraped"]) == set(summary["scrape_targets"]["site-node"]) | set(summary["scrape_targets"]["site-dcgm"])
    assert summary["alerts"]["SiteCertificateExpiring"] == "medium/high"
    assert "org-b" not in summary["sites"]  # Nectar-hosted: a host like any other


HOSTILE_SITE = """\
# a hospital's machine answering the platform's scrape with whatever it likes
node_load15 0.5
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/",supernode="ob-sn1",roles=",superlink,"} 10
nina_supernode_registered{federation="uat-cardiac",supernode="ob-sn1"} 0
nina_postgres_up{database="keycloakdb_server"} 0
ALERTS{alertname="HostDown",alertstate="firing",host="keycloak"} 1
"""


def test_a_hostile_site_cannot_write_platform_series_into_prometheus(previews: dict[str, Preview], tmp_path: Path) -> None:
    """The real Prometheus with the rendered site-node job scrapes a stand-in for a hospital's exporter that forges
    the platform's own series: only the allowed host metrics arrive, without the forged labels, and an answer past
    the job's sample limit is refused whole."""
    import http.server
    import socket
    import threading
    import urllib.parse
    import urllib.request

    body = {"text": HOSTILE_SITE}

    class Exporter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            data = body["text"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    rendered = yaml.safe_load(monitoring_files(previews["uat"])[PROMETHEUS_YML])
    (job,) = [j for j in rendered["scrape_configs"] if j["job_name"] == "site-node"]
    group = json.loads(scrape.target_files(previews["uat"].cfg)["site-node.json"])[0]
    group["targets"] = [f"127.0.0.1:{exporter.server_port}"]
    (tmp_path / "site-node.json").write_text(json.dumps([group]))
    job["file_sd_configs"] = [{"files": [str(tmp_path / "site-node.json")]}]
    job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": [job]}))
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        api = s_.getsockname()[1]
    server = subprocess.Popen(
        [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{api}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )

    def query(expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, Any]] = json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]
        return result

    def eventually(expr: str, want: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 60
        while True:
            try:
                found = query(expr)
                if found and float(found[0]["value"][1]) == want:
                    return found
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, f"{expr} never became {want}"
            time.sleep(0.5)

    try:
        (load,) = eventually("node_load15", 0.5)
        assert load["metric"]["organisation"] == "metro-north" and load["metric"]["job"] == "site-node"
        (disk,) = query("node_filesystem_avail_bytes")
        assert "supernode" not in disk["metric"] and "roles" not in disk["metric"], disk
        assert query('{__name__=~"nina_.*|ALERTS"}') == []
        # a flood: more series than the job's sample limit fails the scrape, keeping nothing of it
        body["text"] = "".join(f'node_cpu_seconds_total{{cpu="{i}",mode="idle"}} 1\n' for i in range(scrape.SITE_LIMITS["sample_limit"] + 1))
        eventually('up{job="site-node"}', 0)
        assert query("node_cpu_seconds_total") == []
    finally:
        server.terminate()
        server.wait(timeout=30)
        exporter.shutdown()
