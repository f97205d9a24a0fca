"""Devnets: deterministic, and the chains in one are independent."""

from __future__ import annotations

import pytest

from chains.devnet import build_devnet


def test_a_devnet_is_reproducible_from_its_seed() -> None:
    one, two = build_devnet(), build_devnet()
    assert [c.genesis.hash for c in one] == [c.genesis.hash for c in two]
    other = build_devnet(seed="another")
    assert {c.genesis.hash for c in one}.isdisjoint(c.genesis.hash for c in other)


def test_chains_are_independent() -> None:
    a, b, c = build_devnet(("chain-a", "chain-b", "chain-c"))
    ids = {x.chain_id for x in (a, b, c)}
    assert ids == {"chain-a", "chain-b", "chain-c"}
    assert len({x.genesis.validators.hash for x in (a, b, c)}) == 3
    assert len({x.genesis.authority for x in (a, b, c)}) == 3
    assert len({x.denom for x in (a, b, c)}) == 3
    for x in (a, b, c):
        chain = x.build()
        assert chain.height == 0
        for name, key in x.accounts.items():
            bal = chain.query("bank", "balance", {"address": key.address, "denom": x.denom})
            assert bal == 10**12, name


def test_chain_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        build_devnet(("chain-a", "chain-a"))
