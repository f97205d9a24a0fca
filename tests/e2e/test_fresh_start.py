"""A brand-new relayer starts where the work is, not at genesis, and loses nothing.

Mosquitto, two chain processes and ``interlock start`` as processes, checked through the
chains' RPC. A first relayer carries transfers both ways to the end (history); a second
carries chain-a's locks to chain-b only and is killed -9 (a delivery whose
acknowledgement nobody carried); with no relayer running, more locks are sent both ways,
one of them bound to time out, and a swap whose participant went offline after the
initiator's claim revealed the secret on chain-b, beside a lock nobody claims. Then a
relayer with an empty data dir starts: every transfer completes (minted, refunded,
acknowledged: both chains' sent records pruned), the swap is finished for the
participant and the abandoned lock refunded, and its log and ``/status`` show each worker
started above height 1 and at or below the oldest event it still had to act on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from chains.service.rpc_client import HttpChain
from tests.conftest import Mosquitto
from tests.e2e.harness import (
    A,
    B,
    Net,
    balance,
    chain,
    eventually,
    key,
    lock,
    network,
    received,
    relayer_toml,
    send,
    sent_status,
)
from tests.e2e.test_relayer import client_height, escrow_matches, http_json, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")


def one_way_config(net: Net) -> Path:
    """chain-a -> chain-b transfers only: chain-b's mints are never proven back."""
    urls = {cid: [p.url] for cid, p in net.chains.items()}
    text = relayer_toml(urls, net.broker.url, kinds='["transfers"]')
    path = net.tmp / "one-way.toml"
    head, a_to_b, _b_to_a = text.split("\n[[paths]]")
    path.write_text(f"{head}\n[[paths]]{a_to_b}")
    return path


async def event_height(h: HttpChain, first: int, event_type: str, nonce: int) -> int:
    """The height of ``event_type`` with ``nonce`` at or above ``first``, read block by
    block (not through the index the relayer uses)."""
    top = await h.latest_height()
    for height in range(first, top + 1):
        block = await h.get_block(height)
        assert block is not None
        if any(e.type == event_type and e.attributes.get("nonce") == nonce for e in block.events):
            return height
    raise AssertionError(f"no {event_type} of nonce {nonce} on {h.chain_id} from {first}")


async def settled(h: HttpChain, remote: str, nonce: int) -> bool:
    return await sent_status(h, remote, nonce) == "settled"


async def htlc(h: HttpChain, who: Any, method: str, **args: Any) -> tuple[str, int]:
    """An htlc call's lock id and the height it committed at."""
    r = await send(h, who, "htlc", method, args)
    assert r.ok, r.error
    return str(r.events[-1].attributes["lock_id"]), r.height


async def _is(h: HttpChain, lock_id: str, status: str) -> bool:
    got = await h.query("htlc", "lock", {"lock_id": lock_id})
    return isinstance(got, dict) and got["status"] == status


async def test_a_new_relayer_starts_at_the_work_in_flight_and_finishes_it(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        async with chain(net, A) as a, chain(net, B) as b:
            # history, carried to the end by a first relayer
            first = net.relayer("first")
            await wait_ready(first)
            done_a = [await lock(a, ALICE, B, BOB.address, 10 + i, "usd") for i in range(3)]
            done_b = await lock(b, BOB, A, ALICE.address, 5, "eur")
            for n in done_a:
                await eventually(lambda n=n: settled(a, B, n), f"chain-a:chain-b:{n} settled")
            await eventually(lambda: settled(b, A, done_b), "chain-b's transfer settled")
            assert first.terminate() == 0

            # delivered to chain-b, never acknowledged: a one-way relayer, killed -9
            one_way = net.relayer("one-way", one_way_config(net))
            await wait_ready(one_way)
            b_from = await b.latest_height()
            r_unacked = await a.latest_height()
            unacked = await lock(a, ALICE, B, BOB.address, 20, "usd")
            await eventually(lambda: received(b, A, unacked), "mint on chain-b")
            one_way.kill9()
            assert await sent_status(a, B, unacked) == "sent"  # still in flight on chain-a
            unacked_lock = await event_height(a, r_unacked, "bridge.locked", unacked)
            unacked_mint = await event_height(b, b_from, "bridge.minted", unacked)

            # sent while no relayer runs: a lock each way, and one bound to time out
            await asyncio.sleep(1.0)  # the chains grow on
            fresh_a = await lock(a, ALICE, B, BOB.address, 30, "usd")
            fresh_b = await lock(b, BOB, A, ALICE.address, 6, "eur")
            known = await client_height(a, B)
            doomed = await lock(a, ALICE, B, BOB.address, 7, "usd", timeout_height=known + 1)
            # a swap whose participant went offline: Alice locks on chain-a for Bob, Bob
            # on chain-b for Alice, Alice claims on chain-b (the reveal), all before the
            # new relayer exists; and Carol's lock nobody claims
            secret = os.urandom(32)
            hashlock = hashlib.sha256(secret).hexdigest()
            ha, hb = await a.latest_height(), await b.latest_height()
            terms = {"denom": "usd", "amount": 100, "hashlock": hashlock}
            lock_a, swap_lock = await htlc(
                a, ALICE, "lock", receiver=BOB.address, timelock=ha + 600, **terms
            )
            eur = {"denom": "eur", "amount": 92, "hashlock": hashlock}
            lock_b, _ = await htlc(b, BOB, "lock", receiver=ALICE.address, timelock=hb + 300, **eur)
            _, reveal = await htlc(b, ALICE, "claim", lock_id=lock_b, preimage=secret.hex())
            abandoned = {
                "denom": "usd",
                "amount": 5,
                "hashlock": hashlib.sha256(b"x" * 32).hexdigest(),
            }
            lock_c, _ = await htlc(
                a, CAROL, "lock", receiver=BOB.address, timelock=ha + 25, **abandoned
            )
            usd = await balance(a, ALICE.address, "usd")
            bob_usd, carol_usd = (
                await balance(a, BOB.address, "usd"),
                await balance(a, CAROL.address, "usd"),
            )

            # a brand-new relayer, empty data dir
            fresh = net.relayer("fresh")
            port = await wait_ready(fresh)
            await eventually(lambda: received(b, A, fresh_a), "the lock minted on chain-b")
            await eventually(lambda: received(a, B, fresh_b), "chain-b's lock minted on chain-a")
            for n in (unacked, fresh_a, doomed):  # acknowledged, acknowledged, refunded
                await eventually(lambda n=n: settled(a, B, n), f"chain-a:chain-b:{n} settled")
            await eventually(lambda: settled(b, A, fresh_b), "chain-b's lock acknowledged")
            assert not await received(b, A, doomed) or (
                await b.query("bridge", "received", {"remote_chain": A, "nonce": doomed})
                == "expired"
            )
            assert await balance(a, ALICE.address, "usd") == usd + 7  # the refund
            assert await a.query("bridge", "in_flight", {"remote_chain": B}) == {
                "nonces": [],
                "next": None,
            }
            assert await b.query("bridge", "in_flight", {"remote_chain": A}) == {
                "nonces": [],
                "next": None,
            }
            # the daemon claims Alice's lock for Bob with the secret revealed before it
            # started, and refunds Carol's at its timelock
            await eventually(lambda: _is(a, lock_a, "claimed"), "the claim for Bob on chain-a")
            await eventually(lambda: _is(a, lock_c, "refunded"), "Carol's refund on chain-a")
            assert await balance(a, BOB.address, "usd") == bob_usd + 100
            assert await balance(a, CAROL.address, "usd") == carol_usd + 5
        escrowed, wrapped = await escrow_matches(net)
        assert escrowed == wrapped == 10 + 11 + 12 + 20 + 30

        # where it started: above 1, at or below the oldest event it had to carry
        status, body = await http_json(f"http://127.0.0.1:{port}/status")
        assert status == 200
        assert isinstance(body, dict)
        work = {w["name"]: w for w in body["work"]}
        a_to_b = work["transfer:chain-a->chain-b"]["start"]
        b_to_a = work["transfer:chain-b->chain-a"]["start"]
        assert 1 < a_to_b["height"] <= unacked_lock  # its oldest: the unacknowledged lock
        assert a_to_b["oldest_height"] == unacked_lock
        assert 1 < b_to_a["height"] <= unacked_mint  # its oldest: the mint to prove back
        assert b_to_a["oldest_height"] == unacked_mint
        swap = work["swap:chain-a<->chain-b"]["start"]
        assert 1 < swap["chain-a"]["height"] <= swap_lock  # the oldest lock open on chain-a
        assert swap["chain-a"]["oldest_height"] == swap_lock
        assert 1 < swap["chain-b"]["height"] <= reveal  # the claim that revealed its secret
        assert swap["chain-b"]["oldest_height"] == reveal
        log = (fresh.data_dir / f"stderr.{fresh.runs}").read_text()
        line = (
            f"transfer:chain-a->chain-b: no cursor; starting at height {a_to_b['height']} "
            f"(3 transfers in flight, the oldest locked at {unacked_lock})"
        )
        assert line in log
        assert log.count("transfer:chain-a->chain-b: no cursor") == 1
