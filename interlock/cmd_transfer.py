"""``interlock transfer`` and ``interlock burn``: move a token between chains over the
bridge, and follow it; ``transfer status ID`` and ``transfer list`` read the chains.

A transfer is named ``SRC:DST:NONCE`` (the source chain, the destination, the path's
nonce on the source), e.g. ``chain-a:chain-b:7``. Nothing here relays: the relayer daemon
carries headers and proofs; ``--wait`` only watches both chains over RPC:

    locked at h (source)  ->  header relayed (destination's client of the source >= h)
    ->  minted / released at h' (destination)        exit 0
    or  expired on the destination -> refunded on the source        exit 3
    or  refused by the destination's compliance policy (the rule named)
        -> refunded on the source                                   exit 3
    or  still in flight when --wait-timeout passes                   exit 4

``transfer`` sends ``lock``: the bridge escrows a native token, or burns a wrapped one
whose origin is the destination (it goes home). ``burn`` sends ``burn``, which only
ever sends a wrapped token home (its destination is the denom's origin).
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import UnknownPath
from bridge.module import MAX_TRAVEL_RULE
from bridge.transfer import compute_returning_denom
from chains.service.rpc_client import HttpChain
from interlock.cmd_common import (
    Chains,
    blocks_for,
    parse_amount,
    parse_duration,
    submit,
)
from interlock.commands import KEY_ENV, emit
from interlock.errors import CommandError, NotFound
from interlock.history import SEND_TYPES, FoundEvent, find_events, packet_of, read_history
from interlock.progress import Reporter, open_reporter
from zk.compliance import seal_travel_rule
from zk.errors import ZkError

__all__ = [
    "EXIT_DELIVERED",
    "EXIT_REFUNDED",
    "EXIT_WAIT_TIMEOUT",
    "Progress",
    "TransferId",
    "burn",
    "compute_progress",
    "read_path",
    "read_transfer",
    "transfer",
]

EXIT_DELIVERED = 0
EXIT_REFUNDED = 3
EXIT_WAIT_TIMEOUT = 4


@dataclass(frozen=True, slots=True)
class TransferId:
    """``SRC:DST:NONCE``."""

    src: str
    """Source chain."""
    dst: str
    """Destination chain."""
    nonce: int
    """The path's nonce on the source, from 1."""

    def __str__(self) -> str:
        return f"{self.src}:{self.dst}:{self.nonce}"

    @classmethod
    def parse(cls, text: str) -> TransferId:
        m = re.fullmatch(
            r"([A-Za-z][A-Za-z0-9._-]{0,63}):([A-Za-z][A-Za-z0-9._-]{0,63}):"
            r"([1-9][0-9]{0,17})",
            text,
        )
        if m is None or m.group(1) == m.group(2):
            raise CommandError(
                f"bad transfer id {text[:80]!r}: expected SRC:DST:NONCE, e.g. chain-a:chain-b:7"
            )
        return cls(m.group(1), m.group(2), int(m.group(3)))


class Progress(enum.Enum):
    """Where a transfer is, as both chains tell it."""

    LOCKED = "locked"
    """Committed on the source; the destination has not seen its header yet."""
    RELAYED = "header relayed"
    """The destination's light client holds the source's header at the lock height."""
    QUEUED = "queued"
    """Accepted on the destination, waiting out the bridge's delay for large amounts."""
    DELIVERED = "delivered"
    """Minted or released on the destination. Final."""
    EXPIRED = "expired"
    """Past its timeout on the destination; the refund on the source is still to come."""
    REFUSED = "refused"
    """Refused by the destination's compliance policy (recorded there as an expiry); the
    refund on the source is still to come."""
    REFUNDED = "refunded"
    """Refunded on the source. Final."""


def compute_progress(
    sent: Mapping[str, Any],
    received: object,
    client_height: int,
    lock_height: int,
    refusal: object = None,
) -> Progress:
    """The transfer's progress from the source's ``bridge/sent`` record (``{}`` once the
    source pruned it: acknowledged or refunded), the destination's ``bridge/received``
    and ``bridge/refusal`` answers and its client's height of the source."""
    if sent.get("status") == "refunded" or (not sent and received == "expired"):
        return Progress.REFUNDED
    if received == "delivered":
        return Progress.DELIVERED
    if received == "expired":
        return Progress.REFUSED if isinstance(refusal, Mapping) else Progress.EXPIRED
    if received == "queued":
        return Progress.QUEUED
    if client_height >= lock_height > 0:
        return Progress.RELAYED
    return Progress.LOCKED


async def transfer(args: argparse.Namespace) -> int:
    if args.amount == "status":
        return await transfer_status(args)
    if args.amount == "list":
        return await transfer_list(args)
    if args.rest:
        raise CommandError(f"unexpected {' '.join(args.rest)[:80]!r}")
    if args.src is None or args.dst is None:
        raise CommandError("a transfer needs --from CHAIN and --to CHAIN")
    if args.src == args.dst:
        raise CommandError("--from and --to are the same chain")
    return await _send(args, "lock")


async def burn(args: argparse.Namespace) -> int:
    _, denom = parse_amount(args.amount)
    origin = denom.split("/", 1)[0] if "/" in denom else None
    if origin is None or compute_returning_denom(origin, denom) is None:
        raise CommandError(f"{denom!r} is not a wrapped denom (ORIGIN/DENOM): nothing to burn")
    args.dst = origin
    return await _send(args, "burn")


async def _send(args: argparse.Namespace, method: str) -> int:
    amount, denom = parse_amount(args.amount)
    if args.recipient is None:
        raise CommandError("--recipient is required (an address, a key, or devnet:NAME)")
    key_ref = args.key or os.environ.get(KEY_ENV)
    if not key_ref:
        raise CommandError(f"--key is required (or set {KEY_ENV})")
    timeout_s = parse_duration(args.timeout) if args.timeout is not None else None
    wait_s = parse_duration(args.wait_timeout)
    async with Chains.from_args(args) as chains:
        recipient = chains.address(args.recipient)
        src = await chains.get(args.src)
        dst = await chains.get(args.dst)
        key = chains.key(key_ref)  # after every cheap check: the passphrase comes last
        # refuse what the source would refuse, before anything is signed
        path = await read_path(src, dst.chain_id)
        if path.get("paused"):
            raise CommandError(f"the bridge path {src.chain_id} -> {dst.chain_id} is paused")
        have = await src.query("bank", "balance", {"address": key.address, "denom": denom})
        if not isinstance(have, int) or have < amount:
            raise CommandError(
                f"{key.address} has {have} {denom} on {src.chain_id}, "
                f"less than {amount}; nothing submitted"
            )
        call: dict[str, Any] = {"denom": denom, "amount": amount, "recipient": recipient}
        if method == "lock":
            call["dest_chain"] = dst.chain_id
        if timeout_s is not None:
            latest, blocks = await blocks_for(dst, timeout_s)
            call["timeout_height"] = latest + blocks
        if args.travel_rule is not None:
            call["travel_rule"] = await _sealed_travel_rule(dst, args.travel_rule)
        receipt = await submit(src, key, "bridge", method, call)
        sent = next(e for e in receipt.events if e.type in ("bridge.locked", "bridge.burned"))
        tid = TransferId(src.chain_id, dst.chain_id, int(str(sent.attributes["nonce"])))
        verb = "locked" if sent.type == "bridge.locked" else "burned"
        timeout_height = sent.attributes["timeout_height"]
        emit_line = (
            f"{verb} {amount} {denom} on {src.chain_id} at height {receipt.height}: "
            f"transfer {tid}, deliverable until {dst.chain_id} height "
            f"{timeout_height}"
        )
        if not args.wait:
            emit(
                args,
                {
                    "id": str(tid),
                    "height": receipt.height,
                    "tx_hash": receipt.tx_hash.hex(),
                    "status": verb,
                    "timeout_height": timeout_height,
                },
                [emit_line],
            )
            return 0
        with open_reporter(plain=args.plain, quiet=args.json) as report:
            report.info(emit_line)
            return await _follow(args, src, dst, tid, receipt.height, wait_s, report)


async def _sealed_travel_rule(dst: HttpChain, text: str) -> str:
    """``text`` sealed to ``dst``'s travel-rule key, as the ``lock`` argument."""
    data = text.encode()
    if not 0 < len(data) <= MAX_TRAVEL_RULE - 48:  # a sealed box adds 48 bytes
        raise CommandError(f"--travel-rule: expected 1..{MAX_TRAVEL_RULE - 48} bytes of text")
    key = await dst.query("compliance", "travel_key", {})
    if not isinstance(key, str) or len(key) != 64:
        raise CommandError(f"{dst.chain_id} has no travel-rule key: its governance sets one")
    try:
        return seal_travel_rule(data, bytes.fromhex(key)).hex()
    except (ValueError, ZkError) as exc:
        raise CommandError(f"{dst.chain_id}'s travel-rule key is unusable: {exc}") from None


async def read_path(src: HttpChain, remote: str) -> Mapping[str, Any]:
    try:
        got = await src.query("bridge", "path", {"remote_chain": remote})
    except UnknownPath:
        raise CommandError(
            f"no bridge path {src.chain_id} -> {remote} (see 'interlock path create')"
        ) from None
    if not isinstance(got, Mapping):
        raise NotFound(f"bridge path {src.chain_id} -> {remote}")
    return got


async def read_transfer(
    src: HttpChain, dst: HttpChain, tid: TransferId
) -> tuple[Mapping[str, Any], Any, Any]:
    """The source's record, the destination's status and its refusal (or None)."""
    sent = await src.query("bridge", "sent", {"remote_chain": tid.dst, "nonce": tid.nonce})
    if sent is None:  # pruned once acknowledged or refunded, if it was ever sent
        nxt = await src.query("bridge", "next_nonce", {"remote_chain": tid.dst})
        if isinstance(nxt, int) and tid.nonce < nxt:
            sent = {}
    if not isinstance(sent, Mapping):
        raise NotFound(f"transfer {tid} (no such nonce on {tid.src})")
    at = {"remote_chain": tid.src, "nonce": tid.nonce}
    got = await dst.query("bridge", "received", at)
    refusal = await dst.query("bridge", "refusal", at) if got == "expired" else None
    return sent, got, refusal


async def _client_of_src(dst: HttpChain, src_id: str) -> tuple[str, int]:
    path = await read_path(dst, src_id)
    client_id = str(path["client_id"])
    got = await dst.query("lightclient", "client", {"client_id": client_id})
    height = got.get("latest_height", 0) if isinstance(got, Mapping) else 0
    return client_id, int(height) if isinstance(height, int) else 0


async def _find_event(
    chain: HttpChain, frm: int, to: int, kind: str, key: str, tid: TransferId, remote: str
) -> int | None:
    """The height in ``[frm, to]`` of the event ``kind`` for this transfer."""
    for h in range(max(1, frm), to + 1):
        block = await chain.get_block(h)
        if block is None:
            continue
        for e in block.events:
            a = e.attributes
            if e.type == kind and a.get(key) == remote and a.get("nonce") == tid.nonce:
                return h
    return None


async def _follow(
    args: argparse.Namespace,
    src: HttpChain,
    dst: HttpChain,
    tid: TransferId,
    lock_height: int,
    wait_s: float,
    report: Reporter,
) -> int:
    """Watch both chains until the transfer is final or ``wait_s`` passes."""
    deadline = time.monotonic() + wait_s
    seen: Progress | None = Progress.LOCKED
    dst_from = await dst.latest_height()
    src_from = lock_height
    events: list[dict[str, Any]] = [
        {"status": "locked", "chain": src.chain_id, "height": lock_height}
    ]
    refusal: Any = None
    report.wait(_waiting_for(Progress.LOCKED, tid, lock_height))
    while True:
        sent, received, refusal = await read_transfer(src, dst, tid)
        _, client_height = await _client_of_src(dst, src.chain_id)
        now = compute_progress(sent, received, client_height, lock_height, refusal)
        steps = [now] if now != seen else []
        refused_unseen = isinstance(refusal, Mapping) and seen is not Progress.REFUSED
        if steps and now is Progress.REFUNDED and refused_unseen:
            steps.insert(0, Progress.REFUSED)  # refused and refunded between two polls
        for step in steps:
            line, record = await _describe(
                step, src, dst, tid, client_height, dst_from, src_from, refusal
            )
            events.append(record)
            report.info(line)
            seen = step
        if now in (Progress.DELIVERED, Progress.REFUNDED):
            code = EXIT_DELIVERED if now is Progress.DELIVERED else EXIT_REFUNDED
            break
        if time.monotonic() > deadline:
            report.info(
                f"still {now.value} after {wait_s:.0f}s; stopped waiting "
                f"(see 'interlock transfer status {tid}')"
            )
            code = EXIT_WAIT_TIMEOUT
            break
        if steps:
            report.wait(_waiting_for(now, tid, lock_height))
        await asyncio.sleep(0.5)
    if args.json:
        emit(args, {"id": str(tid), "status": seen.value if seen else "?", "events": events}, [])
    return code


def _waiting_for(now: Progress, tid: TransferId, lock_height: int) -> str:
    """What a transfer at ``now`` (not final) waits for, as a spinner's text."""
    if now is Progress.LOCKED:
        return (
            f"waiting for the header: {tid.dst}'s client of {tid.src} to reach height {lock_height}"
        )
    if now is Progress.RELAYED:
        return f"waiting for the delivery on {tid.dst}"
    if now is Progress.QUEUED:
        return f"waiting out the bridge's delay on {tid.dst}"
    return f"waiting for the refund on {tid.src}"


async def _describe(
    now: Progress,
    src: HttpChain,
    dst: HttpChain,
    tid: TransferId,
    client_height: int,
    dst_from: int,
    src_from: int,
    refusal: Any = None,
) -> tuple[str, dict[str, Any]]:
    if now is Progress.RELAYED:
        return (
            f"header relayed: {dst.chain_id}'s client of {src.chain_id} is at height "
            f"{client_height}",
            {"status": now.value, "client_height": client_height},
        )
    if now is Progress.REFUSED:
        to = await dst.latest_height()
        height = await _find_event(
            dst, dst_from, to, "bridge.refused", "src_chain", tid, src.chain_id
        )
        rule, detail = _refusal(refusal)
        where = f" at height {height}" if height else ""
        return f"refused by {dst.chain_id}: {rule} ({detail}){where}; the refund comes next", {
            "status": now.value,
            "chain": dst.chain_id,
            "height": height,
            "rule": rule,
            "detail": detail,
        }
    if now in (Progress.DELIVERED, Progress.QUEUED, Progress.EXPIRED):
        kind = {
            "delivered": ("bridge.minted", "bridge.released"),
            "queued": ("bridge.queued",),
            "expired": ("bridge.expired",),
        }[now.value]
        to = await dst.latest_height()
        height = None
        for k in kind:
            height = height or await _find_event(
                dst, dst_from, to, k, "src_chain", tid, src.chain_id
            )
        where = f" at height {height}" if height else ""
        word = {
            "delivered": "delivered (minted or released)",
            "queued": "queued on the destination (large amount: the bridge's delay)",
            "expired": "expired on the destination; the refund comes next",
        }[now.value]
        return f"{word} on {dst.chain_id}{where}", {
            "status": now.value,
            "chain": dst.chain_id,
            "height": height,
        }
    if now is Progress.REFUNDED:
        to = await src.latest_height()
        height = await _find_event(
            src, src_from, to, "bridge.refunded", "dst_chain", tid, dst.chain_id
        )
        where = f" at height {height}" if height else ""
        why = "refused" if isinstance(refusal, Mapping) else "expired"
        return (
            f"{why} and refunded on {src.chain_id}{where}",
            {"status": now.value, "chain": src.chain_id, "height": height},
        )
    return now.value, {"status": now.value}


def _shown(v: object, limit: int = 200) -> str:
    """A chain's words as a line may show them: bounded and printable."""
    return "".join(c if c.isprintable() else "?" for c in str(v)[:limit])


def _refusal(refusal: object) -> tuple[str, str]:
    """The rule and detail of a destination's refusal record, as shown to a user: a
    chain's words, so bounded and printable."""
    if not isinstance(refusal, Mapping):
        return "?", ""

    return _shown(refusal.get("rule")), _shown(refusal.get("detail"))


def _where(found: FoundEvent) -> str:
    return f"{found.name} on {found.chain_id} at height {found.height} (event {found.index})"


async def transfer_status(args: argparse.Namespace) -> int:
    if len(args.rest) != 1:
        raise CommandError("usage: interlock transfer status SRC:DST:NONCE")
    tid = TransferId.parse(args.rest[0])
    async with Chains.from_args(args) as chains:
        src = await chains.get(tid.src)
        dst = await chains.get(tid.dst)
        sent, received, refusal = await read_transfer(src, dst, tid)
        _, client_height = await _client_of_src(dst, tid.src)
        # what state no longer holds (a settled transfer's packet, every height) is in
        # both chains' events: found by the index, each checked against its header
        history = await read_history(src, dst, str(tid))
    packet = dict(sent.get("packet", {})) or packet_of(history.sent)
    lock_height = history.sent.height if history.sent is not None else 0
    now = compute_progress(sent, received, client_height, lock_height, refusal)
    status = now.value
    if isinstance(refusal, Mapping):
        rule, detail = _refusal(refusal)
        status += f" (refused by {tid.dst}: {rule}: {detail})"
    lines = [f"transfer {tid}: {status}"]
    if packet:
        lines.append(
            f"  {packet.get('amount')} {packet.get('denom')} from {packet.get('sender')} "
            f"to {packet.get('recipient')}"
        )
    if history.sent is not None:
        lines.append(
            f"  {_where(history.sent)}; deliverable until {tid.dst} height "
            f"{packet.get('timeout_height')}"
        )
    elif sent:
        lines.append(
            f"  {sent.get('kind')} on {tid.src}; deliverable until {tid.dst} height "
            f"{packet.get('timeout_height')}"
        )
    if history.outcome is not None:
        lines.append(f"  {_where(history.outcome)}")
    elif now in (Progress.LOCKED, Progress.RELAYED):
        lines.append(f"  {tid.dst}'s client of {tid.src} at height {client_height}")
    if history.settled is not None:
        lines.append(f"  {_where(history.settled)}: {tid.src} pruned its record")
    elif not sent:
        lines.append(f"  settled: {tid.src} pruned its record (acknowledged or refunded)")
    found = [f for f in (history.sent, history.outcome, history.settled) if f is not None]
    if found:
        lines.append(
            "  each event checked: its audit path leads to the event_root of its block's "
            "header, as the same node serves it"
        )
    if not history.indexed:
        lines.append("  (a chain keeps no event index: what its state pruned is not shown)")
    emit(
        args,
        {
            "id": str(tid),
            "status": now.value,
            "packet": packet,
            "sent": dict(sent),
            "received": received,
            "refusal": dict(refusal) if isinstance(refusal, Mapping) else None,
            "events": {
                "sent": None if history.sent is None else history.sent.to_json(),
                "outcome": None if history.outcome is None else history.outcome.to_json(),
                "settled": None if history.settled is None else history.settled.to_json(),
            },
            "indexed": history.indexed,
        },
        lines,
    )
    return 0


LIST_MAX = 100
"""Most transfers ``transfer list`` shows per source chain (one page of the index)."""


async def _list_source(
    chains: Chains, src: HttpChain, account: str | None, dst_only: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` transfers sent from ``src`` (to or from ``account``), from
    its event index, each with its status from both chains' state."""
    attrs: list[tuple[str, str] | None] = (
        [("sender", account), ("recipient", account)] if account else [None]
    )
    if dst_only and not account:
        attrs = [("dst_chain", dst_only)]
    pages = []
    for attr in attrs:
        page = await find_events(src, SEND_TYPES, attr, limit=limit)
        if page is None:
            raise CommandError(
                f"{src.chain_id} keeps no index of bridge events ([index] in its config); "
                f"see 'interlock transfer status ID' for one transfer"
            )
        pages.append(page)
    newest = sorted(
        {(f.height, f.index): f for p in pages for f in p}.values(),
        key=lambda f: (f.height, f.index),
        reverse=True,
    )
    seen: dict[str, dict[str, Any]] = {}
    clients: dict[str, int] = {}
    for f in newest:
        a = f.event.attributes
        try:  # a node's words: a malformed event is not listed
            tid = TransferId.parse(f"{src.chain_id}:{a.get('dst_chain')}:{a.get('nonce')}")
        except CommandError:
            continue
        if str(tid) in seen:  # a resend: the first lock is the older one, listed below
            seen[str(tid)]["height"] = f.height
            continue
        if dst_only and tid.dst != dst_only:
            continue
        if len(seen) == limit:
            break
        seen[str(tid)] = {"id": str(tid), "kind": f.name, "height": f.height, "index": f.index, **a}
    for row in seen.values():
        tid_ = TransferId.parse(row["id"])
        sent = await src.query("bridge", "sent", {"remote_chain": tid_.dst, "nonce": tid_.nonce})
        sent = sent if isinstance(sent, Mapping) else {}
        received: Any = None
        if tid_.dst in chains.known():
            dst = await chains.get(tid_.dst)
            at = {"remote_chain": tid_.src, "nonce": tid_.nonce}
            received = await dst.query("bridge", "received", at)
            if tid_.dst not in clients and received is None and sent:
                clients[tid_.dst] = (await _client_of_src(dst, tid_.src))[1]
        progress = compute_progress(sent, received, clients.get(tid_.dst, 0), row["height"])
        if not sent and received is None:
            row["status"] = "settled"  # pruned, and the destination is not known here
        else:
            row["status"] = progress.value
    return list(seen.values())


async def transfer_list(args: argparse.Namespace) -> int:
    if args.rest:
        raise CommandError("usage: interlock transfer list [--from CHAIN] [--account A]")
    if not 1 <= args.limit <= LIST_MAX:
        raise CommandError(f"--limit: expected 1..{LIST_MAX}")
    rows: list[dict[str, Any]] = []
    async with Chains.from_args(args) as chains:
        account = chains.address(args.account) if args.account else None
        await chains.probe()
        sources = [args.src] if args.src else list(chains.known())
        for sid in sources:
            src = await chains.get(sid)
            rows += await _list_source(chains, src, account, args.dst, args.limit)
    lines = [
        f"{r['id']:<24} {_shown(r.get('amount'), 20):>12} {_shown(r.get('denom'), 40):<14} "
        f"{r['status']:<14} h={r['height']:<7} {_shown(r.get('sender'), 12)}.. -> "
        f"{_shown(r.get('recipient'), 12)}.."
        for r in rows
    ] or ["no transfers"]
    emit(args, {"transfers": rows}, lines)
    return 0
