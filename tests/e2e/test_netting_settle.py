"""A netting round among three banks, settled across two chains by the relayer daemon.

Mosquitto, ``interlock chain start`` for chain-a and chain-b, ``interlock path create``,
``interlock start`` (the daemon), and each bank as an ``interlock netting run --round
FILE --settle --wait`` process over the broker. Bank A and bank C hold ``usd`` on
chain-a, bank B holds the bridged ``chain-a/usd`` on chain-b. Everything is checked
through the chains' RPC.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from chains.types import Tx
from interlock.cmd_transfer import Progress, TransferId
from interlock.netting_round import load_round_file
from interlock.netting_settle import SettlementJournal, compute_leg_call, pay_leg, wait_for_transfer
from netting.plan import Leg, LegKind, Transfer
from netting.protocol import compute_plain_netting
from tests.conftest import Mosquitto
from tests.e2e.harness import (
    CONFIGS,
    DEADLINE,
    ROOT,
    A,
    B,
    Net,
    balance,
    chain,
    eventually,
    key,
    network,
    supply,
)
from tests.e2e.test_relayer import client_height, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")
BANKS = [("bank-a", ALICE, A), ("bank-b", BOB, B), ("bank-c", CAROL, A)]
WRAPPED = "chain-a/usd"


class Bank:
    """One ``interlock netting run`` process; its output in files."""

    def __init__(self, tmp: Path, name: str, argv: list[str]) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "interlock.cli", *argv],
                cwd=ROOT,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait(self) -> int:
        return self.proc.wait(timeout=3 * DEADLINE)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def report(self) -> dict[str, object]:
        out: dict[str, object] = json.loads(self.stdout().strip().splitlines()[-1])
        return out


def write_round(net: Net, name: str, *, start_in: float = 8.0, phase_s: float = 30.0) -> Path:
    """The shipped round file (configs/netting-round.toml) with its own id and start, as
    the docs make it; every process gets ``start_in`` seconds to import and connect
    (messages are retained: a late one still catches up)."""
    path = net.tmp / f"{name}.toml"
    rid = f"{name}-{uuid.uuid4().hex[:6]}"
    text = (CONFIGS / "netting-round.toml").read_text()
    text = re.sub(r"(?m)^id = .*$", f'id = "{rid}"', text)
    text = re.sub(r"(?m)^start = .*$", f"start = {time.time() + start_in}", text)
    text = re.sub(r"(?m)^phase_s = .*$", f"phase_s = {phase_s}", text)
    assert text.count(rid) == 1
    path.write_text(text)
    rf = load_round_file(path)
    assert [(p.name, p.public_key, p.chain) for p in rf.parties] == [
        (name, k.public_key, c) for name, k, c in BANKS
    ]
    return path


def bank(
    net: Net, round_file: Path, i: int, owes: list[int], *extra: str, wait: str = "3m"
) -> Bank:
    name, k, _ = BANKS[i]
    assert net.config is not None
    argv = [
        *("netting", "run", "--round", str(round_file), "--bus-url", net.broker.url),
        *("--key", f"devnet:{k_name(k)}", "--owes", ",".join(map(str, owes))),
        *("--config", str(net.config), "--data-dir", str(net.tmp / f"journal-{name}")),
        *("--settle", "--wait", "--wait-timeout", wait, "--json", *extra),
    ]
    return Bank(net.tmp, f"{name}-{round_file.stem}-{time.monotonic_ns()}", argv)


def k_name(k: PrivateKey) -> str:
    return {ALICE.address: "alice", BOB.address: "bob", CAROL.address: "carol"}[k.address]


async def holdings(net: Net) -> dict[str, int]:
    """Every bank's usd on chain-a and chain-a/usd on chain-b, the escrow and the wrapped
    supply."""
    async with chain(net, A) as a, chain(net, B) as b:
        escrow = str(await a.query("bridge", "escrow_address", {"remote_chain": B}))
        out = {"escrow": await balance(a, escrow, "usd"), "wrapped": await supply(b, WRAPPED)}
        for name, k, _ in BANKS:
            out[f"{name}@{A}"] = await balance(a, k.address, "usd")
            out[f"{name}@{B}"] = await balance(b, k.address, WRAPPED)
        return out


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before if after[k] != before[k]}


async def test_three_banks_net_and_settle_across_two_chains_through_the_daemon(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        daemon = net.relayer()
        await wait_ready(daemon)
        start = await holdings(net)

        # round 1: A pays C on chain-a (a bank transfer) and B on chain-b (lock -> mint);
        # the daemon is killed -9 while the lock is in flight, and restarted
        book = [[0, 70, 20], [50, 0, 40], [10, 30, 0]]
        positions = compute_plain_netting(book)
        assert positions == (-30, 10, 20)
        r1 = write_round(net, "eod")
        banks = [bank(net, r1, i, book[i]) for i in range(3)]
        async with chain(net, A) as a, chain(net, B) as b:

            async def carol_paid() -> bool:  # leg 0 is in: the lock (leg 1) comes next
                return await balance(a, CAROL.address, "usd") == start[f"bank-c@{A}"] + 20

            await eventually(carol_paid, "bank-a's first leg", deadline=3 * DEADLINE)
            daemon.kill9()

            async def locked() -> bool:
                nxt = await a.query("bridge", "next_nonce", {"remote_chain": B})
                return isinstance(nxt, int) and nxt > 1

            await eventually(locked, "bank-a's lock on chain-a")
            assert await balance(b, BOB.address, WRAPPED) == 0  # in flight: nobody relays
        daemon.start()
        codes = [p.wait() for p in banks]
        assert codes == [0, 0, 0], [p.stderr() for p in banks]
        for i, p in enumerate(banks):
            out = p.report()
            assert out["settled"] is True
            assert out["me"] == i
            assert tuple(out["positions"]) == positions  # type: ignore[arg-type]
            assert (out["gross"], out["net"]) == (220, 30)
            assert out["moved"] == positions[i]
        legs = banks[0].report()["legs"]
        assert [(leg["kind"], leg["status"]) for leg in legs] == [  # type: ignore[union-attr]
            ("transfer", "delivered"),
            ("lock", "delivered"),
        ]
        after1 = await holdings(net)
        assert moved(start, after1) == {
            f"bank-a@{A}": -30,
            f"bank-c@{A}": +20,
            f"bank-b@{B}": +10,
            "escrow": +10,
            "wrapped": +10,
        }
        assert after1["escrow"] == after1["wrapped"]

        # bank A runs the same command again (say, after a crash): nothing paid twice
        again = bank(net, r1, 0, book[0])
        assert again.wait() == 0, again.stderr()
        assert [leg["resumed"] for leg in again.report()["legs"]] == [True, True]  # type: ignore[union-attr]
        assert await holdings(net) == after1

        # round 2: B pays A from chain-b (burn -> release)
        book2 = [[0, 0, 0], [10, 0, 0], [0, 0, 0]]
        r2 = write_round(net, "eod2")
        banks = [bank(net, r2, i, book2[i]) for i in range(3)]
        assert [p.wait() for p in banks] == [0, 0, 0], [p.stderr() for p in banks]
        assert [leg["kind"] for leg in banks[1].report()["legs"]] == ["burn"]  # type: ignore[union-attr]
        after2 = await holdings(net)
        assert moved(after1, after2) == {
            f"bank-a@{A}": +10,
            f"bank-b@{B}": -10,
            "escrow": -10,
            "wrapped": -10,
        }

        # round 3, hostile: B owes C more than it holds: one line, exit 2, nothing sent;
        # C waits for a payment that never comes (exit 4), A has nothing to do
        async with chain(net, B) as b:
            nonce = await b.next_nonce(BOB.address)
        book3 = [[0, 0, 0], [0, 0, 5], [0, 0, 0]]
        r3 = write_round(net, "eod3")
        banks = [bank(net, r3, i, book3[i], wait="20s") for i in range(3)]
        codes = [p.wait() for p in banks]
        assert codes == [0, 2, 4], [p.stderr() for p in banks]
        err = banks[1].stderr().strip()
        assert err.startswith("interlock: error:")
        assert "nothing submitted" in err
        assert len(err.splitlines()) == 1
        assert len(banks[2].stderr().strip().splitlines()) == 1
        async with chain(net, B) as b:
            assert await b.next_nonce(BOB.address) == nonce
        assert await holdings(net) == after2

        # a lock leg the bridge refunded (it timed out on chain-b) is paid anew, once
        rf = load_round_file(r3)
        leg = Leg(LegKind.LOCK, A, B, Transfer(0, 1, 3))
        journal = SettlementJournal(net.tmp / "refunded.sqlite")
        async with chain(net, A) as a, chain(net, B) as b:
            handles = {A: a, B: b}
            module, method, args = compute_leg_call(leg, rf)
            args["timeout_height"] = await client_height(a, B) + 1
            nonce = await a.pending_nonce(ALICE.address)
            tx = Tx.create(ALICE, A, nonce, module, method, args)
            journal.put_leg(rf.bus_round_id, ALICE.public_key, 0, tx)
            first = await a.submit(tx)
            assert first.ok, first.error
            tid = TransferId(A, B, int(str(first.events[-1].attributes["nonce"])))
            end = time.monotonic() + DEADLINE
            assert await wait_for_transfer(a, b, tid, end) is Progress.REFUNDED
            assert await holdings(net) == after2
            paid = await pay_leg(handles, ALICE, journal, rf, 0, leg, end)
            assert not paid.resumed
            assert paid.transfer is not None
            assert paid.transfer != tid
            assert await wait_for_transfer(a, b, paid.transfer, end) is Progress.DELIVERED
            again = await pay_leg(handles, ALICE, journal, rf, 0, leg, end)
            assert again.resumed
            assert again.receipt.tx_hash == paid.receipt.tx_hash
        journal.close()
        assert moved(after2, await holdings(net)) == {
            f"bank-a@{A}": -3,
            f"bank-b@{B}": +3,
            "escrow": +3,
            "wrapped": +3,
        }


async def test_banks_whose_round_files_differ_pay_nothing(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        before = await holdings(net)
        good = write_round(net, "eod", start_in=6, phase_s=4)
        odd = net.tmp / "odd.toml"  # bank C was told bank B holds on chain-a
        odd.write_text(good.read_text().replace(f'chain = "{B}"', f'chain = "{A}"'))
        book = [[0, 70, 20], [50, 0, 40], [10, 30, 0]]
        banks = [bank(net, good if i < 2 else odd, i, book[i]) for i in range(3)]
        codes = [p.wait() for p in banks]
        assert all(c == 2 for c in codes), [p.stderr() for p in banks]
        for p in banks:
            err = p.stderr().strip()
            assert "round failed" in err
            assert "compare it with the other banks'" in err
            assert len(err.splitlines()) == 1
        await asyncio.sleep(1)
        assert await holdings(net) == before
