"""One netting round among 5 and among 20 banks over a real broker.

    python bench/netting.py [--seed 1]

Starts its own ``mosquitto`` (``configs/mosquitto.conf`` on a free loopback port, as
``bench/bus.py`` does) unless ``MQTT_URL`` is set. Every bank is a ``run_party`` with its
own MQTT connection, all in this one process (so on one core the round also pays for
every bank's cryptography one after another: ``cpu_s_*`` is that process CPU time).

* ``round_s_N``: from the round's start until the last bank holds its result (wall).
* ``volume_reduction``: ``1 − net / gross`` of the 20-bank round, on a random book (each
  bank owes each other bank with probability 0.7 an amount uniform in 1..10^6): the share
  of the gross obligations that netting removes from settlement. Taken from the MPC's own
  output (it reveals the gross and the net positions) and checked against plain netting.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chains.crypto import PrivateKey  # noqa: E402
from chains.service.bus import open_bus  # noqa: E402
from netting.protocol import RoundSpec, compute_plain_netting, default_threshold  # noqa: E402
from netting.shell import RoundReport, run_party  # noqa: E402


def load_broker() -> type:
    spec = importlib.util.spec_from_file_location("bench_bus", ROOT / "bench" / "bus.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Broker  # type: ignore[no-any-return]


def book_of(rng: random.Random, n: int) -> list[list[int]]:
    return [
        [0 if i == k or rng.random() > 0.7 else rng.randint(1, 10**6) for k in range(n)]
        for i in range(n)
    ]


async def one_round(url: str, n: int, rng: random.Random) -> tuple[float, float, RoundReport]:
    keys = [PrivateKey.derive("bench-netting", str(i)) for i in range(n)]
    book = book_of(rng, n)
    buses = [open_bus(url) for _ in range(n)]
    for b in buses:
        await b.__aenter__()
    try:
        spec = RoundSpec(
            f"bench-{uuid.uuid4().hex[:8]}",
            tuple(k.public_key for k in keys),
            default_threshold(n),
            time.time() + 1.0,  # every bank subscribes before the start
            60.0,
        )
        done: list[float] = []

        async def bank(i: int) -> RoundReport:
            rep = await run_party(buses[i], spec, keys[i], book[i])
            done.append(time.time())
            return rep

        cpu0 = time.process_time()
        reports = await asyncio.gather(*(bank(i) for i in range(n)))
        cpu = time.process_time() - cpu0
    finally:
        for b in buses:
            await b.__aexit__(None, None, None)
    expected = compute_plain_netting(book)
    for rep in reports:
        if rep.result is None or rep.result.positions != expected:
            sys.exit(f"round of {n} went wrong: {rep.failure}")
    return max(done) - spec.start, cpu, reports[0]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    broker = None
    url = os.environ.get("MQTT_URL")
    if not url:
        broker = load_broker()((ROOT / "configs" / "mosquitto.conf").read_text())
        url = f"mqtt://127.0.0.1:{broker.port}"
    try:
        r5, cpu5, _ = await one_round(url, 5, rng)
        print(f"5 banks: round {r5:.3f} s, process CPU {cpu5:.3f} s")
        r20, cpu20, rep = await one_round(url, 20, rng)
        print(f"20 banks: round {r20:.3f} s, process CPU {cpu20:.3f} s")
    finally:
        if broker is not None:
            broker.close()
    assert rep.result is not None
    reduction = 1 - rep.result.net / rep.result.gross
    print(f"20 banks: gross {rep.result.gross}, net {rep.result.net}")
    print(
        json.dumps(
            {
                "round_s_5": round(r5, 3),
                "round_s_20": round(r20, 3),
                "volume_reduction": round(reduction, 4),
                "cpu_s_5": round(cpu5, 3),
                "cpu_s_20": round(cpu20, 3),
                "gross_20": rep.result.gross,
                "net_20": rep.result.net,
                "threshold_20": default_threshold(20),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
