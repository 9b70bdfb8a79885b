"""How long does `nina preview` take on a large tenancy? (issue 2, "Done when")

Generates a synthetic but valid stack, by default 20 federations x 25 SuperNodes, into a throwaway project directory
(Pulumi.yaml + a link to the real __main__.py), then times

  1. `nina preview --stack bench --json --out DIR` end to end (what an operator waits for), and
  2. the evaluation alone (`nina.offline.evaluate.evaluate` in a fresh interpreter, imports excluded),

and prints the resource count and the largest user-data.

Shape, within the config rules: one consolidated hub (ingress, iam, notebook, monitoring); per federation its own
SuperLink VM and OpenVPN VM; 50 Nectar-hosted organisations, each with its own segment and two SuperNode VMs; every
organisation is a member of two federations with five SuperNodes each (one VM per membership, ports 9094-9098,
partition ids unique per federation).

    .venv/bin/python bench/preview_scale.py [--federations 20] [--supernodes 25] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SUPERNODES_PER_VM = 5  # of the 6 ports 9094-9099 a host offers
MEMBERSHIPS_PER_ORG = 2

_EVALUATE_ONLY = """
import sys, time
from pathlib import Path
from nina.offline.evaluate import evaluate
start, cpu = time.perf_counter(), time.process_time()
ev = evaluate("bench", Path(sys.argv[1]))
print(time.perf_counter() - start, time.process_time() - cpu, len(ev.resources))
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def synthetic_stack(federations: int, supernodes: int) -> dict[str, Any]:
    if supernodes % SUPERNODES_PER_VM:
        raise SystemExit(f"--supernodes must be a multiple of {SUPERNODES_PER_VM}")
    orgs_per_fed = supernodes // SUPERNODES_PER_VM
    organisations = federations * orgs_per_fed // MEMBERSHIPS_PER_ORG
    if organisations * MEMBERSHIPS_PER_ORG != federations * orgs_per_fed or organisations > 250 or federations > 100:
        raise SystemExit("choose federations x organisations per federation even, at most 250 organisations and 100 federations")
    hosts: dict[str, Any] = {
        "hub": {"segment": "public", "ip": "10.60.0.10", "flavor": "m3.xlarge", "roles": ["ingress", "iam", "notebook", "monitoring"], "volume_gb": 100}
    }
    segments = {"public": "10.60.0.0/23", "internal": "10.60.2.0/23"}
    orgs: dict[str, Any] = {}
    for o in range(organisations):
        name = f"org-{o:03d}"
        segments[name] = f"10.61.{o}.0/24"
        orgs[name] = {"display_name": f"Synthetic organisation {o}", "hosting": "nectar", "segment": name}
        for m in range(MEMBERSHIPS_PER_ORG):
            hosts[f"{name}-sn{m + 1}"] = {"segment": name, "ip": f"10.61.{o}.{10 + m}", "flavor": "m3.medium", "roles": ["supernode"]}
    feds: dict[str, Any] = {}
    memberships = [(o, m) for m in range(MEMBERSHIPS_PER_ORG) for o in range(organisations)]
    for f in range(federations):
        fed = f"fed-{f:03d}"
        hosts[f"superlink-{f:03d}"] = {"segment": "internal", "ip": f"10.60.2.{20 + f}", "flavor": "m3.large", "roles": ["superlink"], "volume_gb": 20}
        hosts[f"vpn-{f:03d}"] = {"segment": "public", "ip": f"10.60.0.{20 + f}", "flavor": "m3.small", "roles": ["vpn"]}
        members: dict[str, Any] = {}
        partition = 0
        for o, m in memberships[f * orgs_per_fed : (f + 1) * orgs_per_fed]:
            org = f"org-{o:03d}"
            nodes = []
            for k in range(SUPERNODES_PER_VM):
                nodes.append(
                    {"name": f"o{o}-m{m}-{k}", "partition_id": partition, "host": f"{org}-sn{m + 1}", "public_key": "generate", "port": 9094 + k}
                )
                partition += 1
            members[org] = {"supernodes": nodes}
        feds[fed] = {
            "type": "deployment",
            "superlink_host": f"superlink-{f:03d}",
            "vpn_host": f"vpn-{f:03d}",
            "vpn_client_range": f"172.20.{f}.0/24",
            "isolation": "process",
            "num_partitions": supernodes,
            "members": members,
        }
    test = yaml.safe_load((ROOT / "Pulumi.test.yaml").read_text())["config"]
    return {
        "nina:environment": "bench",
        **({"nina:cloud": test["nina:cloud"]} if "nina:cloud" in test else {}),
        "nina:admin": {**test["nina:admin"], "jump_host": "hub"},
        "nina:dns": {"public_domain": "bench.nina.example.org", "internal_domain": "bench.nina.internal"},
        "nina:network": {"segments": segments},
        "nina:hosts": hosts,
        "nina:organisations": orgs,
        "nina:federations": feds,
        "nina:database": test["nina:database"],
        "nina:monitoring": {"test_stack": True},  # a benchmark: alerts reach nobody, on purpose
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--federations", type=int, default=20)
    parser.add_argument("--supernodes", type=int, default=25, help="per federation")
    parser.add_argument("--keep", help="write the project here and keep it (default: a temporary directory)")
    args = parser.parse_args()

    config = synthetic_stack(args.federations, args.supernodes)
    with tempfile.TemporaryDirectory(prefix="nina-bench-") as tmp:
        project = Path(args.keep) if args.keep else Path(tmp)
        project.mkdir(parents=True, exist_ok=True)
        (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        if not (project / "__main__.py").exists():
            (project / "__main__.py").symlink_to(ROOT / "__main__.py")
        (project / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        out = project / "out"

        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(
            [sys.executable, "-m", "nina.cli", "preview", "--stack", "bench", "--json", "--out", str(out), "--cwd", str(project)],
            capture_output=True,
            text=True,
            check=False,
        )
        wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        plan = json.loads(proc.stdout)

        only = subprocess.run([sys.executable, "-c", _EVALUATE_ONLY, str(project)], capture_output=True, text=True, check=True)
        evaluation, evaluation_cpu, count = only.stdout.split()

        resources = plan["resources"]
        kinds = collections.Counter(r["type"].split(":")[-1] for r in resources)
        sizes = {p.parent.name: p.stat().st_size for p in out.glob("hosts/*/user-data")}
        largest = max(sizes, key=lambda h: sizes[h])
        hosts = config["nina:hosts"]
        supernode_vms = sum(1 for h in hosts.values() if "supernode" in h["roles"])
        print(
            f"synthetic stack: {args.federations} federations x {args.supernodes} SuperNodes = {args.federations * args.supernodes} SuperNodes "
            f"on {supernode_vms} SuperNode VMs; {len(hosts)} VMs, {len(config['nina:organisations'])} organisations, "
            f"{len(config['nina:network']['segments'])} segments"
        )
        # CPU time as well as wall time: on a shared machine the wall time mostly measures the neighbours.
        print(f"nina preview --json --out (end to end): {wall:.2f} s wall, {cpu:.2f} s CPU")
        print(f"evaluation alone (evaluate(), imports excluded): {float(evaluation):.2f} s wall, {float(evaluation_cpu):.2f} s CPU for {count} resources")
        print(f"resources: {len(resources)}  ({', '.join(f'{k} {n}' for k, n in kinds.most_common(8))}, ...)")
        print(f"user-data: largest {sizes[largest]} bytes ({largest}), limit 16384; plan JSON {len(proc.stdout) // 1024} KiB")
        if args.keep:
            print(f"project kept in {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
