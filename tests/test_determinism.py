"""Same stack file in, same bytes out: a changed user-data replaces a VM, and a noisy preview hides real diffs.

A second preview of every stack runs in another process (so another hash seed for sets and dicts), from another
working directory, and must match the session's first run byte for byte: the JSON plan and every host's files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import STACKS, Preview, run_previews


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Preview]:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    return run_previews(tmp_path_factory.mktemp("second"), cwd=elsewhere, env={"PYTHONHASHSEED": "12345"})


def host_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "hosts").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stack", STACKS)
def test_json_plan_is_byte_identical(stack: str, previews: dict[str, Preview], second: dict[str, Preview]) -> None:
    assert previews[stack].stdout == second[stack].stdout


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_files_are_byte_identical(stack: str, previews: dict[str, Preview], second: dict[str, Preview]) -> None:
    first_files, second_files = host_files(previews[stack].out), host_files(second[stack].out)
    assert sorted(first_files) == sorted(second_files)
    assert len(first_files) == 2 * len(previews[stack].cfg.hosts)  # user-data + cloud-config.yaml per host
    for name, content in first_files.items():
        assert second_files[name] == content, name


@pytest.mark.parametrize("stack", STACKS)
def test_plan_names_no_local_path(stack: str, previews: dict[str, Preview]) -> None:
    """Where the checkout or the --out directory lives must not leak into what would be deployed."""
    assert str(previews[stack].out) not in previews[stack].stdout
    assert str(Path(__file__).resolve().parents[1]) not in previews[stack].stdout
