"""``interlock query`` / ``transfer`` / ``burn`` as subprocesses against real chain
processes, a real Mosquitto and the relayer daemon (the e2e harness), plus the cheap
hostile cases in-process through ``main``.

One network per test (processes are costly on a shared machine): each test walks a whole
story. No timing assertions; every wait is a deadline.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.transfer import Packet
from chains.service.rpc_client import HttpChain
from interlock.cli import main
from interlock.cmd_common import parse_amount, parse_duration
from interlock.cmd_transfer import (
    EXIT_REFUNDED,
    Progress,
    TransferId,
    compute_progress,
)
from interlock.errors import BadAmount, CommandError
from interlock.keys import Keystore
from tests.conftest import Mosquitto, free_port
from tests.e2e.harness import (
    DEADLINE,
    ROOT,
    A,
    B,
    balance,
    chain,
    eventually,
    key,
    network,
    sent_status,
)

ALICE, BOB = key("alice"), key("bob")


# --- pure pieces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [("100usd", (100, "usd")), ("5chain-a/usd", (5, "chain-a/usd")), ("1ab", (1, "ab"))],
)
def test_parse_amount(text: str, want: tuple[int, str]) -> None:
    assert parse_amount(text) == want


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("usd", "expected AMOUNTDENOM"),
        ("100", "no denom"),
        ("1.5usd", "whole units"),
        ("0usd", "at least 1"),
        ("007usd", "leading zeros"),
        ("99999999999999999999usd", "largest amount"),
        ("9223372036854775808usd", "largest amount"),
        ("100u", "expected AMOUNTDENOM"),
        ("100 usd", "expected AMOUNTDENOM"),
        ("-5usd", "expected AMOUNTDENOM"),
        ("100usd$", "expected AMOUNTDENOM"),
    ],
)
def test_parse_amount_refuses(text: str, reason: str) -> None:
    with pytest.raises(BadAmount, match=reason):
        parse_amount(text)


def test_parse_duration() -> None:
    assert parse_duration("60s") == 60
    assert parse_duration("10m") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration("90") == 90
    for bad in ("0s", "1d", "-5s", "1.5m", "", "99999999h"):
        with pytest.raises(CommandError):
            parse_duration(bad)


def test_transfer_id() -> None:
    tid = TransferId.parse("chain-a:chain-b:7")
    assert (tid.src, tid.dst, tid.nonce) == ("chain-a", "chain-b", 7)
    assert str(tid) == "chain-a:chain-b:7"
    for bad in ("chain-a:chain-b:0", "chain-a:chain-a:1", "a:b", "chain-a:chain-b:x", ""):
        with pytest.raises(CommandError):
            TransferId.parse(bad)


def _sent(status: str = "sent") -> dict[str, object]:
    p = Packet(A, B, 1, ALICE.address, BOB.address, "usd", 5, 100)
    return {"packet": p.to_json(), "kind": "escrow", "status": status}


@pytest.mark.parametrize(
    ("sent", "received", "client", "want"),
    [
        ("sent", None, 4, Progress.LOCKED),
        ("sent", None, 5, Progress.RELAYED),
        ("sent", "queued", 9, Progress.QUEUED),
        ("sent", "delivered", 9, Progress.DELIVERED),
        ("sent", "expired", 9, Progress.EXPIRED),
        ("refunded", "expired", 9, Progress.REFUNDED),
    ],
)
def test_compute_progress(sent: str, received: object, client: int, want: Progress) -> None:
    assert compute_progress(_sent(sent), received, client, lock_height=5) is want


def test_compute_progress_of_a_refusal() -> None:
    refusal = {"src_chain": A, "nonce": 1, "rule": "sanctions", "detail": "denied"}
    assert compute_progress(_sent(), "expired", 9, 5, refusal) is Progress.REFUSED
    assert compute_progress(_sent("refunded"), "expired", 9, 5, refusal) is Progress.REFUNDED
    assert compute_progress(_sent(), "expired", 9, 5, "junk") is Progress.EXPIRED


# --- hostile input, no chain needed -----------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path))
    monkeypatch.setenv("INTERLOCK_SCRYPT_N", "16")
    monkeypatch.delenv("INTERLOCK_RPC", raising=False)
    monkeypatch.delenv("INTERLOCK_KEY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path


DEAD = f"http://127.0.0.1:{free_port()}"


def send(amount: str = "100usd", *extra: str, to: str = B) -> list[str]:
    """A transfer command line, from alice on chain-a to bob, plus ``extra``."""
    return [
        "transfer", amount, "--from", A, "--to", to,
        "--recipient", "devnet:bob", "--key", "devnet:alice", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (send("1.5usd", "--rpc", DEAD), "whole units"),
        (send("100"), "no denom"),
        (send(to=A), "same chain"),
        (["transfer", "100usd", "--from", A, "--to", B, "--key", "devnet:alice"],
         "--recipient is required"),
        (["transfer", "100usd", "--from", A, "--to", B, "--recipient", "devnet:bob"],
         "--key is required"),
        (send(), "unknown chain 'chain-a'"),
        (send("100usd", "--rpc", DEAD), "unreachable"),
        (send("100usd", "--recipient", "nobody", "--rpc", DEAD), "no key 'nobody'"),
        (send("100usd", "--timeout", "soon", "--rpc", DEAD), "bad duration"),
        (["transfer", "status", "nonsense"], "bad transfer id"),
        (["transfer", "list", "--limit", "101", "--rpc", DEAD], "--limit: expected 1..100"),
        (["burn", "5usd", "--from", B, "--recipient", "devnet:alice", "--key", "devnet:bob"],
         "not a wrapped denom"),
        (["query", "balance", "devnet:alice", "--rpc", DEAD], "unreachable"),
        (["query", "balance", "devnet:alice", "--rpc", "ftp://x"], "bad --rpc"),
        (["query", "balance", "devnet:alice"], "no chain to ask"),
        (["query", "tx", "abc", "--rpc", DEAD], "bad tx hash"),
        (["query", "block", "high", "--config", str(ROOT / "configs" / "chain-a.toml"),
          "--rpc", DEAD], "unreachable"),
        (["query", "balance", "x", "--config", "/nonexistent.toml"], "no such config file"),
    ],
)  # fmt: skip
def test_hostile_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err


# --- against real chains and the daemon -------------------------------------------------


async def is_settled(h: HttpChain, remote: str, nonce: int) -> bool:
    return await sent_status(h, remote, nonce) == "settled"


async def find_height(h: HttpChain, kind: str, src: str, nonce: int) -> int:
    """The height of ``kind`` for transfer ``nonce`` from ``src``, by reading every block
    (what the index spares the CLI; here it checks the index's answer)."""
    for height in range(1, await h.latest_height() + 1):
        block = await h.get_block(height)
        assert block is not None
        for e in block.events:
            a = e.attributes
            if e.type == kind and a.get("src_chain") == src and a.get("nonce") == nonce:
                return height
    raise AssertionError(f"no {kind} of {src}:{nonce} on {h.chain_id}")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        env=env,
    )


@pytest.mark.slow
async def test_transfer_burn_query_and_refund_from_the_shell(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "INTERLOCK_HOME": str(home),
        "INTERLOCK_SCRYPT_N": "16",
        "INTERLOCK_PASSPHRASE": "pw",
    }
    env.pop("INTERLOCK_RPC", None)
    # alice's devnet key in the keystore, under another name: the keystore path is used
    Keystore(home).add("payer", ALICE, "pw")
    with network(own_mosquitto, tmp_path) as net:
        assert net.config is not None
        conf = ["--config", str(net.config)]
        relayer = net.relayer()
        async with chain(net, A) as a, chain(net, B) as b:
            usd_before = await balance(a, ALICE.address, "usd")

            # lock -> mint, followed to the end
            r = cli(
                "transfer",
                "100usd",
                "--from",
                A,
                "--to",
                B,
                "--recipient",
                "devnet:bob",
                "--key",
                "payer",
                "--timeout",
                "10m",
                "--wait",
                *conf,
                env=env,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            assert "locked 100 usd on chain-a" in r.stdout
            assert "delivered" in r.stdout
            assert await balance(b, BOB.address, "chain-a/usd") == 100
            tid = r.stdout.split("transfer ", 1)[1].split(",", 1)[0]
            assert tid == f"{A}:{B}:1"
            lock_height = int(r.stdout.split(" at height ", 1)[1].split(":", 1)[0])

            # the relayer's acknowledgement prunes chain-a's record: the history is only
            # in the events now, found through both chains' indexes
            await eventually(lambda: is_settled(a, B, 1), "chain-a pruning transfer 1")
            minted_at = await find_height(b, "bridge.minted", A, 1)  # by reading blocks
            r = cli("transfer", "status", tid, *conf, env=env)
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"transfer {tid}: delivered" in r.stdout, r.stdout
            assert f"100 usd from {ALICE.address} to {BOB.address}" in r.stdout, r.stdout
            assert f"locked on {A} at height {lock_height} (event " in r.stdout, r.stdout
            assert f"minted on {B} at height {minted_at} (event " in r.stdout, r.stdout
            assert f"acknowledged on {A} at height" in r.stdout, r.stdout
            r = cli("transfer", "status", tid, "--json", *conf, env=env)
            got = json.loads(r.stdout)
            assert got["sent"] == {}  # pruned: what follows comes from the events
            assert got["packet"]["amount"] == 100
            assert got["events"]["outcome"]["height"] == minted_at
            assert all(e["proven"] for e in got["events"].values())
            r = cli("transfer", "list", "--account", "devnet:bob", "--json", *conf, env=env)
            assert r.returncode == 0, r.stdout + r.stderr
            (row,) = json.loads(r.stdout)["transfers"]
            assert (row["id"], row["amount"], row["status"]) == (tid, 100, "delivered")
            assert row["height"] == lock_height
            r = cli("transfer", "list", "--account", "devnet:carol", *conf, env=env)
            assert r.stdout.strip() == "no transfers", r.stdout

            # burn -> release, --json
            r = cli(
                "burn",
                "40chain-a/usd",
                "--from",
                B,
                "--recipient",
                "devnet:alice",
                "--key",
                "devnet:bob",
                "--wait",
                "--json",
                *conf,
                env=env,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            done = json.loads(r.stdout.strip().splitlines()[-1])
            assert done["status"] == "delivered"
            assert await balance(a, ALICE.address, "usd") == usd_before - 60

            # queries
            r = cli("query", "balance", "devnet:bob", "--chain", B, "--json", *conf, env=env)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["balances"]["chain-a/usd"] == 60
            r = cli("query", "path", "--chain", B, *conf, env=env)
            assert r.returncode == 0, r.stderr
            assert "chain-b <- chain-a" in r.stdout
            r = cli("transfer", "list", "--json", *conf, env=env)
            assert r.returncode == 0, r.stderr
            listed = {t["id"]: t["status"] for t in json.loads(r.stdout)["transfers"]}
            assert listed == {f"{A}:{B}:1": "delivered", f"{B}:{A}:1": "delivered"}
            r = cli("transfer", "list", "--account", "devnet:bob", "--json", *conf, env=env)
            assert r.returncode == 0, r.stderr
            ids = {t["id"] for t in json.loads(r.stdout)["transfers"]}
            assert ids == {f"{A}:{B}:1", f"{B}:{A}:1"}  # bob received one, sent the other

            # hostile, with every chain up: nothing is submitted
            nonce = await a.pending_nonce(ALICE.address)
            bad = {**env, "INTERLOCK_PASSPHRASE": "wrong"}
            for argv, e, message in [
                (["transfer", "5usd", "--key", "payer"], bad, "wrong passphrase"),
                (["transfer", "5usd", "--key", "ghost"], env, "no key 'ghost'"),
                (["transfer", "5eur", "--key", "payer"], env, "less than 5"),
                (["transfer", "9000000000000usd", "--key", "payer"], env, "less than"),
            ]:
                r = cli(*argv, "--from", A, "--to", B, "--recipient", "devnet:bob", *conf, env=e)
                assert r.returncode == 2, r.stdout + r.stderr
                assert r.stderr.count("\n") == 1, r.stderr
                assert message in r.stderr
            assert await a.pending_nonce(ALICE.address) == nonce

            # no relayer: the transfer times out on B; a relayer then carries the expiry
            # back and the source refunds. --wait follows it to exit 3
            assert relayer.terminate() == 0
            waiting = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "interlock.cli",
                "transfer",
                "7usd",
                "--from",
                A,
                "--to",
                B,
                "--recipient",
                "devnet:bob",
                "--key",
                "devnet:alice",
                "--timeout",
                "1s",
                "--wait",
                *conf,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                assert waiting.stdout is not None
                first = (await asyncio.wait_for(waiting.stdout.readline(), DEADLINE)).decode()
                timeout_height = int(first.rsplit("height ", 1)[1])
                deadline = time.monotonic() + DEADLINE
                while await b.latest_height() <= timeout_height:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
                net.relayer("relayer-2")
                # a fresh relayer catches up from genesis over RPC: slow on a loaded machine
                rest, err = await asyncio.wait_for(waiting.communicate(), DEADLINE * 5)
            finally:
                if waiting.returncode is None:
                    waiting.kill()
            out = first + rest.decode()
            assert waiting.returncode == EXIT_REFUNDED, out + err.decode()
            assert "refunded" in out
            assert await balance(a, ALICE.address, "usd") == usd_before - 60
