"""How fast the PoW miner hashes and a PoW and a PoS light client verify headers.

    python bench/consensus.py [headers]

Mines a real PoW devnet chain and produces a real PoS one, each of ``headers`` + 1 empty
blocks (``chains.chain.Chain``, ``devnet_pow_params``, ``devnet_pos_params``), then:

* ``mining_hashes_per_s``: ``chains.pow.mine`` on one header with an unreachable target,
  a fixed number of tries, timed;
* ``pow_headers_per_s``: a client created from block 1 (``chains.powclient``) takes the
  rest in runs of 48 (``process_update_pow_client``: retarget, time window, the hash and
  the fork choice per header, the state writes, and the state root after each run, as
  the host chain computes it once per block), timed;
* ``pow_verify_per_s``: the header rules alone (``validate_pow_header``), without state;
* ``pos_headers_per_s``: the same for a PoS client (``chains.posclient``, created from
  block 1 with its stake table): per header the epoch and time rules, the eligibility
  hash, the proposer's ed25519 signature, the fork choice, the state writes and root.

The last line of output is one JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.devnet import build_devnet
from chains.headerchain import HeaderStore
from chains.pos import devnet_pos_params
from chains.posclient import process_create_pos_client, process_update_pos_client
from chains.pow import devnet_pow_params, mine, target_bytes, validate_pow_header
from chains.powclient import (
    MAX_HEADERS_PER_UPDATE,
    get_pow_tip,
    process_create_pow_client,
    process_update_pow_client,
)
from chains.state import State


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    params = devnet_pow_params()
    dc = build_devnet(("chain-w",), consensus={"chain-w": params})[0]
    chain = dc.build()
    headers = [
        chain.produce_block([], chain.last_time + 1_000, dc.validator_keys).block.header
        for _ in range(n + 1)
    ]

    tries = 200_000
    hard = dataclasses.replace(headers[0], target=target_bytes(1), nonce=None)
    t0 = time.perf_counter()
    assert mine(hard, tries=tries) is None
    mining = tries / (time.perf_counter() - t0)

    state = State()
    cid = process_create_pow_client(state, params, headers[0], dc.genesis.time)
    state.root()
    now = headers[-1].time
    t0 = time.perf_counter()
    for i in range(1, n + 1, MAX_HEADERS_PER_UPDATE):
        run = headers[i : i + MAX_HEADERS_PER_UPDATE]
        assert process_update_pow_client(state, cid, run, now) == "best"
        state.root()  # what the host chain pays for the writes, once per block
    client_rate = n / (time.perf_counter() - t0)

    store = HeaderStore(state, "lightclient/pow", cid)
    tips = []
    for h in headers[1:]:
        rec = store.record(h.height - 1, h.prev_hash)
        assert rec is not None
        tips.append(get_pow_tip(rec))
    t0 = time.perf_counter()
    for tip, h in zip(tips, headers[1:], strict=True):
        validate_pow_header(params, tip, h, now)
    verify_rate = n / (time.perf_counter() - t0)

    pos_rate = measure_pos(n)

    print(f"mining: {mining:,.0f} hashes/s")
    print(f"PoW light client: {client_rate:,.0f} headers/s with state, {verify_rate:,.0f}/s rules")
    print(f"PoS light client: {pos_rate:,.0f} headers/s with state")
    print(
        json.dumps(
            {
                "headers": n,
                "mining_hashes_per_s": round(mining),
                "pow_headers_per_s": round(client_rate),
                "pow_verify_per_s": round(verify_rate),
                "pos_headers_per_s": round(pos_rate),
            }
        )
    )


def measure_pos(n: int) -> float:
    """Headers per second a PoS client verifies and stores (with the state root)."""
    params = devnet_pos_params()
    dc = build_devnet(("chain-s",), consensus={"chain-s": params})[0]
    chain = dc.build()
    headers = [
        chain.produce_block([], chain.last_time + 1_000, dc.validator_keys).block.header
        for _ in range(n + 1)
    ]
    state = State()
    cid = process_create_pos_client(state, params, headers[0], dc.genesis.validators)
    state.root()
    now = headers[-1].time
    t0 = time.perf_counter()
    for i in range(1, n + 1, MAX_HEADERS_PER_UPDATE):
        run = headers[i : i + MAX_HEADERS_PER_UPDATE]
        assert process_update_pos_client(state, cid, run, [], now) == "best"
        state.root()
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
