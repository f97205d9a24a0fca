"""The three engines side by side, the issue's done-when: ``interlock devnet`` runs the
shipped ``configs/devnet-engines.toml`` (chain-b BFT, chain-w proof of work, chain-s proof
of stake, one process) and ``interlock start`` the shipped
``configs/relayer-engines.toml`` between them, over a real Mosquitto; only the ports, the
broker and the data dirs are the test's. One transfer on each of the four paths, and an
HTLC swap between the PoS and the PoW chain made with ``interlock swap`` subprocesses
(bob audits alice's lock once final on chain-s; he learns the secret from alice's claim
event on chain-w), all checked through the chains' RPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chains.service.rpc_client import HttpChain
from tests.conftest import Mosquitto
from tests.e2e.harness import (
    CONFIGS,
    DEADLINE,
    RETRY,
    RelayerProcess,
    balance,
    eventually,
    key,
    lock,
    received,
    run_cli,
)
from tests.e2e.test_relayer import wait_ready
from tests.interlock.test_processes import ChainProcess, free_port

pytestmark = pytest.mark.slow

B, W, S = "chain-b", "chain-w", "chain-s"
SHIPPED_PORTS = {B: 26658, W: 26659, S: 26660}
SHIPPED_BUS = "mqtt://127.0.0.1:1883"
ALICE, BOB = key("alice"), key("bob")


class DevnetProcess(ChainProcess):
    """``interlock devnet --config FILE``: every chain of the file in one process."""

    def argv(self) -> list[str]:
        data = ["--data-dir", str(self.data_dir / "chains")]
        return ["devnet", "--config", str(self.config), *data, "--interval", str(self.interval)]


def local_copy(name: str, ports: dict[str, int], bus_url: str, tmp: Path) -> Path:
    """A shipped config with the test's ports, broker and data dir (each replaced where
    the shipped file has it: a file that drifts from them fails here, not silently)."""
    text = (CONFIGS / name).read_text()
    for cid, port in SHIPPED_PORTS.items():
        assert str(port) in text, (name, cid)
        text = text.replace(str(port), str(ports[cid]))
    assert SHIPPED_BUS in text
    text = text.replace(SHIPPED_BUS, bus_url)
    text = text.replace('data_dir = "interlock-data/', f'data_dir = "{tmp}/')
    out = tmp / name
    out.write_text(text)
    return out


def path_create(config: Path, src: str, dst: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:  # PoW and PoS sources need a final block first
        r = run_cli("path", "create", "--config", str(config), "--src", src, "--dst", dst)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"path create {src} -> {dst} failed: {r.stderr}")
        time.sleep(0.3)


@contextlib.asynccontextmanager
async def handles(ports: dict[str, int]) -> AsyncIterator[dict[str, HttpChain]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            cid: await stack.enter_async_context(
                HttpChain(cid, [f"http://127.0.0.1:{port}"], retry=RETRY)
            )
            for cid, port in ports.items()
        }


async def test_a_bft_a_pow_and_a_pos_chain_side_by_side_relay_on_every_path(
    own_mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the swap commands' trust files (first use: this devnet's headers) stay in the test
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    ports = {cid: free_port() for cid in SHIPPED_PORTS}
    devnet_cfg = local_copy("devnet-engines.toml", ports, own_mosquitto.url, tmp_path)
    relayer_cfg = local_copy("relayer-engines.toml", ports, own_mosquitto.url, tmp_path)
    devnet = DevnetProcess(devnet_cfg, tmp_path / "devnet", own_mosquitto.url).start()
    relayer = RelayerProcess(relayer_cfg, tmp_path / "relayer")
    try:
        path_create(relayer_cfg, W, B)
        path_create(relayer_cfg, S, B)
        relayer.start()
        await wait_ready(relayer)
        async with handles(ports) as c:
            engines = {cid: (await h.get_consensus()).engine for cid, h in c.items()}
            assert engines[B] is None
            assert {engines[W].name, engines[S].name} == {"pow", "pos"}  # type: ignore[union-attr]
            # one transfer on each path: locks on chain-w and chain-s to chain-b, and
            # chain-b's euro to each of them
            sent = [
                (W, B, await lock(c[W], ALICE, B, BOB.address, 7, "gbp")),
                (S, B, await lock(c[S], ALICE, B, BOB.address, 11, "chf")),
                (B, W, await lock(c[B], ALICE, W, BOB.address, 13, "eur")),
                (B, S, await lock(c[B], ALICE, S, BOB.address, 17, "eur")),
            ]
            await asyncio.gather(
                *(
                    eventually(lambda d=dst, s=src, n=nonce: received(c[d], s, n), f"{src}->{dst}")
                    for src, dst, nonce in sent
                )
            )
            assert await balance(c[B], BOB.address, f"{W}/gbp") == 7
            assert await balance(c[B], BOB.address, f"{S}/chf") == 11
            assert await balance(c[W], BOB.address, f"{B}/eur") == 13
            assert await balance(c[S], BOB.address, f"{B}/eur") == 17

            # an HTLC swap between the PoS and the PoW chain, as two people make it with
            # `interlock swap` (the timelocks and audits take each engine's finality)
            rpc = [x for port in ports.values() for x in ("--rpc", f"http://127.0.0.1:{port}")]

            def swap(*args: str) -> dict[str, Any]:
                r = run_cli("swap", *args, *rpc, "--json")
                assert r.returncode == 0, r.stdout + r.stderr
                answer: dict[str, Any] = json.loads(r.stdout)
                return answer

            before = (
                await balance(c[S], ALICE.address, "chf"), await balance(c[S], BOB.address, "chf"),
                await balance(c[W], ALICE.address, "gbp"), await balance(c[W], BOB.address, "gbp"),
            )  # fmt: skip
            init = swap("initiate", "devnet:bob", "30chf", "--chain", S, "--key", "devnet:alice",
                        "--locktime", "30m")  # fmt: skip
            hashlock, secret = str(init["hashlock"]), str(init["secret"])
            deadline = time.monotonic() + DEADLINE
            while True:  # bob audits alice's lock, which must first be final on chain-s
                r = run_cli(
                    "swap", "audit", str(init["lock_id"]), "--chain", S, "--amount", "30chf",
                    "--receiver", "devnet:bob", "--min-time", "20m", *rpc,
                )  # fmt: skip
                if r.returncode == 0:
                    break
                assert "final" in r.stderr.lower(), r.stderr
                assert time.monotonic() < deadline, r.stderr
                await asyncio.sleep(0.5)
            part = swap("participate", "devnet:alice", "20gbp", hashlock, "--chain", W,
                        "--key", "devnet:bob", "--locktime", "10m")  # fmt: skip
            swap("redeem", str(part["lock_id"]), secret, "--chain", W, "--key", "devnet:alice")
            found = swap("extract-secret", str(part["lock_id"]), "--chain", W)
            assert found["secret"] == secret  # read from alice's claim event on chain-w
            swap("redeem", str(init["lock_id"]), secret, "--chain", S, "--key", "devnet:bob")
            after = (
                await balance(c[S], ALICE.address, "chf"), await balance(c[S], BOB.address, "chf"),
                await balance(c[W], ALICE.address, "gbp"), await balance(c[W], BOB.address, "gbp"),
            )  # fmt: skip
            assert after == (before[0] - 30, before[1] + 30, before[2] + 20, before[3] - 20)
        assert relayer.terminate() == 0, relayer.stderr()
        assert devnet.terminate() == 0, devnet.stderr()
    finally:
        relayer.cleanup()
        devnet.cleanup()
