"""Render a host's cloud-config, and the templated files delivered to it after boot: the common base plus one
fragment per role.

Each fragment is a directory under `templates/` holding `fragment.yaml.j2` next to the files themselves, written in
the service's own syntax (systemd units, shell, nginx, Prometheus YAML) so they can be read side by side with the
manual's listings. `fragment.yaml.j2` renders to:

    packages: [nginx]
    files:                          # user-data: what defines the host
      - {path: /etc/nginx/conf.d/nina.conf, template: nina.conf.j2, owner: "root:root", mode: "0644"}
    bootstrap: bootstrap.sh.j2      # optional; installed as /usr/local/lib/nina/bootstrap/NN-<fragment>.sh
    delivered:                      # after boot, over SSH: what changes in operation
      - {path: /usr/local/sbin/x, template: x.sh.j2, mode: "0755", units: ["enable:x.timer"]}

cloud-init's runcmd is one command, `nina-bootstrap`, which runs the bootstrap scripts in order and stops at the
first that fails, so cloud-init reports the error and the delivery refuses the host. They are idempotent, so
re-running one by hand (`sudo /usr/local/lib/nina/bootstrap/20-superlink.sh`) or all (`sudo nina-bootstrap`) is safe. Only non-secret, host-defining content goes into
user-data: anything that changes in operation or is secret is delivered over SSH after boot.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from nina.catalog import apt, databases, layout, logs, ports, runtimes, versions
from nina.catalog.roles import APP_USERS, DATABASES, ROLES, SYSTEM_GROUP, WEB_ROLES
from nina.config import Host, StackConfig
from nina.plan import apps, backups, flower, names, notebook, openvpn, public, quoting, scrape

TEMPLATES = Path(__file__).parent / "templates"
BOOTSTRAP_DIR = "/usr/local/lib/nina/bootstrap"
BOOTSTRAP_RUNNER = "/usr/local/sbin/nina-bootstrap"
# Nova accepts 65,535 bytes of base64: we keep far below so a growing role never hits it in production.
SIZE_LIMIT = 16 * 1024

# libyaml's parser when available (same documents, several times faster than the pure-Python one).
_Loader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
# A value from the stack reaches a shell, a unit, TOML or nginx only through its syntax's helper (nina/plan/quoting.py).
_env.filters.update(sh=quoting.shell, unit=quoting.unit, toml=quoting.toml, nginx=quoting.nginx)


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: str
    owner: str
    mode: str
    units: tuple[str, ...] = ()  # delivered files: units nina-deliver acts on when the file changes


def _context(cfg: StackConfig, host: Host | None, **extra: Any) -> dict[str, Any]:
    """What every template sees. `host` is None for a site's bundle, which no Nectar host runs."""
    if host is None:
        per_host: dict[str, Any] = {"host": None}
    else:
        backed_up = backups.backed_up_on(cfg, host)
        per_host = {
            "host": host,
            "backups": backed_up,  # the databases this host backs up
            # where this host's backups go off the host (§4.3.1): the stack's container, under its own prefix
            "offsite": {"container": databases.offsite_container(cfg.environment), "prefix": backups.object_prefix(host)},
            "superlinks": cfg.federations_served_by(host.name, "superlink"),
            "vpns": cfg.federations_served_by(host.name, "vpn"),
            "supernodes": cfg.supernodes_on(host.name),
            "service_users": sorted({u for r in host.roles for u in ROLES[r].service_users} | ({databases.BACKUP_USER} if backed_up else set())),
            "venvs": sorted({venv for r in host.roles if (venv := ROLES[r].python_venv)}),
            "runs_apps": any(ROLES[r].runs_apps for r in host.roles),
            "apps_guard": apps.guard(
                host.roles, (s.cidr for s in cfg.network.segments.values()),
                package_index=any(fed.runtime_dependency_installation for fed, _ in cfg.supernodes_on(host.name)),
            ),
            "notebook_egress": notebook.notebook_egress(cfg),
            "app_lock": app_lock(cfg, host),
            # The notebook image's runtimes: NumPy (the default, whose flwr the terminal runs) and every federation's.
            "notebook_runtimes": list(dict.fromkeys([runtimes.DEFAULT, *(f.runtime for f in cfg.federations.values())])),
        }
    return {
        "cfg": cfg,
        "roles": ROLES,
        "web_roles": WEB_ROLES,  # roles nginx serves publicly, in table order
        "ports": {p.name: p for p in ports.PORTS},
        "names": names,
        "public": public,  # public names (nina/plan/public.py), shared with the platform's outputs
        "layout": layout,  # where things land on hosts (nina/catalog/layout.py), shared with the SSH delivery
        "openvpn": openvpn,  # the vpn fragment renders server configs from nina/plan/openvpn.py's data
        "flower": flower,  # what SuperNodes are told (nina/plan/flower.py)
        "scrape": scrape,  # what Prometheus scrapes and probes (nina/plan/scrape.py)
        "databases": databases,  # §4.3.1's backups (nina/catalog/databases.py)
        "all_databases": DATABASES,
        "versions": versions,  # every pinned version (nina/catalog/versions.py)
        "runtimes": runtimes,  # the ML runtimes' locks and how they are installed (nina/catalog/runtimes.py)
        "apt_repositories": apt.APT_REPOSITORIES,  # third-party APT repositories and their pinned keys
        "apt_catalog": apt,  # ... and how their keys are re-checked (nina-apt-keys)
        "logs": logs,  # the log patterns mtail counts (nina/catalog/logs.py)
        "bootstrap_dir": BOOTSTRAP_DIR,
        "bootstrap_marker": layout.BOOTSTRAP_MARKER,
        "system_group": SYSTEM_GROUP,
        "flwr_version": versions.FLWR,
        **per_host,
        **extra,
    }


def app_lock(cfg: StackConfig, host: Host) -> runtimes.Lock | None:
    """The runtime lock researchers' apps use on this host: its federation's (a host serves one), the CUDA variant on
    a GPU host; None where no apps run, or for a simulation, which runs in the SuperLink's flwr[simulation] venv."""
    feds = [*cfg.federations_served_by(host.name, "superlink"), *(fed for fed, _ in cfg.supernodes_on(host.name))]
    return runtimes.lock(feds[0].runtime, host.has("gpu")) if feds and feds[0].type == "deployment" else None


def fragments(cfg: StackConfig, host: Host) -> list[str]:
    """The base first, then the host's roles in table order (stable, whatever order the stack lists them), then the
    runtime of the federation whose apps run here, then the backups of the databases those roles use, then what
    copies backups off the host."""
    return (
        ["base"]
        + [r for r in ROLES if r in host.roles]
        + (["runtime"] if app_lock(cfg, host) else [])
        + (["backup"] if backups.backed_up_on(cfg, host) else [])
        + (["offsite"] if backups.uploaders_on(cfg, host) else [])
    )


@dataclass(frozen=True)
class Fragment:
    packages: list[str]
    files: list[RenderedFile]  # user-data
    bootstrap: str | None
    delivered: list[RenderedFile]  # over SSH after boot


def _files(name: str, ctx: dict[str, Any], entries: list[dict[str, Any]]) -> list[RenderedFile]:
    # A template named with its folder (flower/...) is shared by several roles' fragments.
    return [
        RenderedFile(
            path=f["path"],
            content=_env.get_template(f["template"] if "/" in f["template"] else f"{name}/{f['template']}").render({**ctx, **f.get("vars", {})}),
            owner=f.get("owner", "root:root"),
            mode=f.get("mode", "0755" if f["path"].endswith(".sh") else "0644"),
            units=tuple(f.get("units", ())),
        )
        for f in entries
    ]


def render_fragment(name: str, ctx: dict[str, Any]) -> Fragment:
    spec = yaml.load(_env.get_template(f"{name}/fragment.yaml.j2").render(ctx), Loader=_Loader) or {}
    bootstrap = _env.get_template(f"{name}/{spec['bootstrap']}").render(ctx) if spec.get("bootstrap") else None
    return Fragment(list(spec.get("packages") or []), _files(name, ctx, spec.get("files") or []), bootstrap, _files(name, ctx, spec.get("delivered") or []))


def render_template(template: str, cfg: StackConfig, host: Host | None = None, **variables: Any) -> str:
    """One template with the context every template sees, plus `variables` (a site bundle's files: host=None)."""
    return _env.get_template(template).render(_context(cfg, host, **variables))


def delivered_files(cfg: StackConfig, host: Host, fragment: str) -> list[RenderedFile]:
    """The files a fragment declares as `delivered` for this host: rendered here, installed over SSH after boot by
    nina-deliver, so changing them never replaces the VM. [] when the host does not render the fragment."""
    if fragment not in fragments(cfg, host):
        return []
    return render_fragment(fragment, _context(cfg, host)).delivered


def cloud_config(cfg: StackConfig, host: Host) -> dict[str, Any]:
    """The cloud-config document for one host, as a dict (validated against cloud-init's schema in the tests)."""
    ctx = _context(cfg, host)
    packages: list[str] = []
    write_files: list[dict[str, Any]] = []
    steps = 0
    for index, name in enumerate(fragments(cfg, host)):
        fragment = render_fragment(name, ctx)
        packages += [p for p in fragment.packages if p not in packages]
        for f in fragment.files:
            write_files.append(_write_file(f))
        if fragment.bootstrap is not None:
            script = f"{BOOTSTRAP_DIR}/{index * 10:02d}-{name}.sh"
            write_files.append(_write_file(RenderedFile(script, fragment.bootstrap, "root:root", "0755")))
            steps += 1
    users: list[Any] = ["default"]
    for user in ctx["service_users"]:
        # §4.1.2.1: system users with no shell, members of fl_system.
        users.append({"name": user, "system": True, "shell": "/usr/sbin/nologin", "groups": [SYSTEM_GROUP], "lock_passwd": True, "no_create_home": True})
    if ctx["runs_apps"]:
        # Researchers' apps and their SuperExec: a group of their own each, never fl_system (layout.APP_USER).
        users += [{"name": user, "system": True, "shell": "/usr/sbin/nologin", "lock_passwd": True, "no_create_home": True} for user in APP_USERS]
    return {
        "hostname": host.name,
        "fqdn": names.fqdn(cfg, host.name),
        "prefer_fqdn_over_hostname": False,
        "timezone": "Australia/Brisbane",
        "package_update": True,
        "package_upgrade": True,
        "groups": [SYSTEM_GROUP],
        "users": users,
        # The delivery's key only: the operators' keys are delivered (layout.OPERATOR_KEYS_DIR), so a change to
        # them replaces no VM.
        "ssh_authorized_keys": [cfg.admin.delivery_public_key],
        "ssh_pwauth": False,
        "disable_root": True,
        "packages": packages,
        "write_files": write_files,
        # One command: cloud-init joins runcmd entries into one /bin/sh script whose status is its last line's, so a
        # failing step among several would go unreported.
        "runcmd": [[BOOTSTRAP_RUNNER]] if steps else [],
        "final_message": f"nina {cfg.environment} {host.name} ({', '.join(host.roles)}) bootstrapped after $UPTIME s",
    }


def _write_file(f: RenderedFile) -> dict[str, Any]:
    # Deferred: written in the final stage, after packages are installed and the service users exist, so a
    # package never overwrites our file and ownership by a service user resolves.
    return {"path": f.path, "content": f.content, "owner": f.owner, "permissions": f.mode, "defer": True}


def _str_presenter(dumper: yaml.representer.SafeRepresenter, data: str) -> yaml.Node:
    # Multi-line file contents as literal blocks: the user-data stays readable in review.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


class Dumper(yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper):  # type: ignore[misc]
    """libyaml's emitter when PyYAML has it (its wheels do): a 140-host stack renders in well under a second instead
    of ~10 s. With folding off (DUMP_OPTIONS) it emits exactly what the pure-Python emitter does (a test compares the
    two), so user-data stays byte-identical on a machine without libyaml."""


class PureDumper(yaml.SafeDumper):
    """The pure-Python emitter, the reference for that comparison."""


for _dumper in (Dumper, PureDumper):
    _dumper.add_representer(str, _str_presenter)

# Unicode as itself (a "§" would otherwise turn a whole file into an escaped one-line string), and no line folding:
# folded scalars are where libyaml and the Python emitter differ.
DUMP_OPTIONS: dict[str, Any] = {"sort_keys": False, "width": 2**30, "allow_unicode": True}


def cloud_config_text(cfg: StackConfig, host: Host) -> str:
    body = yaml.dump(cloud_config(cfg, host), Dumper=Dumper, **DUMP_OPTIONS)
    return "#cloud-config\n" + body


def user_data(cfg: StackConfig, host: Host) -> str:
    """What the instance receives: the cloud-config itself, or base64(gzip) when it would not fit the budget.

    cloud-init recognises gzip'd user-data; the provider passes an already-base64 string through unchanged.
    gzip's mtime is fixed so the same config always gives the same bytes (a changed user-data replaces the VM).
    """
    text = cloud_config_text(cfg, host)
    if len(text.encode()) <= SIZE_LIMIT:
        return text
    packed = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode()


def decode_user_data(data: str) -> str:
    """Inverse of `user_data`, for tests and `nina preview --out`."""
    if data.startswith("#cloud-config"):
        return data
    return gzip.decompress(base64.b64decode(data)).decode()
