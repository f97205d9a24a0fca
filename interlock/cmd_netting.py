"""``interlock netting``: multilateral netting rounds (see :mod:`netting`).

* ``interlock netting run``: this bank's side of a round over a bus, with every other bank
  running the same command on its own host (same round id, start, phase length, party
  list, or one round file: :mod:`interlock.netting_round`); prints the net positions,
  gross versus net volume and the settlement plan. With ``--round FILE --settle`` it then
  pays this bank's legs of the plan through the chains' RPC, at most once
  (:mod:`interlock.netting_settle`), and with ``--wait`` follows them to delivery and this
  bank's holding to its net position. Exit codes: 0 settled (or submitted), 2 refused
  input or a refused transaction (one line), 3 a leg was refunded, 4 still waiting at
  ``--wait-timeout``, 5 the holding moved by something other than the net position.
* ``interlock netting demo``: ``--banks`` banks with a random book, all in this process,
  over the bus given (``memory://`` by default, or a real broker): the same round, to see
  it work. With ``--settle`` the plan is then paid on two in-process chains (the bridge's
  :class:`~bridge.localnet.LocalNet`): even banks hold ``usd`` on chain-a, odd ones the
  bridged ``chain-a/usd`` on chain-b, and each leg is a bank transfer, a lock → mint or a
  burn → release (:func:`netting.plan.route_settlement`); every bank's holdings must then
  have moved by exactly its net position.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from bridge.localnet import LocalNet
from chains.bank import get_balance
from chains.crypto import PrivateKey
from chains.errors import ConfigError
from chains.service.bus import open_bus
from chains.service.rpc_client import HttpChain
from interlock.cmd_common import Chains, parse_duration, run_async
from interlock.cmd_transfer import EXIT_REFUNDED, EXIT_WAIT_TIMEOUT, Progress, read_path
from interlock.config import DEFAULT_SEED
from interlock.errors import CommandError
from interlock.keys import load_key
from interlock.netting_round import DIGEST_CHARS, RoundFile, load_round_file
from interlock.netting_settle import (
    JournalRound,
    SettlementJournal,
    get_holding,
    pay_leg,
    wait_for_transfer,
)
from netting.errors import RoundFailed, SettlementFailed
from netting.plan import Leg, LegKind, plan_settlement, route_settlement
from netting.protocol import NettingResult, RoundSpec, default_threshold
from netting.sharing import compute_contribution
from netting.shell import RoundReport, run_netting

__all__ = ["run_demo", "run_run", "settle_in_process"]

DEMO_SEED = "interlock-netting-demo"
ASSET_CHAIN, OTHER_CHAIN = "chain-a", "chain-b"
EXIT_MISMATCH = 5
"""A bank's holding moved by something other than its net position."""
FUNDING = 10**10
"""What each chain-b bank bridges over before settling (more than any demo position)."""


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{what}: comma-separated integers expected") from None


def _keys(text: str) -> tuple[bytes, ...]:
    try:
        return tuple(bytes.fromhex(v.strip()) for v in text.split(","))
    except ValueError:
        raise ConfigError("--parties: comma-separated hex public keys expected") from None


def _show(result: NettingResult, as_json: bool, legs: tuple[Leg, ...] = ()) -> None:
    plan = plan_settlement(result.positions)
    reduction = 1 - result.net / result.gross if result.gross else 0.0
    if as_json:
        out: dict[str, object] = {
            "round_id": result.round_id,
            "me": result.me,
            "positions": list(result.positions),
            "gross": result.gross,
            "net": result.net,
            "volume_reduction": round(reduction, 4),
            "plan": [[t.payer, t.payee, t.amount] for t in plan],
        }
        if legs:
            out["legs"] = [[str(leg.kind), leg.chain, leg.to_chain] for leg in legs]
            out["settled"] = True
        print(json.dumps(out))
        return
    print(f"round {result.round_id}: net positions {list(result.positions)}")
    print(f"gross {result.gross}, net {result.net} ({reduction:.1%} less to settle)")
    for t in plan:
        print(f"  bank {t.payer} pays bank {t.payee} {t.amount}")
    for leg in legs:
        t = leg.transfer
        print(f"  settled: bank {t.payer} -> bank {t.payee} {t.amount}: {_how(leg)}")
    if legs:
        print("every bank's holdings moved by exactly its net position")


def _check(report: RoundReport) -> NettingResult:
    if report.result is None:
        assert report.failure is not None
        raise report.failure
    return report.result


def run_run(args: argparse.Namespace) -> int:
    if args.round is not None:
        for flag in ("round_id", "start", "parties", "threshold", "phase_s"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag.replace('_', '-')}: the round file gives it")
        return run_async(run_round_file)(args)
    if args.settle or args.wait:
        raise ConfigError("--settle needs --round FILE (where every bank holds the asset)")
    for flag in ("round_id", "start", "parties"):
        if getattr(args, flag) is None:
            raise ConfigError(f"--{flag.replace('_', '-')} is required without --round")
    parties = _keys(args.parties)
    key = load_key(args.key, seed=args.seed or DEFAULT_SEED, home=args.home)
    t = default_threshold(len(parties)) if args.threshold is None else args.threshold
    phase_s = 10.0 if args.phase_s is None else args.phase_s
    spec = RoundSpec(args.round_id, parties, t, args.start, phase_s)
    owes = _ints(args.owes, "--owes")

    async def go() -> RoundReport:
        async with open_bus(args.bus_url) as bus:
            return await run_netting(bus, spec, key, owes)

    _show(_check(asyncio.run(go())), args.json)
    return 0


def _owes(text: str, rf: RoundFile, me: int) -> list[int]:
    """``--owes`` with a round file: amounts in party order, or ``NAME=AMOUNT`` pairs."""
    n = len(rf.parties)
    if "=" not in text:
        owes = _ints(text, "--owes")
        if len(owes) != n:
            raise ConfigError(f"--owes: {len(owes)} amounts for the round file's {n} parties")
    else:
        names = [p.name for p in rf.parties]
        owes = [0] * n
        for item in text.split(","):
            name, _, amount = item.partition("=")
            name = name.strip()
            if name not in names:
                raise ConfigError(
                    f"--owes: no party {name[:40]!r} in the round file ({', '.join(names)})"
                )
            k = names.index(name)
            if owes[k]:
                raise ConfigError(f"--owes: {name} given twice")
            owes[k] = _ints(amount, f"--owes {name}")[0]
    compute_contribution(owes, me)  # refuses a bad amount before anyone is contacted
    return owes


async def _round_positions(
    args: argparse.Namespace, rf: RoundFile, key: PrivateKey, owes: list[int]
) -> tuple[tuple[int, ...], int, int]:
    """Run the round; net positions by the round file's index (0 for a bank the round
    went on without), gross and net."""
    async with open_bus(args.bus_url) as bus:
        report = await run_netting(bus, rf.spec, key, owes)
    if report.result is None:
        assert report.failure is not None
        raise RoundFailed(
            f"{report.failure.reason} (round file digest {rf.digest[:DIGEST_CHARS]}: "
            "compare it with the other banks')",
            excluded=report.failure.excluded,
            cheaters=report.failure.cheaters,
        )
    result = report.result
    positions = [0] * len(rf.parties)
    for j, i in enumerate(report.parties):
        positions[i] = result.positions[j]
    return tuple(positions), result.gross, result.net


async def _check_paths(handles: dict[str, HttpChain], rf: RoundFile) -> None:
    """Every chain besides the home one is bridged to it, both ways, and open."""
    home = rf.asset_chain
    for other in rf.chains[1:]:
        for src, dst in ((home, other), (other, home)):
            path = await read_path(handles[src], dst)
            if path.get("paused"):
                raise CommandError(f"the bridge path {src} -> {dst} is paused; nothing submitted")


async def run_round_file(args: argparse.Namespace) -> int:
    """``netting run --round FILE [--settle [--wait]]`` (see docs/netting.md)."""
    rf = load_round_file(args.round)
    wait_s = parse_duration(args.wait_timeout)
    if args.wait and not args.settle:
        raise ConfigError("--wait follows a settlement: give --settle too")
    async with Chains.from_args(args) as chains:
        key = chains.key(args.key)
        me = rf.index_of(key.public_key)
        if me is None:
            raise ConfigError(
                f"--key {args.key[:40]}: its public key {key.public_key.hex()[:16]}... is not "
                f"among the round file's parties ({', '.join(p.name for p in rf.parties)})"
            )
        owes = _owes(args.owes, rf, me)
        if not args.settle:
            positions, gross, net = await _round_positions(args, rf, key, owes)
            _show_round(args, rf, me, positions, gross, net, [], settled=None)
            return 0
        # every chain reached, every path checked, before the round: nothing half done
        handles = {c: await chains.get(c) for c in rf.chains}
        await _check_paths(handles, rf)
        mine = rf.parties[me]
        denom = rf.denom_on(mine.chain)
        data_dir = args.data_dir if args.data_dir is not None else chains.home / "netting"
        journal = SettlementJournal(data_dir / "journal.sqlite")
        try:
            rec = journal.get_round(rf.bus_round_id, key.public_key)
            if rec is None or rec.positions is None:
                before = await get_holding(handles[mine.chain], key.address, denom)
                journal.begin_round(rf.bus_round_id, key.public_key, rf.digest, before)
                positions, gross, net = await _round_positions(args, rf, key, owes)
                journal.record_result(rf.bus_round_id, key.public_key, positions, gross, net)
                first = journal.get_round(rf.bus_round_id, key.public_key)
                before = first.before if first is not None else before  # the first run's
                rec = JournalRound(rf.digest, before, positions, gross, net)
            elif not args.json:
                print(f"round {rf.bus_round_id}: resuming from the journal in {data_dir}")
            return await _settle(args, rf, me, key, handles, journal, rec, wait_s)
        finally:
            journal.close()


async def _settle(
    args: argparse.Namespace,
    rf: RoundFile,
    me: int,
    key: PrivateKey,
    handles: dict[str, HttpChain],
    journal: SettlementJournal,
    rec: JournalRound,
    wait_s: float,
) -> int:
    assert rec.positions is not None
    positions = rec.positions
    mine = rf.parties[me]
    denom = rf.denom_on(mine.chain)
    home = handles[mine.chain]
    legs = route_settlement(
        plan_settlement(positions), [p.chain for p in rf.parties], rf.asset_chain
    )
    own = [(i, leg) for i, leg in enumerate(legs) if leg.transfer.payer == me]
    _show_round(args, rf, me, positions, rec.gross, rec.net, legs, settled=None, header=True)
    deadline = time.monotonic() + wait_s
    # nothing is submitted unless the holding covers every leg not journaled yet
    fresh = sum(
        leg.transfer.amount
        for i, leg in own
        if journal.get_leg(rf.bus_round_id, key.public_key, i) is None
    )
    have = await get_holding(home, key.address, denom)
    if fresh > have:
        raise CommandError(
            f"{key.address} holds {have} {denom} on {mine.chain}, less than the {fresh} "
            "its legs pay; nothing submitted"
        )
    paid = []
    records: list[dict[str, Any]] = []
    try:
        for i, leg in own:
            p = await pay_leg(handles, key, journal, rf, i, leg, deadline)
            paid.append(p)
            what = "already paid" if p.resumed else "paid"
            via = f": transfer {p.transfer}" if p.transfer is not None else ""
            _say(
                args,
                f"{what} leg {i} ({_leg_text(rf, leg)}) at {leg.chain} height "
                f"{p.receipt.height}{via}",
            )
            records.append(
                {
                    "index": i,
                    "tx_hash": p.receipt.tx_hash.hex(),
                    "height": p.receipt.height,
                    "transfer": str(p.transfer) if p.transfer else None,
                    "resumed": p.resumed,
                    "status": "paid",
                }
            )
        if not args.wait:
            _show_round(args, rf, me, positions, rec.gross, rec.net, legs, records, settled=None)
            return 0
        for p, r in zip(paid, records, strict=True):
            if p.transfer is None:
                r["status"] = "delivered"
                continue
            src, dst = handles[p.leg.chain], handles[p.leg.to_chain]
            progress = await wait_for_transfer(src, dst, p.transfer, deadline)
            r["status"] = progress.value
            if progress is Progress.REFUNDED:
                _show_round(args, rf, me, positions, rec.gross, rec.net, legs, records, False)
                _fail(
                    f"leg {p.index} ({p.transfer}) was refunded on {p.leg.chain}: "
                    "run the same command again to pay it anew"
                )
                return EXIT_REFUNDED
            _say(args, f"delivered leg {p.index} on {p.leg.to_chain}")
        want = rec.before + positions[me]
        moved = await _await_holding(home, key.address, denom, want, deadline) - rec.before
    except TimeoutError as exc:
        _show_round(args, rf, me, positions, rec.gross, rec.net, legs, records, False)
        _fail(f"still waiting after {wait_s:.0f}s: {exc}; run the same command again to resume")
        return EXIT_WAIT_TIMEOUT
    ok = moved == positions[me]
    _show_round(args, rf, me, positions, rec.gross, rec.net, legs, records, ok, moved=moved)
    if not ok:
        _fail(
            f"{mine.name}'s {denom} on {mine.chain} moved by {moved}, not by its net "
            f"position {positions[me]}"
        )
        return EXIT_MISMATCH
    return 0


async def _await_holding(
    chain: HttpChain, addr: str, denom: str, want: int, deadline: float
) -> int:
    """The holding once it equals ``want`` (or once it passed it: more than the plan)."""
    while True:
        have = await get_holding(chain, addr, denom)
        if have >= want:
            return have
        if time.monotonic() > deadline:
            raise TimeoutError(f"{denom} on {chain.chain_id} is at {have}, expecting {want}")
        await asyncio.sleep(0.5)


def _how(leg: Leg) -> str:
    return {
        LegKind.TRANSFER: f"bank transfer on {leg.chain}",
        LegKind.LOCK: f"lock on {leg.chain}, minted on {leg.to_chain}",
        LegKind.BURN: f"burn on {leg.chain}, released on {leg.to_chain}",
    }[leg.kind]


def _leg_text(rf: RoundFile, leg: Leg) -> str:
    t = leg.transfer
    return f"{rf.parties[t.payer].name} pays {rf.parties[t.payee].name} {t.amount}: {_how(leg)}"


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, flush=True)


def _fail(line: str) -> None:
    print(f"interlock: {line}", file=sys.stderr, flush=True)


def _show_round(
    args: argparse.Namespace,
    rf: RoundFile,
    me: int,
    positions: tuple[int, ...],
    gross: int,
    net: int,
    legs: Sequence[Leg],
    records: Sequence[dict[str, Any]] = (),
    settled: bool | None = None,
    *,
    header: bool = False,
    moved: int | None = None,
) -> None:
    """The round (``header``, or without a settlement), or the settlement's outcome."""
    reduction = 1 - net / gross if gross else 0.0
    if args.json:
        if header:
            return
        by_index = {r["index"]: r for r in records}
        out: dict[str, object] = {
            "round_id": rf.bus_round_id,
            "me": me,
            "parties": [p.name for p in rf.parties],
            "positions": list(positions),
            "gross": gross,
            "net": net,
            "volume_reduction": round(reduction, 4),
            "plan": [[leg.transfer.payer, leg.transfer.payee, leg.transfer.amount] for leg in legs]
            or [[t.payer, t.payee, t.amount] for t in plan_settlement(positions)],
            "legs": [
                {
                    "index": i,
                    "kind": str(leg.kind),
                    "chain": leg.chain,
                    "to_chain": leg.to_chain,
                    "payer": leg.transfer.payer,
                    "payee": leg.transfer.payee,
                    "amount": leg.transfer.amount,
                    **by_index.get(i, {}),
                }
                for i, leg in enumerate(legs)
            ],
        }
        if settled is not None:
            out["settled"] = settled
            out["moved"] = moved
        print(json.dumps(out), flush=True)
        return
    if header or not legs:
        names = [p.name for p in rf.parties]
        print(
            f"round {rf.bus_round_id}: net positions "
            + ", ".join(f"{n} {p:+d}" for n, p in zip(names, positions, strict=True))
        )
        print(f"gross {gross}, net {net} ({reduction:.1%} less to settle)")
        if not legs:
            for t in plan_settlement(positions):
                print(f"  {names[t.payer]} pays {names[t.payee]} {t.amount}")
        for i, leg in enumerate(legs):
            print(f"  leg {i}: {_leg_text(rf, leg)}")
        return
    if settled:
        mine = rf.parties[me]
        print(
            f"settled: gross {gross} netted to {net} in {len(legs)} legs; {mine.name}'s "
            f"{rf.denom_on(mine.chain)} on {mine.chain} moved by {moved:+d}, its net position"
        )
    elif settled is None:
        print(f"submitted {len(records)} legs (not waiting for delivery)")


def run_demo(args: argparse.Namespace) -> int:
    n = args.banks
    if not 3 <= n <= 64:
        raise ConfigError("--banks: 3..64")
    rng = random.Random(args.seed)
    book = [
        [0 if i == k or rng.random() > 0.7 else rng.randint(1, 10**6) for k in range(n)]
        for i in range(n)
    ]
    keys = [PrivateKey.derive(DEMO_SEED, f"bank-{i}") for i in range(n)]
    spec = RoundSpec(
        f"demo-{rng.getrandbits(32):08x}",
        tuple(k.public_key for k in keys),
        default_threshold(n),
        time.time() + 0.5,
        args.phase_s,
    )

    async def go() -> list[RoundReport]:
        async with open_bus(args.bus_url) as bus:
            return list(
                await asyncio.gather(
                    *(run_netting(bus, spec, k, row) for k, row in zip(keys, book, strict=True))
                )
            )

    results = [_check(r) for r in asyncio.run(go())]
    legs = settle_in_process(results[0].positions) if args.settle else ()
    _show(results[0], args.json, legs)
    return 0


def settle_in_process(positions: tuple[int, ...]) -> tuple[Leg, ...]:
    """Pay the plan for ``positions`` on two in-process chains (see the module docstring);
    raises :class:`SettlementFailed` if a leg is refused or a balance moved otherwise."""
    n = len(positions)
    names = [f"bank-{i}" for i in range(n)]
    homes = [ASSET_CHAIN if i % 2 == 0 else OTHER_CHAIN for i in range(n)]
    net = LocalNet((ASSET_CHAIN, OTHER_CHAIN), accounts=(*names, "relayer"), seed=DEMO_SEED)
    net.connect(ASSET_CHAIN, OTHER_CHAIN)
    usd = net[ASSET_CHAIN].spec.denom
    denoms = {ASSET_CHAIN: usd, OTHER_CHAIN: f"{ASSET_CHAIN}/{usd}"}

    def call(
        label: str, chain: str, name: str, module: str, method: str, a: dict[str, Any]
    ) -> None:
        r = net.call(chain, net.key(chain, name), module, method, a)
        if not r.ok:
            raise SettlementFailed(label, f"{r.code}: {r.error}")

    def holding(i: int) -> int:
        home = homes[i]
        return get_balance(net[home].chain.state, net.key(home, names[i]).address, denoms[home])

    for i in range(n):  # chain-b banks first bridge their usd over
        if homes[i] == OTHER_CHAIN:
            to = net.key(OTHER_CHAIN, names[i]).address
            lock = {"denom": usd, "amount": FUNDING, "dest_chain": OTHER_CHAIN, "recipient": to}
            call(f"funding of bank {i}", ASSET_CHAIN, names[i], "bridge", "lock", lock)
    net.settle(ASSET_CHAIN, OTHER_CHAIN)
    before = [holding(i) for i in range(n)]
    legs = route_settlement(plan_settlement(positions), homes, ASSET_CHAIN)
    for leg in legs:
        t = leg.transfer
        payee = net.key(leg.to_chain, names[t.payee]).address
        label = f"{leg.kind}:{t.payer}->{t.payee}"
        if leg.kind is LegKind.TRANSFER:
            args = {"to": payee, "denom": denoms[leg.chain], "amount": t.amount}
            call(label, leg.chain, names[t.payer], "bank", "transfer", args)
        elif leg.kind is LegKind.LOCK:
            args = {
                "denom": usd,
                "amount": t.amount,
                "dest_chain": leg.to_chain,
                "recipient": payee,
            }
            call(label, leg.chain, names[t.payer], "bridge", "lock", args)
        else:
            args = {"denom": denoms[leg.chain], "amount": t.amount, "recipient": payee}
            call(label, leg.chain, names[t.payer], "bridge", "burn", args)
    net.settle(ASSET_CHAIN, OTHER_CHAIN)
    for i in range(n):
        moved = holding(i) - before[i]
        if moved != positions[i]:
            raise SettlementFailed(f"bank {i}", f"holdings moved by {moved}, not {positions[i]}")
    return legs
