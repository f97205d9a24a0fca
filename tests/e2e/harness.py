"""Real processes for the end-to-end tests: Mosquitto, two ``interlock chain start``
processes and ``interlock start`` relayers, checked only through the chains' RPC.

No timing assertions: everything polls with generous deadlines; every process started is
killed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chains.crypto import PrivateKey
from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain
from chains.types import Receipt, Tx
from tests.conftest import Mosquitto
from tests.interlock.test_processes import ChainProcess

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEADLINE = 90.0
SEED = "interlock-devnet"
A, B = "chain-a", "chain-b"
RETRY = Backoff(initial=0.05, maximum=0.5, attempts=40)


def key(name: str) -> PrivateKey:
    return PrivateKey.derive(SEED, name)


def run_cli(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class RelayerProcess(ChainProcess):
    """One ``interlock start`` subprocess with its own data dir (the chain process's
    lifecycle: start, kill9, terminate, cleanup, output files per run)."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        super().__init__(config, data_dir, bus_url="")
        self.api_port = self.port

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def argv(self) -> list[str]:
        return [
            "start",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.api_port),
        ]

    def output(self) -> str:
        return (self.data_dir / f"stdout.{self.runs}").read_text()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def relayer_toml(
    urls: dict[str, list[str]],
    bus_url: str,
    *,
    share_group: str = "",
    kinds: str = "",
    key: str = "devnet:relayer",
    pair: tuple[str, str] = (A, B),
) -> str:
    relay = kinds or '["transfers", "swaps"]'
    chains = "".join(
        f'\n[[chains]]\nid = "{cid}"\nrpc = {rpc!r}\nkey = "{key}"\nblock_interval = 0.2\n'
        for cid, rpc in urls.items()
    ).replace("'", '"')
    src, dst = pair
    return (
        f'[relayer]\nbus_url = "{bus_url}"\nshare_group = "{share_group}"\n'
        f"[api]\nport = 0\n{chains}"
        f'\n[[paths]]\nsrc = "{src}"\ndst = "{dst}"\nrelay = {relay}\n'
        f'\n[[paths]]\nsrc = "{dst}"\ndst = "{src}"\nrelay = ["transfers"]\n'
    )


@dataclass
class Net:
    """Broker, two chains, a relayer config; relayers are started by the test."""

    broker: Mosquitto
    tmp: Path
    chains: dict[str, ChainProcess] = field(default_factory=dict)
    relayers: list[RelayerProcess] = field(default_factory=list)
    config: Path | None = None
    pair: tuple[str, str] = (A, B)
    """The two chains (``configs/<id>.toml``), source first in ``path create``."""
    configs: dict[str, Path] = field(default_factory=dict)
    """A chain's config file instead of the shipped ``configs/<id>.toml``."""

    def chain_config(self, cid: str) -> Path:
        return self.configs.get(cid, CONFIGS / f"{cid}.toml")

    def start(self, interval: float = 0.2) -> Net:
        src, dst = self.pair
        for cid in (src, dst):
            p = ChainProcess(self.chain_config(cid), self.tmp / cid, self.broker.url, interval)
            self.chains[cid] = p.start()
        self.config = self.tmp / "relayer.toml"
        urls = {cid: [p.url] for cid, p in self.chains.items()}
        self.config.write_text(relayer_toml(urls, self.broker.url, pair=self.pair))
        deadline = time.monotonic() + DEADLINE
        while True:  # the chains need a moment to serve RPC and make block 1
            r = run_cli("path", "create", "--config", str(self.config), "--src", src, "--dst", dst)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"path create failed: {r.stderr}")
            time.sleep(0.3)
        return self

    def relayer(self, name: str = "relayer", config: Path | None = None) -> RelayerProcess:
        assert self.config is not None
        r = RelayerProcess(config or self.config, self.tmp / name)
        self.relayers.append(r)
        return r.start()

    def cleanup(self) -> None:
        for r in self.relayers:
            r.cleanup()
        for p in self.chains.values():
            p.cleanup()


@contextlib.contextmanager
def network(
    broker: Mosquitto,
    tmp: Path,
    interval: float = 0.2,
    pair: tuple[str, str] = (A, B),
    configs: dict[str, Path] | None = None,
) -> Iterator[Net]:
    net = Net(broker, tmp, pair=pair, configs=configs or {})
    try:
        yield net.start(interval)
    finally:
        net.cleanup()


# --- talking to the chains -------------------------------------------------------------


@contextlib.asynccontextmanager
async def chain(net: Net, cid: str) -> Any:
    async with HttpChain(cid, [net.chains[cid].url], retry=RETRY) as h:
        yield h


async def send(
    h: HttpChain, signer: PrivateKey, module: str, method: str, args: dict[str, Any]
) -> Receipt:
    nonce = await h.pending_nonce(signer.address)
    return await h.submit(Tx.create(signer, h.chain_id, nonce, module, method, args))


async def lock(
    h: HttpChain,
    signer: PrivateKey,
    dest: str,
    recipient: str,
    amount: int,
    denom: str,
    **extra: Any,
) -> int:
    args = {"denom": denom, "amount": amount, "dest_chain": dest, "recipient": recipient, **extra}
    r = await send(h, signer, "bridge", "lock", args)
    assert r.ok, r.error
    return int(r.events[-1].attributes["nonce"])  # type: ignore[arg-type]


async def received(h: HttpChain, remote: str, nonce: int) -> bool:
    got = await h.query("bridge", "received", {"remote_chain": remote, "nonce": nonce})
    return got is not None


async def sent_status(h: HttpChain, remote: str, nonce: int) -> str:
    """The source's record of a transfer; ``settled`` once pruned (acknowledged or
    refunded)."""
    got = await h.query("bridge", "sent", {"remote_chain": remote, "nonce": nonce})
    if got is None:
        assert nonce < await h.query("bridge", "next_nonce", {"remote_chain": remote})  # type: ignore[operator]
        return "settled"
    assert isinstance(got, dict)
    return str(got["status"])


async def balance(h: HttpChain, address: str, denom: str) -> int:
    got = await h.query("bank", "balance", {"address": address, "denom": denom})
    return int(got)  # type: ignore[arg-type]


async def supply(h: HttpChain, denom: str) -> int:
    got = await h.query("bank", "supply", {"denom": denom})
    return int(got)  # type: ignore[arg-type]


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, deadline: float = DEADLINE
) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            if await check():
                return
        except Exception:  # a chain restarting: try again
            if time.monotonic() > end:
                raise
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.2)
