"""``interlock query``: balances, transactions, blocks, light clients and bridge paths,
read over the chains' RPC. Human-readable lines by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

from chains.errors import InterlockError
from chains.service.rpc_client import HttpChain, RpcError, RpcUnavailable
from interlock.cmd_common import Chains
from interlock.commands import emit
from interlock.errors import CommandError, NotFound

__all__ = ["query_balance", "query_block", "query_client", "query_path", "query_tx"]


async def query_balance(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        address = chains.address(args.account)
        chain = await chains.pick(args.chain)
        got = await chain.query("bank", "balances", {"address": address})
    balances = {str(k): v for k, v in got.items()} if isinstance(got, Mapping) else {}
    if args.denom is not None:
        balances = {args.denom: balances.get(args.denom, 0)}
    lines = [f"{address} on {chain.chain_id}:"]
    lines += [f"  {v:>20} {d}" for d, v in sorted(balances.items())] or ["  (nothing)"]
    obj = {"chain_id": chain.chain_id, "address": address, "balances": balances}
    emit(args, obj, lines)
    return 0


def _hash(text: str) -> bytes:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise CommandError(f"bad tx hash {text[:80]!r}: expected 64 hex digits")
    return bytes.fromhex(text)


async def _all(chains: Chains, chain_id: str | None) -> list[HttpChain]:
    if chain_id is not None:
        return [await chains.get(chain_id)]
    await chains.probe()
    if not chains.known():
        raise CommandError("no chain to ask: give --rpc URL or --config FILE")
    return [await chains.get(c) for c in chains.known()]


async def query_tx(args: argparse.Namespace) -> int:
    tx_hash = _hash(args.hash)
    async with Chains.from_args(args) as chains:
        for chain in await _all(chains, args.chain):
            receipt = await chain.get_receipt(tx_hash)
            if receipt is None:
                continue
            outcome = "ok" if receipt.ok else f"failed: {receipt.code}: {receipt.error}"
            lines = [
                f"tx {tx_hash.hex()} on {chain.chain_id}",
                f"  height {receipt.height}, index {receipt.index}: {outcome}",
            ]
            lines += [
                f"  event {receipt.first_event + i}: {e.type} {dict(e.attributes)}"
                for i, e in enumerate(receipt.events)
            ]
            emit(args, {"chain_id": chain.chain_id, "receipt": receipt.to_json()}, lines)
            return 0
    raise NotFound(f"tx {tx_hash.hex()} on {', '.join(chains.known())}")


async def query_block(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        if args.height == "latest":
            height = await chain.latest_height()
        elif re.fullmatch(r"[0-9]{1,18}", args.height):
            height = int(args.height)
        else:
            raise CommandError(f"bad height {args.height[:40]!r}: a number or 'latest'")
        block = await chain.get_block(height)
    if block is None:
        raise NotFound(f"block {height} of {chain.chain_id}")
    h = block.header
    lines = [
        f"block {h.height} of {h.chain_id}  hash {h.hash.hex()}",
        f"  time {h.time} ms   txs {h.tx_count}   events {h.event_count}   "
        f"signers {len(block.commit.signatures)}",
        f"  state_root {h.state_root.hex()}",
        f"  event_root {h.event_root.hex()}",
    ]
    for r in block.receipts:
        lines.append(f"  tx {r.index} {r.tx_hash.hex()} {'ok' if r.ok else r.code}")
    for i, e in enumerate(block.events):
        lines.append(f"  event {i}: {e.type} {dict(e.attributes)}")
    obj = {
        "header": h.to_json(),
        "hash": h.hash.hex(),
        "receipts": [r.to_json() for r in block.receipts],
    }
    emit(args, obj, lines)
    return 0


async def query_client(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        got = await _query(chain, "lightclient", "client", {"client_id": args.client_id})
    if not isinstance(got, Mapping):
        raise NotFound(f"client {args.client_id!r} on {chain.chain_id}")
    frozen = got.get("frozen_height") or 0
    lines = [
        f"client {args.client_id} on {chain.chain_id}: a light client of {got.get('chain_id')}",
        f"  latest height {got.get('latest_height')}   "
        f"trusting period {got.get('trusting_period')} ms   "
        + (f"FROZEN at {frozen}" if frozen else "active"),
    ]
    emit(args, {"chain_id": chain.chain_id, "client_id": args.client_id, "client": got}, lines)
    return 0


async def query_path(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        if args.remote is not None:
            one = await _query(chain, "bridge", "path", {"remote_chain": args.remote})
            paths = [one]
        else:
            got = await _query(chain, "bridge", "paths", {})
            paths = list(got) if isinstance(got, list) else []
    lines = (
        [f"bridge paths of {chain.chain_id}:"]
        if paths
        else [f"{chain.chain_id} has no bridge paths (the relayer's setup registers them)"]
    )
    for p in paths:
        if isinstance(p, Mapping):
            state = "PAUSED" if p.get("paused") else "open"
            lines.append(
                f"  {chain.chain_id} <- {p.get('remote_chain')}  client {p.get('client_id')}  "
                f"{state}  limits {p.get('limits')}"
            )
    emit(args, {"chain_id": chain.chain_id, "paths": paths}, lines)
    return 0


async def _query(chain: HttpChain, module: str, path: str, qargs: Mapping[str, Any]) -> Any:
    """A module query; the chain's refusal (unknown client, no path) becomes NotFound."""
    try:
        return await chain.query(module, path, qargs)
    except RpcUnavailable:
        raise
    except RpcError as exc:
        raise NotFound(f"{module} {path} on {chain.chain_id}: {exc.message}") from None
    except InterlockError as exc:
        raise NotFound(f"{module} {path} on {chain.chain_id}: {exc}") from None
