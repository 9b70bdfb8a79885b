"""The log patterns of manual §5.3 (nina/catalog/logs.py): the delivered nina-log-patterns runs the real mtail on the
delivered program, fed by a stand-in journalctl that prints every row's sample journal lines, with every row's sample
file lines appended to log files; the counters it publishes are exactly the table's matches, per unit and pattern."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import Preview, delivered
from test_cloudinit import Target, shellcheck, verify_units

from nina.catalog import alerts, layout, logs
from nina.catalog.roles import BASE_UNITS

MTAIL = shutil.which("mtail")
JOURNAL_LINE = re.compile(r"^\S+ \S+ \S+ \S+ \S+ ([^\[:\s]+)(?:\[\d+\])?: (.*)$")


def expected() -> Counter[tuple[str, str]]:
    """(unit, pattern) -> lines, from the table alone: each row's `matches` count once where they are fed."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in logs.PATTERNS:
        for line in row.matches:
            if row.file:
                counts[row.file_unit, row.name] += 1
                continue
            match = JOURNAL_LINE.match(line)
            assert match, line
            unit = re.match(row.regex, match.group(2)).group("subject") if row.unit_in_message else match.group(1)  # type: ignore[union-attr]
            counts[unit, row.name] += 1
    return counts


def test_every_pattern_has_samples_and_every_kind_an_alert() -> None:
    for row in logs.PATTERNS:
        assert row.matches and row.kind in (logs.OOM, logs.ERROR), row.name
        assert bool(row.units) != bool(row.file), row.name
        assert "/" not in row.regex, row.name  # mtail's delimiter
    exprs = {r.name: r.expr for r in alerts.RULES}
    for name, kind in (("OutOfMemoryInLogs", logs.OOM), ("ServiceErrorsInLogs", logs.ERROR)):
        assert f'pattern=~"{"|".join(logs.names(kind))}"' in exprs[name]
    assert layout.LOG_PATTERNS_UNIT in BASE_UNITS  # its Down/Restarting alerts come from the unit table


def test_the_log_pattern_tooling_is_delivered_to_every_host_and_passes_the_judges(materialized: dict[str, Preview]) -> None:
    for preview in materialized.values():
        for host in preview.cfg.hosts.values():
            files = delivered(preview, host.name)
            assert {f"{layout.LOG_PATTERNS_DIR}/nina.mtail", layout.LOG_PATTERNS_COMMAND} <= set(files), host.name
            assert "mtail" in preview.hosts[host.name].cloud_config["packages"]
    files = delivered(materialized["test"], "hub")
    assert shellcheck({layout.LOG_PATTERNS_COMMAND: files[layout.LOG_PATTERNS_COMMAND]["content"]}) == ""
    units = {Path(p).name: f["content"] for p, f in files.items() if p.startswith("/etc/systemd/system/nina-log-patterns")}
    assert set(units) == {layout.LOG_PATTERNS_UNIT, layout.LOG_PATTERNS_PUBLISH_UNIT, "nina-log-patterns-publish.timer"}
    assert verify_units(Target(units=units, drop_ins={}, expected_units=set(), written=set(files))) == []
    assert "PrivateNetwork=yes\n" in units[layout.LOG_PATTERNS_UNIT] and "User=mtail\n" in units[layout.LOG_PATTERNS_UNIT]


@pytest.mark.skipif(MTAIL is None, reason="mtail missing: scripts/install-system-deps.sh installs it")
def test_real_mtail_counts_exactly_the_tables_matches(materialized: dict[str, Preview], tmp_path: Path) -> None:
    files = delivered(materialized["test"], "hub")
    program = files[f"{layout.LOG_PATTERNS_DIR}/nina.mtail"]["content"]
    # the file rows' logs live under tmp_path here
    program = program.replace("/^" + logs.file_regex("/var/log/"), "/^" + logs.file_regex(f"{tmp_path}/var/log/"))
    (tmp_path / "progs").mkdir()
    (tmp_path / "progs" / "nina.mtail").write_text(program)
    script = tmp_path / "nina-log-patterns"
    script.write_text(files[layout.LOG_PATTERNS_COMMAND]["content"])
    journal_lines = [line for row in logs.PATTERNS if row.units for line in (*row.matches, *row.ignores)]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "journal.txt").write_text("".join(f"{line}\n" for line in journal_lines))
    # journalctl as the service runs it: --follow, with-unit lines, then it keeps following
    (bin_dir / "journalctl").write_text(f'#!/bin/sh\ncase "$*" in *--output=with-unit*--utc*) ;; *) exit 2 ;; esac\ncat {tmp_path}/journal.txt\nexec sleep 300\n')
    (bin_dir / "journalctl").chmod(0o755)
    log_files = {row.file: tmp_path / row.file.lstrip("/").replace("*", "site1") for row in logs.PATTERNS if row.file}
    for path in log_files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (tmp_path / "run").mkdir()
    (tmp_path / "textfile").mkdir()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RUNTIME_DIRECTORY": str(tmp_path / "run"),
        "NINA_TEXTFILE_DIR": str(tmp_path / "textfile"),
        "NINA_LOG_PROGRAMS": str(tmp_path / "progs"),
        "NINA_LOG_FILES": ",".join(f"{tmp_path}{glob}" for glob in log_files),
    }
    service = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    published = tmp_path / "textfile" / "nina_log_patterns.prom"
    want = expected()
    counts: Counter[tuple[str, str]] = Counter()
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "mtail.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # mtail has opened the (empty) log files: what is appended now is new
        for row in logs.PATTERNS:
            if row.file:
                with log_files[row.file].open("a") as f:
                    f.write("".join(f"{line}\n" for line in (*row.matches, *row.ignores)))
        while time.monotonic() < deadline:
            done = subprocess.run(["bash", str(script), "--publish"], env=env, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode == 0:
                text = published.read_text()
                counts = Counter({(u, p): int(float(v)) for p, u, v in re.findall(r'^\w+\{pattern="([^"]+)",unit="([^"]+)"\} (\S+)$', text, re.M)})
                if counts == want:
                    break
            time.sleep(0.5)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        output = service.communicate(timeout=30)[0]
    assert counts == want, output
    check = subprocess.run(["promtool", "check", "metrics"], input=published.read_text(), capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert not [p for p in (tmp_path / "textfile").iterdir() if p.name.startswith(".")]
