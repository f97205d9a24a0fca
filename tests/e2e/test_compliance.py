"""Compliance refusals end to end: chain processes, Mosquitto, ``interlock start``.

Governance of chain-b sanctions carol; alice's transfer to her is locked on chain-a,
refused on chain-b by its policy, and refunded on chain-a by the running daemon alone.
``interlock transfer --wait`` names the refusal and the refund. Checked only through the
chains' RPC, the CLI's output and the daemon's ``/metrics``.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from chains.crypto import PrivateKey
from tests.conftest import Mosquitto
from tests.e2e.harness import (
    SEED,
    A,
    B,
    balance,
    chain,
    eventually,
    key,
    lock,
    network,
    received,
    run_cli,
    send,
    sent_status,
)
from tests.e2e.test_relayer import escrow_matches, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")


async def test_a_sanctioned_recipient_is_refused_on_arrival_and_refunded_by_the_daemon(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        relayer = net.relayer()
        port = await wait_ready(relayer)
        assert net.config is not None
        async with chain(net, A) as a, chain(net, B) as b:
            r = await send(
                b,
                PrivateKey.derive(SEED, B, "gov"),
                "compliance",
                "deny",
                {"address": CAROL.address},
            )
            assert r.ok, r.error
            before = await balance(a, ALICE.address, "usd")
            # the CLI locks, and follows the transfer to its refund (exit 3)
            cli = run_cli(
                "transfer", "70usd", "--from", A, "--to", B, "--recipient", "devnet:carol",
                "--key", "devnet:alice", "--wait", "--wait-timeout", "80s",
                "--config", str(net.config),
            )  # fmt: skip
            assert cli.returncode == 3, cli.stdout + cli.stderr
            assert f"refused by {B}: sanctions (the recipient {CAROL.address}" in cli.stdout
            assert f"refused and refunded on {A}" in cli.stdout
            nonce = int(cli.stdout.split(f"transfer {A}:{B}:", 1)[1].split(",", 1)[0])
            assert await sent_status(a, B, nonce) == "settled"  # refunded: pruned
            assert await b.query("bridge", "received", {"remote_chain": A, "nonce": nonce}) == (
                "expired"
            )
            assert await balance(b, CAROL.address, "chain-a/usd") == 0  # never minted
            assert await balance(a, ALICE.address, "usd") == before
            # the path still works for everyone else
            n2 = await lock(a, ALICE, B, BOB.address, 30, "usd")
            await eventually(lambda: received(b, A, n2), "mint to bob on chain-b")
            assert await balance(b, BOB.address, "chain-a/usd") == 30
        # the source's own policy: a lock to a recipient chain-a sanctions is refused there
        async with chain(net, A) as a:
            r = await send(
                a, PrivateKey.derive(SEED, A, "gov"), "compliance", "deny", {"address": BOB.address}
            )
            assert r.ok, r.error
        cli = run_cli(
            "transfer", "5usd", "--from", A, "--to", B, "--recipient", "devnet:bob",
            "--key", "devnet:alice", "--config", str(net.config),
        )  # fmt: skip
        assert cli.returncode != 0
        assert "compliance rule sanctions refused" in cli.stderr
        escrowed, wrapped = await escrow_matches(net)
        assert escrowed == wrapped == 30
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        assert (
            'interlock_compliance_refusals_total{rule="sanctions",work="transfer:chain-a->chain-b"}'
            " 1.0" in text
        )
        assert relayer.terminate() == 0
