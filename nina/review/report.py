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
MARKER = "<!-- nina-diff -->"  # the workflow finds its own comment by this line, to update it
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


def _dangers(changes: list[ch.Change], created_groups: set[str], roles: dict[str, list[str]]) -> list[dict[str, str]]:
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
            why = "a VM is " + ("replaced" if c.kind == ch.REPLACE else "deleted") + ": its services stop while it rebuilds"
            if "superlink" in roles.get(res.name, []):
                why += "; it is a SuperLink (runs in progress fail; registrations stay on its state volume)"
            out.append({"urn": c.urn, "change": c.kind, "why": why})
        if res.type == "openstack:networking/secGroupRule:SecGroupRule" and c.kind in (ch.CREATE, ch.REPLACE, ch.UPDATE):
            if res.inputs.get("direction") == "ingress" and res.inputs.get("remoteIpPrefix") in INTERNET:
                out.append({"urn": c.urn, "change": c.kind, "why": f"opens to the internet: {_rule(res.inputs)}"})
            elif str(res.inputs.get("securityGroupId", "")) not in created_groups:
                out.append({"urn": c.urn, "change": c.kind, "why": f"widens an existing security group: {_rule(res.inputs)}"})
    return out


def build(stack: str, base_label: str, head_label: str, base: dict[str, Any], head: dict[str, Any], project: str) -> Report:
    changes = ch.compare(base, head, project)
    roles = {n: list(h.get("roles", [])) for doc in (base, head) for n, h in (doc.get("outputs", {}).get("hosts") or {}).items()}
    # Rules of a group created by this very change widen nothing that existed; the offline id of a group names it.
    new_groups = tuple(f"secgroup-{c.resource.name}-" for c in changes if c.kind == ch.CREATE and c.resource.type == "openstack:networking/secGroup:SecGroup")
    created_groups = {gid for c in changes if (gid := str(c.resource.inputs.get("securityGroupId", ""))) and gid.startswith(new_groups or ("\0",))}
    report = Report(stack, base_label, head_label, danger=_dangers(changes, created_groups, roles))
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
                h.replaced = c.kind in (ch.REPLACE, ch.DELETE)
                h.replace_causes = c.causes
                if before.get("userData") != after.get("userData"):
                    h.user_data, *sizes = fl.user_data_changes(before.get("userData"), after.get("userData"))
                    h.user_data_size = (sizes[0], sizes[1])
            else:
                h.delivery = fl.compare_files(fl.delivery_files(before.get("stdin")), fl.delivery_files(after.get("stdin")))
                h.restarts = fl.restarts(h.delivery)
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
        out += ["", f"HOST {h.name} ({', '.join(h.roles)})" + (" REPLACED" if h.replaced else "")]
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
        out.append(f"    {f.status:8} {f.path}" + (" (secret: content not shown)" if f.secret else ""))
        out += [f"      {line}" for line in f.diff]
    return out


def as_markdown(report: Report, limit: int = COMMENT_LIMIT - 1_000) -> str:
    """The PR comment: everything when it fits, otherwise the diffs of files are cut (largest first) until it does,
    with a line saying how to see them (`nina diff` locally)."""
    cut: set[tuple[str, str]] = set()
    while True:
        text = _markdown(report, cut)
        if len(text) <= limit:
            return text
        candidates = sorted(((len("\n".join(f.diff)), h.name, f.path) for h in report.hosts for f in h.user_data + h.delivery
                             if f.diff and (h.name, f.path) not in cut), reverse=True)
        if not candidates:
            return text[: limit - 200] + f"\n\n…(cut at {limit} characters: run `nina diff --stack {report.stack}` locally)\n"
        cut.add((candidates[0][1], candidates[0][2]))


def _markdown(report: Report, cut: set[tuple[str, str]]) -> str:
    out = [MARKER, f"### `nina diff` — stack `{report.stack}`", "", f"`{report.base}` → `{report.head}`: {_summary(report)}", ""]
    if not report.resources:
        return "\n".join(out + ["No changes."]) + "\n"
    if report.danger:
        out += ["#### ⚠️ Danger", ""]
        out += [f"- **{d['change']}** `{d['urn'].split('::')[-1]}` ({d['urn'].split('::')[-2].split('$')[-1]}): {d['why']}" for d in report.danger]
        out.append("")
    out += ["#### Resources", "", "| change | type | name | why |", "|---|---|---|---|"]
    for r in report.resources:
        why = "; ".join(f"`{p}`: {w}" for p, w in r.get("replaced_because", {}).items()) or ", ".join(f"`{p}`" for p in r.get("properties", []))
        out.append(f"| {r['change']} | `{r['type']}` | `{r['name']}` | {why} |")
    out.append("")
    for h in report.hosts:
        title = f"#### Host `{h.name}` ({', '.join(h.roles) or 'gone'})" + (" — **VM replaced**" if h.replaced else "")
        out += [title, ""]
        if h.user_data:
            out += [f"User-data {_size(h.user_data_size[0])} → {_size(h.user_data_size[1])} (budget {_size(fl.USER_DATA_BUDGET)}):", ""]
            out += _markdown_files(h.name, h.user_data, cut)
        if h.delivery:
            out += ["Delivery" + (f" — then {', '.join(f'`{u}`' for u in h.restarts)}" if h.restarts else "") + ":", ""]
            out += _markdown_files(h.name, h.delivery, cut)
    regs = [f"{bucket}: {', '.join(f'`{n}`' for n in sorted(names))}" for bucket, names in report.registrations.items() if names]
    if regs:
        out += ["#### SuperNode registrations", "", *[f"- {r}" for r in regs], ""]
    if report.certificates:
        out += ["#### Certificates re-issued", "", *[f"- `{c}`" for c in sorted(report.certificates)], ""]
    return "\n".join(out) + "\n"


def _markdown_files(host: str, changes: list[fl.FileChange], cut: set[tuple[str, str]]) -> list[str]:
    out = []
    for f in changes:
        label = f"<code>{html.escape(f.path)}</code> {f.status}" + (" (secret: content not shown)" if f.secret else "")
        if not f.diff:
            out.append(f"- {label}")
        elif (host, f.path) in cut:
            out.append(f"- {label}: {len(f.diff)} diff lines not shown here (size limit): run `nina diff` locally")
        else:
            body = "\n".join(f.diff).replace("```", "`\u200b``")
            out += [f"<details><summary>{label}</summary>", "", "```diff", body, "```", "</details>"]
    return out + [""]
