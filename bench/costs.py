"""Costs that must not grow with state or uptime: what a read or an update costs as the
state behind it grows.

    python bench/costs.py [--sizes 10000,100000,300000]

* ``accounts_read_us``: ``bank.get_balances`` of one account (what ``GET /accounts/{addr}``
  does) with N other keys in state; it should not grow with N.
* ``lc_update_us``: one light-client update (sequential, 4 validators: the commit check
  dominates) with N consensus states already stored; it should not grow with N.

Each figure is the best of a few repetitions in process CPU time (the machine is shared).
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.bank import get_balances
from chains.devnet import build_devnet
from chains.lightclient import HeaderUpdate, process_create_client, process_update_client
from chains.state import State


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,300000")
    sizes = [int(s) for s in p.parse_args().sizes.split(",")]
    out: dict[str, object] = {"sizes": sizes}
    out["accounts_read_us"] = [round(accounts_read_us(n), 1) for n in sizes]
    print("accounts read (us):", out["accounts_read_us"])
    out["lc_update_us"] = [round(lc_update_us(n), 1) for n in sizes]
    print("light-client update (us):", out["lc_update_us"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
