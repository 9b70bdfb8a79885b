"""The report: changes grouped by host and by resource, the dangers first, rendered as text, markdown (a pull
request comment, within GitHub's size limit) or JSON. Exit status: 0 nothing changes, 1 changes, 3 a danger."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from nina.review import changes as ch
from nina.review import files as fl

COMMENT_LIMIT = 65_536  # GitHub's maximum comment body, in characters
MARKER = "<!-- nina-diff:"  # + "<stack> -->": the first line of a stack's comment, how the workflow finds it to update
INTERNET = ("0.0.0.0/0", "::/0")
STATEFUL = {
    "openstack:database/instance:Instance": "the managed database (its data)",
    "openstack:blockstorage/volume:Volume": "a state volume (the host's data)",
    "tls:index/selfSignedCert:SelfSignedCert": "the local CA (every host and site trusts it)",
}


@dataclass
class HostReport:
    name: str
    roles: list[str]
    replaced: bool = False
    deleted: bool = False
    replace_causes: dict[str, str] = field(default_factory=dict)
    user_data: list[fl.FileChange] = field(default_factory=list)
    user_data_size: tuple[int, int] = (0, 0)
    delivery: list[fl.FileChange] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    base: str
    head: str
    danger: list[dict[str, str]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    hosts: list[HostReport] = field(default_factory=list)
    registrations: dict[str, list[str]] = field(default_factory=lambda: {"added": [], "removed": [], "changed": []})
    certificates: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 3 if self.danger else 1 if self.resources else 0

    def counts(self) -> dict[str, int]:
        kinds = [r["change"] for r in self.resources]
        return {k: kinds.count(k) for k in (ch.REPLACE, ch.UPDATE, ch.CREATE, ch.DELETE)}


def _host_of(change: ch.Change) -> str | None:
    if change.resource.type == "openstack:compute/instance:Instance":
        return change.resource.name
    if change.resource.type == "command:remote:Command" and change.resource.name.startswith("deliver-"):
        return change.resource.name[len("deliver-"):]
    return None


def _rule(inputs: dict[str, Any]) -> str:
    ports = inputs.get("portRangeMin")
    span = "" if ports is None else f" {ports}" if ports == inputs.get("portRangeMax") else f" {ports}-{inputs.get('portRangeMax')}"
    source = inputs.get("remoteIpPrefix") or inputs.get("remoteGroupId") or "anywhere"
    return f"{inputs.get('direction', '?')} {inputs.get('protocol', 'any')}{span} {'from' if inputs.get('direction') == 'ingress' else 'to'} {source}"


def _covers(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does an existing rule already let through everything the new one does?"""
    import ipaddress

    same = all(old.get(k) == new.get(k) for k in ("direction", "ethertype", "protocol", "remoteGroupId"))
    if not same:
        return False
    lo, hi = old.get("portRangeMin"), old.get("portRangeMax")
    if lo is not None and (new.get("portRangeMin") is None or new["portRangeMin"] < lo or new.get("portRangeMax", 0) > hi):
        return False
    if old.get("remoteIpPrefix") == new.get("remoteIpPrefix"):
        return True
    try:
        return ipaddress.ip_network(new["remoteIpPrefix"]).subnet_of(ipaddress.ip_network(old["remoteIpPrefix"]))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return False


def _dangers(changes: list[ch.Change], base: dict[str, ch.Resource], created_groups: set[str], roles: dict[str, list[str]]) -> list[dict[str, str]]:
    rules_before: dict[str, list[dict[str, Any]]] = {}
    for res in base.values():
        if res.type == "openstack:networking/secGroupRule:SecGroupRule":
            rules_before.setdefault(str(res.inputs.get("securityGroupId", "")), []).append(res.inputs)
    out: list[dict[str, str]] = []
    for c in changes:
        res = c.resource
        destructive = c.kind in (ch.REPLACE, ch.DELETE)
        if destructive and res.protect:
            out.append({"urn": c.urn, "change": c.kind, "why": "protected: Pulumi refuses until `pulumi state unprotect`; "
                        + STATEFUL.get(res.type, "state that cannot be re-made")})
        elif destructive and res.type in STATEFUL:
            out.append({"urn": c.urn, "change": c.kind, "why": STATEFUL[res.type]})
        if res.type == "openstack:compute/instance:Instance" and destructive:
            why = "a VM is " + ("replaced" if c.kind == ch.REPLACE else "deleted") + ": its services stop" + (" while it rebuilds" if c.kind == ch.REPLACE else "")
            if "superlink" in roles.get(res.name, []):
                why += "; it is a SuperLink (runs in progress fail; registrations stay on its state volume)"
            out.append({"urn": c.urn, "change": c.kind, "why": why})
        if res.type == "openstack:networking/secGroupRule:SecGroupRule" and c.kind in (ch.CREATE, ch.REPLACE, ch.UPDATE):
            group = str(res.inputs.get("securityGroupId", ""))
            if group in created_groups or any(_covers(old, res.inputs) for old in rules_before.get(group, [])):
                continue  # a new group's own rules, or nothing let through that was not before (a new description)
            if res.inputs.get("direction") == "ingress" and res.inputs.get("remoteIpPrefix") in INTERNET:
                out.append({"urn": c.urn, "change": c.kind, "why": f"opens to the internet: {_rule(res.inputs)}"})
            else:
                out.append({"urn": c.urn, "change": c.kind, "why": f"widens an existing security group: {_rule(res.inputs)}"})
    return out


def build(stack: str, base_label: str, head_label: str, base: dict[str, Any], head: dict[str, Any], project: str) -> Report:
    changes = ch.compare(base, head, project)
    roles = {n: list(h.get("roles", [])) for doc in (base, head) for n, h in (doc.get("outputs", {}).get("hosts") or {}).items()}
    # Rules of a group created by this very change widen nothing that existed.
    created_groups = {ch.offline_id(c.resource.type, c.resource.name) for c in changes
                      if c.kind == ch.CREATE and c.resource.type == "openstack:networking/secGroup:SecGroup"}
    report = Report(stack, base_label, head_label, danger=_dangers(changes, ch.resources(base), created_groups, roles))
    # What only the apply knows (a re-issued certificate, a new VM's id): delivered files that carry it change too.
    pending = {name: c.resource.name for c in changes if c.kind == ch.REPLACE for name in ch.references(c.resource)}
    hosts: dict[str, HostReport] = {}
    for c in changes:
        entry: dict[str, Any] = {"change": c.kind, "urn": c.urn, "type": c.resource.type, "name": c.resource.name}
        if c.properties:
            entry["properties"] = c.properties
        if c.causes:
            entry["replaced_because"] = c.causes
        report.resources.append(entry)
        host = _host_of(c)
        if host is not None:
            h = hosts.setdefault(host, HostReport(host, roles.get(host, [])))
            before = c.before.inputs if c.before else {}
            after = c.resource.inputs if c.kind != ch.DELETE else {}
            if c.resource.type == "openstack:compute/instance:Instance":
                h.replaced, h.deleted = c.kind == ch.REPLACE, c.kind == ch.DELETE
                h.replace_causes = c.causes
                if before.get("userData") != after.get("userData"):
                    h.user_data, *sizes = fl.user_data_changes(before.get("userData"), after.get("userData"))
                    h.user_data_size = (sizes[0], sizes[1])
            else:
                old_files, new_files = fl.delivery_files(before.get("stdin")), fl.delivery_files(after.get("stdin"))
                h.delivery = fl.compare_files(old_files, new_files)
                shown = {f.path for f in h.delivery}
                for path, f in sorted(new_files.items()):
                    whose = sorted({n for ref, n in pending.items() if ref in f["content"]})
                    if path not in shown and whose:
                        h.delivery.append(fl.FileChange(path, fl.CHANGED, fl.is_secret(path, f["mode"]), [], list(f.get("units", [])),
                                                        note=f"new value at apply: {', '.join(whose)} re-made"))
                h.delivery.sort(key=lambda f: f.path)
                h.restarts = fl.restarts(h.delivery, new_files) if c.kind != ch.DELETE else []
        if c.resource.type == "command:remote:Command" and c.resource.name.startswith("register-"):
            bucket = {ch.CREATE: "added", ch.DELETE: "removed"}.get(c.kind, "changed")
            report.registrations[bucket].append(c.resource.name[len("register-"):])
        if c.resource.type in ("tls:index/locallySignedCert:LocallySignedCert", "tls:index/selfSignedCert:SelfSignedCert") and c.kind == ch.REPLACE:
            report.certificates.append(c.resource.name)
    report.hosts = [hosts[n] for n in sorted(hosts)]
    return report


# --------------------------------------------------------------------------------------------------- rendering


def as_json(report: Report) -> str:
    data = asdict(report)
    data["status"] = report.status
    data["counts"] = report.counts()
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _summary(report: Report) -> str:
    counts = report.counts()
    vms = sum(1 for h in report.hosts if h.replaced)
    return (f"{len(report.danger)} danger(s); {counts['replace']} replaced ({vms} VMs), {counts['update']} updated in place, "
            f"{counts['create']} created, {counts['delete']} deleted")


def as_text(report: Report) -> str:
    out = [f"nina diff: stack {report.stack}, {report.base} -> {report.head}", _summary(report), ""]
    if not report.resources:
        return "\n".join(out + ["No changes."]) + "\n"
    if report.danger:
        out.append("DANGER")
        out += [f"  {d['change']:8} {d['urn']}\n           {d['why']}" for d in report.danger]
        out.append("")
    out.append("RESOURCES")
    for r in report.resources:
        why = "; ".join(f"{p}: {w}" for p, w in r.get("replaced_because", {}).items())
        props = ", ".join(r.get("properties", []))
        out.append(f"  {r['change']:8} {r['urn']}" + (f"\n           because {why}" if why else f"\n           {props}" if props else ""))
    for h in report.hosts:
        out += ["", f"HOST {h.name} ({', '.join(h.roles)})" + (" REPLACED" if h.replaced else " DELETED" if h.deleted else "")]
        if h.user_data:
            out.append(f"  user-data {_size(h.user_data_size[0])} -> {_size(h.user_data_size[1])} of {_size(fl.USER_DATA_BUDGET)}")
            out += _text_files(h.user_data)
        if h.delivery:
            out.append("  delivery" + (f" (then: {', '.join(h.restarts)})" if h.restarts else ""))
            out += _text_files(h.delivery)
    for bucket, names in report.registrations.items():
        if names:
            out += ["", f"SuperNode registrations {bucket}: {', '.join(sorted(names))}"]
    if report.certificates:
        out += ["", f"Certificates re-issued: {', '.join(sorted(report.certificates))}"]
    return "\n".join(out) + "\n"


def _text_files(changes: list[fl.FileChange]) -> list[str]:
    out = []
    for f in changes:
        out.append(f"    {f.status:8} {f.path}" + (" (secret: content not shown)" if f.secret else "") + (f" ({f.note})" if f.note else ""))
        out += [f"      {line}" for line in f.diff]
    return out


def as_markdown(report: Report, limit: int = COMMENT_LIMIT - 1_000) -> str:
    """The PR comment: everything when it fits; otherwise the largest file diffs are left out (each with a line
    saying so) until it does; the same change on many hosts is shown once. The summary sections come before the
    hosts, so nothing but file diffs is ever left out short of a stack far beyond the benchmark's."""
    cut: set[tuple[str, str]] = set()
    while True:
        text = _markdown(report, cut)
        if len(text) <= limit:
            return text
        shown = _shown_diffs(report)
        candidates = sorted(((len("\n".join(f.diff)), h, p) for (h, p), f in shown.items() if (h, p) not in cut), reverse=True)
        if not candidates:
            clipped = text[: limit - 300]
            if clipped.count("```") % 2:
                clipped += "\n```\n</details>"
            return clipped + f"\n\n…(cut at {limit} characters: run `nina diff --stack {report.stack}` locally)\n"
        cut.add((candidates[0][1], candidates[0][2]))


GROUP = 5  # more rows alike than this are shown as one


def _generic(why: str, name: str) -> str:
    """A cause without the resource's own name in it ("follows the replacement of <it>"), so alike rows group."""
    return why.replace(f"replacement of {name} ", "replacement of its VM ") if why.startswith("follows") else why


def marker(stack: str) -> str:
    """The first line of a stack's comment: the workflow finds (and updates) its own comment by it."""
    return f"{MARKER}{stack} -->"


def _shown_diffs(report: Report) -> dict[tuple[str, str], fl.FileChange]:
    """Diffs printed in full: the first host with each (path, diff); the others refer to it."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = {}
    for h in report.hosts:
        for f in h.user_data + h.delivery:
            sig = (f.path, tuple(f.diff))
            if f.diff and sig not in seen:
                seen.add(sig)
                out[(h.name, f.path)] = f
    return out


def _markdown(report: Report, cut: set[tuple[str, str]]) -> str:
    out = [marker(report.stack), f"### `nina diff` — stack `{report.stack}`", "", f"`{report.base}` → `{report.head}`: {_summary(report)}", ""]
    if not report.resources:
        return "\n".join(out + ["No changes."]) + "\n"
    if report.danger:
        out += ["#### ⚠️ Danger", ""]
        alike: dict[tuple[str, str, str], list[str]] = {}
        for d in report.danger:
            alike.setdefault((d["change"], d["urn"].split("::")[-2].split("$")[-1], d["why"]), []).append(d["urn"].split("::")[-1])
        for (change, type_, why), names in alike.items():
            shown = ", ".join(f"`{n}`" for n in names) if len(names) <= GROUP else ", ".join(f"`{n}`" for n in names[:3]) + f" and {len(names) - 3} more"
            out.append(f"- **{change}** {shown} ({type_}): {why}")
        out.append("")
    regs = [f"{bucket}: {', '.join(f'`{n}`' for n in sorted(names))}" for bucket, names in report.registrations.items() if names]
    if regs:
        out += ["#### SuperNode registrations", "", *[f"- {r}" for r in regs], ""]
    if report.certificates:
        out += ["#### Certificates re-issued", "", *[f"- `{c}`" for c in sorted(report.certificates)], ""]
    out += ["#### Resources", "", "| change | type | name | why |", "|---|---|---|---|"]
    # Rows alike but for the name (every VM replaced for the same input) become one row when there are many.
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in report.resources:
        why = "; ".join(f"`{p}`: {_generic(w, r['name'])}" for p, w in r.get("replaced_because", {}).items()) or ", ".join(f"`{p}`" for p in r.get("properties", []))
        groups.setdefault((r["change"], r["type"], why), []).append(r["name"])
    for (change, type_, why), names in groups.items():
        shown = ", ".join(f"`{n}`" for n in names) if len(names) <= GROUP else ", ".join(f"`{n}`" for n in names[:3]) + f" and {len(names) - 3} more"
        out.append(f"| {change} | `{type_}` | {shown} | {why} |")
    out.append("")
    first: dict[tuple[str, tuple[str, ...]], str] = {}
    for h in report.hosts:
        state = " — **VM replaced**" if h.replaced else " — **VM deleted**" if h.deleted else ""
        out += [f"#### Host `{h.name}` ({', '.join(h.roles) or 'gone'}){state}", ""]
        if h.user_data:
            out += [f"User-data {_size(h.user_data_size[0])} → {_size(h.user_data_size[1])} (budget {_size(fl.USER_DATA_BUDGET)}):", ""]
            out += _markdown_files(h.name, h.user_data, cut, first)
        if h.delivery:
            out += ["Delivery" + (f" — then {', '.join(f'`{u}`' for u in h.restarts)}" if h.restarts else "") + ":", ""]
            out += _markdown_files(h.name, h.delivery, cut, first)
    return "\n".join(out) + "\n"


def _markdown_files(host: str, changes: list[fl.FileChange], cut: set[tuple[str, str]], first: dict[tuple[str, tuple[str, ...]], str]) -> list[str]:
    out = []
    for f in changes:
        label = f"<code>{html.escape(f.path)}</code> {f.status}" + (" (secret: content not shown)" if f.secret else "") + (f" ({f.note})" if f.note else "")
        sig = (f.path, tuple(f.diff))
        if not f.diff:
            out.append(f"- {label}")
        elif sig in first:
            out.append(f"- {label}: the same change as on `{first[sig]}`")
        elif (host, f.path) in cut:
            first[sig] = host
            out.append(f"- {label}: {len(f.diff)} diff lines not shown here (size limit): run `nina diff` locally")
        else:
            first[sig] = host
            body = "\n".join(f.diff).replace("```", "`\u200b``")
            out += [f"<details><summary>{label}</summary>", "", "```diff", body, "```", "</details>"]
    return out + [""]
