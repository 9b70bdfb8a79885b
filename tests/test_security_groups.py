"""The security groups the program registers are exactly the port table (nina/catalog/ports.py), and nothing more.

The expected rules are rebuilt here from the table and the stack's config, independently of `nina.plan.firewall`, and
compared with the SecGroupRule resources of each stack's preview. Rules are identified by the placeholder ids the
mocks give their SecGroups, so a rule that points at the wrong group (or at no group) shows up.
"""

from __future__ import annotations

import ipaddress

import pytest
from conftest import (
    PORT,
    SECGROUP,
    SECGROUP_RULE,
    Preview,
    encode,
    problems,
    raw_config,
    resource_id,
)

from nina.catalog.ports import (
    ADMIN,
    BASTION,
    EGRESS,
    EVERY_HOST,
    PORTS,
    PUBLIC,
    Port,
    listeners,
)
from nina.catalog.roles import ROLES
from nina.config import StackConfig, parse
from nina.plan import firewall

# Issue 2 point 4: the only ports open to the internet (SSH is open to the admin CIDRs only).
PUBLIC_OPENINGS = {("ingress", "tcp", 80), ("ingress", "tcp", 443), ("vpn", "udp", 1194), ("vpn", "tcp", 443)}  # 80: ACME http-01 and redirects
ANYWHERE = "0.0.0.0/0"

Rule = tuple[str, str, int, int, str]  # (group key, protocol, port min, port max, source "cidr:..." | "group:...")


def group_keys(preview: Preview) -> dict[str, str]:
    """Mock id of each SecGroup -> its key in the plan (its name without the `nina-<env>-` prefix)."""
    prefix = f"nina-{preview.cfg.environment}-"
    keys = {}
    for group in preview.of_type(SECGROUP):
        assert group["inputs"]["name"].startswith(prefix)
        keys[resource_id(SECGROUP, group["name"])] = group["inputs"]["name"][len(prefix) :]
    return keys


def actual_rules(preview: Preview) -> list[Rule]:
    keys = group_keys(preview)
    rules = []
    for rule in preview.of_type(SECGROUP_RULE):
        i = rule["inputs"]
        if i["direction"] == "egress":
            continue  # the egress section below
        assert (i["direction"], i["ethertype"]) == ("ingress", "IPv4"), rule["name"]
        assert ("remoteIpPrefix" in i) != ("remoteGroupId" in i), f"{rule['name']}: needs exactly one source"
        assert i["securityGroupId"] in keys, f"{rule['name']}: securityGroupId is not a group of this stack"
        if "remoteGroupId" in i:
            assert i["remoteGroupId"] in keys, f"{rule['name']}: remoteGroupId {i['remoteGroupId']} is not a group of this stack"
            source = f"group:{keys[i['remoteGroupId']]}"
        else:
            source = f"cidr:{i['remoteIpPrefix']}"
        rules.append((keys[i["securityGroupId"]], i["protocol"], i["portRangeMin"], i["portRangeMax"], source))
    return rules


def expected_groups(cfg: StackConfig) -> dict[str, tuple[str | None, str | None]]:
    """Group key -> (role, federation) the group is for, from the config's meaning: a base group, the jump host's
    bastion group, one group per non-tenancy role present, one per (tenancy role, federation using it)."""
    groups: dict[str, tuple[str | None, str | None]] = {"base": (EVERY_HOST, None), "bastion": (None, None)}
    for host in cfg.hosts.values():
        for role in host.roles:
            if not ROLES[role].tenancy_scoped:
                groups[role] = (role, None)
    for fed in cfg.federations.values():
        groups[f"superlink-{fed.name}"] = ("superlink", fed.name)
        if fed.vpn_host:
            groups[f"vpn-{fed.name}"] = ("vpn", fed.name)
        if any(sn.host for sn in fed.supernodes):
            groups[f"supernode-{fed.name}"] = ("supernode", fed.name)
    return groups


def expected_rules(cfg: StackConfig) -> set[Rule]:
    groups = expected_groups(cfg)
    rules: set[Rule] = set()
    for port in PORTS:
        for target, (role, fed) in groups.items():
            if role != port.role:
                continue
            for source in port.sources:
                if source == PUBLIC:
                    peers = [f"cidr:{ANYWHERE}"]
                elif source == ADMIN:
                    peers = [f"cidr:{c}" for c in cfg.admin.ssh_cidrs]
                elif source == BASTION:
                    peers = ["group:bastion"]
                else:
                    peers = [
                        f"group:{key}"
                        for key, (peer_role, peer_fed) in groups.items()
                        if peer_role == source and (fed is None or peer_fed is None or peer_fed == fed)
                    ]
                rules |= {(target, port.protocol, port.port, port.port_max, peer) for peer in peers}
    return rules


def row_for(rule: Rule, cfg: StackConfig) -> Port | None:
    """The port-table row a rule implements, or None."""
    target, protocol, low, high, source = rule
    role = expected_groups(cfg).get(target, (None, None))[0]
    for port in PORTS:
        if (port.role, port.protocol, port.port, port.port_max) != (role, protocol, low, high):
            continue
        kind, _, value = source.partition(":")
        if kind == "cidr" and value == ANYWHERE and PUBLIC in port.sources:
            return port
        if kind == "cidr" and ADMIN in port.sources and ipaddress.ip_network(value) in cfg.admin.ssh_cidrs:
            return port
        if kind == "group" and value == "bastion" and BASTION in port.sources:
            return port
        if kind == "group" and expected_groups(cfg).get(value, (None, None))[0] in port.sources:
            return port
    return None


def test_groups_are_the_ones_the_config_implies(preview: Preview) -> None:
    assert sorted(group_keys(preview).values()) == sorted(expected_groups(preview.cfg))


def test_every_rule_comes_from_a_port_table_row(preview: Preview) -> None:
    strays = [rule for rule in actual_rules(preview) if row_for(rule, preview.cfg) is None]
    assert strays == []


def test_every_row_has_its_rules(preview: Preview) -> None:
    actual = actual_rules(preview)
    assert len(actual) == len(set(actual)), "a rule is registered twice"
    missing = expected_rules(preview.cfg) - set(actual)
    assert missing == set()
    assert set(actual) == expected_rules(preview.cfg)


def test_nothing_internal_is_open_to_the_internet(preview: Preview) -> None:
    groups = expected_groups(preview.cfg)
    admin = {ipaddress.ip_network(c) for c in preview.cfg.admin.ssh_cidrs}
    for target, protocol, low, high, source in actual_rules(preview):
        kind, _, value = source.partition(":")
        if kind != "cidr":
            continue
        network = ipaddress.ip_network(value)
        if network in admin:
            assert (protocol, low, high) == ("tcp", 22, 22), f"{target}: admin CIDR {value} opens {low}-{high}/{protocol}"
            continue
        assert network.prefixlen == 0, f"{target}: opens {low}-{high}/{protocol} to {value}, a CIDR that is no source in the table"
        assert low == high and (groups[target][0], protocol, low) in PUBLIC_OPENINGS, f"{target}: {low}-{high}/{protocol} is open to the internet"


def test_ssh_only_from_admin_cidrs_and_the_bastion(preview: Preview) -> None:
    ssh_sources = {source for (_, protocol, low, high, source) in actual_rules(preview) if protocol == "tcp" and low <= 22 <= high}
    allowed = {f"cidr:{c}" for c in preview.cfg.admin.ssh_cidrs} | {"group:bastion"}
    assert ssh_sources == allowed


def test_rules_are_children_of_their_group(preview: Preview) -> None:
    for rule in preview.of_type(SECGROUP_RULE):
        parent_type, _, parent_name = rule["parent"].partition("::")
        assert parent_type == SECGROUP
        assert rule["inputs"]["securityGroupId"] == resource_id(SECGROUP, parent_name)


def test_loopback_listeners_are_not_reachable(preview: Preview) -> None:
    """A listener the table keeps on 127.0.0.1 (Prometheus, Alertmanager, SuperNode ClientAppIO) gets no opening on
    its host through any of the host's groups, including groups of other roles on the same VM."""
    keys = group_keys(preview)
    rules = actual_rules(preview)
    for host in preview.cfg.hosts.values():
        port = preview.named(PORT, host.name)
        host_groups = {keys[i] for i in port["inputs"]["securityGroupIds"]}
        for row in listeners(host.roles):
            if not row.loopback_only:
                continue
            opened = [r for r in rules if r[0] in host_groups and r[1] == row.protocol and r[2] <= row.port_max and row.port <= r[3]]
            assert opened == [], f"{host.name}: {row.name} is loopback-only but {opened} open it"


def test_each_port_carries_exactly_its_groups(preview: Preview) -> None:
    for host in preview.cfg.hosts.values():
        port = preview.named(PORT, host.name)
        expected = [resource_id(SECGROUP, f"sg-{key}") for key in firewall.host_groups(preview.cfg, host)]
        assert port["inputs"]["securityGroupIds"] == expected, host.name
        keys = set(firewall.host_groups(preview.cfg, host))
        assert "base" in keys
        assert ("bastion" in keys) == (host.name == preview.cfg.admin.jump_host)
        for role in host.roles:
            assert any(k == role or k.startswith(f"{role}-") for k in keys), f"{host.name}: no group for {role}"


def test_the_loopback_rows_exist() -> None:
    """Guards the test above against an empty premise: the table does keep some listeners on loopback."""
    assert {p.name for p in PORTS if p.loopback_only} >= {"supernode-clientappio", "prometheus", "alertmanager"}


# ----------------------------------------------------------------------------------------- tenancy isolation


def two_tenancies() -> StackConfig:
    """The test stack plus a second federation with its own SuperLink, VPN and organisation; org-a is a member
    of both, with a SuperNode host for each (tenants never share a VM)."""
    raw = raw_config("test")
    raw["nina:network"]["segments"]["org-c"] = "10.40.20.0/24"
    raw["nina:hosts"].update(
        {
            "superlink2": {"segment": "internal", "ip": "10.40.1.21", "flavor": "m3.medium", "roles": ["superlink"]},
            "vpn2": {"segment": "public", "ip": "10.40.0.31", "flavor": "m3.small", "roles": ["vpn"]},
            "org-c-sn1": {"segment": "org-c", "ip": "10.40.20.10", "flavor": "m3.medium", "roles": ["supernode"]},
            "org-a-sn2": {"segment": "org-a", "ip": "10.40.10.11", "flavor": "m3.medium", "roles": ["supernode"]},
        }
    )
    raw["nina:organisations"]["org-c"] = {"display_name": "Org C", "hosting": "nectar", "segment": "org-c"}
    raw["nina:federations"]["other-fl"] = {
        "type": "deployment",
        "superlink_host": "superlink2",
        "vpn_host": "vpn2",
        "vpn_client_range": "192.168.98.0/24",
        "num_partitions": 2,
        "members": {
            "org-c": {"supernodes": [{"name": "oc1", "partition_id": 0, "host": "org-c-sn1", "public_key": "generate", "port": 9094}]},
            "org-a": {"supernodes": [{"name": "oa1", "partition_id": 1, "host": "org-a-sn2", "public_key": "generate", "port": 9094}]},
        },
    }
    assert problems(raw) == []
    return parse(encode(raw))


def can_reach(cfg: StackConfig, rules: list[firewall.Rule], source: str, target: str, protocol: str, number: int) -> bool:
    source_groups = set(firewall.host_groups(cfg, cfg.hosts[source]))
    target_groups = set(firewall.host_groups(cfg, cfg.hosts[target]))
    return any(
        r.group in target_groups and r.remote_group in source_groups and r.port.covers(protocol, number) for r in rules
    )


@pytest.fixture(scope="module")
def tenancies() -> tuple[StackConfig, list[firewall.Rule]]:
    cfg = two_tenancies()
    return cfg, firewall.plan(cfg)


def test_supernode_groups_never_reach_another_tenancys_superlink(tenancies: tuple[StackConfig, list[firewall.Rule]]) -> None:
    cfg, rules = tenancies
    for rule in rules:
        if rule.group.startswith("superlink-") and rule.remote_group:
            fed = rule.group[len("superlink-") :]
            for role in ("supernode", "vpn", "superlink"):
                if rule.remote_group.startswith(f"{role}-"):
                    assert rule.remote_group == f"{role}-{fed}", f"{rule.remote_group} may reach {rule.group}"


def test_hosts_reach_only_their_own_tenancys_superlink(tenancies: tuple[StackConfig, list[firewall.Rule]]) -> None:
    cfg, rules = tenancies
    fleet = ("tcp", next(p.port for p in PORTS if p.name == "superlink"))
    assert can_reach(cfg, rules, "org-c-sn1", "superlink2", *fleet)
    assert not can_reach(cfg, rules, "org-c-sn1", "superlink", *fleet)
    assert can_reach(cfg, rules, "vpn2", "superlink2", *fleet)
    assert not can_reach(cfg, rules, "vpn2", "superlink", *fleet)
    assert not can_reach(cfg, rules, "vpn", "superlink2", *fleet)
    # org-a is a member of both federations, with one host in each tenancy.
    assert can_reach(cfg, rules, "org-a-sn1", "superlink", *fleet)
    assert not can_reach(cfg, rules, "org-a-sn1", "superlink2", *fleet)
    assert can_reach(cfg, rules, "org-a-sn2", "superlink2", *fleet)
    assert not can_reach(cfg, rules, "org-a-sn2", "superlink", *fleet)


# ------------------------------------------------------------------------------------------------------- egress
# OpenStack gives every new group two rules, all IPv4 and all IPv6 out, unless it is created with
# delete_default_rules. The evaluator below applies that, then the union of a port's groups' egress rules (security
# groups only ever allow), as Neutron does.

Out = tuple[str | None, int | None, int | None, str]  # (protocol or None = any, port min, port max, "cidr:" | "group:")


def egress_by_group(preview: Preview) -> dict[str, set[Out]]:
    keys = group_keys(preview)
    rules: dict[str, set[Out]] = {key: set() for key in keys.values()}
    for group in preview.of_type(SECGROUP):
        if not group["inputs"].get("deleteDefaultRules"):
            key = keys[resource_id(SECGROUP, group["name"])]
            rules[key] |= {(None, None, None, "cidr:0.0.0.0/0"), (None, None, None, "cidr:::/0")}
    for rule in preview.of_type(SECGROUP_RULE):
        i = rule["inputs"]
        if i["direction"] != "egress":
            continue
        assert ("remoteIpPrefix" in i) != ("remoteGroupId" in i), f"{rule['name']}: needs exactly one destination"
        dest = f"group:{keys[i['remoteGroupId']]}" if "remoteGroupId" in i else f"cidr:{i['remoteIpPrefix']}"
        if "remoteIpPrefix" in i:
            assert i["ethertype"] == f"IPv{ipaddress.ip_network(i['remoteIpPrefix']).version}", rule["name"]
        rules[keys[i["securityGroupId"]]].add((i.get("protocol"), i.get("portRangeMin"), i.get("portRangeMax"), dest))
    return rules


def host_egress(preview: Preview, host: str) -> set[Out]:
    keys = group_keys(preview)
    by_group = egress_by_group(preview)
    return set().union(*(by_group[keys[i]] for i in preview.named(PORT, host)["inputs"]["securityGroupIds"]))


def can_open(preview: Preview, source: str, protocol: str, port: int, destination: str) -> bool:
    """May host `source` open a connection to `destination` (a host of the stack, or an outside address)?"""
    keys = group_keys(preview)
    target = preview.cfg.hosts.get(destination)
    address = ipaddress.ip_address(str(target.ip) if target else destination)
    target_groups = {keys[i] for i in preview.named(PORT, destination)["inputs"]["securityGroupIds"]} if target else set()
    for proto, low, high, dest in host_egress(preview, source):
        if proto not in (None, protocol) or (low is not None and not (low <= port <= (high or low))):
            continue
        kind, _, value = dest.partition(":")
        if kind == "group" and value in target_groups:
            return True
        if kind == "cidr" and address in ipaddress.ip_network(value):
            return True
    return False


def supernode_only(cfg: StackConfig, host: str) -> bool:
    return all(r == "supernode" or not ROLES[r].assignable for r in cfg.hosts[host].roles)


def test_every_group_is_created_without_openstacks_allow_all_egress(preview: Preview) -> None:
    for group in preview.of_type(SECGROUP):
        assert group["inputs"]["deleteDefaultRules"] is True, group["name"]


def test_supernode_hosts_open_only_the_egress_table(previews: dict[str, Preview]) -> None:
    """Rebuilt from the EGRESS rows and the config, not from nina.plan.firewall: a host that only runs SuperNodes
    (next to data) may open its federations' SuperLinks, the resolvers, NTP and the package mirrors, nothing else."""
    checked = 0
    for preview in previews.values():
        cfg = preview.cfg
        servers = [f"cidr:{ipaddress.ip_network(ns)}" for ns in cfg.cloud.dns_nameservers] or [f"cidr:{s.cidr}" for s in cfg.network.segments.values()]
        for name in cfg.hosts:
            if not supernode_only(cfg, name):
                continue
            expected: set[Out] = set()
            for row in EGRESS:
                if row.destination == "superlink":
                    dests = [f"group:superlink-{f.name}" for f in cfg.federations_served_by(name, "supernode")]
                else:
                    dests = servers if row.destination == "@nameservers" else ["cidr:0.0.0.0/0"]
                expected |= {(row.protocol, row.port, row.port, d) for d in dests}
            assert host_egress(preview, name) == expected, name
            checked += 1
    assert checked >= 2  # the premise: both stacks have SuperNode hosts


def test_server_hosts_may_open_anything(preview: Preview) -> None:
    for name in preview.cfg.hosts:
        if not supernode_only(preview.cfg, name):
            assert can_open(preview, name, "tcp", 25, "203.0.113.5"), name
            assert {(None, None, None, "cidr:0.0.0.0/0"), (None, None, None, "cidr:::/0")} <= host_egress(preview, name)


def test_a_supernode_host_reaches_only_its_superlink_the_resolvers_ntp_and_the_web(previews: dict[str, Preview]) -> None:
    preview = previews["test"]
    sn, superlink, hub = "org-a-sn1", "superlink", "hub"
    assert can_open(preview, sn, "tcp", 9092, superlink)  # the Fleet API: what it is for
    for port in (22, 9091, 9900):  # SSH, the SuperLink's loopback port, node exporters
        assert not can_open(preview, sn, "tcp", port, superlink), port
    for port in (8443, 9000, 8000, 3000, 22):  # Keycloak admin + management, JupyterHub, Grafana, SSH
        assert not can_open(preview, sn, "tcp", port, hub), port
    for port in (25, 587, 5432, 6443, 8080):  # mail, Postgres, anything else outside
        assert not can_open(preview, sn, "tcp", port, "203.0.113.5"), port
    assert not can_open(preview, sn, "udp", 1194, "203.0.113.5")
    assert not can_open(preview, sn, "udp", 53, "203.0.113.5")  # DNS only to the stack's resolvers
    assert can_open(preview, sn, "udp", 53, preview.cfg.cloud.dns_nameservers[0])
    assert can_open(preview, sn, "tcp", 443, "203.0.113.5")  # PyPI / the archive (app users: the host firewall)


def test_monitoring_reaches_the_sites_exporters_through_the_vpn_hosts_group(previews: dict[str, Preview]) -> None:
    """The VPN host forwards the monitoring host's scrapes to the sites' tunnel addresses; Neutron checks them on the
    VPN host's port first, so its tenancy's group admits 9900 and 9400 from the monitoring group (and nothing else
    new): without the 9400 rule a GPU site's DCGM exporter could never be scraped."""
    cfg = previews["uat"].cfg
    rules = {(r.group, r.port.port, r.remote_group) for r in firewall.plan(cfg) if r.port.forwarded}
    assert rules == {("vpn-uat-cardiac", 9900, "monitoring"), ("vpn-uat-cardiac", 9400, "monitoring")}
    # forwarded rows are not listeners: nina-check does not expect the VPN host to serve them
    assert not any(p.forwarded for p in listeners(("vpn",)))
