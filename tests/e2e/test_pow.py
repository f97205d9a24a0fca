"""A proof-of-work chain and a BFT chain as processes, the relayer daemon between them.

``configs/chain-w.toml`` (PoW, its node mines) and ``configs/chain-b.toml`` (BFT), a real
Mosquitto, ``interlock path create`` (a PoW client of chain-w on chain-b, a BFT client of
chain-b on chain-w) and ``interlock start``; checked only through the chains' RPC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chains.service.rpc_client import HttpChain
from tests.conftest import Mosquitto
from tests.e2e.harness import balance, chain, eventually, key, network, received, send, supply
from tests.e2e.test_relayer import wait_ready

pytestmark = pytest.mark.slow

W, B = "chain-w", "chain-b"
ALICE, BOB = key("alice"), key("bob")


async def pow_client(b: HttpChain) -> dict[str, Any]:
    path = await b.query("bridge", "path", {"remote_chain": W})
    assert isinstance(path, dict)
    got = await b.query("lightclient", "client", {"client_id": path["client_id"]})
    assert isinstance(got, dict)
    return got


async def test_a_lock_on_a_pow_chain_is_minted_once_final_and_burned_back(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path, pair=(W, B)) as net:
        relayer = net.relayer()
        await wait_ready(relayer)
        async with chain(net, W) as w, chain(net, B) as b:
            client = await pow_client(b)
            assert client["type"] == "pow"
            depth = int(client["params"]["finality_depth"])
            gbp_before = await balance(w, ALICE.address, "gbp")
            args = {"denom": "gbp", "amount": 100, "dest_chain": B, "recipient": BOB.address}
            r = await send(w, ALICE, "bridge", "lock", args)
            assert r.ok, r.error
            nonce = int(r.events[-1].attributes["nonce"])  # type: ignore[arg-type]
            await eventually(lambda: received(b, W, nonce), "mint on chain-b")
            # minted only once the lock's block was final in chain-b's client of chain-w
            client = await pow_client(b)
            assert int(client["final_height"]) >= r.height
            assert int(client["best_height"]) >= r.height + depth
            assert await balance(b, BOB.address, f"{W}/gbp") == 100
            # and back: burn on the BFT chain, released on the PoW chain
            burn = {"denom": f"{W}/gbp", "amount": 40, "recipient": ALICE.address}
            r = await send(b, BOB, "bridge", "burn", burn)
            assert r.ok, r.error
            nonce = int(r.events[-1].attributes["nonce"])  # type: ignore[arg-type]
            await eventually(lambda: received(w, B, nonce), "release on chain-w")
            assert await balance(w, ALICE.address, "gbp") == gbp_before - 60
            assert await balance(b, BOB.address, f"{W}/gbp") == 60
            assert await supply(b, f"{W}/gbp") == 60
        assert relayer.terminate() == 0
