"""What the user's commands share: reaching chains, reading amounts and durations, keys,
and printing.

**Reaching a chain.** A command finds a chain's RPC from, in this order:

* ``--rpc URL`` (repeatable): an RPC endpoint; its chain id is read from its ``/status``;
* ``--config FILE`` (repeatable): a chain file (``configs/chain-a.toml``: ``[rpc]`` host
  and port), a devnet file (every ``[[chains]]`` entry with an ``rpc``), or a relayer file
  (every ``[[chains]]`` entry's ``rpc`` list);
* ``$INTERLOCK_RPC``: comma-separated URLs, read like ``--rpc``.

A chain that none of them names is an :class:`~interlock.errors.UnknownChain`. The devnet
seed for ``devnet:NAME`` keys is ``--seed``, else the seed of the first ``--config`` file,
else ``interlock-devnet``.

Everything here is the shell: parsing is pure (``parse_amount``, ``parse_duration``) and
the rest only looks things up.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from chains.chain import Genesis
from chains.crypto import PrivateKey
from chains.errors import ConfigError
from chains.handle import ChainHandle
from chains.module import MAX_AMOUNT
from chains.service.configfile import read_toml
from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain, RpcUnavailable
from chains.service.verified import VerifiedReader
from chains.types import Receipt, Tx
from interlock.config import DEFAULT_SEED, load_chain_config, load_devnet_config
from interlock.errors import BadAmount, ChainUnreachable, CommandError, UnknownChain
from interlock.keys import DEVNET_PREFIX, Keystore, interlock_home, load_key
from interlock.trust import ProvenLocks, open_reader, parse_trust_flag

__all__ = [
    "Chains",
    "parse_amount",
    "parse_duration",
    "run_async",
]

RPC_ENV = "INTERLOCK_RPC"

CLI_RETRY = Backoff(initial=0.05, maximum=0.5, attempts=3)
"""A person at a terminal wants a dead endpoint reported in about a second, not retried
for many (the daemon keeps the patient default)."""

_AMOUNT = re.compile(r"([0-9]+)([A-Za-z][A-Za-z0-9/:._-]{1,127})")
_DURATION = re.compile(r"([0-9]{1,9})(s|m|h|)")


def parse_amount(text: str) -> tuple[int, str]:
    """``100usd`` -> ``(100, "usd")``; ``5chain-a/usd`` -> ``(5, "chain-a/usd")``.
    Whole base units only: the ledger has no decimals."""
    m = _AMOUNT.fullmatch(text)
    if m is None:
        if re.fullmatch(r"[0-9]+[.,][0-9]+.*", text):
            raise BadAmount(text, "whole units only (the ledger has no decimals)")
        if re.fullmatch(r"[0-9]+", text):
            raise BadAmount(text, "no denom: write it after the number, e.g. 100usd")
        raise BadAmount(
            text,
            "expected AMOUNTDENOM, e.g. 100usd (denom: a letter, then 1..127 of [A-Za-z0-9/:._-])",
        )
    digits, denom = m.groups()
    if len(digits) > 19 or int(digits) > MAX_AMOUNT:
        raise BadAmount(text, f"more than the largest amount {MAX_AMOUNT}")
    if digits != "0" and digits.startswith("0"):
        raise BadAmount(text, "leading zeros")
    if int(digits) == 0:
        raise BadAmount(text, "the amount must be at least 1")
    return int(digits), denom


def parse_duration(text: str) -> float:
    """``60s``, ``10m``, ``2h`` or plain seconds -> seconds (at least one second)."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise CommandError(f"bad duration {text[:40]!r}: expected e.g. 90s, 10m or 2h")
    value = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 1 <= value <= 30 * 86400:
        raise CommandError(f"bad duration {text[:40]!r}: expected 1s .. 30 days")
    return float(value)


# --- reaching chains ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainSource:
    """Where a chain's RPC is, as a config file names it."""

    chain_id: str
    """The chain."""
    urls: tuple[str, ...]
    """Its endpoints."""
    seed: str
    """The file's devnet seed."""
    genesis: Genesis | None = None
    """The chain's genesis, when the file determines it (a chain or devnet file): the
    trust anchor of verified reads (``interlock.trust``)."""
    path: Path | None = None
    """The file."""


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def sources_from_config(path: Path) -> list[ChainSource]:
    """The chains a chain, devnet or relayer file names, with their endpoints."""
    data = read_toml(path)
    if "chain_id" in data:
        cfg = load_chain_config(path)
        rpc = cfg.chain.rpc
        if rpc is None:
            raise ConfigError(f"{path}: the chain has no [rpc]: nothing to reach")
        seed = data.get("seed", DEFAULT_SEED)
        url = (_url(rpc.host, rpc.port),)
        return [ChainSource(cfg.chain.chain_id, url, str(seed), cfg.chain.genesis, path)]
    if "relayer" in data:
        from relayer.config import load_relayer_config

        rcfg = load_relayer_config(path)
        return [ChainSource(c.chain_id, c.rpc, c.seed) for c in rcfg.chains.values()]
    dcfg = load_devnet_config(path)
    seed = str(data.get("seed", DEFAULT_SEED))
    return [
        ChainSource(c.chain_id, (_url(c.rpc.host, c.rpc.port),), seed, c.genesis, path)
        for c in dcfg.chains
        if c.rpc is not None
    ]


@dataclass
class Chains:
    """The chains a command may reach, and its keys; ``async with`` closes connections."""

    urls: list[str]
    """Endpoints whose chain id is learnt from their ``/status``."""
    sources: dict[str, ChainSource]
    """Chains named by config files."""
    seed: str
    """Devnet seed."""
    home: Path
    """Keystore home."""
    pinned: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """``--trust CHAIN:HEIGHT:HASH``: a trusted header per chain."""
    _open: dict[str, HttpChain] = field(default_factory=dict)
    _readers: dict[str, VerifiedReader] = field(default_factory=dict)
    _probed: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Chains:
        sources: dict[str, ChainSource] = {}
        for path in args.config:
            for s in sources_from_config(path):
                sources.setdefault(s.chain_id, s)
        urls = list(args.rpc)
        env = os.environ.get(RPC_ENV, "")
        urls += [u.strip() for u in env.split(",") if u.strip()]
        for u in urls:
            if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", u):
                raise CommandError(f"bad --rpc {u[:80]!r}: expected http://HOST:PORT")
        first = next(iter(sources.values()), None)
        seed = args.seed or (first.seed if first else DEFAULT_SEED)
        home = args.home or interlock_home()
        pinned: dict[str, tuple[int, bytes]] = {}
        for text in getattr(args, "trust", None) or ():
            cid, height, digest = parse_trust_flag(text)
            pinned[cid] = (height, digest)
        return cls(urls=urls, sources=sources, seed=seed, home=home, pinned=pinned)

    async def __aenter__(self) -> Chains:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for h in self._open.values():
            await h.close()

    async def probe(self) -> None:
        """Learn the chain id of each bare ``--rpc`` URL."""
        if self._probed:
            return
        self._probed = True
        for url in self.urls:
            try:
                h = await HttpChain.connect([url], retry=CLI_RETRY, timeout=5.0)
            except RpcUnavailable as exc:
                raise ChainUnreachable(url, exc.message) from None
            if h.chain_id in self._open:
                await h.close()
                continue
            self._open[h.chain_id] = h

    def known(self) -> tuple[str, ...]:
        return tuple(sorted({*self._open, *self.sources}))

    async def get(self, chain_id: str) -> HttpChain:
        """A handle on ``chain_id`` (raises UnknownChain / ChainUnreachable)."""
        await self.probe()  # an explicit --rpc wins over a config file's endpoint
        if chain_id in self._open:
            return self._open[chain_id]
        src = self.sources.get(chain_id)
        if src is None:
            raise UnknownChain(chain_id, self.known())
        h = HttpChain(chain_id, src.urls, retry=CLI_RETRY, timeout=5.0)
        try:
            await reachable(h)
        except BaseException:
            await h.close()
            raise
        self._open[chain_id] = h
        return h

    async def only(self) -> HttpChain:
        """The one chain named, for commands that need no ``--chain``."""
        await self.probe()
        ids = self.known()
        if len(ids) != 1:
            if not ids:
                raise CommandError("no chain to ask: give --rpc URL or --config FILE")
            raise CommandError(f"several chains ({', '.join(ids)}): pick one with --chain")
        return await self.get(ids[0])

    async def pick(self, chain_id: str | None) -> HttpChain:
        return await self.only() if chain_id is None else await self.get(chain_id)

    async def reader(self, chain_id: str) -> VerifiedReader:
        """A verified reader of ``chain_id`` (its anchor: ``interlock.trust``); one per
        chain and command, so what it verified is verified once."""
        got = self._readers.get(chain_id)
        if got is None:
            chain = await self.get(chain_id)
            src = self.sources.get(chain_id)
            got = await open_reader(
                chain,
                self.home / "trust",
                genesis=None if src is None else src.genesis,
                genesis_source=str(src.path) if src is not None else "",
                pinned=self.pinned.get(chain_id),
                say=lambda line: print(line, file=sys.stderr, flush=True),
                consensus_of=chain.get_consensus,
            )
            self._readers[chain_id] = got
        return got

    async def prover(self, *chain_ids: str) -> ProvenLocks:
        """What a swap driver proves the counterparty's lock with, on these chains."""
        return ProvenLocks({cid: await self.reader(cid) for cid in chain_ids})

    def key(self, ref: str) -> PrivateKey:
        return load_key(ref, seed=self.seed, home=self.home)

    def address(self, account: str) -> str:
        """An address as given, or the address of a key (no passphrase needed)."""
        if re.fullmatch(r"[0-9a-fA-F]{40}", account):
            return account.lower()
        if account.startswith(DEVNET_PREFIX):
            return self.key(account).address
        return Keystore(self.home).show(account).address


async def reachable(h: HttpChain) -> int:
    """The chain's height; a dead endpoint becomes one clear line."""
    try:
        return await h.latest_height()
    except RpcUnavailable as exc:
        raise ChainUnreachable(", ".join(h.endpoints), exc.message) from None


async def submit(
    chain: HttpChain, key: PrivateKey, module: str, method: str, args: Mapping[str, Any]
) -> Receipt:
    """Sign with the next pending nonce, submit, wait for the block. A refused or failed
    transaction is a typed error (the receipt's code and message)."""
    try:
        nonce = await chain.pending_nonce(key.address)
        tx = Tx.create(key, chain.chain_id, nonce, module, method, dict(args))
        receipt = await chain.submit(tx)
    except RpcUnavailable as exc:
        raise ChainUnreachable(", ".join(chain.endpoints), exc.message) from None
    if not receipt.ok:
        raise TxRefused(chain.chain_id, receipt)
    return receipt


async def block_interval(chain: ChainHandle) -> tuple[int, float]:
    """The chain's latest height and its seconds per block: the interval its engine aims
    at (a PoW or PoS chain's ``/status`` consensus), else (BFT) as its last ten headers
    show (1 s when it has too few blocks to tell)."""
    latest = await chain.latest_height()
    engine = (await chain.get_consensus()).engine
    if engine is not None:
        return latest, engine.block_interval_ms / 1000
    back = min(10, latest - 1)
    interval = 1.0
    if back >= 1:
        new, old = await chain.get_header(latest), await chain.get_header(latest - back)
        if new is not None and old is not None and new.time > old.time:
            interval = (new.time - old.time) / 1000 / back
    return latest, interval


async def blocks_for(chain: HttpChain, seconds: float) -> tuple[int, int]:
    """The chain's latest height and the number of its blocks in ``seconds`` (at least 2:
    one to include a transaction, one to act on it)."""
    latest, interval = await block_interval(chain)
    return latest, max(2, math.ceil(seconds / interval))


class TxRefused(CommandError):
    """An included transaction failed on chain (only its nonce was used)."""

    def __init__(self, chain_id: str, receipt: Receipt) -> None:
        self.chain_id = chain_id
        self.receipt = receipt
        super().__init__(
            f"{chain_id} refused it at height {receipt.height}: {receipt.code}: {receipt.error}"
        )


# --- output ---------------------------------------------------------------------------


def run_async(
    command: Callable[[argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    """A command's ``run``: the coroutine in its own event loop; a chain that stops
    answering midway is one line like one that never answered."""

    def run(args: argparse.Namespace) -> int:
        async def guarded() -> int:
            try:
                return await command(args)
            except RpcUnavailable as exc:
                raise ChainUnreachable(exc.endpoint, exc.message) from None

        return asyncio.run(guarded())

    return run
