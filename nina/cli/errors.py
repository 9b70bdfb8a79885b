"""What every `nina` command prints for a missing or invalid stack file."""

from __future__ import annotations

import sys

from nina.config import ConfigError
from nina.offline.stack_files import ProjectConfigError


def report_stack_error(stack: str, exc: Exception) -> int:
    """Print the problem; return the exit code: 2 for an invalid stack or project file (one line per problem), 3
    otherwise."""
    if isinstance(exc, ConfigError):
        where = "Pulumi.yaml" if isinstance(exc, ProjectConfigError) else f"Pulumi.{stack}.yaml"
        print(f"error: {where} is invalid; no resource was registered:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(f"error: {exc}", file=sys.stderr)
    return 3
