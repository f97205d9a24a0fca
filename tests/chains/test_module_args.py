"""Argument parsers treat args as hostile; the fast forms equal the plain definitions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.errors import InvalidArgument
from chains.module import arg_address, arg_amount, arg_bytes, arg_int, arg_str, is_denom

_DENOM_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:._-")


def _is_denom_spec(v: object) -> bool:
    return (
        isinstance(v, str)
        and 2 <= len(v) <= 128
        and v[0].isascii()
        and v[0].isalpha()
        and all(c in _DENOM_CHARS for c in v)
    )


def _is_address_spec(v: object) -> bool:
    return isinstance(v, str) and len(v) == 40 and all(c in "0123456789abcdef" for c in v)


TEXT = st.one_of(
    st.text(max_size=140),
    st.text("abcdefABCDEF0123456789/:._-\n é٣", max_size=140),
    st.text("0123456789abcdef", min_size=38, max_size=42),
    st.text("0123456789abcdefA\n", min_size=39, max_size=41),
)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_denom_and_address_checks_equal_their_definitions(v: str) -> None:
    assert is_denom(v) == _is_denom_spec(v)
    try:
        arg_address({"a": v}, "a")
        ok = True
    except InvalidArgument:
        ok = False
    assert ok == _is_address_spec(v)


@pytest.mark.parametrize(
    "v", ["ab" * 20 + "\n", "٣" * 40, "AB" * 20, None, 5, ["ab" * 20], "ab" * 21]
)
def test_arg_address_refuses(v: Any) -> None:
    with pytest.raises(InvalidArgument):
        arg_address({"to": v}, "to")


@pytest.mark.parametrize("v", ["usd\n", "u", "1usd", "é", "us d", "x" * 129, None, 3])
def test_denom_refuses(v: Any) -> None:
    assert not is_denom(v)


def test_other_parsers_refuse() -> None:
    with pytest.raises(InvalidArgument):
        arg_amount({"amount": 0})
    with pytest.raises(InvalidArgument):
        arg_amount({"amount": 2**63})
    with pytest.raises(InvalidArgument):
        arg_int({"n": False}, "n")
    with pytest.raises(InvalidArgument):
        arg_str({"s": ""}, "s")
    with pytest.raises(InvalidArgument):
        arg_bytes({"b": "AB" * 32}, "b", 32)
    assert arg_bytes({"b": "ab" * 32}, "b", 32) == bytes.fromhex("ab" * 32)
