"""Reading raw `nina:` values: a reader that records one problem per bad key (with its key path) instead of stopping
at the first, the patterns identifiers must match, and the error that carries every problem at once.

Every value of a stack file ends up in files that shells, systemd, nginx, OpenVPN or TOML parse. So an identifier
(a name, a user, a domain, an address) must match its pattern in full (`fullmatch`: `$` would let a final newline
through), and free text (a display name, a flavor) is one line of printable characters, never placed where a shell
parses it (cloudinit/quoting.py quotes what templates do place).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from nina.config.model import IPNet

NAMESPACE = "nina"
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]|[a-z]")
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}|[a-z0-9-]+\.internal")
# An address a shell, a unit file and YAML all take as it is: no quotes, spaces, `$`, backticks or `;`.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}")
LINUX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# One line of printable text, no control characters (tabs and newlines included).
TEXT = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # no C0/C1 controls, no Unicode line separators
TEXT_MAX = 200


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Reader:
    """Walks raw config values, recording one problem per bad key instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        # A report is one line per problem, whatever a hostile key or value holds.
        self.problems.append(f"{_printable(path)}: {_printable(message)}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.problem(f"{path}.{str(key)[:40]}", f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def required(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data or data[key] in (None, ""):
            self.problem(f"{path}.{key}", "is required")
            return None
        return data[key]

    def string(self, data: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default) if default is not None else self.required(data, key, path)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", f"must be a string, got {_show(value)}")
            return ""
        return value

    def integer(self, data: dict[str, Any], key: str, path: str, default: int | None = None, minimum: int = 0) -> int:
        value = data.get(key, default) if default is not None else self.required(data, key, path)
        if value is None:
            return minimum
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", f"must be an integer, got {_show(value)}")
            return minimum
        if value < minimum:
            self.problem(f"{path}.{key}", f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, data: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"must be true or false, got {_show(value)}")
            return default
        return value

    def choice(self, data: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(data, key, path, default)
        if value and value not in choices:
            self.problem(f"{path}.{key}", f"must be one of {', '.join(choices)}, got {_show(value)}")
        return value

    def strings(self, data: dict[str, Any], key: str, path: str, required: bool = True) -> list[str]:
        value = data.get(key)
        if value in (None, []):
            if required:
                self.problem(f"{path}.{key}", "is required (a non-empty list)")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{path}.{key}", "must be a list of strings")
            return []
        return value

    def name(self, value: str, path: str) -> None:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            self.problem(path, f"{_show(value)} is not a valid name (lowercase letters, digits and '-', max 32)")

    def matches(self, value: str, pattern: re.Pattern[str], path: str, what: str) -> bool:
        """The whole value matches the pattern; otherwise one problem saying what the value must be."""
        if pattern.fullmatch(value):
            return True
        self.problem(path, f"{_show(value)} is not {what}")
        return False

    def text(self, data: dict[str, Any], key: str, path: str, default: str | None = None, maximum: int = TEXT_MAX) -> str:
        """Free text: one line of printable characters, at most `maximum` of them."""
        value = self.string(data, key, path, default)
        if value and (len(value) > maximum or not TEXT.fullmatch(value)):
            self.problem(f"{path}.{key}", f"must be one line of printable text, at most {maximum} characters")
            return ""
        return value

    def network(self, value: Any, path: str) -> IPNet | None:
        try:
            return ipaddress.IPv4Network(value, strict=True)
        except (ValueError, TypeError):
            self.problem(path, f"{_show(value)} is not a valid IPv4 CIDR")
            return None

    def each(self, data: dict[str, Any], path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Named sub-mappings (`hosts: {hub: {...}}`), names checked."""
        for name, body in data.items():
            self.name(name, f"{path}.{name}")
            yield name, f"{path}.{name}", body

    def ssh_public_key(self, key: str, path: str, curves: Mapping[str, int] | None = None) -> None:
        """One OpenSSH public key on one line (an authorized_keys line: a second line would be a second key, with
        options); with `curves`, ECDSA on one of those curves only."""
        if not SSH_PUBLIC_KEY.fullmatch(key.strip()):
            self.problem(path, "is not a valid OpenSSH public key: one line of type, base64 key and an optional comment of letters, digits and @._+:=-")
            return
        try:
            loaded = load_ssh_public_key(key.strip().encode())
        except (ValueError, TypeError, Exception) as exc:  # cryptography raises several types for garbage
            self.problem(path, f"is not a valid OpenSSH public key ({exc.__class__.__name__})")
            return
        if curves is not None:
            kind = key.split()[0]
            if kind not in curves or not isinstance(loaded, ec.EllipticCurvePublicKey):
                self.problem(path, f"must be an ECDSA key on a NIST curve ({', '.join(curves)}), got {kind!r}")


SSH_PUBLIC_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._+:=-]{1,100})?")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def _show(value: Any) -> str:
    """A bad value in a message: repr (so a newline shows as \\n), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


show = _show  # for messages written outside the Reader


def decode(raw: Mapping[str, Any], key: str) -> Any:
    """Pulumi passes structured config as JSON strings; tests and the preview may pass objects."""
    value = raw.get(f"{NAMESPACE}:{key}")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
