#!/usr/bin/env python3
"""Regenerate nina/catalog/replace_rules.json: which inputs of each pulumi-openstack resource force a replacement.

pulumi-openstack bridges terraform-provider-openstack, whose resource schemas mark such arguments `ForceNew: true`;
the bridge turns them into replacements. This reads the provider's source at the version pulumi-openstack's
provider/go.mod pins (both repositories as git directories, e.g. from `git clone --bare`), maps each Terraform
resource to its Pulumi type token as provider/resources.go does, and writes, per token, the Pulumi names (camelCase)
of the top-level arguments that are ForceNew. `nina diff` reads the table (README "Reviewing a change").

Usage: scripts/replacement-rules.py PULUMI_OPENSTACK_GIT TERRAFORM_PROVIDER_OPENSTACK_GIT [--pulumi-ref REF]
Run it when pyproject.toml's pulumi-openstack pin changes; tests/test_diff.py checks the table's version.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nina" / "catalog" / "replace_rules.json"


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True, text=True).stdout


def block(text: str, start: int) -> str:
    """The text of the {...} block whose opening brace is at or after `start`."""
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    raise ValueError("unbalanced braces")


def top_level_entries(schema_body: str) -> dict[str, str]:
    """`"name": {...}` entries of a schema map, at its top level only."""
    entries: dict[str, str] = {}
    i = 0
    while True:
        found = re.compile(r'"([a-z0-9_]+)":\s*\{').search(schema_body, i)
        if not found:
            return entries
        body = block(schema_body, found.end() - 1)
        entries[found.group(1)] = body
        i = found.end() - 1 + len(body) + 2


def force_new(entry: str) -> bool:
    """ForceNew: true on the argument itself or on any field nested in it: a change anywhere inside replaces."""
    return re.search(r"ForceNew:\s*true", entry) is not None


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pulumi_openstack")
    parser.add_argument("terraform_provider_openstack")
    parser.add_argument("--pulumi-ref", default="HEAD")
    args = parser.parse_args(argv)
    gomod = git(args.pulumi_openstack, "show", f"{args.pulumi_ref}:provider/go.mod")
    version = re.search(r"terraform-provider-openstack/terraform-provider-openstack/v\d+ (v\S+)", gomod)
    if not version:
        print("replacement-rules: no terraform-provider-openstack in provider/go.mod", file=sys.stderr)
        return 1
    tag = version.group(1)
    pulumi_version = subprocess.run(["git", "--git-dir", args.pulumi_openstack, "describe", "--tags", args.pulumi_ref], capture_output=True, text=True).stdout.strip() or args.pulumi_ref
    resources_go = git(args.pulumi_openstack, "show", f"{args.pulumi_ref}:provider/resources.go")
    mods = dict(re.findall(r"^\s*(\w+Mod)\s*=\s*\"(\w+)\"", resources_go, re.M))
    tokens = {
        tf: f"openstack:{mods[mod].lower()}/{res[:1].lower() + res[1:]}:{res}"
        for tf, mod, res in re.findall(r'"(openstack_\w+)":\s*\{Tok: openstackResource\((\w+), "(\w+)"\)', resources_go)
    }
    # The bridge's own names for Terraform's (plurals of list blocks: network -> networks), else camelCase.
    metadata = json.loads(git(args.pulumi_openstack, "show", f"{args.pulumi_ref}:provider/cmd/pulumi-resource-openstack/bridge-metadata.json"))
    renamed = {token: {tf: pulumi for pulumi, tf in props.items()} for token, props in metadata["renames"]["renamedProperties"].items()}
    provider_go = git(args.terraform_provider_openstack, "show", f"{tag}:openstack/provider.go")
    resources_map = block(provider_go, provider_go.index("ResourcesMap:"))
    functions = dict(re.findall(r'"(openstack_\w+)":\s*(\w+)\(\)', resources_map))
    sources = {
        path: git(args.terraform_provider_openstack, "show", f"{tag}:{path}")
        for path in git(args.terraform_provider_openstack, "ls-tree", "--name-only", tag, "openstack/").split()
        if path.endswith(".go") and not path.endswith("_test.go")
    }
    rules: dict[str, list[str]] = {}
    for tf, func in sorted(functions.items()):
        if tf not in tokens:
            continue
        source = next((s for s in sources.values() if f"func {func}() *schema.Resource" in s), None)
        if source is None:
            continue
        body = block(source, source.index(f"func {func}() *schema.Resource"))
        schema_at = body.find("Schema: map[string]*schema.Schema{")
        if schema_at < 0:
            continue
        entries = top_level_entries(block(body, schema_at + len("Schema: map[string]*schema.Schema")))
        names = renamed.get(tokens[tf], {})
        rules[tokens[tf]] = sorted(names.get(name, camel(name)) for name, entry in entries.items() if force_new(entry))
    document = {
        "source": f"terraform-provider-openstack {tag} (ForceNew, at any depth of an argument), named as pulumi-openstack {pulumi_version} bridges them (bridge-metadata.json)",
        "provider_version": tag,
        "generator": "scripts/replacement-rules.py",
        "force_new": rules,
    }
    OUT.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(rules)} resources from terraform-provider-openstack {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
