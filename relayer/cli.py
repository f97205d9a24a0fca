"""The ``interlock`` command line.

Errors a user can cause (bad flags, bad config, a refused transaction) print one line to
stderr and exit 2; nothing is changed by a refused command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from chains.devnet import base_modules, build_devnet
from chains.errors import InterlockError
from chains.node import Node, SQLiteBlockStore

__all__ = ["main"]


def _chain_ids(value: str) -> list[str]:
    ids = [c.strip() for c in value.split(",") if c.strip()]
    if not ids or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError("expected distinct comma-separated chain ids")
    for c in ids:
        if not (c.isascii() and c.replace("-", "").replace("_", "").isalnum() and len(c) <= 64):
            raise argparse.ArgumentTypeError(f"bad chain id {c!r}: use [A-Za-z0-9_-], max 64")
    return ids


def _positive_float(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < f <= 3600:
        raise argparse.ArgumentTypeError("expected a number of seconds in (0, 3600]")
    return f


def _non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interlock", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("devnet", help="run independent chains in this process and print heads")
    d.add_argument("--chains", type=_chain_ids, default=["chain-a", "chain-b"])
    d.add_argument("--interval", type=_positive_float, default=1.0, help="block interval, s")
    d.add_argument("--blocks", type=_non_negative_int, default=0, help="stop after N (0: run)")
    d.add_argument("--seed", default="interlock-devnet", help="devnet key seed")
    d.add_argument("--data-dir", type=Path, default=None, help="SQLite dir (default: temp)")
    return p


async def run_devnet(args: argparse.Namespace) -> None:
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix="interlock-"))
    defs = build_devnet(args.chains, seed=args.seed)
    nodes = [
        Node.open(
            d.genesis,
            base_modules,
            d.validator_keys,
            SQLiteBlockStore(data_dir / f"{d.chain_id}.sqlite3"),
            block_interval=args.interval,
        )
        for d in defs
    ]
    print(f"devnet: {', '.join(args.chains)}; data in {data_dir}", flush=True)

    async def watch(node: Node) -> None:
        async for block in node.subscribe():
            h = block.header
            print(
                f"{h.chain_id:>10}  height={h.height:<6} txs={h.tx_count:<4} "
                f"events={h.event_count:<4} hash={h.hash.hex()[:16]} "
                f"state={h.state_root.hex()[:16]} signers={len(block.commit.signatures)}",
                flush=True,
            )
            if args.blocks and h.height >= args.blocks:
                return

    async with contextlib.AsyncExitStack() as stack:
        for n in nodes:
            await stack.enter_async_context(n)
        async with asyncio.TaskGroup() as tg:
            for n in nodes:
                tg.create_task(watch(n), name=f"watch:{n.chain_id}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        if args.command == "devnet":
            asyncio.run(run_devnet(args))
    except InterlockError as exc:
        print(f"interlock: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
