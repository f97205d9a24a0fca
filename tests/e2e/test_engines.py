"""A proof-of-work or proof-of-stake chain and a BFT chain as processes, the relayer
daemon between them.

``configs/chain-w.toml`` (PoW, its node mines) or ``configs/chain-s.toml`` (PoS, its node
seals with an eligible staked key) and ``configs/chain-b.toml`` (BFT), a real Mosquitto,
``interlock path create`` (a PoW or PoS client of the source on chain-b, a BFT client of
chain-b on the source) and ``interlock start``; checked only through the chains' RPC.
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

B = "chain-b"
ALICE, BOB = key("alice"), key("bob")


async def source_client(b: HttpChain, src: str) -> dict[str, Any]:
    path = await b.query("bridge", "path", {"remote_chain": src})
    assert isinstance(path, dict)
    got = await b.query("lightclient", "client", {"client_id": path["client_id"]})
    assert isinstance(got, dict)
    return got


async def _reached(c: HttpChain, height: int) -> bool:
    return await c.latest_height() >= height


@pytest.mark.parametrize(
    ("src", "denom", "engine"), [("chain-w", "gbp", "pow"), ("chain-s", "chf", "pos")]
)
async def test_a_lock_on_a_pow_or_pos_chain_is_minted_once_final_and_burned_back(
    own_mosquitto: Mosquitto, tmp_path: Path, src: str, denom: str, engine: str
) -> None:
    with network(own_mosquitto, tmp_path, pair=(src, B)) as net:
        relayer = net.relayer()
        await wait_ready(relayer)
        async with chain(net, src) as s, chain(net, B) as b:
            client = await source_client(b, src)
            assert client["type"] == engine
            depth = int(client["params"]["finality_depth"])
            if engine == "pos":
                # a stake change the client must learn on the way: alice bonds for her own
                # key, in effect after the epoch's last block, before the lock below
                bond = {"public_key": ALICE.public_key.hex(), "amount": 30}
                r = await send(s, ALICE, "staking", "bond", bond)
                assert r.ok, r.error
                epoch = int(client["params"]["epoch_length"])
                effective = -(-r.height // epoch) * epoch + 1
                await eventually(lambda: _reached(s, effective), f"stake in effect at {effective}")
            before = await balance(s, ALICE.address, denom)
            args = {"denom": denom, "amount": 100, "dest_chain": B, "recipient": BOB.address}
            r = await send(s, ALICE, "bridge", "lock", args)
            assert r.ok, r.error
            if engine == "pos":
                table = await s.get_validators(r.height)
                assert table is not None
                assert table.by_key[ALICE.public_key] == 30  # judged by the new stake table
            nonce = int(r.events[-1].attributes["nonce"])  # type: ignore[arg-type]
            await eventually(lambda: received(b, src, nonce), "mint on chain-b")
            # minted only once the lock's block was final in chain-b's client of the source
            client = await source_client(b, src)
            assert int(client["final_height"]) >= r.height
            assert int(client["best_height"]) >= r.height + depth
            assert await balance(b, BOB.address, f"{src}/{denom}") == 100
            # and back: burn on the BFT chain, released on the source
            burn = {"denom": f"{src}/{denom}", "amount": 40, "recipient": ALICE.address}
            r = await send(b, BOB, "bridge", "burn", burn)
            assert r.ok, r.error
            nonce = int(r.events[-1].attributes["nonce"])  # type: ignore[arg-type]
            await eventually(lambda: received(s, B, nonce), f"release on {src}")
            assert await balance(s, ALICE.address, denom) == before - 60
            assert await balance(b, BOB.address, f"{src}/{denom}") == 60
            assert await supply(b, f"{src}/{denom}") == 60
        assert relayer.terminate() == 0
