"""The resource graph of each stack: what would be created, how it is wired, and who parents whom.

References between resources are checked through the ids the mocks give them (`resource_id`), so an instance on the
wrong port or a subnet on the wrong network fails here, not in Nectar. Checks are per stack config, so they hold for
any stack file.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from conftest import (
    INSTANCE,
    PORT,
    ROOT,
    STACKS,
    Preview,
    evaluate_raw,
    raw_config,
    resource_id,
)

HOST = "nina:host:Host"
PLATFORM = "nina:platform:Platform"
NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
ROUTER = "openstack:networking/router:Router"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
ROUTER_ROUTE = "openstack:networking/routerRoute:RouterRoute"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
FLOATING_IP_ASSOCIATE = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
VOLUME = "openstack:blockstorage/volume:Volume"
VOLUME_ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
TROVE = "openstack:database/instance:Instance"


def ref(resource: dict[str, Any]) -> str:
    return resource_id(resource["type"], resource["name"])


def subnet_of(preview: Preview, segment: str) -> dict[str, Any]:
    cidr = str(preview.cfg.network.segments[segment].cidr)
    (subnet,) = [s for s in preview.of_type(SUBNET) if s["inputs"]["cidr"] == cidr]
    return subnet


def network_of(preview: Preview, segment: str) -> dict[str, Any]:
    parent = subnet_of(preview, segment)["parent"]
    (network,) = [n for n in preview.of_type(NETWORK) if preview.key(n) == parent]
    return network


def children(preview: Preview, type_token: str, parent_type: str) -> dict[str, dict[str, Any]]:
    """Resources of a type by the name of their parent of `parent_type` (one each)."""
    found: dict[str, dict[str, Any]] = {}
    for r in preview.of_type(type_token):
        kind, _, name = r["parent"].partition("::")
        assert kind == parent_type, f"{type_token} {r['name']} is parented by {r['parent']}"
        assert name not in found, f"two {type_token} under {name}"
        found[name] = r
    return found


# --------------------------------------------------------------------------------------------------- structure


def test_one_platform_parents_everything(preview: Preview) -> None:
    roots = [r for r in preview.resources if r["parent"] == ""]
    assert [(r["type"], r["name"]) for r in roots] == [(PLATFORM, f"nina-{preview.cfg.environment}")]
    keys = {preview.key(r) for r in preview.resources}
    for r in preview.resources:
        assert r["parent"] == "" or r["parent"] in keys, f"{preview.key(r)}: parent {r['parent']} was never registered"
    assert len(keys) == len(preview.resources), "two resources share a type and name"


def test_components_have_nina_type_tokens(preview: Preview) -> None:
    components = {r["type"] for r in preview.resources if not r["type"].split(":")[0] in ("openstack", "tls", "random", "command")}
    assert components and all(t.startswith("nina:") for t in components), components


# ------------------------------------------------------------------------------------------------------- hosts


def test_one_instance_per_host(preview: Preview) -> None:
    cfg = preview.cfg
    hosts = preview.of_type(HOST)
    assert sorted(h["name"] for h in hosts) == sorted(cfg.hosts)
    assert all(h["parent"].partition("::")[0] == PLATFORM for h in hosts)
    instances = children(preview, INSTANCE, HOST)
    ports = children(preview, PORT, HOST)
    assert sorted(instances) == sorted(ports) == sorted(cfg.hosts)
    for name, host in cfg.hosts.items():
        i = instances[name]["inputs"]
        assert i["flavorName"] == host.flavor
        assert i["imageName"] == cfg.cloud.image
        assert i["availabilityZone"] == cfg.cloud.availability_zone
        assert i["networks"] == [{"port": ref(ports[name])}], f"{name}: not attached through its own port"
        assert i["metadata"]["nina-roles"] == ",".join(host.roles)


def test_ports_have_the_configured_fixed_ips(preview: Preview) -> None:
    ports = children(preview, PORT, HOST)
    for name, host in preview.cfg.hosts.items():
        i = ports[name]["inputs"]
        assert i["fixedIps"] == [{"ipAddress": str(host.ip), "subnetId": ref(subnet_of(preview, host.segment))}], name
        assert i["networkId"] == ref(network_of(preview, host.segment)), name


def test_vpn_ports_may_forward_their_client_range(preview: Preview) -> None:
    ports = children(preview, PORT, HOST)
    for name in preview.cfg.hosts:
        ranges = sorted(str(f.vpn_client_range) for f in preview.cfg.federations.values() if f.vpn_host == name and f.vpn_client_range)
        pairs = sorted(p["ipAddress"] for p in ports[name]["inputs"].get("allowedAddressPairs") or [])
        assert pairs == ranges, name


def test_floating_ips_only_for_public_facing_hosts(preview: Preview) -> None:
    cfg = preview.cfg
    fips = children(preview, FLOATING_IP, HOST)
    associations = children(preview, FLOATING_IP_ASSOCIATE, HOST)
    ports = children(preview, PORT, HOST)
    public = sorted(n for n, h in cfg.hosts.items() if h.public_facing)
    assert public, "every stack has public-facing hosts (ingress, vpn)"
    assert sorted(fips) == sorted(associations) == public
    for name in public:
        assert fips[name]["inputs"]["pool"] == cfg.cloud.external_network
        assoc = associations[name]["inputs"]
        assert assoc["portId"] == ref(ports[name])
        assert assoc["floatingIp"] == f"[computed: openstack FloatingIp {fips[name]['name']} address]"
    outputs = preview.data["outputs"]["hosts"]
    for name, host in cfg.hosts.items():
        assert outputs[name]["private_ip"] == str(host.ip)
        assert ("public_ip" in outputs[name]) == host.public_facing, name


@pytest.fixture(scope="module")
def protected() -> dict[str, set[str]]:
    """Which resources each stack protects (the preview JSON does not carry resource options)."""
    return {stack: set(evaluate_raw(raw_config(stack), stack)["protected"]) for stack in STACKS}


def test_state_volumes_are_attached_and_protected(preview: Preview, protected: dict[str, set[str]]) -> None:
    cfg = preview.cfg
    volumes = children(preview, VOLUME, HOST)
    attachments = children(preview, VOLUME_ATTACH, HOST)
    instances = children(preview, INSTANCE, HOST)
    with_volume = sorted(n for n, h in cfg.hosts.items() if h.volume_gb)
    assert sorted(volumes) == sorted(attachments) == with_volume
    for name in with_volume:
        volume = volumes[name]
        assert volume["inputs"]["size"] == cfg.hosts[name].volume_gb
        assert volume["inputs"]["availabilityZone"] == cfg.cloud.availability_zone
        assert attachments[name]["inputs"] == {"instanceId": ref(instances[name]), "volumeId": ref(volume)}
        # It outlives the instance (user-data changes replace instances): Pulumi must refuse to delete it.
        assert preview.key(volume) in protected[preview.stack]
        assert preview.key(instances[name]) not in protected[preview.stack]


# ----------------------------------------------------------------------------------------------------- network


def test_one_subnet_per_segment(preview: Preview) -> None:
    cfg = preview.cfg
    subnets = preview.of_type(SUBNET)
    assert sorted(s["inputs"]["cidr"] for s in subnets) == sorted(str(s.cidr) for s in cfg.network.segments.values())
    for segment in cfg.network.segments.values():
        subnet = subnet_of(preview, segment.name)
        network = network_of(preview, segment.name)
        assert subnet["inputs"]["networkId"] == ref(network)
        assert subnet["inputs"]["gatewayIp"] == str(segment.gateway)
        assert subnet["inputs"]["ipVersion"] == 4
        assert subnet["inputs"]["dnsNameservers"] == list(cfg.cloud.dns_nameservers)
        assert network["inputs"]["portSecurityEnabled"] is True
    assert len(preview.of_type(NETWORK)) == len(cfg.network.segments)


def test_router_joins_every_segment_to_the_external_network(preview: Preview) -> None:
    (router,) = preview.of_type(ROUTER)
    assert router["inputs"]["externalNetworkId"] == f"network-{preview.cfg.cloud.external_network}"
    interfaces = preview.of_type(ROUTER_INTERFACE)
    assert sorted(i["inputs"]["subnetId"] for i in interfaces) == sorted(ref(s) for s in preview.of_type(SUBNET))
    assert all(i["inputs"]["routerId"] == ref(router) for i in interfaces)


def test_vpn_client_ranges_are_routed_via_their_vpn_host(preview: Preview) -> None:
    cfg = preview.cfg
    (router,) = preview.of_type(ROUTER)
    routes = sorted((r["inputs"]["destinationCidr"], r["inputs"]["nextHop"], r["inputs"]["routerId"]) for r in preview.of_type(ROUTER_ROUTE))
    expected = sorted(
        (str(f.vpn_client_range), str(cfg.hosts[f.vpn_host].ip), ref(router)) for f in cfg.federations.values() if f.vpn_host and f.vpn_client_range
    )
    assert expected, "each stack has a federation with a VPN"
    assert routes == expected


def test_database_is_on_the_internal_network(preview: Preview, protected: dict[str, set[str]]) -> None:
    (trove,) = preview.of_type(TROVE)
    inputs = trove["inputs"]
    assert inputs["networks"] == [{"uuid": ref(network_of(preview, "internal"))}]
    assert inputs["datastore"] == {"type": "postgresql", "version": preview.cfg.database.datastore_version}
    assert [d["name"] for d in inputs["databases"]] == list(preview.cfg.database.databases)
    assert inputs["users"] == "[secret]", "the database users carry passwords"
    assert preview.key(trove) in protected[preview.stack]


# -------------------------------------------------------------------------------------------------------- mypy


def test_mypy_catches_a_wrong_argument_name(tmp_path: Any) -> None:
    """`mypy components cloudinit nina` (scripts/test.sh) is only worth running if the SDK's types reach it."""
    bad = tmp_path / "bad_port.py"
    bad.write_text('import pulumi_openstack as openstack\n\nopenstack.networking.Port("p", network_id="n", fixed_ip=[])\n')
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"), str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Unexpected keyword argument "fixed_ip"' in proc.stdout
