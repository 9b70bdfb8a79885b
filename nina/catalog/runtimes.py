"""The ML runtimes federations name (runtimes/ in the repository): which exist, where their locks are, and the
platform every lock is for. README "Runtimes".

A runtime is `runtimes/<name>.in` (what researchers asked for) and its lock `runtimes/locks/<name>.txt`, compiled by
scripts/lock-runtimes.py with every package pinned and hashed and flwr at the platform's pin. A `<name>.cuda.in`
gives the runtime a lock of its own for GPU hosts where the CUDA build differs. Each lock records the digest of
its inputs, so an edited `.in` or a new flwr pin without a re-lock is caught before anything is deployed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from nina.catalog import versions

RUNTIMES_DIR = Path(__file__).resolve().parents[2] / "runtimes"
LOCKS_DIR = RUNTIMES_DIR / "locks"
DEFAULT = "numpy"
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
LOCK_COMMAND = "scripts/lock-runtimes.py"

# What hosts run: Ubuntu 24.04's CPython and glibc on x86_64 (and the bundle's ubuntu:noble and CUDA images).
PYTHON = "3.12"
GLIBC = (2, 39)
ARCH = "x86_64"
# pip's names for that platform: every manylinux tag glibc 2.39 accepts (pip does not widen --platform itself).
PIP_PLATFORMS = (
    *(f"manylinux_2_{minor}_{ARCH}" for minor in range(GLIBC[1], 16, -1)),
    f"manylinux2014_{ARCH}",
)
# uv's name for the same target.
UV_PLATFORM = f"{ARCH}-manylinux_{GLIBC[0]}_{GLIBC[1]}"
# The one way every environment installs a lock (hosts, notebook image, site bundle): the lock's pins and hashes
# only, wheels only (nothing compiles on a host), and pip's resolver checks the lock is complete.
PIP_INSTALL_OPTIONS = ("--require-hashes", "--only-binary", ":all:", "--no-input", "--disable-pip-version-check")



def pip_install_line(pip: str, lock_file: str) -> str:
    """The one install command of a lock, as every shell script and Dockerfile writes it (arguments already quoted
    for the shell by the caller, or fixed paths)."""
    return f"{pip} install {' '.join(PIP_INSTALL_OPTIONS)} -r {lock_file}"


_INPUTS = re.compile(r"^# inputs sha256: ([0-9a-f]{64})$", re.M)


@dataclass(frozen=True)
class Lock:
    runtime: str
    cuda: bool

    @property
    def variant(self) -> str:
        return "cuda" if self.cuda else "cpu"

    @property
    def source(self) -> Path:
        return RUNTIMES_DIR / f"{self.runtime}{'.cuda' if self.cuda else ''}.in"

    @property
    def path(self) -> Path:
        return LOCKS_DIR / f"{self.runtime}{'.cuda' if self.cuda else ''}.txt"

    def requirements(self) -> str:
        """What is compiled: the platform's flwr and the runtime's own packages."""
        return f"flwr=={versions.FLWR}\n" + self.source.read_text()

    def inputs_digest(self) -> str:
        return hashlib.sha256(f"{PYTHON} {UV_PLATFORM}\n{self.requirements()}".encode()).hexdigest()

    def text(self) -> str:
        return self.path.read_text()

    def recorded_digest(self) -> str | None:
        found = _INPUTS.search(self.text()) if self.path.exists() else None
        return found.group(1) if found else None

    def digest(self) -> str:
        """The lock's own sha256: names the environment built from it."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def names() -> tuple[str, ...]:
    return tuple(sorted(p.name[:-3] for p in RUNTIMES_DIR.glob("*.in") if not p.name.endswith(".cuda.in")))


def has_cuda_variant(runtime: str) -> bool:
    return (RUNTIMES_DIR / f"{runtime}.cuda.in").exists()


def lock(runtime: str, gpu: bool) -> Lock:
    """The lock a host installs: the CUDA variant on a GPU host where the runtime has one."""
    return Lock(runtime, gpu and has_cuda_variant(runtime))


def all_locks() -> tuple[Lock, ...]:
    return tuple(Lock(n, cuda) for n in names() for cuda in (False, True) if not cuda or has_cuda_variant(n))


def stale(lk: Lock) -> str | None:
    """Why a lock cannot be used, or None."""
    if not lk.path.exists():
        return f"{lk.path.relative_to(RUNTIMES_DIR.parent)} is missing: run {LOCK_COMMAND}"
    if lk.recorded_digest() != lk.inputs_digest():
        return (
            f"{lk.path.relative_to(RUNTIMES_DIR.parent)} is out of date with {lk.source.name} or the flwr pin "
            f"({versions.FLWR}): run {LOCK_COMMAND}"
        )
    return None
