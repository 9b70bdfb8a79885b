"""One quoting helper per syntax a stack value can reach: shell, systemd unit files, TOML and nginx.

The config model refuses any identifier that does not match its pattern in full, so most stack values are safe
tokens before they reach a template. Where a value could still hold a character a syntax gives meaning to (a path
or a word of node_config, an e-mail address in a unit, anything sourced by a script), the template writes it
through one of these, as Jinja filters (`| sh`, `| unit`, `| toml`, `| nginx`; cloudinit/render.py). A value that
cannot be written safely raises instead of being written.
"""

from __future__ import annotations

import re
import shlex

_UNIT_PLAIN = re.compile(r"[A-Za-z0-9@%+=:,./_-]+")
_NGINX_TOKEN = re.compile(r"[A-Za-z0-9.:/_*-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Unquotable(ValueError):
    """A value no quoting makes safe in this syntax (a newline in a unit file, a `$` in nginx)."""


def shell(value: object) -> str:
    """A single shell word (POSIX sh and bash): the value itself, with no expansion."""
    return shlex.quote(str(value))


def unit(value: object) -> str:
    """One argument of an Exec*= line of a systemd unit: quoted when needed, `%` and `$` taken literally."""
    text = str(value)
    if "\n" in text or _CONTROL.search(text):
        raise Unquotable(f"a systemd unit line cannot hold {text[:40]!r}")
    text = text.replace("%", "%%")
    if _UNIT_PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def toml(value: object) -> str:
    """A TOML basic string."""
    out = []
    for char in str(value):
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif not _CONTROL.fullmatch(char):
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04X}")
    return '"' + "".join(out) + '"'


def nginx(value: object) -> str:
    """A token in an nginx configuration (a name, an address, a CIDR, a path). nginx expands `$` even inside quotes,
    so nothing else is quoted: anything else is refused."""
    text = str(value)
    if not _NGINX_TOKEN.fullmatch(text):
        raise Unquotable(f"not a plain nginx token: {text[:40]!r}")
    return text
