"""Swap offers end to end: maker and taker are two ``interlock swap ... --wait``
processes against two chain processes, a real Mosquitto and the relayer daemon; balances
are checked over RPC. A stranger's hostile offers are never listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from chains.service.bus import open_bus
from interlock.offers import OFFERS_TOPIC, Leg, encode, make_offer
from tests.conftest import Mosquitto
from tests.e2e.harness import DEADLINE, ROOT, A, B, balance, chain, key, network

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ALICE, BOB, MALLORY = key("alice"), key("bob"), key("mallory")


def cli(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "INTERLOCK_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "swap", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(home: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INTERLOCK_HOME": str(home)} if home else None
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", "swap", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE, env=env,
    )  # fmt: skip


def finish(p: subprocess.Popen[str], timeout: float = DEADLINE) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"timed out:\n{out}\n{err}") from None
    return p.returncode, out, err


async def publish_hostile(url: str) -> None:
    """A stranger's offers: forged, expired, garbage, oversized, under a wrong id."""
    now = time.time_ns() // 1_000_000
    good = make_offer(
        MALLORY, Leg(A, "usd", 1, MALLORY.address), Leg(B, "eur", 1_000, MALLORY.address),
        expires_ms=now + 600_000,
    )  # fmt: skip
    forged = json.loads(encode(good))
    forged["give"]["amount"] = 1_000_000
    expired = make_offer(
        MALLORY, Leg(A, "usd", 1, MALLORY.address), Leg(B, "eur", 1, MALLORY.address),
        expires_ms=now - 1,
    )  # fmt: skip
    async with open_bus(url) as bus:
        for tid, payload in [
            (good.offer_id.hex(), orjson.dumps(forged)),
            (expired.offer_id.hex(), encode(expired)),
            ("ab" * 32, b"garbage"),
            ("cd" * 32, b"{" * 10_000),
            ("ef" * 32, encode(good)),  # a valid offer under another id
        ]:
            await bus.publish(OFFERS_TOPIC.format(offer_id=tid), payload, retain=True)


async def test_maker_and_taker_swap_through_offers(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        net.relayer()
        assert net.config is not None
        common = ["--config", str(net.config), "--bus-url", own_mosquitto.url]
        async with chain(net, A) as ha, chain(net, B) as hb:
            before = (
                await balance(ha, ALICE.address, "usd"), await balance(hb, ALICE.address, "eur"),
                await balance(ha, BOB.address, "usd"), await balance(hb, BOB.address, "eur"),
            )  # fmt: skip
            await publish_hostile(own_mosquitto.url)
            # one home for both keys, as one person trying a swap between two of their own
            # keys has it: each side keeps its own store
            maker = cli(
                tmp_path / "home", "offer", "--give", f"100usd@{A}", "--take", f"92eur@{B}",
                "--key", "devnet:alice", "--expires", "5m", "--wait", *common,
            )  # fmt: skip
            assert maker.stdout is not None
            line = maker.stdout.readline()
            assert line.startswith("offer "), line + (maker.stderr.read() if maker.stderr else "")
            offer_id = line.split()[1]

            listed = run(None, "offers", "--json", "--bus-url", own_mosquitto.url)
            assert listed.returncode == 0, listed.stderr
            shown = json.loads(listed.stdout)
            assert [o["offer_id"] for o in shown["offers"]] == [offer_id]
            assert shown["refused"] >= 4

            taker = cli(tmp_path / "home", "accept", offer_id, "--key", "devnet:bob", "--wait",
                        *common)  # fmt: skip
            # the taker is killed -9 once its swap is stored; `swap status --wait` resumes
            # it from its store (the maker's store is in the same home: --key picks bob's)
            assert taker.stdout is not None
            opened = ""
            while not opened.startswith("  swap "):
                opened = taker.stdout.readline()
                assert opened, "the taker ended before opening its swap"
            taker.kill()
            taker.wait()
            swap_id = opened.split()[1].rstrip(";")
            taker = cli(tmp_path / "home", "status", swap_id, "--wait", "--key", "devnet:bob",
                        "--config", str(net.config))  # fmt: skip
            try:
                code_t, out_t, err_t = finish(taker)
            except AssertionError as exc:  # the maker's side says why the taker waited
                maker.kill()
                out_m, err_m = maker.communicate()
                raise AssertionError(f"{exc}\nthe maker:\n{out_m}\n{err_m}") from None
            assert code_t == 0, out_t + err_t
            code_m, out_m, err_m = finish(maker)
            assert code_m == 0, out_m + err_m
            assert "redeemed" in out_t
            assert "redeemed" in out_m

            after = (
                await balance(ha, ALICE.address, "usd"), await balance(hb, ALICE.address, "eur"),
                await balance(ha, BOB.address, "usd"), await balance(hb, BOB.address, "eur"),
            )  # fmt: skip
            assert after == (before[0] - 100, before[1] + 92, before[2] + 100, before[3] - 92)

        r = run(tmp_path / "home", "list", "--json")
        rows = json.loads(r.stdout)["swaps"]
        assert sorted(row["role"] for row in rows) == ["initiator", "participant"]
        assert {row["state"] for row in rows} == {"redeemed"}
        assert {row["offer_id"] for row in rows} == {offer_id}
        assert len({row["swap_id"] for row in rows}) == 1
        r = run(tmp_path / "home", "status", rows[0]["swap_id"][:12])
        assert r.returncode == 0, r.stderr
        assert "(initiator): redeemed" in r.stdout
        assert "(participant): redeemed" in r.stdout
