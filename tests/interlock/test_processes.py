"""Chains as separate processes: ``interlock chain start`` with the shipped configs.

Each test starts real subprocesses on temporary data dirs and free ports (overriding the
shipped files' ``data_dir``, ``rpc.port`` and ``bus.url`` from the command line), drives
them over RPC with :class:`HttpChain`, and never leaves a process behind. No timing
assertions: everything polls with generous deadlines.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import aiohttp
import pytest

from chains.devnet import DevnetChain, build_devnet
from chains.pos import PosParams
from chains.service.bus import open_bus
from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain
from chains.service.subscriber import ChainSubscriber, TrustedState, subscriber_at
from chains.service.wire import SignedHeader, all_chains_filter, decode
from chains.types import Tx
from interlock.config import load_chain_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEADLINE = 60.0
RETRY = Backoff(initial=0.05, maximum=0.5, attempts=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChainProcess:
    """One ``interlock chain start`` subprocess; output goes to files in its data dir."""

    def __init__(self, config: Path, data_dir: Path, bus_url: str, interval: float = 0.2):
        self.config = config
        self.data_dir = data_dir
        self.bus_url = bus_url
        self.interval = interval
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.nofile: int | None = None
        """A lower descriptor limit for the process (RLIMIT_NOFILE), if set."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        """The ``interlock`` command line this process runs."""
        return [
            "chain",
            "start",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--rpc-port",
            str(self.port),
            "--bus-url",
            self.bus_url,
            "--interval",
            str(self.interval),
        ]

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        out = (self.data_dir / f"stdout.{self.runs}").open("wb")
        err = (self.data_dir / f"stderr.{self.runs}").open("wb")
        cmd = [sys.executable, "-m", "interlock.cli", *self.argv()]
        limit = self.nofile

        def lower_limit() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, cwd=ROOT, preexec_fn=lower_limit if limit else None
        )
        out.close()
        err.close()
        return self

    def stderr(self) -> str:
        return (self.data_dir / f"stderr.{self.runs}").read_text()[-3000:]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(DEADLINE)

    def terminate(self, wait: float = DEADLINE) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(wait)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[ChainProcess]]:
    procs: list[ChainProcess] = []
    yield procs
    for p in procs:
        p.cleanup()


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_healthy(chain: HttpChain, proc: ChainProcess, height: int = 1) -> int:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise AssertionError(f"chain process exited: {proc.stderr()}")
        try:
            h = await chain.latest_height()
            if h >= height:
                return h
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"no height {height} within {DEADLINE}s: {proc.stderr()}")


def transfer(chain_id: str, nonce: int, amount: int) -> Tx:
    d = next(c for c in build_devnet([chain_id, "x"]) if c.chain_id == chain_id)
    denom = load_chain_config(CONFIGS / f"{chain_id}.toml").chain.denom
    return Tx.create(
        d.accounts["alice"],
        chain_id,
        nonce,
        "bank",
        "transfer",
        {"to": d.accounts["bob"].address, "denom": denom, "amount": amount},
    )


async def test_kill9_then_restart_continues_without_fork(
    tmp_path: Path, processes: list[ChainProcess]
) -> None:
    proc = ChainProcess(CONFIGS / "chain-a.toml", tmp_path / "a", "memory://").start()
    processes.append(proc)
    async with HttpChain("chain-a", [proc.url], retry=RETRY) as chain:
        await wait_healthy(chain, proc, 2)
        receipt = await chain.submit(transfer("chain-a", 0, 11))
        assert receipt.ok
        old = await wait_healthy(chain, proc, receipt.height + 1)
        before = {h: await chain.get_header(h) for h in (1, receipt.height, old)}
        # a large batch starts the signature worker process: it must not outlive kill -9
        batch = [transfer("chain-a", n, 1) for n in range(1, 41)]
        assert all(isinstance(r, bytes) for r in await chain.submit_batch(batch))
        assert proc.proc is not None
        workers = children(proc.proc.pid)
        assert workers

        proc.kill9()
        for _ in range(int(DEADLINE / 0.1)):
            if not any(is_alive(w) for w in workers):
                break
            await asyncio.sleep(0.1)
        assert not any(is_alive(w) for w in workers), "worker processes outlived kill -9"
        # same data dir, a fresh port: the old one was free for seconds and is in the
        # ephemeral range, so a busy machine may have handed it to an outgoing connection
        proc.port = free_port()
        chain.endpoints = (proc.url,)
        proc.start()
        new = await wait_healthy(chain, proc, old + 2)

        for h, header in before.items():
            assert await chain.get_header(h) == header  # history unchanged: no fork
        after = await chain.get_header(old + 1)
        assert after is not None
        assert after.prev_hash == before[old].hash  # new heights chain onto the old head
        assert new > old
        assert await chain.get_receipt(receipt.tx_hash) == receipt
        bob = build_devnet(["chain-a"])[0].accounts["bob"].address
        alice = build_devnet(["chain-a"])[0].accounts["alice"].address
        # the batch was admitted, not necessarily committed, when the process died: a
        # mempool is not durable, but what committed is all there, consistently
        nonce = await chain.next_nonce(alice)
        assert nonce in (1, 41)
        assert await chain.query("bank", "balance", {"address": bob, "denom": "usd"}) == (
            10**12 + 11 + (nonce - 1)
        )
    assert proc.terminate() == 0, proc.stderr()


async def test_two_chain_processes_publish_to_mqtt_and_a_subscriber_verifies_them(
    tmp_path: Path, processes: list[ChainProcess], mqtt_url: str
) -> None:
    procs = {
        cid: ChainProcess(CONFIGS / f"{cid}.toml", tmp_path / cid, mqtt_url).start()
        for cid in ("chain-a", "chain-b")
    }
    processes.extend(procs.values())
    async with (
        open_bus(mqtt_url) as bus,
        HttpChain("chain-a", [procs["chain-a"].url], retry=RETRY) as a,
        HttpChain("chain-b", [procs["chain-b"].url], retry=RETRY) as b,
    ):
        handles = {"chain-a": a, "chain-b": b}
        for cid, h in handles.items():
            await wait_healthy(h, procs[cid], 1)
        # each chain gets a transfer; each subscriber must verify its block and events
        receipts = {cid: await h.submit(transfer(cid, 0, 3)) for cid, h in handles.items()}
        for cid, handle in handles.items():
            genesis = load_chain_config(CONFIGS / f"{cid}.toml").chain.genesis
            trusted = TrustedState.from_genesis(genesis)
            target = receipts[cid].height + 2
            seen: list[int] = []
            async with ChainSubscriber(bus, handle, trusted=trusted, idle_timeout=0.5) as sub:
                async with asyncio.timeout(DEADLINE):
                    async for vb in sub:
                        assert vb.header.chain_id == cid
                        seen.append(vb.height)
                        if vb.height == receipts[cid].height:
                            assert [e.type for e in vb.events] == ["bank.transfer"]
                        if vb.height >= target:
                            break
            assert seen == list(range(1, target + 1))  # every height, in order, verified
    for cid, p in procs.items():
        assert p.terminate() == 0, (cid, p.stderr())


def run_cli(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_user_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('chain_id = "chain-a"\ndata_dir = "x"\n[rpc]\nport = "high"\n')
    cases = [
        (["chain", "start", "--config", str(bad)], "bad.toml: rpc.port: expected a valid integer"),
        (["chain", "start", "--config", str(tmp_path / "none.toml")], "no such config file"),
        (["chain", "start"], "--config"),
        (
            ["chain", "start", "--config", str(CONFIGS / "chain-a.toml"), "--bus-url", "http://x"],
            "--bus-url",
        ),
        (["devnet", "--config", str(CONFIGS / "devnet.toml"), "--chains", "a,b"], "--chains"),
        (["devnet", "--interval", "-1"], "--interval"),
    ]
    for args, expect in cases:
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (args, r.stderr)
        assert lines[0].startswith("interlock: error: "), lines
        assert expect in lines[0], lines


def test_port_in_use_and_foreign_store_are_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli(
            "chain", "start", "--config", str(CONFIGS / "chain-a.toml"),
            "--data-dir", str(tmp_path / "a"), "--rpc-port", str(port), "--bus-url", "memory://",
        )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("interlock: error: cannot listen on")
    other = tmp_path / "other.toml"
    other.write_text(
        (CONFIGS / "chain-a.toml").read_text().replace('seed = "interlock-devnet"', 'seed = "x"')
    )
    r = run_cli(
        "chain", "start", "--config", str(other), "--data-dir", str(tmp_path / "a"),
        "--rpc-port", "0", "--bus-url", "memory://",
    )  # fmt: skip
    assert r.returncode == 2
    assert "store holds another genesis" in r.stderr.strip().splitlines()[-1]


def test_devnet_without_arguments_still_runs_and_stops(tmp_path: Path) -> None:
    r = run_cli("devnet", "--blocks", "2", "--interval", "0.05", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if "height=2" in line]
    assert {line.split()[0] for line in heads} == {"chain-a", "chain-b"}
    for cid in ("chain-a", "chain-b"):  # where a restart's publisher resumes
        assert int((tmp_path / f"{cid}.published").read_text()) >= 1


def test_devnet_from_config_serves_rpc(tmp_path: Path) -> None:
    cfg = tmp_path / "devnet.toml"
    text = (CONFIGS / "devnet-3.toml").read_text()
    for port in (26680, 26681, 26682):
        text = text.replace(f"port = {port}", "port = 0")
    cfg.write_text(text)
    r = run_cli("devnet", "--config", str(cfg), "--blocks", "2", "--interval", "0.05")
    assert r.returncode == 0, r.stderr
    ready = [line for line in r.stdout.splitlines() if "; rpc http://127.0.0.1:" in line]
    assert [line.split(":")[0] for line in ready] == ["chain-a", "chain-b", "chain-c"]


async def test_sigterm_lets_an_in_flight_submission_commit(
    tmp_path: Path, processes: list[ChainProcess]
) -> None:
    """SIGTERM while a client waits for its commit: the server stops taking work but the
    node keeps producing until that request is answered, then the process exits 0."""
    proc = ChainProcess(CONFIGS / "chain-a.toml", tmp_path / "a", "memory://", interval=1.0)
    processes.append(proc.start())
    alice = build_devnet(["chain-a"])[0].accounts["alice"].address
    async with HttpChain("chain-a", [proc.url], retry=RETRY) as chain:
        await wait_healthy(chain, proc, 1)
        pending = asyncio.create_task(chain.submit(transfer("chain-a", 0, 5)))
        for _ in range(int(DEADLINE / 0.01)):  # poll: admitted once the nonce moves
            if await chain.pending_nonce(alice) > 0:
                break
            await asyncio.sleep(0.01)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        receipt = await pending
        assert receipt.ok
    assert await asyncio.to_thread(proc.proc.wait, DEADLINE) == 0, proc.stderr()


async def test_sigint_exits_cleanly_and_the_restart_resumes(
    tmp_path: Path, processes: list[ChainProcess]
) -> None:
    proc = ChainProcess(CONFIGS / "chain-b.toml", tmp_path / "b", "memory://")
    processes.append(proc.start())
    async with HttpChain("chain-b", [proc.url], retry=RETRY) as chain:
        height = await wait_healthy(chain, proc, 3)
        # a chain process runs every module: htlc and bridge state answer over RPC
        assert await chain.query("htlc", "locks", {}) == []
        assert await chain.query("bridge", "paths", {}) in ([], {})
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.proc.wait, DEADLINE) == 0, proc.stderr()
        proc.start()  # same data dir
        assert await wait_healthy(chain, proc, height + 1) > height
    assert proc.terminate() == 0, proc.stderr()


async def test_devnet_on_mqtt_publishes_every_chain(tmp_path: Path, mqtt_url: str) -> None:
    """``interlock devnet --config`` with an MQTT bus: one connection per chain, each
    chain's signed headers on its own topic, decodable by the documented wire format."""
    cfg = tmp_path / "devnet.toml"
    text = (CONFIGS / "devnet.toml").read_text().replace('url = "memory://"', f'url = "{mqtt_url}"')
    cfg.write_text(text.replace("port = 26670", "port = 0").replace("port = 26671", "port = 0"))
    seen: dict[str, set[int]] = {"chain-a": set(), "chain-b": set()}
    async with open_bus(mqtt_url) as bus, bus.subscribe(all_chains_filter()) as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "interlock.cli", "devnet", "--config", str(cfg),
            "--blocks", "4", "--interval", "0.1",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(DEADLINE):
                async for msg in sub:
                    decoded = decode(msg.topic, msg.payload)
                    if isinstance(decoded, SignedHeader):
                        seen[decoded.header.chain_id].add(decoded.header.height)
                    if all({1, 2, 3} <= hs for hs in seen.values()):
                        break
            _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
            assert proc.returncode == 0, err.decode()[-2000:]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_second_process_on_the_same_data_dir_exits_with_one_line(
    tmp_path: Path, processes: list[ChainProcess]
) -> None:
    """Issue 9: the second started and served RPC, then one failed at its next block
    (``UNIQUE constraint failed``). Now the second refuses at start; the first goes on."""
    first = ChainProcess(CONFIGS / "chain-a.toml", tmp_path / "a", "memory://").start()
    processes.append(first)
    async with HttpChain("chain-a", [first.url], retry=RETRY) as chain:
        h = await wait_healthy(chain, first, 2)
        second = ChainProcess(CONFIGS / "chain-a.toml", tmp_path / "a", "memory://")
        second.runs = first.runs  # its own stdout/stderr files
        processes.append(second.start())
        assert second.proc is not None
        assert second.proc.wait(DEADLINE) == 2
        err = second.stderr().strip()
        assert len(err.splitlines()) == 1, err
        assert "another interlock process" in err
        await wait_healthy(chain, first, h + 3)  # the first never noticed


async def test_a_slowloris_flood_does_not_take_a_chain_process_down(
    tmp_path: Path, processes: list[ChainProcess]
) -> None:
    """Issue 9: 300 trickling connections against a 256-descriptor limit made 6 of 6
    health checks time out and the accept loop log 120k+ tracebacks in 30 s. Now the
    connection cap fits the limit, the header deadline frees the slots, and nothing is
    logged per refused connection."""
    proc = ChainProcess(CONFIGS / "chain-a.toml", tmp_path / "a", "memory://")
    proc.nofile = 256
    processes.append(proc.start())
    async with HttpChain("chain-a", [proc.url], retry=RETRY) as chain:
        h = await wait_healthy(chain, proc, 1)
        stalled: list[asyncio.StreamWriter] = []
        for _ in range(300):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", proc.port)
            except OSError:
                continue
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            stalled.append(w)
        healthy = False
        async with aiohttp.ClientSession() as http:
            for _ in range(int(DEADLINE / 0.2)):  # bounded poll: within the header deadline
                try:
                    async with http.get(
                        proc.url + "/healthz", timeout=aiohttp.ClientTimeout(5)
                    ) as r:
                        if r.status == 200:
                            healthy = True
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        for w in stalled:
            w.close()
        assert healthy, proc.stderr()
        await wait_healthy(chain, proc, h + 2)  # and it kept producing blocks
    assert proc.terminate() == 0, proc.stderr()
    log = (proc.data_dir / f"stderr.{proc.runs}").read_text()
    assert "Traceback" not in log
    assert len(log) < 20_000


@pytest.mark.parametrize(("cid", "denom"), [("chain-w", "gbp"), ("chain-s", "chf")])
async def test_pow_and_pos_chains_run_as_processes_and_their_blocks_verify(
    tmp_path: Path, mqtt_url: str, processes: list[ChainProcess], cid: str, denom: str
) -> None:
    """configs/chain-w.toml (the node mines) and configs/chain-s.toml (the node seals with
    an eligible staked key): the publisher carries each engine's seal, and a verifying
    subscriber over the broker checks it (work; stake and signature) and yields a block
    only once ``finality_depth`` blocks are on top of it."""
    proc = ChainProcess(CONFIGS / f"{cid}.toml", tmp_path / cid, mqtt_url).start()
    cfg = load_chain_config(CONFIGS / f"{cid}.toml").chain.with_interval(proc.interval)
    engine = cfg.genesis.consensus
    assert engine is not None
    depth = engine.finality_depth
    processes.append(proc)
    async with open_bus(mqtt_url) as bus, HttpChain(cid, [proc.url], retry=RETRY) as chain:
        await wait_healthy(chain, proc, 1)
        consensus = await chain.get_consensus()
        assert consensus.engine == engine
        dc = build_devnet([cid], seed="interlock-devnet", denoms={cid: denom})[0]
        receipt = await chain.submit(transfer_on(dc))
        sub = await subscriber_at(bus, chain, 0, idle_timeout=0.5)
        async with sub, asyncio.timeout(DEADLINE):
            async for vb in sub:
                if isinstance(engine, PosParams):
                    assert vb.header.slot is not None
                    assert vb.header.proposer in vb.validators.by_key  # staked
                else:
                    assert vb.header.nonce is not None
                assert vb.commit.signatures == ()
                assert await chain.latest_height() >= vb.height + depth  # final when yielded
                if vb.height == receipt.height:
                    assert [e.type for e in vb.events] == ["bank.transfer"]
                    break
        assert sub.stats.rejected == {}
    assert proc.terminate() == 0, proc.stderr()


def transfer_on(dc: DevnetChain) -> Tx:
    to = dc.accounts["bob"].address
    args = {"to": to, "denom": dc.denom, "amount": 5}
    return Tx.create(dc.accounts["alice"], dc.chain_id, 0, "bank", "transfer", args)
