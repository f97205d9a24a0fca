"""The verifying subscriber on a proof-of-stake chain: eligibility by the stake the chain
announced, the proposer's seal, a block yielded only once ``finality_depth`` blocks are on
top of it, and the fork choice (longest, then fewer slots, then the lower tip hash).

Blocks are produced by hand (``node.produce_block()``), so every scenario is exact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chains.crypto import PrivateKey
from chains.devnet import build_devnet
from chains.engine import ChainConsensus
from chains.handle import InProcessChain
from chains.pos import devnet_pos_params, get_pos_hash, get_seal_bytes, is_eligible, propose
from chains.service.bus import BusMessage, MemoryBus
from chains.service.subscriber import (
    PosRule,
    get_follow_rule,
    subscriber_at,
)
from chains.service.wire import encode_header, headers_topic
from chains.types import Block, Header, Tx, ValidatorSet
from tests.conftest import open_node
from tests.service.test_subscriber import Chain, feed

# engine-neutral tests, collected here again to run on this module's PoS chain
from tests.service.test_subscriber_pow import (  # noqa: F401
    subscriber,
    test_a_bft_rule_refuses_headers_sealed_without_a_commit,
    test_a_block_is_yielded_only_once_final,
)

PARAMS = devnet_pos_params(block_interval_ms=20, finality_depth=3)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    [dc] = build_devnet(["chain-s"], seed="bus-tests", consensus={"chain-s": PARAMS})
    node = open_node(dc, tmp_path)
    yield Chain(dc, node)
    node.store.close()


def forged(chain: Chain, block: Block, header: Header, table: ValidatorSet) -> BusMessage:
    """``block`` with another header and the stake table it claims, on the bus."""
    other = dataclasses.replace(block, header=header)
    return BusMessage(headers_topic("chain-s"), encode_header(other, table), False)


def resealed(header: Header, key: PrivateKey, slot: int) -> Header:
    """``header`` proposed by ``key`` at ``slot``, its seal ``key``'s valid signature."""
    h = dataclasses.replace(header, proposer=key.public_key, slot=slot, seal=b"")
    return dataclasses.replace(h, seal=key.sign(get_seal_bytes(get_pos_hash(h))))


async def test_forged_ineligible_and_unsealed_headers_are_refused(chain: Chain) -> None:
    """Each forgery is refused and changes nothing; the chain's own header still follows."""
    blocks = chain.blocks(2, txs=1)
    sub = subscriber(chain)
    await feed(sub, chain.msgs(blocks[0]))
    real, table = blocks[1].header, chain.vals(blocks[1])
    assert real.slot is not None
    # a stranger's own stake table, in which it is eligible: not the table the chain named
    mallory = PrivateKey.derive("mallory")
    own = ValidatorSet.of([(mallory.public_key, 10**6)])
    theirs = propose(PARAMS, dataclasses.replace(real, validators_hash=own.hash), own, [mallory])
    # a staked validator that is not eligible at the slot it claims, with a valid signature
    staked = chain.dc.validator_keys
    ineligible = next(
        h
        for slot in range(64)
        for k in staked
        if not is_eligible(
            get_pos_hash(h := resealed(real, k, slot)), table.by_key[k.public_key], PARAMS.target
        )
    )
    # the eligible proposer's header with a seal that is not its signature
    bad_seal = dataclasses.replace(real, seal=bytes(64))
    # the real proposer, re-proposed too soon after its parent (min_block_ms)
    early = propose(
        PARAMS, dataclasses.replace(real, time=blocks[0].header.time + 1), table, staked
    )
    # a table changed off an epoch's last height
    moved = propose(PARAMS, dataclasses.replace(real, next_validators_hash=own.hash), table, staked)
    cases = [
        forged(chain, blocks[1], theirs, own),
        forged(chain, blocks[1], ineligible, table),
        forged(chain, blocks[1], bad_seal, table),
        forged(chain, blocks[1], early, table),
        forged(chain, blocks[1], moved, table),
        forged(chain, blocks[1], real, own),  # the real header with a table not its own
    ]
    for msg in cases:
        await sub.process(msg)
        assert sub.trusted is not None
        assert sub.trusted.height == 1
    assert sum(sub.stats.rejected.values()) == len(cases)
    assert set(sub.stats.rejected) == {"UntrustedHeader"}
    # a slot without its seal is malformed, not a BFT header
    obj = orjson.loads(chain.header_msg(blocks[1]).payload)
    del obj["header"]["seal"]
    await sub.process(BusMessage(headers_topic("chain-s"), orjson.dumps(obj), False))
    assert sub.stats.rejected["MalformedPayload"] == 1
    await feed(sub, chain.msgs(blocks[1]))  # the real one still verifies
    assert sub.trusted.height == 2


async def test_stake_bonded_on_the_chain_is_learnt_through_its_headers(chain: Chain) -> None:
    """alice bonds stake for her own key; the chain announces the new table in the
    epoch's last header, and the subscriber, reading every height from the handle (the
    bus carried nothing), judges the next epoch by it: the table it learnt is the one
    the chain's staking module wrote, never one a message carried on its own."""
    alice = chain.dc.accounts["alice"]
    args = {"public_key": alice.public_key.hex(), "amount": 30}
    chain.node.submit_nowait(Tx.create(alice, "chain-s", 0, "staking", "bond", args))
    n = PARAMS.epoch_length * 2 + PARAMS.finality_depth
    blocks = chain.blocks(n, txs=0)
    first = blocks[0].header
    epoch_end = blocks[PARAMS.epoch_length - 1].header
    assert first.validators_hash == epoch_end.validators_hash
    assert epoch_end.next_validators_hash != epoch_end.validators_hash
    sub = await subscriber_at(MemoryBus(), InProcessChain(chain.node), 0, idle_timeout=0.05)
    async with sub:
        got = [await anext(sub) for _ in range(n - PARAMS.finality_depth)]
    assert [v.height for v in got] == list(range(1, n - PARAMS.finality_depth + 1))
    assert all(v.filled for v in got)
    after = got[PARAMS.epoch_length]
    assert after.header.validators_hash == epoch_end.next_validators_hash
    assert after.validators.by_key[alice.public_key] == 30
    assert alice.public_key not in got[0].validators.by_key
    assert sub.stats.rejected == {}


def test_the_engine_names_its_follow_rule(chain: Chain) -> None:
    g = chain.dc.genesis
    rule = get_follow_rule(ChainConsensus(g.consensus, g.time))
    assert rule == PosRule(PARAMS, g.time)
    assert rule.final_depth == PARAMS.finality_depth


# --- the fork choice, as a property ----------------------------------------------------

_BRANCH = st.lists(
    st.tuples(st.integers(0, 2**20), st.binary(min_size=32, max_size=32)), min_size=1, max_size=6
)


def _branch(spec: list[tuple[int, bytes]]) -> list[Header]:
    base = Header("chain-s", 1, 0, *(bytes(32),) * 2, 0, bytes(32), 0, *(bytes(32),) * 4)
    return [
        dataclasses.replace(base, height=i + 1, slot=slot, proposer=who)
        for i, (slot, who) in enumerate(spec)
    ]


@given(_BRANCH, _BRANCH)
def test_fork_choice_is_longest_then_fewer_slots_then_lower_tip_hash(
    a: list[tuple[int, bytes]], b: list[tuple[int, bytes]]
) -> None:
    """Between two branches above one fork the rule prefers the greater
    ``(length, -slots, -pos_hash of the tip)``, recomputed here from the headers, and
    never both (a branch does not replace itself)."""
    theirs, ours = _branch(a), _branch(b)
    rule = PosRule(PARAMS, 0)

    def key(branch: list[Header]) -> tuple[int, int, int]:
        slots = sum(h.slot or 0 for h in branch)
        return len(branch), -slots, -int.from_bytes(get_pos_hash(branch[-1]), "big")

    assert rule.is_better_branch(theirs, ours) == (key(theirs) > key(ours))
    assert not (rule.is_better_branch(theirs, ours) and rule.is_better_branch(ours, theirs))
    assert not rule.is_better_branch(theirs, theirs)
    assert not rule.is_better_branch([], ours)
