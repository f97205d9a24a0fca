"""A proof-of-stake chain in a node: it produces blocks at its interval, resumes from its
block store after a restart, and every header it made verifies in a PoS light client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chains.devnet import base_modules, build_devnet
from chains.module import Module
from chains.node import Node, SQLiteBlockStore
from chains.pos import devnet_pos_params
from chains.posclient import get_pos_client, process_create_pos_client, process_update_pos_client
from chains.state import State
from chains.types import Block

PARAMS = devnet_pos_params(block_interval_ms=20, finality_depth=3)
TIMEOUT = 30


async def test_a_pos_node_produces_resumes_and_its_headers_verify(tmp_path: Path) -> None:
    dc = build_devnet(("chain-s",), consensus={"chain-s": PARAMS})[0]

    def modules() -> list[Module]:
        return base_modules(PARAMS)

    db = tmp_path / "chain-s.db"
    async with Node.open(
        dc.genesis, modules, dc.validator_keys, SQLiteBlockStore(db), block_interval=0.02
    ) as node:
        await asyncio.wait_for(node.wait_for_height(10), TIMEOUT)
    stopped_at = node.height
    async with Node.open(
        dc.genesis, modules, dc.validator_keys, SQLiteBlockStore(db), block_interval=0.02
    ) as node:
        assert node.height == stopped_at  # resumed, not restarted from genesis
        await asyncio.wait_for(node.wait_for_height(stopped_at + 5), TIMEOUT)
        blocks: list[Block] = []
        for h in range(1, node.height + 1):
            b = node.get_block(h)
            assert b is not None
            blocks.append(b)
    assert all(b.header.slot is not None and len(b.header.seal) == 64 for b in blocks)
    state = State()
    cid = process_create_pos_client(state, PARAMS, blocks[0].header, dc.genesis.validators)
    now = blocks[-1].header.time
    for i in range(1, len(blocks), 48):
        run = [b.header for b in blocks[i : i + 48]]
        assert process_update_pos_client(state, cid, run, [], now) == "best"
    assert get_pos_client(state, cid).best_hash == blocks[-1].header.hash
