"""`./nina-check` for the site's IT team (nina/onhost/site_check.py, standard library only) and what it checks
against, `nina-check.json`: the site's VPN clients and tunnel addresses, each SuperLink (address, name, port) and
the platform's CA to verify it with, each SuperNode's key path and the public key the platform registered, the
exporters monitoring scrapes, the GPU stack (nina/catalog/versions.py) and the data paths. Nothing secret."""

from __future__ import annotations

import json

from nina.bundle import monitoring, vpn
from nina.bundle.context import Files, SiteContext
from nina.catalog import layout, versions
from nina.onhost import SITE_CHECK, program_source
from nina.plan import flower, names

MINIMUM_FREE_GIB = 10  # a data path with less cannot hold a round's models and logs
DATA_PATH_KEY = "data-path"  # the node_config key the SuperNodes' apps read their data from (the stacks' convention)
PACKAGED = {"node exporter": "prometheus-node-exporter.service", "DCGM exporter": "nvidia-dcgm-exporter.service"}
METRIC = {"node exporter": "node_", "DCGM exporter": "DCGM_"}
# Where the distributions' own units listen (on every address): nothing may, besides the tunnel and loopback.
PACKAGED_PORT = {"node exporter": 9100, "DCGM exporter": 9400}


def driver_minimum() -> int:
    """The driver branch's number (580 of 580-server): nvidia-smi's driver version must be at least that."""
    return int(versions.NVIDIA_DRIVER_BRANCH.split("-")[0])


def gpu_facts() -> dict[str, object]:
    return {"driver_branch": versions.NVIDIA_DRIVER_BRANCH, "driver_minimum": driver_minimum(), "cuda_major": versions.CUDA_MAJOR}


def facts(ctx: SiteContext) -> dict[str, object]:
    cfg = ctx.cfg
    feds = dict.fromkeys(fed.name for fed, _ in ctx.supernodes)
    clients = vpn.clients(ctx)
    return {
        "organisation": ctx.org.name,
        "environment": cfg.environment,
        "ca_pem": ctx.ca_pem,
        "vpn": [
            {
                "federation": c.federation.name,
                "unit": c.unit,
                "server": c.server,
                "remotes": [{"proto": i.proto, "port": i.port} for i in vpn.openvpn.instances(c.federation)],
                "addresses": c.addresses,
            }
            for c in clients
        ],
        "superlinks": [
            {
                "federation": f,
                "name": names.fqdn(cfg, names.superlink_alias(cfg.federations[f])),
                "ip": str(cfg.hosts[cfg.federations[f].superlink_host].ip),
                "port": flower.PUBLIC_PORT,
            }
            for f in feds
        ],
        "supernodes": [
            {
                "name": sn.name,
                "federation": fed.name,
                "key": layout.supernode_key(sn.name),
                "public_key": sn.public_key,
                "units": [layout.supernode_unit(sn.name), layout.supernode_superexec_unit(sn.name)],
                "container": f"nina-supernode-{sn.name}",  # docker/run-*.sh
            }
            for fed, sn in ctx.supernodes
        ],
        "exporters": [
            {
                "name": what, "port": port, "socket": socket, "packaged": PACKAGED[what], "metric": METRIC[what],
                "private_ports": sorted({port, PACKAGED_PORT[what]}),
            }
            for what, port, socket in monitoring.exporters(ctx)
        ],
        "gpu": gpu_facts() if ctx.org.gpu else None,
        "data_paths": sorted({p for _, sn in ctx.supernodes if (p := sn.node_config.get(DATA_PATH_KEY))}),
        "minimum_free_gib": MINIMUM_FREE_GIB,
    }


def files(ctx: SiteContext) -> Files:
    return {
        "nina-check": (program_source(SITE_CHECK).decode(), 0o755),
        "nina-check.json": (json.dumps(facts(ctx), indent=1, sort_keys=True) + "\n", 0o644),
    }
