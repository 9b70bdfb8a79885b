"""Every value of a stack file is input to renderers that write shell, systemd, nginx, OpenVPN and TOML. Here each
field of a stack that sets every optional key (uat's, extended; the test stack's fields are a subset of its kinds)
is given each hostile value in turn (quotes, `$()`, backticks, `;`, newlines, tabs, `%`, Jinja, Unicode line
separators, 4 KB): it must be refused with its `nina:` key, or, for the few free-text fields, land only where
nothing parses it: every file a host or a site receives counts as parsed but the site kit's README. No value may
crash the reader. The quoting helpers themselves are then judged by the tools that read their output.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudinit
from conftest import encode, raw_config, run_nina
from nina import bundle
from nina.bundle import SiteContext, organisation_supernodes
from nina.config import ConfigError, StackConfig, parse
from nina.catalog import layout
from nina.plan import flower, notebook, openvpn, quoting, realm

CANARY = "/tmp/nina-hostile-canary"
HOSTILE = {  # each with "zq", which nothing rendered contains, so where a value lands can be searched for
    "single-quote": "zq's",
    "double-quote": 'zq "hi"',
    "command-substitution": f"zq$(touch {CANARY})",
    "backticks": f"zq`touch {CANARY}`",
    "semicolon": f"zq; touch {CANARY}",
    "newline": "zq\nsecond",
    "tab": "zq\tb",
    "percent": "zq100%n %i",
    "jinja": "zq{{ 7 * 7 }}{% raw %}",
    "unicode-line-separator": "zq\u2028b",
    "long": "zq" + "a" * 4096,
}
# Free text a stack may hold as it is: it goes to the cloud's API (names of flavors, images, zones, networks), to a
# README, or to a file nothing parses (a revocation's reason), never into shell, units, nginx or TOML.
FREE_TEXT = (
    "nina:cloud.availability_zone",
    "nina:cloud.external_network",
    "nina:cloud.image",
    "nina:hosts.*.flavor",
    "nina:database.flavor",
    "nina:organisations.*.display_name",
    "nina:federations.*.revoked[*].reason",
    "nina:smtp_password",  # a file only Alertmanager reads, whole (smtp_auth_password_file)
    "nina:people.*.name",  # letters, spaces, ' . - (O'Brien): a JSON string of the realm's description (json.dumps)
)
# Files nothing parses as configuration or code: the site kit's README (a person reads it), and the names-only files
# of OpenVPN's revocation directory (crl-verify ... dir reads the file name, never the content).
UNPARSED = re.compile(r"(^|:)README\.md$|/crl/[^/]+$")
# Files that are JSON made by json.dumps: a value may land in one only as (part of) a string.
JSON_FILE = re.compile(r"\.json$")


def json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif isinstance(value, str):
        yield value


def full_config() -> dict[str, Any]:
    """uat with every optional key set, so every field gets its turn."""
    raw = raw_config("uat")
    raw["nina:dns"].update(public_zone="nina.qcif.edu.au", acme_email="ops@qcif.edu.au")
    raw["nina:monitoring"] = {"alert_email": ["ops@qcif.edu.au"], "test_stack": False}
    raw["nina:smtp"] = {"host": "smtp.qcif.edu.au", "port": 587, "from": "alerts@qcif.edu.au", "username": "nina-alerts"}
    raw["nina:smtp_password"] = "relay-password-1"
    raw["nina:alert_webhook_url"] = "https://chat.example.org/hooks/nina-ops"
    raw["nina:people"] = {
        "ana": {"name": "Ana Lima", "email": "ana@uq.edu.au", "federations": ["uat-cardiac"]},
        "ops": {"name": "Operations", "email": "ops@qcif.edu.au", "role": "admin"},
    }
    raw["nina:keycloak_admin_password"] = "a-good-admin-password"
    raw["nina:grafana_admin_password"] = "another-good-password"
    raw["nina:database"]["backup"] = {**raw["nina:database"]["backup"], "schedule": "weekly", "keep": 4, "offsite_days": 90, "superlink_keep": 3,
                                      "superlink_offsite_days": 14}
    raw["nina:cloud"] = {**raw["nina:cloud"], "auth_url": "https://keystone.example.org:5000/v3/", "object_store_region": "Melbourne"}
    fed = raw["nina:federations"]["uat-cardiac"]
    fed["revoked"] = [{"organisation": "old-site", "serial": "3F2A", "reason": "left the federation"}]
    fed["runtime_dependency_installation"] = False
    return raw


def leaves(value: Any, path: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(key path as the reader names it, access path) of every scalar and list item, and of every name of a named
    mapping (hosts, segments, organisations, federations, members), which is a field too."""
    if isinstance(value, dict):
        named = path in {"nina:hosts", "nina:network.segments", "nina:organisations", "nina:federations"} or path.endswith(".members")
        for key, item in value.items():
            yield from ((p, (key, *rest)) for p, rest in leaves(item, f"{path}.{key}"))
            if named:
                yield (f"{path}.{key}", ("__rename__", key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from ((p, (i, *rest)) for p, rest in leaves(item, f"{path}[{i}]"))
    else:
        yield (path, ())


def fields(raw: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(path, (top, *access)) for top, value in raw.items() if top != "nina:ssh_private_key" for path, access in leaves(value, top)]


def mutate(raw: dict[str, Any], access: tuple[Any, ...], hostile: str) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    *parents, last = access
    if len(access) >= 2 and access[-2] == "__rename__":
        *parents, _, key = access
        holder = out
        for step in parents:
            holder = holder[step]
        holder[hostile] = holder.pop(key)
        return out
    holder = out
    for step in parents:
        holder = holder[step]
    holder[last] = hostile
    return out


def is_free_text(path: str) -> bool:
    return any(re.fullmatch(re.escape(pattern).replace(r"\*", r"[^.\[\]]+"), path) for pattern in FREE_TEXT)


def rendered(cfg: StackConfig) -> dict[str, str]:
    """Every file the program would put on a host or hand a host, and the flwr config and register commands."""
    files: dict[str, str] = {}
    for host in cfg.hosts.values():
        for f in cloudinit.cloud_config(cfg, host)["write_files"]:
            files[f"{host.name}:{f['path']}"] = f["content"]
        for fragment in cloudinit.fragments(cfg, host):
            for d in cloudinit.delivered_files(cfg, host, fragment):
                files[f"{host.name}:{d.path}"] = d.content
    for fed in cfg.federations.values():
        for path, content in {**flower.acl_files(cfg, fed), **(openvpn.ccd_files(cfg, fed) if fed.vpn_host else {})}.items():
            files[f"{fed.name}:{path}"] = content
        for sn in fed.supernodes:
            files[f"register-{fed.name}-{sn.name}.sh"] = flower.register_command(sn.public_key or "ecdsa-sha2-nistp384 AAAA")
    files["flwr-config.toml"] = flower.config_toml(cfg)
    files["realm-nina.json"] = realm.desired_json(cfg)  # the Realm component's stdin
    files[f"hub:{layout.NOTEBOOK_FEDERATIONS}"] = notebook.federations_json(cfg)
    for org in cfg.organisations.values():
        if org.hosting == "on_premises" and organisation_supernodes(cfg, org.name):
            site = SiteContext(cfg, org, organisation_supernodes(cfg, org.name), "-----BEGIN CERTIFICATE-----\n", {})
            for path, (content, _) in bundle.build(site).items():
                files[f"bundle-{org.name}:{path}"] = content
    return files


BASE = full_config()
CASES = [(path, access, name) for path, access in fields(BASE) for name in HOSTILE]


def test_the_full_config_is_valid_and_every_field_is_covered() -> None:
    assert parse(encode(BASE))
    paths = {path for path, _ in fields(BASE)}
    for expected in ("nina:admin.ssh_user", "nina:dns.acme_email", "nina:federations.uat-cardiac.members.org-b.supernodes[0].node_config.data-path",
                     "nina:organisations.metro-north.display_name", "nina:keycloak_admin_password", "nina:hosts.ingress", "nina:smtp.username", "nina:people.ana.name"):
        assert expected in paths, expected
    assert len(CASES) > 700


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_each_hostile_value_is_refused_with_its_key_or_lands_inert(hostile: str) -> None:
    accepted = []
    for path, access, name in CASES:
        if name != hostile:
            continue
        value = HOSTILE[hostile]
        try:
            cfg = parse(encode(mutate(BASE, access, value)))
        except ConfigError as exc:
            if access[-2:-1] == ("__rename__",):  # a hostile name: refused where the reader meets it
                parent = path.rsplit(".", 1)[0] if not path.endswith("]") else path
                assert any(p.startswith(parent + ".") and "is not a valid name" in p for p in exc.problems), (path, hostile, exc.problems[:3])
            else:
                assert any(p.startswith(path) for p in exc.problems), (path, hostile, exc.problems[:3])
            assert all("\n" not in p and "\u2028" not in p for p in exc.problems), "a message must not carry a raw line break"
            continue
        assert is_free_text(path), f"{path} accepted {hostile}: only free-text fields may take it"
        accepted.append(path)
        for where, content in rendered(cfg).items():
            if value in content and JSON_FILE.search(where):
                assert any(value in text for text in json_strings(json.loads(content))), f"{path}={hostile!r} is JSON structure in {where}"
            elif value in content:
                assert UNPARSED.search(where), f"{path}={hostile!r} landed in {where}, which a program parses"
            assert "49{% raw %}" not in content, f"{path}: the template evaluated Jinja from the stack in {where}"
    assert not Path(CANARY).exists()


def test_unit_quoting_is_what_systemd_reads(tmp_path: Path) -> None:
    """Each hostile value as one argument of an ExecStart= line, judged by systemd-analyze verify: refused by the
    helper (a line break, a control character), or a line systemd parses without complaint (quotes balanced, `%`
    and `$` escaped); and a quoting mistake is caught by the same check."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-system-deps.sh)")

    def verify(argument: str) -> str:
        unit = tmp_path / "nina-quoting-probe.service"
        unit.write_text(f"[Service]\nType=oneshot\nExecStart=/bin/echo {argument}\n")
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
        return done.stderr + ("" if done.returncode == 0 else f"exit {done.returncode}")

    for name, value in HOSTILE.items():
        try:
            quoted = quoting.unit(value)
        except quoting.Unquotable:
            assert "\n" in value or "\t" in value or "\u2028" in value, name
            continue
        assert verify(quoted) == "", (name, quoted)
    assert verify('"unbalanced') != ""  # the judge can fail


def test_stack_values_reach_a_shell_only_as_one_word(tmp_path: Path) -> None:
    """What run_supernode.sh does with supernode.conf: source it. Every value comes back as written, nothing runs."""
    cfg = parse(encode(BASE))
    host = cfg.hosts["org-b-sn1"]
    (conf,) = [f for f in cloudinit.delivered_files(cfg, host, "supernode") if f.path.endswith("supernode.conf")]
    path = tmp_path / "supernode.conf"
    path.write_text(conf.content)
    done = subprocess.run(["bash", "-c", f'set -eu; . "{path}"; printf "%s\\n" "$NODE_CONFIG" "$SUPERLINK"'], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [flower.node_config(cfg.federations["uat-cardiac"], cfg.federations["uat-cardiac"].supernodes[1]), "superlink-uat-cardiac.uat.nina.internal:9092"]
    for value in HOSTILE.values():
        word = subprocess.run(["bash", "-c", f"printf %s {quoting.shell(value)}"], capture_output=True, text=True, check=True).stdout
        assert word == value
        assert tomllib.loads(f"v = {quoting.toml(value)}")["v"] == value
        if value != HOSTILE["long"]:  # plain letters are a token nginx takes as it is
            with pytest.raises(quoting.Unquotable):
                quoting.nginx(value)
    assert not Path(CANARY).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("nina:admin", "ssh_user"), "ubuntu; touch /tmp/x", "nina:admin.ssh_user: 'ubuntu; touch /tmp/x' is not a Linux user name"),
        (("nina:hosts", "org-b-sn1"), None, None),
    ],
    ids=["ssh-user", "host-name-with-newline"],
)
def test_the_real_program_refuses_before_registering_anything(tmp_path: Path, field: tuple[str, ...], value: Any, message: str | None) -> None:
    raw = raw_config("uat")
    del raw["nina:ssh_private_key"]
    if value is None:  # rename a host to "org-b-sn1\n": `$` in a pattern would have let it through
        raw["nina:hosts"]["org-b-sn1\n"] = raw["nina:hosts"].pop("org-b-sn1")
        message = "nina:hosts.org-b-sn1\\n: 'org-b-sn1\\n' is not a valid name"  # escaped: one line per problem
    else:
        raw[field[0]][field[1]] = value
    (tmp_path / "Pulumi.yaml").write_text((Path(__file__).parents[1] / "Pulumi.yaml").read_text())
    shutil.copy(Path(__file__).parents[1] / "__main__.py", tmp_path / "__main__.py")
    (tmp_path / "Pulumi.bad.yaml").write_text(json.dumps({"config": raw}))
    done = run_nina("preview", "--stack", "bad", "--cwd", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr
