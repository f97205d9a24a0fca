"""Where a party's trust in a chain comes from (``interlock.trust``): the genesis, a
pinned header, the trust file, first use; and what a damaged or stale one does."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from chains.engine import ChainConsensus
from chains.service.verified import AnchorMismatch
from htlc.types import Lock, LockStatus, LockTerms
from interlock.trust import (
    BadTrustFlag,
    TrustFileDamaged,
    UnprovenLock,
    open_reader,
    parse_trust_flag,
    prove_lock,
    trust_path,
)
from tests.conftest import open_node
from tests.service import test_subscriber
from tests.service.test_subscriber import Chain
from tests.service.test_verified import Endpoint

chain = test_subscriber.chain  # the fixture: a BFT node driven by hand


@pytest.mark.parametrize(
    "text",
    ["chain-a", "chain-a:12", "chain-a:0:" + "ab" * 32, "chain-a:12:" + "ab" * 31,
     "chain a:12:" + "ab" * 32, "chain-a:-1:" + "ab" * 32, ":12:" + "ab" * 32],
)  # fmt: skip
def test_a_bad_trust_flag_is_one_line(text: str) -> None:
    with pytest.raises(BadTrustFlag, match="expected CHAIN:HEIGHT:HASH"):
        parse_trust_flag(text)


def test_a_trust_flag_parses() -> None:
    assert parse_trust_flag("chain-a:12:" + "AB" * 32) == ("chain-a", 12, b"\xab" * 32)


async def bft() -> ChainConsensus:
    return ChainConsensus(None, 0)


async def test_first_use_is_loud_recorded_and_then_quiet(chain: Chain, tmp_path: Path) -> None:
    blocks = chain.blocks(6)
    said: list[str] = []
    r = await open_reader(Endpoint(chain.node), tmp_path, say=said.append, consensus_of=bft)
    assert len(said) == 1
    assert said[0].startswith("WARNING: chain-a: no trust anchor given; trusting the endpoint's")
    assert await r.verified_header(6) == blocks[5].header
    assert trust_path(tmp_path, "chain-a").exists()
    chain.blocks(4)
    said.clear()
    again = await open_reader(Endpoint(chain.node), tmp_path, say=said.append, consensus_of=bft)
    assert said == []
    assert again.anchor.source.startswith("first use of chain-a")
    assert (await again.verified_header(10)).height == 10
    assert (await again.verified_header(3)) == blocks[2].header  # down the hash chain


async def test_a_damaged_trust_file_is_refused_in_one_line(chain: Chain, tmp_path: Path) -> None:
    chain.blocks(3)
    path = trust_path(tmp_path, "chain-a")
    path.parent.mkdir(parents=True, exist_ok=True)
    for garbage in (b"{", b"[]", orjson.dumps({"version": 1, "chain_id": "chain-a"})):
        path.write_bytes(garbage)
        with pytest.raises(TrustFileDamaged, match="remove it to start over") as info:
            await open_reader(Endpoint(chain.node), tmp_path, consensus_of=bft)
        assert "\n" not in str(info.value)


async def test_a_genesis_cache_of_another_run_of_the_chain_is_not_used(
    chain: Chain, tmp_path: Path
) -> None:
    chain.blocks(5)
    g = chain.dc.genesis
    r = await open_reader(Endpoint(chain.node), tmp_path, genesis=g, genesis_source="a.toml")
    await r.verified_header(5)
    stored = orjson.loads(trust_path(tmp_path, "chain-a").read_bytes())
    assert stored["first"] == chain.node.get_block(1).header.hash.hex()  # type: ignore[union-attr]
    # the same genesis: the cache is used (no block 1 to verify again)
    again = await open_reader(Endpoint(chain.node), tmp_path, genesis=g, genesis_source="a.toml")
    assert again.latest_checkpoint is not None
    assert again.latest_checkpoint.height == 5
    # a devnet restarted from its file: another block 1, the cache is not used
    stored["first"] = "00" * 32
    trust_path(tmp_path, "chain-a").write_bytes(orjson.dumps(stored))
    fresh = await open_reader(Endpoint(chain.node), tmp_path, genesis=g, genesis_source="a.toml")
    assert fresh.latest_checkpoint is None


async def test_a_pinned_header_the_endpoint_does_not_have_is_refused(
    chain: Chain, tmp_path: Path
) -> None:
    chain.blocks(5)
    r = await open_reader(Endpoint(chain.node), tmp_path, pinned=(3, b"\x01" * 32))
    with pytest.raises(AnchorMismatch, match=r"trusted header 3.*--trust says 0101"):
        await r.verified_header(5)
    assert not trust_path(tmp_path, "chain-a").exists()  # nothing recorded from a failure


async def test_a_lock_with_no_proven_event_is_unproven(chain: Chain, tmp_path: Path) -> None:
    chain.blocks(3)
    r = await open_reader(Endpoint(chain.node), tmp_path, genesis=chain.dc.genesis)
    terms = LockTerms("chain-a", "aa" * 20, "bb" * 20, "usd", 1, b"\x02" * 32, 99)
    with pytest.raises(UnprovenLock, match=r"no proven htlc\.locked event with these terms"):
        await prove_lock(r, Lock(terms, LockStatus.LOCKED))
    with pytest.raises(UnprovenLock, match="the reader is of chain-a"):
        await prove_lock(r, Lock(replace(terms, chain_id="chain-b"), LockStatus.LOCKED))


async def test_a_chain_started_over_is_refused_until_its_trust_file_goes(
    chain: Chain, tmp_path: Path
) -> None:
    chain.blocks(8)
    r = await open_reader(Endpoint(chain.node), tmp_path / "home", consensus_of=bft)
    await r.verified_header(8)
    again = Chain(chain.dc, open_node(chain.dc, tmp_path / "again"))  # same genesis, new blocks
    try:
        await asyncio.sleep(0.01)  # other block times: other hashes
        again.blocks(10)
        r = await open_reader(Endpoint(again.node), tmp_path / "home", consensus_of=bft)
        with pytest.raises(AnchorMismatch, match=r"a chain started over\?"):
            await r.verified_header(3)
    finally:
        again.node.store.close()
