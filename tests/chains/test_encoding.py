"""Canonical encoding: orjson bytes equal the documented stdlib definition, and
``check_value`` refuses everything outside the encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.encoding import (
    MAX_DEPTH,
    MAX_INT,
    MIN_INT,
    canonical,
    check_value,
    from_hex,
    sign_bytes,
)
from chains.errors import EncodingError

ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(MIN_INT, MAX_INT), ASCII)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ASCII, inner, max_size=4)),
    max_leaves=20,
)


def _stdlib(v: Any) -> bytes:
    return json.dumps(v, sort_keys=True, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_canonical_equals_the_documented_stdlib_definition(value: Any) -> None:
    check_value(value)
    assert canonical(value) == _stdlib(value)


def test_characters_that_need_escaping_agree() -> None:
    v = {'q"uote': 'back\\slash "quoted" /slash <tag> &amp;', "k": ["\\", '"']}
    check_value(v)
    assert canonical(v) == _stdlib(v)


def test_keys_sort_by_code_point() -> None:
    assert canonical({"b": 1, "a": 2, "B": 3, "_": 4}) == b'{"B":3,"_":4,"a":2,"b":1}'


def test_sign_bytes_are_domain_separated() -> None:
    v = {"chain_id": "c", "n": 1}
    assert sign_bytes("tx", v) == b"interlock/v1/tx\x00" + canonical(v)
    assert sign_bytes("tx", v) != sign_bytes("vote", v)


@pytest.mark.parametrize(
    "bad",
    [
        "caf\u00e9",  # non-ASCII
        "tab\there",  # control character
        "nul\x00",
        "line\nbreak",
        "\x7f",
        MAX_INT + 1,
        MIN_INT - 1,
        2**64,
        1.5,
        0.0,
        float("nan"),
        b"bytes",
        (1, 2),
        {1, 2},
        {1: "int key"},
        {("t",): 1},
        {"caf\u00e9": 1},
        {"k" * 129: 1},
        "x" * 4097,
        object(),
    ],
)
def test_check_value_refuses(bad: Any) -> None:
    with pytest.raises(EncodingError):
        check_value(bad)
    with pytest.raises(EncodingError):
        check_value({"nested": [bad]})


def test_check_value_refuses_deep_nesting() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    check_value(deep)  # exactly the limit
    with pytest.raises(EncodingError):
        check_value([deep])
    with pytest.raises(EncodingError):
        check_value({"a": {"b": [deep]}})


def test_check_value_accepts_the_edges() -> None:
    check_value([MAX_INT, MIN_INT, "", " ~", "x" * 4096, {"k" * 128: None}, True, False])


def test_canonical_refuses_unencodable_values() -> None:
    with pytest.raises(EncodingError):
        canonical({"x": object()})
    with pytest.raises(EncodingError):
        canonical({1: 2})
    with pytest.raises(EncodingError):
        canonical(2**64 + 1)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("AB" * 32, 32),
        ("ab" * 31, 32),
        ("zz" * 32, 32),
        (None, 32),
        (b"ab", None),
        ("abc", None),
        ("  " + "ab" * 31, 32),  # bytes.fromhex skips whitespace: 64 characters, 31 bytes
        ("ab cd", None),  # and would decode like "abcd"
        ("ab\ncd", None),
    ],
)
def test_from_hex_refuses(value: object, size: int | None) -> None:
    with pytest.raises(EncodingError):
        from_hex(value, "x", size)


def test_from_hex_round_trips() -> None:
    assert from_hex("00ff" * 16, "x", 32) == bytes.fromhex("00ff" * 16)
