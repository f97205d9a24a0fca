"""``interlock netting``: multilateral netting rounds (see :mod:`netting`).

* ``interlock netting run``: this bank's side of a round over a bus, with every other bank
  running the same command on its own host (same round id, start, phase length, party
  list); prints the net positions, gross versus net volume and the settlement plan.
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
import time
from typing import Any

from bridge.localnet import LocalNet
from chains.bank import get_balance
from chains.crypto import PrivateKey
from chains.errors import ConfigError
from chains.service.bus import open_bus
from interlock.keys import load_key
from netting.errors import SettlementFailed
from netting.plan import Leg, LegKind, plan_settlement, route_settlement
from netting.protocol import NettingResult, RoundSpec, default_threshold
from netting.shell import RoundReport, run_netting

__all__ = ["register"]

DEMO_SEED = "interlock-netting-demo"
ASSET_CHAIN, OTHER_CHAIN = "chain-a", "chain-b"
FUNDING = 10**10
"""What each chain-b bank bridges over before settling (more than any demo position)."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    n = sub.add_parser("netting", help="multilateral netting by secure multi-party computation")
    ns = n.add_subparsers(dest="netting_command", required=True)

    r = ns.add_parser("run", help="take part in a netting round as one bank")
    r.add_argument("--bus-url", required=True, help="memory:// or mqtt[s]://host[:port]")
    r.add_argument("--round-id", required=True, help="shared by every bank of the round")
    r.add_argument("--start", type=float, required=True, help="Unix time the round opens")
    r.add_argument("--phase-s", type=float, default=10.0, help="seconds per phase (10)")
    r.add_argument(
        "--parties", required=True, help="the banks' ed25519 public keys, hex, comma separated"
    )
    r.add_argument("--threshold", type=int, default=None, help="t (default (n-1)//2)")
    r.add_argument("--key", required=True, help="this bank's key: a keystore name or devnet:NAME")
    r.add_argument("--seed", default="interlock-devnet", help="devnet seed for devnet:NAME keys")
    r.add_argument("--owes", required=True, help="what this bank owes each party, comma separated")
    r.add_argument("--json", action="store_true", help="one JSON object")
    r.set_defaults(run=run_run)

    d = ns.add_parser("demo", help="a round among banks with a random book, in this process")
    d.add_argument("--banks", type=int, default=3, help="how many banks (3)")
    d.add_argument("--bus-url", default="memory://", help="memory:// (default) or mqtt://...")
    d.add_argument("--seed", type=int, default=1, help="seed of the random book")
    d.add_argument("--phase-s", type=float, default=10.0, help="seconds per phase (10)")
    d.add_argument(
        "--settle", action="store_true", help="then pay the plan on two in-process chains"
    )
    d.add_argument("--json", action="store_true", help="one JSON object")
    d.set_defaults(run=run_demo)


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
        how = {
            LegKind.TRANSFER: f"bank transfer on {leg.chain}",
            LegKind.LOCK: f"lock on {leg.chain}, minted on {leg.to_chain}",
            LegKind.BURN: f"burn on {leg.chain}, released on {leg.to_chain}",
        }[leg.kind]
        print(f"  settled: bank {t.payer} -> bank {t.payee} {t.amount}: {how}")
    if legs:
        print("every bank's holdings moved by exactly its net position")


def _check(report: RoundReport) -> NettingResult:
    if report.result is None:
        assert report.failure is not None
        raise report.failure
    return report.result


def run_run(args: argparse.Namespace) -> int:
    parties = _keys(args.parties)
    key = load_key(args.key, seed=args.seed)
    t = default_threshold(len(parties)) if args.threshold is None else args.threshold
    spec = RoundSpec(args.round_id, parties, t, args.start, args.phase_s)
    owes = _ints(args.owes, "--owes")

    async def go() -> RoundReport:
        async with open_bus(args.bus_url) as bus:
            return await run_netting(bus, spec, key, owes)

    _show(_check(asyncio.run(go())), args.json)
    return 0


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
