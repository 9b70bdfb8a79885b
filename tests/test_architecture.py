"""The layering holds (README "Architecture"): the import contracts of pyproject.toml can break and do not, no file
reaches for another module's private names, and the programs shipped to the VMs need nothing but Python's standard
library."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from nina.offline import wire

PACKAGES = ("nina", "components", "cloudinit")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Third-party private names we cannot do without, each with the reason.
ALLOWED_PRIVATE = {
    # Go's crypto/x509 writes PrintableString where it can; cryptography sets a name's string type only this way.
    ("cryptography.x509.name", "_ASN1Type"),
}


def python_files() -> list[Path]:
    files = [ROOT / "__main__.py"]
    for folder in (*PACKAGES, "tests", "bench"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def lint_imports(project: Path) -> dict[str, bool]:
    """Each contract of pyproject.toml -> kept, as `lint-imports` judges the packages in `project`."""
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=project, env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    report = " ".join(done.stdout.split())  # it wraps long contract names
    contracts = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    verdicts = {c["name"]: f"{c['name']} KEPT" in report for c in contracts}
    assert all(v or f"{name} BROKEN" in report for name, v in verdicts.items()), done.stdout + done.stderr
    assert (done.returncode == 0) == all(verdicts.values()), done.stdout + done.stderr
    return verdicts


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and pyproject.toml in a scratch directory, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "injected", "contract"),
    [
        ("nina/plan/names.py", "import components.platform", "Layers"),
        ("nina/catalog/ports.py", "import nina.config", "Layers"),
        ("cloudinit/render.py", "import pulumi", "are pure: no Pulumi"),
        ("nina/onhost/nina_check.py", "import nina.catalog.layout", "import nothing of the project"),
        ("nina/plan/names.py", "import nina.plan.public", "No import cycles"),
    ],
    ids=["upward-import", "table-imports-config", "pure-layer-imports-pulumi", "onhost-imports-project", "cycle"],
)
def test_each_import_contract_can_break(tree_copy: Path, module: str, injected: str, contract: str) -> None:
    assert all(lint_imports(tree_copy).values()), "the untouched copy must keep every contract"
    target = tree_copy / module
    target.write_text(target.read_text() + f"\n{injected}  # noqa\n")
    broken = [name for name, kept in lint_imports(tree_copy).items() if not kept]
    assert any(contract in name for name in broken), broken


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it was imported as, for every name an import binds (a module, class or function)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def private_uses(path: Path) -> list[str]:
    """`from m import _x`, and `m._x` or `C._x` where m or C was imported: a private name reached across a module
    boundary."""
    tree = ast.parse(path.read_text())
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and (node.module, alias.name) not in ALLOWED_PRIVATE:
                    found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
    aliases = _imported_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            name = node.attr
            if name.startswith("_") and not name.startswith("__") and (aliases[node.value.id], name) not in ALLOWED_PRIVATE:
                found.append(f"{where}:{node.lineno}: {aliases[node.value.id]}.{name}")
    return found


def test_no_file_reaches_for_another_modules_private_names() -> None:
    assert [use for path in python_files() for use in private_uses(path)] == []


def test_the_private_name_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from cloudinit import render\nfrom nina.offline.tls_emulation import _int\nfrom nina.offline.mocks import NinaMocks\n"
        "print(render._env, NinaMocks._secretise)\n"
    )
    assert sorted(private_uses(sample)) == [
        "sample.py:2: from nina.offline.tls_emulation import _int",
        "sample.py:4: cloudinit.render._env",
        "sample.py:4: nina.offline.mocks.NinaMocks._secretise",
    ]


def test_programs_shipped_to_the_vms_use_only_the_standard_library() -> None:
    for path in sorted((ROOT / "nina" / "onhost").glob("nina_*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert imported - {"__future__"} <= set(sys.stdlib_module_names), (path.name, imported - set(sys.stdlib_module_names))


def test_the_secret_marker_is_the_one_the_pulumi_sdk_sends() -> None:
    """nina/offline/wire.py spells Pulumi's wire marker for secrets; the SDK installed here must agree. (A fresh
    interpreter: under mocks the SDK keeps secrets marked, and mocks are process-wide state.)"""
    script = (
        "import asyncio, json, pulumi\n"
        "from pulumi.runtime import rpc\n"
        "from nina.offline.mocks import NinaMocks\n"
        "pulumi.runtime.set_mocks(NinaMocks(), project='p', stack='s', preview=False)\n"
        "async def serialized():\n"
        "    return await rpc.serialize_property(pulumi.Output.secret('x'), [], None)\n"
        "print(json.dumps(asyncio.get_event_loop().run_until_complete(serialized())))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == wire.secret("x") == {wire.SIG_KEY: wire.SECRET_SIG, "value": "x"}


# ------------------------------------------------------------------------------------- adding a role is one row

NEW_ROLE = '''
ROLES["docs"] = Role(
    "docs",
    "Documentation site",
    SERVER_SEGMENTS,
    service_users=("docs",),
    units=("docs.service",),
    singleton=True,
    alias="docs",
    tls=ServerTls("/etc/docs/server.pem", "/etc/docs/server.key", "docs:fl_system", ("docs.service",)),
    env=ServiceEnv("docs", "docs.service", (EnvVar("OIDC_SECRET", FromCredential("docs-oidc-client")), EnvVar("COOKIE_SECRET", FromCredential("docs-cookie")))),
    public=PublicService("docs", "docs"),
    oidc_client=OidcClient("docs", "/oauth2/callback", pkce=True),
    credentials=(Credential("docs-cookie"),),
)

'''
NEW_PORT = '\nPORTS = PORTS + (_p("docs", "docs", "tcp", 8088, ("ingress", "monitoring"), "a documentation site", "https:/healthz"),)\n'
NEW_TEMPLATES = {
    "fragment.yaml.j2": "packages: []\nfiles:\n  - {path: /etc/systemd/system/docs.service, template: docs.service.j2}\n",
    "docs.service.j2": "[Unit]\nDescription=docs\n[Service]\nExecStart=/usr/bin/true\nEnvironmentFile={{ roles['docs'].env.path }}\n",
    "public-locations.conf.j2": "    location / { proxy_pass {{ upstream }}; }\n",
}


def test_a_new_web_role_is_one_row_its_port_rows_and_a_template_folder(tmp_path: Path) -> None:
    """What README "Adding a role" promises: with only those three additions, the role is accepted, placed, fire-walled,
    certified, given its secrets, registered with Keycloak, served by nginx, probed and checked."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "runtimes", tmp_path / "runtimes")  # the federations' runtimes the program reads
    roles = tmp_path / "nina" / "catalog" / "roles.py"
    text = roles.read_text()
    marker = "# ------------------------------------------------------------------------------------------- read off the rows"
    roles.write_text(text.replace(marker, NEW_ROLE + marker))
    ports = tmp_path / "nina" / "catalog" / "ports.py"
    text = ports.read_text()
    ports.write_text(text.replace("\n# Managed PostgreSQL", NEW_PORT + "\n# Managed PostgreSQL", 1))
    (tmp_path / "cloudinit" / "templates" / "docs").mkdir()
    for name, content in NEW_TEMPLATES.items():
        (tmp_path / "cloudinit" / "templates" / "docs" / name).write_text(content)
    stack = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())
    stack["config"]["nina:hosts"]["hub"]["roles"].append("docs")
    (tmp_path / "Pulumi.test.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))

    done = subprocess.run(
        [sys.executable, "-m", "nina.cli", "preview", "--stack", "test", "--json", "--show-secrets", "--out", str(tmp_path / "out")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    resources = {(r["type"], r["name"]): r["inputs"] for r in data["resources"]}
    # a security group admitting exactly the port row's sources
    assert ("openstack:networking/secGroup:SecGroup", "sg-docs") in resources
    rules = {name for (kind, name) in resources if kind == "openstack:networking/secGroupRule:SecGroupRule" and name.startswith("sg-docs-")}
    assert rules == {"sg-docs-docs-from-ingress", "sg-docs-docs-from-monitoring", "sg-docs-egress-all-to-anywhere", "sg-docs-egress-all-to-anywhere-ipv6"}
    # a certificate for its alias, delivered where the row says, and its secrets file resolved
    cert_inputs = resources[("tls:index/certRequest:CertRequest", "tls-hub-docs")]
    assert cert_inputs["dnsNames"][0] == "docs.test.nina.internal"
    files = {f["path"]: f for f in json.loads(resources[("command:remote:Command", "deliver-hub")]["stdin"])["files"]}
    assert {"/etc/docs/server.pem", "/etc/docs/server.key"} <= set(files)
    docs_env = dict(line.split("=", 1) for line in files["/etc/nina/secrets/docs.env"]["content"].splitlines())
    keycloak_env = dict(line.split("=", 1) for line in files["/etc/nina/secrets/keycloak.env"]["content"].splitlines())
    assert set(docs_env) == {"OIDC_SECRET", "COOKIE_SECRET"} and docs_env["OIDC_SECRET"] == keycloak_env["NINA_DOCS_CLIENT_SECRET"]
    assert ("random:index/randomPassword:RandomPassword", "docs-cookie") in resources
    # user-data: its service user and its own files; Keycloak's realm, nginx and certbot know it
    cloud = yaml.safe_load((tmp_path / "out" / "hosts" / "hub" / "cloud-config.yaml").read_text())
    written = {f["path"]: f["content"] for f in cloud["write_files"]}
    assert "docs" in {u["name"] for u in cloud["users"] if u != "default"} and "/etc/systemd/system/docs.service" in written
    realm = json.loads(resources[("command:remote:Command", "realm-nina")]["stdin"])
    assert {c["clientId"]: c["redirectUris"] for c in realm["clients"]}["docs"] == ["https://docs.test.nina.qcif.edu.au/oauth2/callback"]
    assert "server_name docs.test.nina.qcif.edu.au;" in written["/etc/nginx/conf.d/nina.conf"]
    assert "proxy_pass https://docs.test.nina.internal:8088;" in written["/etc/nginx/conf.d/nina.conf"]
    assert "-d docs.test.nina.qcif.edu.au" in written["/etc/systemd/system/nina-certbot.service"]
    assert data["outputs"]["public_urls"]["docs"] == "https://docs.test.nina.qcif.edu.au/"
    # monitoring probes it and alerts on its unit; nina-check checks unit, port, certificate and health
    tls_targets = json.loads(files["/etc/prometheus/targets/tls.json"]["content"])
    assert any("docs.test.nina.internal:8088" in group["targets"] for group in tls_targets)
    assert "alert: DocsDown" in files["/etc/prometheus/rules/nina-alerts.yml"]["content"]
    checklist = json.loads(files["/etc/nina/checklist.json"]["content"])
    assert "docs.service" in checklist["units"] and {"name": "docs", "protocol": "tcp", "port": 8088} in checklist["listening"]
    assert {"role": "docs", "cert": "/etc/docs/server.pem", "key": "/etc/docs/server.key"} in checklist["tls"]
    assert {"name": "docs", "url": "https://127.0.0.1:8088/healthz"} in checklist["health"]
