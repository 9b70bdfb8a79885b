"""What every `nina` command prints for a missing or invalid stack file."""

from __future__ import annotations

import sys

from nina.config import ConfigError


def report_stack_error(stack: str, exc: Exception) -> int:
    """Print the problem; return the exit code: 2 for an invalid stack file (one line per problem), 3 otherwise."""
    if isinstance(exc, ConfigError):
        print(f"error: Pulumi.{stack}.yaml is invalid; no resource was registered:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(f"error: {exc}", file=sys.stderr)
    return 3
