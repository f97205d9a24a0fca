"""``interlock devnet`` and ``interlock chain start``: chains in this process.

* ``interlock devnet``: independent chains in this process, printing each new head
  (flags, or ``--config configs/devnet.toml`` for chains with RPC servers and a bus).
* ``interlock chain start --config configs/chain-a.toml``: one chain as this process:
  its SQLite store in the data dir (a restart, even after ``kill -9``, resumes there), its
  RPC server, its publisher to the bus.

SIGTERM and SIGINT stop gracefully: the RPC server stops taking work and lets in-flight
requests finish, the node stops producing and fails what is still pending, the publisher
drains its input and the bus closes; every wait is bounded. Errors a user can cause (bad
flags, bad config, a port in use, a store of another chain) print one line to stderr and
exit 2; nothing is changed by a refused command. A node that stops producing blocks
stops the process with exit 1 (:class:`~interlock.errors.ChainFailed`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from chains.errors import ConfigError
from chains.node import Node, SQLiteBlockStore, SubscriptionLagged
from chains.service.bus import (
    BadBusUrl,
    Bus,
    open_bus,
    parse_bus_url,
    redact_url,
    validate_bus_url,
)
from chains.service.datadir import DataDirLock
from chains.service.eventindex import EventIndex
from chains.service.publisher import Publisher, status_will
from chains.service.rpc import RpcServer
from chains.types import Block
from interlock.config import (
    DEFAULT_SEED,
    ChainSettings,
    load_chain_config,
    load_devnet_config,
    parse_devnet_config,
)
from interlock.errors import ChainFailed

__all__ = ["GC_THRESHOLDS", "chain_start", "devnet", "run_chains"]

log = logging.getLogger("interlock.cli")  # the name these processes have always logged under

SHUTDOWN_WAIT = 10.0
"""Seconds each shutdown step may take before it is cut short."""

GC_THRESHOLDS = (50_000, 50, 100)
"""Cyclic GC thresholds for a chain process. With CPython's defaults (700, 10, 10) the
collector ran so often under load that it took half of the event loop's time: decoding,
admitting and committing a transfer cost ~70 us with them and ~35 us with these (the
ledger allocates many short-lived, acyclic objects; reference counting frees them)."""


# --- running chains -----------------------------------------------------------------------


def _print_head(block: Block) -> None:
    h = block.header
    print(
        f"{h.chain_id:>10}  height={h.height:<6} txs={h.tx_count:<4} "
        f"events={h.event_count:<4} hash={h.hash.hex()[:16]} "
        f"state={h.state_root.hex()[:16]} signers={len(block.commit.signatures)}",
        flush=True,
    )


def _open_node(cs: ChainSettings, data_dir: Path) -> Node:
    # the index is written in each block's transaction; switched on over a store that
    # has blocks, it catches up here, before the node starts
    index = None if cs.index_types is None else EventIndex(cs.index_types)
    return Node.open(
        cs.genesis,
        cs.build_modules,
        cs.validator_keys,
        SQLiteBlockStore(cs.store_path(data_dir), indexer=index),
        block_interval=cs.block_interval,
        mempool_capacity=cs.mempool_capacity,
        max_block_txs=cs.max_block_txs,
    )


def _check_bus_url(url: str, what: str) -> None:
    try:
        validate_bus_url(url)  # with its TLS files: a missing CA would retry forever
    except BadBusUrl as exc:
        raise ConfigError(f"{what}: {exc}") from None


async def run_chains(
    chains: Sequence[ChainSettings],
    data_dir: Path,
    bus_url: str,
    *,
    stop: asyncio.Event,
    blocks: int = 0,
    on_ready: Callable[[Sequence[Node], Sequence[RpcServer]], None] | None = None,
    bus: Bus | None = None,
    print_heads: bool = True,
) -> None:
    """Run ``chains`` (nodes, RPC servers, publishers) until ``stop`` is set or every
    chain reached height ``blocks``; then shut down in order, each step bounded:
    RPC (no new work; in-flight requests finish), nodes halt (their subscriptions end, so
    watchers and publishers drain and finish), stores close, buses close.

    ``bus``: publish to this (open) bus instead of opening one from ``bus_url`` (the demo
    shares one in-memory bus between its chains and its relayer)."""
    _check_bus_url(bus_url, "bus url")
    memory = parse_bus_url(bus_url) is None
    nodes: list[Node] = []
    servers: list[RpcServer] = []
    locks = contextlib.ExitStack()  # one process per chain store; released last
    try:
        for cs in chains:
            locks.enter_context(DataDirLock(cs.store_path(data_dir).parent, f"{cs.chain_id}.lock"))
        async with contextlib.AsyncExitStack() as stack:
            for cs in chains:
                nodes.append(_open_node(cs, data_dir))
            gc.set_threshold(*GC_THRESHOLDS)
            gc.freeze()  # what exists now (modules, restored state) is never garbage
            # MQTT: one connection per chain, each with its retained status and last will;
            # memory: one shared in-process bus
            buses: list[Bus] = []
            if bus is not None:
                buses = [bus] * len(nodes)
            elif memory:
                shared: Bus = await stack.enter_async_context(open_bus(bus_url))
                buses = [shared] * len(nodes)
            else:
                for node in nodes:
                    conn = open_bus(bus_url, will=status_will(node.chain_id))
                    buses.append(await stack.enter_async_context(conn))
            for cs, node in zip(chains, nodes, strict=True):
                if cs.rpc is not None:
                    servers.append(RpcServer(node, cs.rpc.host, cs.rpc.port, limits=cs.rpc.limits))
            for srv in servers:
                await srv.start()
            for node in nodes:
                await node.__aenter__()  # starts block production
            if on_ready is not None:
                on_ready(nodes, servers)

            reached: set[str] = set()

            async def watch(node: Node) -> None:
                sub = node.subscribe()
                while True:
                    try:
                        block = await sub.__anext__()
                    except StopAsyncIteration:
                        if node.failure is not None:  # fail-stop: stop all, exit non-zero
                            log.error(
                                "%s stopped producing blocks: %s", node.chain_id, node.failure
                            )
                            stop.set()
                        return
                    except SubscriptionLagged:  # a slow console is no reason to stop
                        log.warning("%s: head printer fell behind; skipping ahead", node.chain_id)
                        node.unsubscribe(sub)
                        sub = node.subscribe()
                        continue
                    if print_heads:
                        _print_head(block)
                    if blocks and block.height >= blocks and node.chain_id not in reached:
                        reached.add(node.chain_id)
                        if len(reached) == len(nodes):
                            stop.set()

            async def shutdown(workers: list[asyncio.Task[None]]) -> None:
                await stop.wait()
                log.info("stopping: rpc, then nodes, then publishers")
                for srv in servers:
                    srv.begin_shutdown()
                for srv in servers:
                    await srv.stop()  # bounded by its shutdown_timeout
                for node in nodes:
                    await node.halt()  # ends subscriptions: watchers and publishers drain
                _, pending = await asyncio.wait(workers, timeout=SHUTDOWN_WAIT)
                for t in pending:
                    log.warning("%s did not end in %ss; cancelling", t.get_name(), SHUTDOWN_WAIT)
                    t.cancel()

            async with asyncio.TaskGroup() as tg:
                workers: list[asyncio.Task[None]] = []
                for cs, node, out in zip(chains, nodes, buses, strict=True):
                    workers.append(tg.create_task(watch(node), name=f"watch:{node.chain_id}"))
                    # the cursor lets a restart publish what was committed while none ran
                    cursor = cs.store_path(data_dir).with_suffix(".published")
                    publisher = Publisher(node, out, cursor=cursor)
                    workers.append(
                        tg.create_task(publisher.run(), name=f"publisher:{node.chain_id}")
                    )
                tg.create_task(shutdown(workers), name="shutdown")
            for node in nodes:
                await node.stop()  # closes the store, after the publishers are done with it
        failed = [n.chain_id for n in nodes if n.failure is not None]
        if failed:
            raise ChainFailed(failed)
    finally:
        for srv in servers:
            await srv.stop()
        for node in nodes:
            await node.stop()
        locks.close()


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _print_ready(nodes: Sequence[Node], servers: Sequence[RpcServer], bus_url: str) -> None:
    rpc = {s.node.chain_id: s.url for s in servers}
    for n in nodes:
        where = rpc.get(n.chain_id, "off")
        print(
            f"{n.chain_id}: height {n.height}; rpc {where}; bus {redact_url(bus_url)}", flush=True
        )


async def run_devnet(args: argparse.Namespace) -> None:
    if args.config is not None:
        for flag in ("chains", "seed"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag}: not with --config (the config file sets it)")
        cfg = load_devnet_config(args.config)
        chains = list(cfg.chains)
        if args.interval is not None:
            chains = [c.with_interval(args.interval) for c in chains]
        data_dir = args.data_dir or cfg.data_dir
        bus_url = cfg.bus_url
    else:
        # the flags describe a devnet file; one path, so the chains are the same either way
        flags = {
            "seed": args.seed or DEFAULT_SEED,
            "block_interval": args.interval or 1.0,
            "chains": [{"chain_id": c} for c in args.chains or ["chain-a", "chain-b"]],
        }
        chains = list(parse_devnet_config(flags, "the command line").chains)
        data_dir = args.data_dir
        bus_url = "memory://"
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="interlock-"))
    print(f"devnet: {', '.join(c.chain_id for c in chains)}; data in {data_dir}", flush=True)

    def ready(nodes: Sequence[Node], servers: Sequence[RpcServer]) -> None:
        if servers:
            _print_ready(nodes, servers, bus_url)

    stop = asyncio.Event()
    _install_signals(stop)
    await run_chains(chains, data_dir, bus_url, stop=stop, blocks=args.blocks, on_ready=ready)


async def run_chain_start(args: argparse.Namespace) -> None:
    cfg = load_chain_config(args.config)
    chain = cfg.chain
    if args.rpc_port is not None and chain.rpc is not None:
        chain = dataclasses.replace(chain, rpc=dataclasses.replace(chain.rpc, port=args.rpc_port))
    if args.interval is not None:
        chain = chain.with_interval(args.interval)
    bus_url = cfg.bus_url
    if args.bus_url is not None:
        _check_bus_url(args.bus_url, "--bus-url")
        bus_url = args.bus_url
    data_dir = args.data_dir or cfg.data_dir

    def ready(nodes: Sequence[Node], servers: Sequence[RpcServer]) -> None:
        _print_ready(nodes, servers, bus_url)

    stop = asyncio.Event()
    _install_signals(stop)
    await run_chains([chain], data_dir, bus_url, stop=stop, blocks=args.blocks, on_ready=ready)


def devnet(args: argparse.Namespace) -> int:
    asyncio.run(run_devnet(args))
    return 0


def chain_start(args: argparse.Namespace) -> int:
    asyncio.run(run_chain_start(args))
    return 0
