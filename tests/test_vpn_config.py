"""The VPN role's rendered configs and data (issue 5), judged on content and by logrotate; the generic checks
(cloud-init schema, shellcheck, systemd-analyze verify, nft -c) run on every host in test_cloudinit.py, and the real
tunnel in test_vpn_tunnel.py."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cloudinit import cloud_config
from nina.catalog import layout
from nina.catalog.ports import PORTS
from nina.catalog.roles import server_tls
from nina.config import Federation, StackConfig, parse
from nina.plan import names, openvpn
from tests.conftest import STACKS, config_of, encode, problems, raw_config


def vpn_hosts() -> list[tuple[StackConfig, Federation, dict[str, str]]]:
    """(cfg, federation, {path: content} of the VPN host's user-data files) for every stack's VPN server."""
    found = []
    for stack in STACKS:
        cfg = config_of(stack)
        for fed in cfg.federations.values():
            if fed.vpn_host:
                doc = cloud_config(cfg, cfg.hosts[fed.vpn_host])
                found.append((cfg, fed, {f["path"]: f["content"] for f in doc["write_files"]}))
    assert found, "no stack has a VPN server"
    return found


def directives(conf: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in conf.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("index", range(2), ids=["udp", "tcp"])
def test_server_config_per_instance(index: int) -> None:
    for cfg, fed, files in vpn_hosts():
        inst = openvpn.instances(fed)[index]
        d = directives(files[inst.conf])
        port = next(p for p in PORTS if p.role == "vpn" and p.protocol == inst.proto)
        assert d["port"] == [str(port.port)] and d["proto"] == [inst.proto]
        assert d["dev"] == ["tun"] and d["topology"] == ["subnet"]
        assert d["server"] == [f"{inst.network.network_address} {inst.network.netmask} nopool"]
        assert ipaddress.ip_network(inst.network).subnet_of(fed.vpn_client_range)  # type: ignore[arg-type]
        assert d["client-config-dir"] == [inst.ccd_dir] and "ccd-exclusive" in d
        assert d["crl-verify"] == [f"{layout.OPENVPN_CRL_DIR} dir"]
        assert d["ca"] == [layout.CA_TRUST_PATH] and d["tls-crypt"] == [layout.OPENVPN_TLS_CRYPT]
        assert d["cert"] == [server_tls("vpn").cert] and d["key"] == [server_tls("vpn").key]
        assert d["dh"] == ["none"] and d["remote-cert-tls"] == ["client"] and d["tls-version-min"] == ["1.2"]
        assert d["data-ciphers"] == [":".join(openvpn.DATA_CIPHERS)]
        assert d["user"] == ["nobody"] and d["group"] == ["nogroup"] and "persist-key" in d and "persist-tun" in d
        internal = cfg.network.segments["internal"].cidr
        assert f'"route {internal.network_address} {internal.netmask}"' in d["push"]
        # No manual-era leftovers, and sites never talk to each other through the server.
        for absent in ("client-to-client", "tls-auth", "duplicate-cn", "daemon", "cipher", "comp-lzo", "compress"):
            assert absent not in d, absent


def test_two_instances_split_the_range_and_match_the_unit_names() -> None:
    for _, fed, files in vpn_hosts():
        udp, tcp = openvpn.instances(fed)
        assert (udp.proto, tcp.proto) == ("udp", "tcp")
        assert not udp.network.overlaps(tcp.network)
        assert {udp.network, tcp.network} == set(fed.vpn_client_range.subnets(prefixlen_diff=1))  # type: ignore[union-attr]
        assert (udp.unit, tcp.unit) == layout.OPENVPN_SERVER_UNITS == server_tls("vpn").units
        bootstrap = next(c for p, c in files.items() if p.endswith("-vpn.sh"))
        for unit in layout.OPENVPN_SERVER_UNITS:
            assert f"enable_unit {unit}" in bootstrap


def test_servers_wait_for_delivered_material_and_forwarding_rules() -> None:
    for _, _, files in vpn_hosts():
        dropin = files["/etc/systemd/system/openvpn-server@.service.d/10-nina.conf"]
        for path in (layout.CA_TRUST_PATH, server_tls("vpn").key, layout.OPENVPN_TLS_CRYPT):
            assert f"ConditionPathExists={path}" in dropin
        assert "After=nina-vpn-forward.service" in dropin
        # Requires=, not Wants=: rules that fail to load keep OpenVPN down instead of forwarding unfiltered.
        assert "Requires=nina-vpn-forward.service" in dropin and "Wants=" not in dropin
        assert re.search(r"^net\.ipv4\.ip_forward\s*=\s*1$", files["/etc/sysctl.d/60-nina-vpn.conf"], re.M)


def test_forwarding_rules_are_limited_to_the_superlink() -> None:
    for cfg, fed, files in vpn_hosts():
        rules = files["/etc/nina/vpn-forward.nft"]
        superlink = cfg.hosts[fed.superlink_host]
        assert "policy drop" in rules
        assert f"elements = {{ {fed.vpn_client_range} }}" in rules
        assert re.search(r"ip saddr @sites ip daddr @sites .*drop", rules)  # organisations never reach each other
        assert f"ip saddr @sites ip daddr {superlink.ip} tcp dport 9092 accept" in rules
        assert "masquerade" not in rules  # routed: the Nectar router returns the VPN range to this host


def test_logrotate_accepts_the_config(tmp_path: Path) -> None:
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (scripts/install-system-deps.sh)")
    _, _, files = vpn_hosts()[0]
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "server-udp.log").write_text("x" * 100)
    (logs / "server-udp.status").write_text("status")
    conf = tmp_path / "nina-openvpn"
    conf.write_text(files["/etc/logrotate.d/nina-openvpn"].replace(openvpn.LOG_DIR, str(logs)))
    proc = subprocess.run(["logrotate", "-d", "-f", "-s", str(tmp_path / "state"), str(conf)], capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "error" not in out.lower(), out
    assert "server-udp.log" in out and "server-udp.status" not in out  # the status file is rewritten, never rotated
    assert "copying" in out and "truncating" in out, out


# ------------------------------------------------------------------------------------------- fixed addresses


def _fed(range_: str = "192.168.100.0/24") -> Federation:
    cfg = config_of("uat")
    return replace(cfg.federations["uat-cardiac"], vpn_client_range=ipaddress.IPv4Network(range_))


def test_every_organisation_gets_its_own_address_outside_the_servers() -> None:
    fed = _fed()
    orgs = [f"hospital-{i}" for i in range(60)]
    offsets = openvpn.client_offsets(fed, orgs)
    assert len(set(offsets.values())) == len(orgs)
    for inst in openvpn.instances(fed):
        addresses = {inst.address(o) for o in offsets.values()}
        assert all(a in inst.network for a in addresses)
        assert not addresses & {inst.network.network_address, inst.server_address, inst.network.broadcast_address}


def test_adding_or_removing_an_organisation_keeps_the_others_addresses() -> None:
    fed = _fed()
    before = openvpn.client_offsets(fed, ["metro-north", "gold-coast", "townsville"])
    after = openvpn.client_offsets(fed, ["metro-north", "gold-coast", "townsville", "cairns"])
    assert {k: after[k] for k in before} == before
    assert openvpn.client_offsets(fed, ["metro-north", "townsville"]) == {k: before[k] for k in ("metro-north", "townsville")}


def test_a_site_has_one_address_per_instance_matching_its_ccd_files() -> None:
    cfg = config_of("uat")
    fed = cfg.federations["uat-cardiac"]
    addresses = openvpn.site_addresses(fed, "metro-north", cfg.vpn_clients(fed))
    ccd = openvpn.ccd_files(cfg, fed)
    for inst in openvpn.instances(fed):
        assert ccd[f"{inst.ccd_dir}/metro-north"].split()[1] == str(addresses[inst.proto])
    assert set(addresses) == {"udp", "tcp"}


def test_a_full_range_is_reported() -> None:
    with pytest.raises(ValueError, match="room for 5 organisations"):
        openvpn.client_offsets(_fed("192.168.100.0/28"), [f"h{i}" for i in range(6)])


def test_ccd_files_give_each_instance_its_address() -> None:
    cfg = config_of("uat")
    fed = cfg.federations["uat-cardiac"]
    offset = openvpn.client_offsets(fed, ["metro-north"])["metro-north"]
    files = openvpn.ccd_files(cfg, fed)
    udp, tcp = openvpn.instances(fed)
    assert files == {
        f"{udp.ccd_dir}/metro-north": f"ifconfig-push {udp.address(offset)} 255.255.255.128\n",
        f"{tcp.ccd_dir}/metro-north": f"ifconfig-push {tcp.address(offset)} 255.255.255.128\n",
    }
    assert "org-b" not in str(files)  # Nectar-hosted: no VPN


# ------------------------------------------------------------------------------------------------ revocation


def _with_revoked(entries: Any, stack: str = "uat") -> dict[str, Any]:
    raw = raw_config(stack)
    raw["nina:federations"]["uat-cardiac"]["revoked"] = entries
    return raw


def test_revoked_serials_become_crl_dir_files() -> None:
    cfg = parse(encode(_with_revoked([{"organisation": "old-hospital", "serial": "0A:1B:FF", "reason": "left the federation"}])))
    fed = cfg.federations["uat-cardiac"]
    assert openvpn.crl_files(fed) == {f"{layout.OPENVPN_CRL_DIR}/{0x0A1BFF}": "organisation=old-hospital serial=0A1BFF reason=left the federation\n"}
    assert openvpn.crl_files(config_of("uat").federations["uat-cardiac"]) == {}


@pytest.mark.parametrize(
    ("entries", "path", "message"),
    [
        ([{"organisation": "x", "serial": "not-hex"}], "revoked[0].serial", "in hex"),
        ([{"organisation": "x", "serial": 1234}], "revoked[0].serial", "in hex"),
        ([{"organisation": "x", "serial": "AB"}, {"organisation": "y", "serial": "ab"}], "revoked[1].serial", "listed twice"),
        ([{"organisation": "Bad Name", "serial": "AB"}], "revoked[0].organisation", "not a valid name"),
        ([{"organisation": "x", "serial": "AB", "when": "now"}], "revoked[0].when", "unknown key"),
        ({"organisation": "x"}, "revoked", "must be a list"),
    ],
)
def test_bad_revocations_are_reported(entries: Any, path: str, message: str) -> None:
    found = problems(_with_revoked(entries))
    assert any(p.startswith(f"nina:federations.uat-cardiac.{path}:") and message in p for p in found), found


def test_vpn_range_must_leave_room_for_both_instances() -> None:
    raw = raw_config("uat")
    raw["nina:federations"]["uat-cardiac"]["vpn_client_range"] = "192.168.100.0/29"
    assert any(p.startswith("nina:federations.uat-cardiac.vpn_client_range:") and "too small" in p for p in problems(raw))


# --------------------------------------------------------------------------------------------------- client


def test_client_conf_for_the_on_premises_organisation() -> None:
    cfg = config_of("uat")
    fed = cfg.federations["uat-cardiac"]
    d = directives(openvpn.client_conf(cfg, fed, "metro-north", "203.0.113.7"))
    assert d["remote"] == ["203.0.113.7 1194 udp", "203.0.113.7 443 tcp"]  # UDP first, then the TCP fallback
    assert "client" in d and d["dev"] == ["tun"] and d["remote-cert-tls"] == ["server"]
    # The name clients check is the CN components/pki.py gives the VPN server certificate (its first alias).
    cn = names.fqdn(cfg, names.role_aliases(cfg, cfg.hosts[fed.vpn_host], "vpn")[0])  # type: ignore[index]
    assert d["verify-x509-name"] == [f"{cn} name"]
    assert d["key"] == [f"{openvpn.CLIENT_DIR}/client.key"] and d["tls-crypt"] == [f"{openvpn.CLIENT_DIR}/tls-crypt.key"]
    assert d["data-ciphers"] == [":".join(openvpn.DATA_CIPHERS)]
    with pytest.raises(ValueError, match="not an on-premises member"):
        openvpn.client_conf(cfg, fed, "org-b", "203.0.113.7")


def test_site_files_hold_no_private_key() -> None:
    cfg = config_of("uat")
    fed = cfg.federations["uat-cardiac"]
    output = {
        "server": "203.0.113.7",
        "ca_cert_pem": "CA",
        "tls_crypt_key": "TLS-CRYPT",
        "clients": {"metro-north": {"cert_pem": "CERT", "key": "generated", "key_pem": "PRIVATE"}},
    }
    files = openvpn.site_files(cfg, fed, "metro-north", output)
    assert set(files) == {"client.conf", "ca.crt", "client.crt", "tls-crypt.key"}
    assert "PRIVATE" not in str(files)
    assert files["tls-crypt.key"].mode == "0600" and files["client.crt"].content == "CERT"
    assert "remote 203.0.113.7 1194 udp" in files["client.conf"].content


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to group adm needs root")
def test_the_servers_logs_are_readable_by_the_log_pattern_counter(tmp_path: Path) -> None:
    """The drop-in's ExecStartPre, unescaped as systemd does (%i, $$) and run with its log directory moved under
    tmp: an existing 0600 log (what OpenVPN creates) and a missing one both end root:adm 0640, content kept."""
    import grp

    _, _, files = next(iter(vpn_hosts()))
    dropin = files["/etc/systemd/system/openvpn-server@.service.d/10-nina.conf"]
    (line,) = [ln for ln in dropin.splitlines() if ln.startswith("ExecStartPre=")]
    command = line.removeprefix("ExecStartPre=").removeprefix("+").replace("%i", "server-udp").replace("$$", "$")
    command = command.replace(openvpn.LOG_DIR, str(tmp_path))
    assert command.startswith("/bin/sh -c '") and command.endswith("'")
    subprocess.run(["/bin/sh", "-c", command[len("/bin/sh -c '") : -1]], check=True)
    log = tmp_path / "server-udp.log"
    assert oct(log.stat().st_mode & 0o777) == "0o640" and grp.getgrgid(log.stat().st_gid).gr_name == "adm"
    log.write_text("kept\n")
    log.chmod(0o600)
    subprocess.run(["/bin/sh", "-c", command[len("/bin/sh -c '") : -1]], check=True)
    assert log.read_text() == "kept\n" and oct(log.stat().st_mode & 0o777) == "0o640"
