#!/usr/bin/env python3
"""Compile every runtime (runtimes/<name>.in, <name>.cuda.in) to its lock in runtimes/locks/ with uv: every
package pinned with its sha256 hashes, flwr at the platform's pin, for CPython 3.12 on Ubuntu 24.04 x86_64.

Run it after editing a runtime, adding one, or changing the flwr pin (the tests and `nina preview` refuse a lock
whose inputs changed), and to take security fixes: it resolves the newest releases the inputs allow. Review the
diff of runtimes/locks/ like code. Usage: .venv/bin/python scripts/lock-runtimes.py [NAME...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nina.catalog import runtimes  # noqa: E402


def uv() -> str:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else "uv"


def compile_lock(lk: runtimes.Lock) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{lk.runtime}.in"
        source.write_text(lk.requirements())
        body = subprocess.run(
            [
                uv(), "pip", "compile", str(source), "--quiet", "--no-header", "--generate-hashes",
                "--python-version", runtimes.PYTHON, "--python-platform", runtimes.UV_PLATFORM, "--only-binary", ":all:",
                "--index-url", "https://pypi.org/simple", "--no-config",
            ],
            check=True, capture_output=True, text=True, env={**os.environ, "UV_NO_CACHE": "0"},
        ).stdout
    header = (
        f"# nina-fl runtime lock: {lk.runtime} ({lk.variant}) for CPython {runtimes.PYTHON}, {runtimes.UV_PLATFORM}\n"
        f"# inputs sha256: {lk.inputs_digest()}\n"
        f"# from runtimes/{lk.source.name} and flwr's pin; regenerate with {runtimes.LOCK_COMMAND}, never by hand\n"
    )
    lk.path.parent.mkdir(exist_ok=True)
    lk.path.write_text(header + body.replace(str(source), f"runtimes/{lk.source.name}"))
    print(f"{lk.path.relative_to(ROOT)}: {sum(1 for line in body.splitlines() if '==' in line)} packages")


def main(argv: list[str]) -> int:
    wanted = set(argv) or set(runtimes.names())
    unknown = wanted - set(runtimes.names())
    if unknown:
        print(f"lock-runtimes: no runtime {', '.join(sorted(unknown))} in runtimes/", file=sys.stderr)
        return 2
    for lk in runtimes.all_locks():
        if lk.runtime in wanted:
            compile_lock(lk)
    names = {lk.path.name for lk in runtimes.all_locks()}
    for orphan in sorted(p for p in runtimes.LOCKS_DIR.glob("*.txt") if p.name not in names):
        orphan.unlink()
        print(f"{orphan.relative_to(ROOT)}: removed (its runtime is gone)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
