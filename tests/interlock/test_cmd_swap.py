"""``interlock swap`` verbs as subprocesses against two real chain processes (no relayer:
a manual swap needs none), and the cheap hostile cases in-process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from chains.service.rpc_client import HttpChain
from interlock.cli import main
from tests.conftest import free_port
from tests.interlock.test_processes import ChainProcess

ROOT = Path(__file__).resolve().parents[2]
SEED = "interlock-devnet"
ALICE, BOB = PrivateKey.derive(SEED, "alice"), PrivateKey.derive(SEED, "bob")
DEADLINE = 90.0
DEAD = f"http://127.0.0.1:{free_port()}"
HEX = "ab" * 32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["initiate", "devnet:bob", "1.5usd", "--key", "devnet:alice"], "whole units"),
        (["initiate", "devnet:bob", "5usd", "--key", "devnet:alice", "--locktime", "x"],
         "no chain to ask"),
        (["initiate", "ghost", "5usd", "--key", "devnet:alice", "--rpc", DEAD], "no key"),
        (["participate", "devnet:alice", "5eur", "12", "--key", "devnet:bob"], "bad hashlock"),
        (["redeem", "xyz", HEX, "--key", "devnet:bob"], "bad lock id"),
        (["redeem", HEX, "00", "--key", "devnet:bob"], "bad secret"),
        (["refund", HEX, "--key", "devnet:bob", "--rpc", DEAD], "unreachable"),
        (["extract-secret", "1234"], "bad lock id"),
        (["audit", HEX, "--min-time", "forever"], "bad duration"),
        (["audit", HEX, "--trust", "chain-a:0:" + HEX, "--rpc", DEAD], "bad --trust"),
    ],
)  # fmt: skip
def test_hostile_one_line(
    quiet: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["swap", *argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The commands' $INTERLOCK_HOME (trust files, keys): the test's own."""
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def chains(tmp_path: Path) -> Iterator[dict[str, ChainProcess]]:
    procs = {
        cid: ChainProcess(ROOT / "configs" / f"{cid}.toml", tmp_path / cid, "memory://", 0.2)
        for cid in ("chain-a", "chain-b")
    }
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            p.cleanup()


def interlock(*argv: str) -> subprocess.CompletedProcess[str]:
    """``interlock ARGV...`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def swap(rpc: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return interlock("swap", *args, *rpc)


def ok(r: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert r.returncode == 0, r.stdout + r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def refused(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr


async def balance(url: str, cid: str, who: PrivateKey, denom: str) -> int:
    async with HttpChain(cid, [url]) as h:
        got = await h.query("bank", "balance", {"address": who.address, "denom": denom})
    assert isinstance(got, int)
    return got


async def wait_ready(url: str, cid: str) -> None:
    end = time.monotonic() + DEADLINE
    while True:
        try:
            async with HttpChain(cid, [url]) as h:
                if await h.latest_height() >= 2:
                    return
        except Exception:
            if time.monotonic() > end:
                raise
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_a_manual_swap_and_a_refund(chains: dict[str, ChainProcess]) -> None:
    a, b = chains["chain-a"].url, chains["chain-b"].url
    await wait_ready(a, "chain-a")
    await wait_ready(b, "chain-b")
    rpc = ["--rpc", a, "--rpc", b, "--json"]
    usd, eur = await balance(a, "chain-a", BOB, "usd"), await balance(b, "chain-b", ALICE, "eur")

    init = ok(swap(rpc, "initiate", "devnet:bob", "100usd", "--chain", "chain-a",
                   "--key", "devnet:alice", "--locktime", "10m"))  # fmt: skip
    lock_a, hashlock, secret = str(init["lock_id"]), str(init["hashlock"]), str(init["secret"])
    # bob audits alice's lock: right terms pass, wrong ones are named
    ok(swap(rpc, "audit", lock_a, "--chain", "chain-a", "--amount", "100usd",
            "--receiver", "devnet:bob", "--hashlock", hashlock, "--min-time", "5m"))  # fmt: skip
    refused(swap(rpc, "audit", lock_a, "--chain", "chain-a", "--amount", "101usd"), "amount")
    refused(swap(rpc, "audit", lock_a, "--chain", "chain-a", "--receiver", "devnet:carol"),
            "receiver")  # fmt: skip
    part = ok(swap(rpc, "participate", "devnet:alice", "92eur", hashlock, "--chain", "chain-b",
                   "--key", "devnet:bob", "--locktime", "5m"))  # fmt: skip
    lock_b = str(part["lock_id"])
    # a second lock on the same hashlock, a wrong secret, an early refund: nothing submitted
    refused(swap(rpc, "participate", "devnet:alice", "1eur", hashlock, "--chain", "chain-b",
                 "--key", "devnet:bob"), "a hashlock is used once")  # fmt: skip
    refused(swap(rpc, "redeem", lock_b, "00" * 32, "--chain", "chain-b", "--key", "devnet:alice"),
            "does not open")  # fmt: skip
    refused(swap(rpc, "refund", lock_b, "--chain", "chain-b", "--key", "devnet:bob"),
            "refundable from height")  # fmt: skip
    refused(swap(rpc, "extract-secret", lock_b, "--chain", "chain-b"), "no secret revealed")
    # alice redeems on B, revealing the secret; bob reads it there and redeems on A
    ok(swap(rpc, "redeem", lock_b, secret, "--chain", "chain-b", "--key", "devnet:alice"))
    got = ok(swap(rpc, "extract-secret", lock_b, "--chain", "chain-b", "--hashlock", hashlock))
    assert got["secret"] == secret
    ok(swap(rpc, "redeem", lock_a, secret, "--chain", "chain-a", "--key", "devnet:bob"))
    refused(swap(rpc, "redeem", lock_a, secret, "--chain", "chain-a", "--key", "devnet:bob"),
            "already claimed")  # fmt: skip
    assert await balance(a, "chain-a", BOB, "usd") == usd + 100
    assert await balance(b, "chain-b", ALICE, "eur") == eur + 92

    # a lock nobody redeems is refunded from its timelock on
    short = ok(swap(rpc, "initiate", "devnet:bob", "5usd", "--chain", "chain-a",
                    "--key", "devnet:alice", "--locktime", "1s"))  # fmt: skip
    end = time.monotonic() + DEADLINE
    while True:
        r = swap(rpc, "refund", str(short["lock_id"]), "--chain", "chain-a", "--key",
                 "devnet:alice")  # fmt: skip
        if r.returncode == 0:
            break
        refused(r, "refundable from height")
        assert time.monotonic() < end
        await asyncio.sleep(0.2)
    assert json.loads(r.stdout)["status"] == "refunded"


@pytest.mark.slow
async def test_audit_on_a_pow_chain_waits_for_the_engines_depth(tmp_path: Path, home: Path) -> None:
    """chain-w (proof of work) as a process, final 30 blocks deep here: a fresh lock fails
    the audit (a reorganisation could still undo it) and passes once 30 blocks are on it."""
    text = (ROOT / "configs" / "chain-w.toml").read_text()
    config = tmp_path / "chain-w.toml"
    config.write_text(text.replace("finality_depth = 6", "finality_depth = 30"))
    proc = ChainProcess(config, tmp_path / "chain-w", "memory://", 0.2)
    try:
        proc.start()
        await wait_ready(proc.url, "chain-w")
        rpc = ["--rpc", proc.url, "--json"]
        init = ok(swap(rpc, "initiate", "devnet:bob", "100gbp", "--key", "devnet:alice",
                       "--locktime", "10m"))  # fmt: skip
        lock = str(init["lock_id"])
        # no anchor is given: the first run that finds a final header trusts it, loudly,
        # and records it (the trust file); every later run verifies from there, quietly
        warned, refusals = [], 0
        end = time.monotonic() + DEADLINE
        while True:
            r = swap(rpc, "audit", lock, "--amount", "100gbp")
            lines = r.stderr.splitlines()
            warned += [x for x in lines if x.startswith("WARNING: chain-w: no trust anchor")]
            if r.returncode == 0:
                break
            assert r.returncode == 2, r.stdout + r.stderr
            assert "final at 30" in lines[-1]
            assert len(lines) == 1 or lines[0] in warned
            refusals += 1
            assert time.monotonic() < end
            await asyncio.sleep(0.5)
        assert json.loads(r.stdout)["audit"] == "ok"
        assert refusals >= 1  # the fresh lock was refused until final
        assert len(warned) == 1
        assert (home / "trust" / "chain-w.json").exists()
        again = swap(rpc, "audit", lock, "--amount", "100gbp")
        assert json.loads(again.stdout)["proof"]["anchor"].startswith("first use of chain-w")
        assert again.stderr == ""
    finally:
        proc.cleanup()
