"""Public DNS (components/dns.py): the names browsers, certbot and hospitals' VPN clients use resolve to the floating
IP of the host that serves them. With nina:dns.public_zone the stack keeps them as Designate A records; without it,
the `public_dns` output lists them for whoever runs the domain."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from conftest import ROOT, Preview, config_of, problems, raw_config, run_nina

from nina.plan import public as services

RECORDSET = "openstack:dns/recordSet:RecordSet"


def preview_with(project_copy: Any, **dns: Any) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    config["nina:dns"].update(dns)
    done = run_nina("preview", "--stack", "test", "--json", "--cwd", str(project_copy("test", config)))
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def floating_ip_of(host: str) -> str:
    # how the preview shows a floating IP's address before the cloud assigns it
    return f"[computed: openstack FloatingIp {host} address]"


def test_every_name_nginx_certbot_and_vpn_clients_use_has_a_record(preview: Preview) -> None:
    records = preview.data["outputs"]["public_dns"]
    cfg = preview.cfg
    ingress = cfg.the_host_with("ingress").name
    certbot = next(f["content"] for f in preview.hosts[ingress].write_files if f["path"].endswith("nina-certbot.service"))
    for name in re.findall(r" -d (\S+)", certbot):
        assert records[name] == floating_ip_of(ingress), name
    for fed in cfg.federations.values():
        if fed.vpn_host:
            # the name an offline site bundle puts in its client.conf `remote` lines
            assert records[services.vpn_public_name(cfg, fed)] == floating_ip_of(fed.vpn_host)
    assert set(records) == set(services.public_records(cfg))
    assert not preview.of_type(RECORDSET)  # the shipped stacks name no zone: nothing created in Designate


def test_a_public_zone_keeps_one_a_record_per_name(project_copy: Any) -> None:
    data = preview_with(project_copy, public_zone="nina.qcif.edu.au.")
    recordsets = {r["name"]: r["inputs"] for r in data["resources"] if r["type"] == RECORDSET}
    expected = data["outputs"]["public_dns"]
    assert set(recordsets) == set(expected) and len(expected) == 4  # keycloak, flhub, grafana, vpn-test-fl
    served_by = services.public_records(config_of("test"))
    for name, inputs in recordsets.items():
        assert inputs["name"] == f"{name}." and inputs["type"] == "A"
        assert inputs["records"] == [expected[name]] == [floating_ip_of(served_by[name])]
        assert inputs["zoneId"] == "zone-nina.qcif.edu.au."  # looked up by the configured zone's name
        assert 60 <= inputs["ttl"] <= 3600


def test_the_zone_must_hold_the_public_domain() -> None:
    config = raw_config()
    config["nina:dns"]["public_zone"] = "example.org"
    config["nina:dns"]["acme_email"] = "not-an-address"
    found = problems(config)
    assert any(p.startswith("nina:dns.public_zone:") and "does not contain public_domain 'test.nina.qcif.edu.au'" in p for p in found), found
    assert any(p.startswith("nina:dns.acme_email:") for p in found), found
    config["nina:dns"]["public_zone"] = "qcif.edu.au."
    config["nina:dns"]["acme_email"] = "pki@qcif.edu.au"
    assert problems(config) == []


def test_lets_encrypt_gets_a_contact_address(project_copy: Any, preview: Preview) -> None:
    ingress = preview.cfg.the_host_with("ingress").name
    certbot = next(f["content"] for f in preview.hosts[ingress].write_files if f["path"].endswith("nina-certbot.service"))
    if preview.cfg.acme_contact is None:  # neither nina:dns.acme_email nor alert addresses set
        assert "--register-unsafely-without-email" in certbot
    else:  # the first alert address
        assert f"--email {preview.cfg.monitoring.alert_email[0]} " in certbot
    config = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    config["nina:dns"]["acme_email"] = "pki@qcif.edu.au"
    out = project_copy("test", config)
    done = run_nina("preview", "--stack", "test", "--json", "--out", str(out / "preview"), "--cwd", str(out))
    assert done.returncode == 0, done.stderr
    user_data = (out / "preview" / "hosts" / "hub" / "cloud-config.yaml").read_text()
    assert "--email pki@qcif.edu.au --deploy-hook" in user_data and "--register-unsafely-without-email" not in user_data
