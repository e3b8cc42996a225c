"""Configuration from environment variables, validated at start-up.

A service declares its settings as a list of `Setting`s; `load()` reads them from the environment and returns a typed,
immutable configuration (a frozen dataclass whose fields carry each parser's type: int, float, bool, Path, list[str],
str; secrets hidden from its repr), or raises `ConfigError` whose message is one line naming the variable.
`exit_on_error()` turns that into the one-line message on stderr and exit status 2 that the services use at start-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    name: str  # environment variable
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    secret: bool = False  # never echoed in error messages
    attr: str | None = None  # attribute name on the result (default: lower-case name without the prefix)


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def number(minimum: float = 0.0) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def boolean(raw: str) -> bool:
    v = raw.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def csv_list(raw: str) -> list[str]:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    if not items:
        raise ValueError("must list at least one value")
    return items


def cidr_list(raw: str) -> list[str]:
    import ipaddress

    out = []
    for item in csv_list(raw):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"'{item}' is not an address or CIDR") from None
    return out


def existing_file(raw: str) -> Path:
    p = Path(raw.strip())
    if not p.is_file():
        raise ValueError(f"file {p} does not exist")
    return p


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        v = raw.strip()
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v

    return parse


def _type_of(s: Setting) -> Any:
    """The field type of a setting: its parser's return annotation (str for a plain string), optional without a
    default."""
    hint = Any if s.parse is not str else str
    with contextlib.suppress(NameError, TypeError):  # a parser without annotations (a builtin) keeps the fallback
        hint = typing.get_type_hints(s.parse).get("return", hint)
    return hint if s.required or s.default is not None else hint | None


@cache
def _config_class(prefix: str, names: tuple[tuple[str, Any, bool], ...]) -> type:
    """A frozen dataclass for one service's settings (cached: one class per service); its repr leaves secrets out."""
    name = "".join(p.capitalize() for p in prefix.lower().strip("_").split("_")) + "Config"
    shown = [attr for attr, _hint, secret in names if not secret]

    def __repr__(self) -> str:
        return f"{name}({', '.join(f'{a}={getattr(self, a)!r}' for a in shown)})"

    fields = [(attr, hint) for attr, hint, _secret in names]
    return dataclasses.make_dataclass(name, fields, frozen=True, repr=False, namespace={"__repr__": __repr__})


def load(settings: list[Setting], prefix: str, environ: Mapping[str, str] | None = None):
    env = os.environ if environ is None else environ
    values = {}
    names = []
    for s in settings:
        attr = s.attr or s.name.removeprefix(prefix).lower()
        names.append((attr, _type_of(s), s.secret))
        raw = env.get(s.name)
        if raw is None or raw.strip() == "":
            if s.required:
                raise ConfigError(f"{s.name} is required but not set")
            values[attr] = s.default
            continue
        try:
            values[attr] = s.parse(raw)
        except (ValueError, TypeError) as e:
            if s.secret:  # the parser's message may quote the value
                raise ConfigError(f"{s.name} is malformed") from None
            raise ConfigError(f"{s.name} is malformed ({raw!r}): {e}") from None
    return _config_class(prefix, tuple(names))(**values)


def exit_on_error(service: str, loader: Callable[[], Any]) -> Any:
    """Call `loader`; on ConfigError print one line and exit with status 2."""
    try:
        return loader()
    except ConfigError as e:
        print(f"{service}: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
