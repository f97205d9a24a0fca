"""What every TOML config file of the project shares: field types, reading, and errors.

A chain file, a devnet file and the relayer daemon's file are each validated by their own
pydantic models (at the edge, converted to core types at once); the field grammar (chain
ids, hosts, bus URLs) and the way an error is told (``FILE: key.path: what was expected,
got VALUE``, one line, a password never shown) live here once.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError

from chains.encoding import MAX_INT
from chains.errors import ConfigError
from chains.module import CHAIN_ID_PATTERN, is_denom

__all__ = [
    "AccountName",
    "Address",
    "Amount",
    "BusUrl",
    "ChainId",
    "Denom",
    "HeaderTimeout",
    "Host",
    "Interval",
    "KeySeed",
    "MaxConnections",
    "Seed",
    "config_error",
    "describe_errors",
    "read_toml",
]


def _matching(pattern: str, what: str) -> AfterValidator:
    rx = re.compile(pattern)

    def check(v: str) -> str:
        if not rx.fullmatch(v):
            raise ValueError(f"expected {what}")
        return v

    return AfterValidator(check)


def _denom(v: str) -> str:
    if not is_denom(v):
        raise ValueError("expected a denom: a letter then 1..127 of [A-Za-z0-9/:._-]")
    return v


def _host(v: str) -> str:
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", v):
        raise ValueError("expected an IP address or a host name")
    return v


def _bus_url(v: str) -> str:
    from chains.service.bus import BadBusUrl, parse_bus_url  # the bus owns its URL grammar

    try:
        parse_bus_url(v)
    except BadBusUrl as exc:
        raise ValueError(f"expected a bus URL ({exc.reason})") from None
    return v


ChainId = Annotated[
    str, _matching(CHAIN_ID_PATTERN, "a chain id: a letter then up to 63 of [A-Za-z0-9._-]")
]
AccountName = Annotated[
    str, _matching(r"[a-z][a-z0-9_-]{0,31}", "an account name: a-z then up to 31 of [a-z0-9_-]")
]
Address = Annotated[str, _matching(r"[0-9a-f]{40}", "an address: 40 lowercase hex digits")]
KeySeed = Annotated[
    str, _matching(r"[0-9a-f]{64}", "a 32-byte ed25519 seed as 64 lowercase hex digits")
]
Denom = Annotated[str, AfterValidator(_denom)]
Host = Annotated[str, AfterValidator(_host)]
BusUrl = Annotated[str, AfterValidator(_bus_url)]
Seed = Annotated[str, Field(min_length=1, max_length=128)]
Amount = Annotated[int, Field(ge=1, le=MAX_INT, strict=True)]
Interval = Annotated[float, Field(gt=0, le=3600)]
HeaderTimeout = Annotated[float, Field(gt=0, le=300)]
"""Seconds an HTTP server gives a request's line and headers (``HardenedRunner``)."""
MaxConnections = Annotated[int, Field(ge=8, le=1_000_000, strict=True)]
"""Open connections an HTTP server takes at most (lowered to the descriptor limit)."""


# --- errors ---------------------------------------------------------------------------


def _loc(parts: Sequence[int | str]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(err: Mapping[str, Any]) -> str:
    from chains.service.bus import redact_url

    kind = err["type"]
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = re.sub(r"^(Input|String|List|Dictionary|Value) should (be|have) ", "expected ", msg)
    msg = msg.replace("expected greater", "expected a number greater").replace(
        "expected less", "expected a number less"
    )
    shown = err.get("input")
    if isinstance(shown, str) and "://" in shown:
        shown = redact_url(shown)  # a bus URL may carry a password
    return f"{msg}, got {_shown(shown)}"


def config_error(source: Path | str, exc: ValidationError) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(f"{source}: {_loc(first['loc'])}: {_describe(first)}{more}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8") from None


def describe_errors(exc: ValidationError) -> list[str]:
    """Every error of a validation, each as ``key.path: what was expected, got VALUE``."""
    return [f"{_loc(e['loc'])}: {_describe(e)}" for e in exc.errors()]
