"""A light client catching up a long stretch of a chain whose validator set churns.

    python bench/lightclient.py [heights] [churn_every] [validators]

Builds one real chain (``chains.chain.Chain``, empty blocks one second apart, committed
by its validators) of ``heights`` + 1 blocks. Every ``churn_every`` heights governance
replaces one validator by a newcomer of equal power (``validators.set_power`` in a
block): 1/``validators`` of the power at a time, less than 1/3. Then a client trusting
height 1 catches up to the last height twice:

* sequentially: one update per height, each verified (all its commit's signatures);
* with the planner (``chains.lcplan.UpdatePlanner``): skipping, bisecting where a skip
  lacks trust.

Both use the on-chain client's own verification. ``skip_sig_ratio`` = signatures the
planner checked / signatures the sequential updates checked (goal: at most 0.05). The
planner's updates are then all applied to a fresh on-chain client (``process_update_client``)
to show the host chain accepts them. The last line of output is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.crypto import PrivateKey
from chains.devnet import build_devnet
from chains.lcplan import LightBlock, UpdatePlanner
from chains.lightclient import HeaderUpdate, process_create_client, process_update_client
from chains.state import State
from chains.types import Block, Tx, ValidatorSet

BLOCK_MS = 1_000
POWER = 10


def build(heights: int, churn_every: int, validators: int) -> list[LightBlock]:
    """LightBlocks of heights 1..heights+1 (index = height - 1)."""
    (dc,) = build_devnet(("chain-b",), validators=validators, accounts=())
    chain = dc.build()
    gov = dc.accounts["gov"]
    keys = list(dc.validator_keys)
    signed: list[tuple[Block, ValidatorSet]] = []  # (block, the set that signed it)
    newcomers = 0
    while chain.height < heights + 1:
        txs: list[Tx] = []
        if chain.height % churn_every == churn_every - 1:
            newcomer = PrivateKey.derive("bench-lightclient", str(newcomers))
            oldest = keys[newcomers]  # validators leave in the order they came
            newcomers += 1
            keys.append(newcomer)
            nonce = chain.next_nonce(gov.address)
            for i, (key, power) in enumerate(((newcomer, POWER), (oldest, 0))):
                args = {"public_key": key.public_key.hex(), "power": power}
                txs.append(
                    Tx.create(gov, chain.chain_id, nonce + i, "validators", "set_power", args)
                )
        res = chain.produce_block(txs, chain.last_time + BLOCK_MS, keys)
        if not all(r.ok for r in res.block.receipts):
            raise SystemExit("a validator change failed")
        signed.append((res.block, res.validators))
    out = []
    for i, (block, vals) in enumerate(signed):
        nxt = signed[i + 1][1] if i + 1 < len(signed) else chain.validators
        out.append(LightBlock(block.header, block.commit, vals, nxt))
    return out


def main(heights: int = 10_000, churn_every: int = 50, validators: int = 4) -> dict[str, object]:
    t0 = time.perf_counter()
    blocks = build(heights, churn_every, validators)
    t_build = time.perf_counter() - t0
    target = heights + 1
    now = blocks[-1].header.time + 500
    period = 10 * heights * BLOCK_MS

    def plan(trusted: LightBlock, to: int) -> UpdatePlanner:
        return UpdatePlanner(trusted, to, now=now, trusting_period=period, max_clock_drift=5_000)

    def fetch(h: int) -> LightBlock:
        return blocks[h - 1]

    # the planner: skip, bisect where trust is lacking
    t0 = time.perf_counter()
    planner = plan(blocks[0], target)
    fetched = 0
    while (h := planner.next_height()) is not None:
        planner.provide(fetch(h))
        fetched += 1
    updates = planner.updates()
    t_skip = time.perf_counter() - t0

    # sequential: every height, from the one before
    t0 = time.perf_counter()
    seq_checks = 0
    for h in range(1, target):
        step = plan(fetch(h), h + 1)
        step.provide(fetch(h + 1))
        seq_checks += step.signature_checks
    t_seq = time.perf_counter() - t0

    # the host chain's own client accepts the planner's updates, in order
    state = State()
    first = blocks[0]
    create = HeaderUpdate(first.header, first.commit, first.validators, 1, None)
    cid = process_create_client(state, create, period, 5_000)
    for u in updates:
        if process_update_client(state, cid, u, now) != "stored":
            raise SystemExit(f"the host refused the update to {u.header.height}")

    return {
        "skip_sig_ratio": round(planner.signature_checks / seq_checks, 4),
        "skip_signature_checks": planner.signature_checks,
        "sequential_signature_checks": seq_checks,
        "updates": len(updates),
        "blocks_fetched": fetched,
        "heights": heights,
        "churn_every": churn_every,
        "validators": validators,
        "validator_changes": heights // churn_every,
        "skip_plan_s": round(t_skip, 3),
        "sequential_s": round(t_seq, 3),
        "build_chain_s": round(t_build, 3),
    }


if __name__ == "__main__":
    argv = [int(a) for a in sys.argv[1:4]]
    result = main(*argv)
    for k, v in result.items():
        print(f"{k:>28}: {v}")
    print(json.dumps(result))
