"""Who may reach which SuperLink API, with real requests (issue 4): the rendered nginx proxy in front of a real
flower-superlink, the delivered allow lists with each network's addresses replaced by a loopback source address of
its own (curl --interface 127.0.0.x), and requests from each source to each path.

Sources: 127.0.0.2 stands for the SuperNode networks (fleet.conf), 127.0.0.3 for the JupyterHub host and the admin
networks (control.conf), 127.0.0.4 for monitoring (health.conf).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from conftest import Preview
from superlink_site import Processes, SuperLinkSite

from nina.catalog import layout
from nina.plan import flower

FLEET, CONTROL, MONITORING = "127.0.0.2", "127.0.0.3", "127.0.0.4"
SOURCES = (FLEET, CONTROL, MONITORING)


def request(site: SuperLinkSite, source: str, path: str, method: str = "POST") -> tuple[int, str]:
    argv = ["curl", "-s", "--max-time", "10", "--interface", source, "--cacert", str(site.ca), "-X", method, "-w", "\n%{http_code}"]
    if method == "POST":
        argv += ["-H", "Content-Type: application/json", "--data", "{}"]
    out = subprocess.run([*argv, f"https://127.0.0.1:{site.public}{path}"], capture_output=True, text=True, check=False).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def post_size(site: SuperLinkSite, source: str, path: str, size: int, tmp: Path) -> int:
    """The status a POST of `size` bytes gets (protobuf content type: the SuperLink's own answer is not 413)."""
    body = tmp / f"body-{size}"
    body.write_bytes(b"\0" * size)
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "30", "--interface", source, "--cacert", str(site.ca), "-w", "%{http_code}"]
    argv += ["-H", "Content-Type: application/protobuf", "--data-binary", f"@{body}", f"https://127.0.0.1:{site.public}{path}"]
    return int(subprocess.run(argv, capture_output=True, text=True, check=False).stdout or 0)


def refused_by_proxy(site: SuperLinkSite, source: str, path: str, method: str = "POST") -> bool:
    code, body = request(site, source, path, method)
    assert code != 0, f"no answer from the proxy for {source} {path}"
    return code == 403 and "<center>nginx</center>" in body


def test_delivered_allow_lists_name_the_right_networks(previews: dict[str, Preview]) -> None:
    cfg = previews["test"].cfg
    fed = cfg.federations["test-fl"]
    files = flower.acl_files(cfg, fed)
    acl = layout.SUPERLINK_ACL_DIR
    assert files[f"{acl}/fleet.conf"] == "allow 10.40.10.0/24;\nallow 192.168.99.0/24;\nallow 10.40.0.30;\ndeny all;\n"
    assert files[f"{acl}/control.conf"] == "allow 10.40.0.10;\nallow 203.101.224.0/20;\ndeny all;\n"
    assert files[f"{acl}/health.conf"] == "allow 10.40.0.10;\nallow 127.0.0.1;\ndeny all;\n"
    assert "deny" not in files[f"{acl}/runs.conf"]
    archived = flower.acl_files(cfg, dataclasses.replace(fed, archived=True))
    assert archived[f"{acl}/fleet.conf"] == "deny all;\n" and "deny all;" in archived[f"{acl}/runs.conf"]
    assert archived[f"{acl}/control.conf"] == files[f"{acl}/control.conf"]  # history stays readable


def test_path_acl_with_real_requests(materialized: dict[str, Preview], tmp_path: Path) -> None:
    preview = materialized["test"]
    procs = Processes(tmp_path)
    try:
        site = SuperLinkSite(preview, "superlink", tmp_path)
        site.start(procs)
        site.start_proxy(procs, {"fleet": [FLEET], "control": [CONTROL], "health": [MONITORING]}, probe_from=MONITORING)

        # The Fleet API: SuperNode networks only.
        fleet = "/v1/fleet/pull-messages"
        assert not refused_by_proxy(site, FLEET, fleet)
        assert refused_by_proxy(site, CONTROL, fleet) and refused_by_proxy(site, MONITORING, fleet)
        # The Control API: researchers' and operators' networks only; its answer comes from the SuperLink.
        code, body = request(site, CONTROL, "/v1/control/list-runs")
        assert code != 403 and "Unsupported Content-Type" in body, body  # the SuperLink answered (it speaks protobuf)
        for path in ("/v1/control/list-runs", "/v1/control/start-run", "/v1/control/stream-logs"):
            assert refused_by_proxy(site, FLEET, path), path
            assert refused_by_proxy(site, MONITORING, path), path
        assert not refused_by_proxy(site, CONTROL, "/v1/control/start-run")
        # Registration happens on the SuperLink host itself (loopback), never through the proxy, for anyone.
        for source in SOURCES:
            assert refused_by_proxy(site, source, "/v1/control/register-node")
            assert refused_by_proxy(site, source, "/v1/control/unregister-node")
        # Health for monitoring; documentation, schema and the Runtime API for nobody.
        assert request(site, MONITORING, "/health", "GET")[0] == 200
        assert refused_by_proxy(site, FLEET, "/health", "GET")
        for source in SOURCES:
            for path in ("/docs", "/openapi.json", "/v1/runtime/acquire-task", "/"):
                assert refused_by_proxy(site, source, path, "GET" if path in ("/docs", "/openapi.json", "/") else "POST"), (source, path)
        # Bodies are capped before anyone is authenticated: Flower's largest (a 5 MiB array chunk, a 10 MiB FAB) pass.
        mib = 1024 * 1024
        assert post_size(site, FLEET, fleet, 6 * mib, tmp_path) not in (0, 413)
        assert post_size(site, FLEET, fleet, 17 * mib, tmp_path) == 413
        assert post_size(site, CONTROL, "/v1/control/start-run", 11 * mib, tmp_path) not in (0, 413)
        assert post_size(site, CONTROL, "/v1/control/start-run", 17 * mib, tmp_path) == 413
        assert post_size(site, CONTROL, "/v1/control/list-runs", 2 * mib, tmp_path) == 413
        # The same paths straight at the SuperLink answer: the proxy, not the SuperLink, is what refuses them.
        direct = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(site.ca), f"https://127.0.0.1:{site.loopback}/openapi.json"],
            capture_output=True, text=True, check=False,
        ).stdout
        assert direct == "200"

        # Archiving the federation: nina-deliver writes the archived allow lists and reloads the proxy.
        cfg = preview.cfg
        archived = flower.acl_files(cfg, dataclasses.replace(cfg.federations["test-fl"], archived=True))
        staged = tmp_path / "archived-acl"
        staged.mkdir()
        for path, content in archived.items():
            (staged / Path(path).name).write_text(content)
        site.write_acl({"control": [CONTROL], "health": [MONITORING]}, staged)
        site.reload_proxy()
        assert refused_by_proxy(site, CONTROL, "/v1/control/start-run")
        assert refused_by_proxy(site, FLEET, fleet)
        assert not refused_by_proxy(site, CONTROL, "/v1/control/list-runs")
    finally:
        procs.stop()


@pytest.mark.parametrize("stack", ["test", "uat"])
def test_rendered_proxy_config_passes_nginx_t(materialized: dict[str, Preview], tmp_path: Path, stack: str) -> None:
    site = SuperLinkSite(materialized[stack], "superlink", tmp_path)
    conf = site.proxy_conf({})
    check = subprocess.run(["nginx", "-e", "stderr", "-p", str(site.root), "-t", "-c", str(conf)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
