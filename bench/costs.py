"""Costs that must not grow with state or uptime: what a read or an update costs as the
state behind it grows.

    python bench/costs.py [--sizes 10000,100000,300000]

* ``accounts_read_us``: ``bank.get_balances`` of one account (what ``GET /accounts/{addr}``
  does) with N other keys in state; it should not grow with N.
* ``lc_update_us``: one light-client update (sequential, 4 validators: the commit check
  dominates) with N consensus states already stored; it should not grow with N.
* ``loop_hold_ms``: the longest the event loop waited for its turn while the node
  produced (and persisted, in SQLite) one block of 5,000 transfers, in one piece
  (``whole``: ``Node.produce_block``) and in chunks (``yielding``: what the node's loop
  runs), measured by a task that wakes as often as it can; wall clock, best of three.

Each figure is the best of a few repetitions in process CPU time (the machine is shared).
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.bank import get_balances
from chains.devnet import build_devnet
from chains.lightclient import HeaderUpdate, process_create_client, process_update_client
from chains.node import Node, SQLiteBlockStore
from chains.state import State
from chains.types import Tx


def _best(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def accounts_read_us(n: int) -> float:
    state = State({f"bank/bal/{i:040x}/usd": i for i in range(n)})
    me = "f" * 40
    state.set(f"bank/bal/{me}/usd", 1)
    state.set(f"bank/bal/{me}/eur", 2)

    def read() -> None:
        for _ in range(100):
            get_balances(state, me)

    return _best(read, 5) / 100 * 1e6


def lc_update_us(n: int) -> float:
    _, b = build_devnet(("chain-a", "chain-b"))
    chain = b.build()
    keys = list(b.validator_keys)
    res = [chain.produce_block([], chain.last_time + 1_000, keys) for _ in range(2)]
    first, second = res
    state = State()
    trusted = HeaderUpdate(first.block.header, first.block.commit, first.validators, 1, None)
    cid = process_create_client(state, trusted, 10**12, 10**9)
    cs = state.get(f"lightclient/cons/{cid}/{1:020d}")
    for i in range(n):
        later = {**cs, "time": second.block.header.time + 1_000 + i}
        state.set(f"lightclient/cons/{cid}/{10**9 + i:020d}", later)
    legacy = f"lightclient/heights/{cid}"
    if legacy in state:  # the layout before: every stored height in one list
        state.set(legacy, [1, *range(10**9, 10**9 + n)])
    state.root()
    update = HeaderUpdate(second.block.header, second.block.commit, second.validators, 1, None)
    now = second.block.header.time + 1

    def one() -> None:
        state.begin()
        process_update_client(state, cid, update, now)
        state.rollback()

    return _best(one, 7) * 1e6


def loop_hold_ms(yielding: bool, block_txs: int = 5000) -> float:
    names = [f"user{i}" for i in range(50)]
    (dc,) = build_devnet(("chain-a",), accounts=names)
    per = block_txs // len(names)
    txs = [
        Tx.create(
            dc.accounts[n],
            dc.chain_id,
            k,
            "bank",
            "transfer",
            {"to": dc.accounts["user0"].address, "denom": dc.denom, "amount": 1},
        )
        for k in range(per)
        for n in names
    ]

    async def one(d: str) -> float:
        store = SQLiteBlockStore(Path(d) / "chain.sqlite")
        node = Node.open(dc.genesis, _modules, dc.validator_keys, store, block_interval=3600)
        for tx in txs:
            node.submit_nowait(tx)
        gaps: list[float] = []
        done = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        if yielding:
            await node.produce_block_yielding()
        else:
            node.produce_block()
        await asyncio.sleep(0)
        done = True
        await task
        await node.stop()
        return max(gaps) * 1e3

    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="interlock-bench-") as d:
            best = min(best, asyncio.run(one(d)))
    return best


def _modules():  # type: ignore[no-untyped-def]
    from chains.devnet import base_modules

    return base_modules()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,300000")
    sizes = [int(s) for s in p.parse_args().sizes.split(",")]
    out: dict[str, object] = {"sizes": sizes}
    out["accounts_read_us"] = [round(accounts_read_us(n), 1) for n in sizes]
    print("accounts read (us):", out["accounts_read_us"])
    out["lc_update_us"] = [round(lc_update_us(n), 1) for n in sizes]
    print("light-client update (us):", out["lc_update_us"])
    whole, yielding = loop_hold_ms(False), loop_hold_ms(True)
    out["loop_hold_ms"] = {"whole": round(whole, 1), "yielding": round(yielding, 1)}
    print("event loop held by a 5,000-tx block (ms):", out["loop_hold_ms"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
