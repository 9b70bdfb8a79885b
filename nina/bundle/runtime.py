"""How the site runs its SuperNodes: the same wrapper and unit the Nectar hosts get (§4.1.3.3.1), the §5.7
Dockerfiles (CPU, CUDA), the §4.1.3.3.2 run scripts for Docker and Podman, and the README for the site's IT team."""

from __future__ import annotations

from cloudinit import render_template
from nina.bundle import check, monitoring, vpn
from nina.bundle.context import Files, SiteContext
from nina.catalog import layout, runtimes
from nina.catalog.roles import ROLES
from nina.catalog.versions import FLWR
from nina.plan import apps, flower, names

ENTRYPOINT = "/usr/local/sbin/nina-supernode-entrypoint"  # where the Dockerfiles put docker/entrypoint.sh


def runtime_lock_path(runtime: str, variant: str) -> str:
    """Where the bundle holds a runtime's lock for a variant (cpu, cuda)."""
    return f"requirements/{runtime}.{variant}.txt"


def files(ctx: SiteContext) -> Files:
    cfg = ctx.cfg
    venv = ROLES["supernode"].python_venv
    guard = apps.guard(("supernode",), package_index=any(fed.runtime_dependency_installation for fed, _ in ctx.supernodes))
    out: Files = {
        "opt/flwr/supernode/run_supernode.sh": (render_template("supernode/run_supernode.sh.j2", cfg), 0o755),
        "etc/systemd/system/supernode@.service": (render_template("supernode/supernode@.service.j2", cfg), 0o644),
        # ClientApps as their own user, away from the key, reaching only their SuperNode (README: Threat model).
        "etc/systemd/system/supernode-superexec@.service": (
            render_template("supernode/supernode-superexec@.service.j2", cfg, apps_guard=guard), 0o644
        ),
        layout.APP_LAUNCHER.lstrip("/"): (render_template("flower/launch-app.sh.j2", cfg), 0o755),
        layout.APP_RUNNER.lstrip("/"): (render_template("flower/run-app.sh.j2", cfg, venv=venv), 0o755),
        layout.APP_SUDOERS.lstrip("/"): (render_template("flower/sudoers.j2", cfg), 0o440),
        layout.APPS_GUARD.lstrip("/"): (render_template("flower/apps-guard.nft.j2", cfg, apps_guard=guard), 0o644),
        f"etc/systemd/system/{layout.APPS_GUARD_UNIT}": (render_template("flower/nina-apps-guard.service.j2", cfg), 0o644),
    }
    # The federations' runtimes, the very locks the Nectar hosts install (README "Runtimes"): one venv on the
    # machine (install.sh) or in the image (the Dockerfiles), from requirements/<runtime>.<cpu|cuda>.txt.
    site_runtimes = tuple(dict.fromkeys(fed.runtime for fed, _ in ctx.supernodes))
    for name in site_runtimes:
        for variant, gpu in (("cpu", False), ("cuda", True)):
            out[runtime_lock_path(name, variant)] = (runtimes.lock(name, gpu).text(), 0o644)
    out["install.sh"] = (
        render_template("supernode/bundle/install.sh.j2", cfg, venv=venv, supernodes=ctx.supernodes, site_runtimes=site_runtimes), 0o755
    )
    out["docker/entrypoint.sh"] = (render_template("supernode/bundle/entrypoint.sh.j2", cfg, venv=venv), 0o755)
    for variant in ("cpu", "cuda"):
        dockerfile = render_template(
            "supernode/bundle/Dockerfile.j2", cfg, variant=variant, entrypoint=ENTRYPOINT, venv=venv, site_runtimes=site_runtimes,
            lock_file=runtime_lock_path("${RUNTIME}", variant),
        )
        out[f"docker/Dockerfile.{variant}"] = (dockerfile, 0o644)
    feds = dict.fromkeys(fed.name for fed, _ in ctx.supernodes)
    superlinks = [
        (f, names.fqdn(cfg, names.superlink_alias(cfg.federations[f])), str(cfg.hosts[cfg.federations[f].superlink_host].ip)) for f in feds
    ]
    default_name = ctx.supernodes[0][1].name
    for script, engine, image, gpu in (
        ("run-docker.sh", "docker", f"nina-supernode-cpu:{FLWR}", False),
        ("run-docker-gpu.sh", "docker", f"nina-supernode-cuda:{FLWR}", True),
        ("run-podman.sh", "podman", f"localhost/nina-supernode-cpu:{FLWR}", False),
    ):
        text = render_template(
            "supernode/bundle/run-container.sh.j2",
            cfg,
            script=f"docker/{script}",
            engine=engine,
            image=image,
            gpu=gpu,
            superlinks=superlinks,
            default_name=default_name,
        )
        out[f"docker/{script}"] = (text, 0o755)
    addresses = {f: f"{address}:{flower.PUBLIC_PORT}" for f, address, _ in superlinks}
    clients = vpn.clients(ctx)
    readme = render_template(
        "supernode/bundle/README.md.j2", cfg, org=ctx.org, supernodes=ctx.supernodes, superlinks=superlinks, addresses=addresses, venv=venv,
        vpn_clients=clients,
        # Certificate and tls-crypt key come only with the stack's outputs (nina/bundle/vpn.py).
        has_vpn_material=all(str(ctx.vpn_output(c.federation.name).get("cert_pem", "")).startswith("-----BEGIN ") for c in clients),
        gpu=check.gpu_facts(), node_port=monitoring.port("node-exporter"), dcgm_port=monitoring.port("dcgm-exporter"),
        monitoring_addresses=monitoring.addresses(ctx),
    )
    out["README.md"] = (readme, 0o644)
    return out
