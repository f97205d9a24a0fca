"""Every ``from_json`` treats its input as hostile: any mutation of a valid wire object
either decodes or raises ``EncodingError`` — never another exception."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.errors import EncodingError
from chains.lightclient import HeaderUpdate
from chains.types import Block, Commit, EventProof, Header, Receipt, Tx, ValidatorSet
from tests.chains.helpers import Driver, devnet, transfer

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=70),
    st.text("0123456789abcdefAB", min_size=62, max_size=66),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just([{}] * 300),
)


def _samples() -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    _a, b = (Driver(dc) for dc in devnet("chain-a", "chain-b"))
    b.produce()
    k = b.key
    res = b.produce(
        [
            transfer(k("alice"), b.chain_id, 0, k("bob").address, 5, b.dc.denom),
            transfer(k("bob"), b.chain_id, 0, k("carol").address, 10**15, b.dc.denom),
        ]
    )
    block = res.block
    return {
        "tx": (block.txs[0].to_json(), Tx.from_json),
        "header": (block.header.to_json(), Header.from_json),
        "commit": (block.commit.to_json(), Commit.from_json),
        "validators": (res.validators.to_json(), ValidatorSet.from_json),
        "receipt": (block.receipts[1].to_json(), Receipt.from_json),
        "block": (block.to_json(), Block.from_json),
        "proof": (block.prove_event(0).to_json(), EventProof.from_json),
        "update": (b.update(2, 1).to_json(), HeaderUpdate.from_json),
    }


SAMPLES = _samples()


def _paths(v: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(v, dict):
        for key, item in v.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(v, list):
        for i, item in enumerate(v[:3]):
            out += _paths(item, (*prefix, i))
    return out


def _mutate(v: Any, path: tuple[Any, ...], how: str, junk: Any) -> Any:
    if not path:
        return junk
    v = copy.deepcopy(v)
    parent = v
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["zz_extra"] = junk
    else:
        parent[last] = junk
    return v


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_samples_round_trip(kind: str) -> None:
    wire, decode = SAMPLES[kind]
    assert decode(wire).to_json() == wire


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@settings(max_examples=60, deadline=None)
@given(data=st.data(), how=st.sampled_from(["replace", "delete", "extra"]), junk=JUNK)
def test_mutations_decode_or_raise_encoding_error(
    kind: str, data: st.DataObject, how: str, junk: Any
) -> None:
    wire, decode = SAMPLES[kind]
    path = data.draw(st.sampled_from(_paths(wire)))
    mutated = _mutate(wire, path, how, junk)
    with contextlib.suppress(EncodingError):
        decode(mutated)
