"""``run_chains`` in this process (the subprocess tests are in test_processes.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path

from chains.node import Node
from chains.service.rpc import RpcServer
from interlock.cli import run_chains
from interlock.config import parse_devnet_config


async def test_a_console_that_falls_behind_does_not_stop_the_chain(tmp_path: Path) -> None:
    """The head printer is a convenience: when it falls a subscription's worth of blocks
    behind it skips ahead, instead of its SubscriptionLagged failing the task group and
    taking the node, its RPC and its publisher down with it."""
    cfg = parse_devnet_config({"block_interval": 3600, "chains": [{"chain_id": "chain-a"}]})
    stop = asyncio.Event()
    nodes: list[Node] = []

    def ready(ns: Sequence[Node], _: Sequence[RpcServer]) -> None:
        nodes.extend(ns)

    async def burst() -> None:
        while not nodes or len(nodes[0]._subs) < 2:  # noqa: ASYNC110 (the printer and publisher)
            await asyncio.sleep(0.01)
        for _ in range(4200):  # no await in between: the printer cannot keep up
            nodes[0].produce_block()
        await asyncio.sleep(0.2)
        stop.set()

    thresholds = gc.get_threshold()
    try:
        task = asyncio.create_task(burst())
        await asyncio.wait_for(
            run_chains(cfg.chains, tmp_path, "memory://", stop=stop, on_ready=ready), 120
        )
        await task
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert nodes[0].height == 4200
