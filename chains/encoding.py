"""Canonical encoding: the bytes that get hashed and signed.

This is a wire contract, so it is written down exactly. Every hashed or signed object is a
JSON value (RFC 8259) encoded as:

* objects with keys sorted by code point, no insignificant whitespace (``,`` and ``:``
  separators only), UTF-8;
* integers in decimal (signed 64-bit range), booleans, ``null``; no floats anywhere;
* byte strings as lowercase hex strings (hashes, keys, signatures, preimages);
* text limited to printable ASCII (0x20..0x7e), so no escaping question ever arises.

In Python, ``json.dumps(v, sort_keys=True, separators=(",", ":")).encode()`` produces the
same bytes; we use orjson only because it is an order of magnitude faster (a test checks
that both agree).

Signed bytes are domain separated, so a signature made for one purpose never verifies for
another::

    sign_bytes(domain, v) = b"interlock/v1/" ‖ domain ‖ b"\\x00" ‖ canonical(v)

Domains in use: ``tx`` (a transaction), ``vote`` (a validator's precommit on a header).
Both signed objects carry the ``chain_id``, so nothing signed for one chain verifies on
another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from chains.errors import EncodingError

__all__ = [
    "MAX_INT",
    "MIN_INT",
    "JSONValue",
    "canonical",
    "check_value",
    "from_hex",
    "sign_bytes",
]

JSONValue = Any
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_STRING = 4096
MAX_DEPTH = 8
DOMAIN_PREFIX = b"interlock/v1/"

_SORT = orjson.OPT_SORT_KEYS


def canonical(value: JSONValue) -> bytes:
    """Canonical bytes of a JSON value (see module docstring)."""
    try:
        return orjson.dumps(value, option=_SORT)
    except TypeError as exc:  # orjson raises TypeError for big ints and unknown types
        raise EncodingError("value", str(exc)) from None


def sign_bytes(domain: str, value: JSONValue) -> bytes:
    return DOMAIN_PREFIX + domain.encode("ascii") + b"\x00" + canonical(value)


def _is_printable_ascii(s: str) -> bool:
    return s.isascii() and s.isprintable()


def check_value(value: JSONValue, what: str = "value", _depth: int = 0) -> None:
    """Validate that an untrusted JSON value fits the canonical encoding; changes nothing.

    Raises :class:`EncodingError` naming the first offending place.
    """
    if _depth > MAX_DEPTH:
        raise EncodingError(what, f"nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise EncodingError(what, "integer outside the signed 64-bit range")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise EncodingError(what, f"string longer than {MAX_STRING}")
        if not _is_printable_ascii(value):
            raise EncodingError(what, "string is not printable ASCII")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_value(item, f"{what}[{i}]", _depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not _is_printable_ascii(key) or len(key) > 128:
                raise EncodingError(what, f"bad object key {key!r:.40}")
            check_value(item, f"{what}.{key}", _depth + 1)
        return
    raise EncodingError(what, f"unsupported type {type(value).__name__}")


def from_hex(value: object, what: str, size: int | None = None) -> bytes:
    """Decode a lowercase hex string of an exact byte ``size`` (untrusted input)."""
    if not isinstance(value, str):
        raise EncodingError(what, "expected a hex string")
    if size is not None and len(value) != 2 * size:
        raise EncodingError(what, f"expected {size} bytes ({2 * size} hex digits)")
    if value != value.lower():
        raise EncodingError(what, "hex must be lowercase")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise EncodingError(what, "not hex") from None
    if 2 * len(raw) != len(value):  # bytes.fromhex skips whitespace: "ab cd" is not hex
        raise EncodingError(what, "not hex")
    return raw
