"""Bus benchmark: chain headers and events through Mosquitto at QoS 1, checked on arrival.

Starts its own ``mosquitto`` (``configs/mosquitto.conf`` plus a loopback listener on a free
port). This process runs the node and the block :class:`~chains.service.publisher.Publisher`; a
second process runs a verifying :class:`~chains.service.subscriber.ChainSubscriber` (every commit
signature and every event proof is checked), as a relayer would. Both processes read the
same monotonic clock, so latencies are measured across the process boundary.

* ``bus_msgs_per_s``: headers + events messages published *and verified* per second. The
  publisher is handed ``--blocks`` committed blocks of ``--txs`` transfers each (one
  header and one events message per block) the way the node's subscription hands them
  over, and sends them as fast as the bus takes them; timed from the first publish to the
  subscriber's verification of the last block.
* ``commit_to_subscriber_p50_ms`` / ``_p99_ms``: a live node commits a block every
  ``--interval`` s with ``--txs`` transfers in it; latency runs from the moment the
  node commits a block (``Node.on_commit``: persisted, handed to subscribers) to the
  moment the other process's subscriber yields the verified block.
* ``qos1_round_trip_p50_ms``: one message at a time, publish at QoS 1 and wait for it on
  another connection.
* ``nagle_untuned``: the same latency run and round trip against a broker *without*
  ``set_tcp_nodelay`` and clients without TCP_NODELAY (skip with ``--no-nagle``), to show
  why both settings ship: a steady block stream keeps ACKs flowing and hides Nagle, a lone
  exchange (a quiet chain, a status update, a relayer's request) does not.

Transaction submission through the RPC is measured by ``bench/rpc.py``.

Run: ``python bench/bus.py [--blocks N] [--txs N] [--seconds S] [--interval S]``.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.node import Node, SQLiteBlockStore, Subscription
from chains.service.bus import MqttBus, MqttOptions
from chains.service.publisher import Publisher, status_will
from chains.service.subscriber import ChainSubscriber, TrustedState
from chains.types import Block, Tx, ValidatorSet

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "configs" / "mosquitto.conf"
DEFAULTS_CONF = "allow_anonymous true\npersistence false\n"
SEED = "bench-bus"


class Broker:
    """A private mosquitto on a free loopback port."""

    def __init__(self, conf_text: str) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.access(binary, os.X_OK):
            sys.exit("bench/bus.py needs the mosquitto binary (apt-get install mosquitto)")
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.dir = Path(tempfile.mkdtemp(prefix="interlock-bench-mosquitto-"))
        conf = conf_text + ("\nuser root\n" if os.geteuid() == 0 else "")
        conf += f"\nlistener {self.port} 127.0.0.1\n"
        (self.dir / "m.conf").write_text(conf)
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.dir / "m.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        sys.exit("mosquitto did not start")

    def version(self) -> str:
        out = subprocess.run([self.binary, "-h"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()[:1]
        return first[0].removeprefix("mosquitto version ").strip() if first else "?"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def devnet(chain_id: str) -> DevnetChain:
    [dc] = build_devnet([chain_id], seed=SEED)
    return dc


def transfers(dc: DevnetChain, start: int, n: int) -> list[Tx]:
    alice, bob = dc.accounts["alice"], dc.accounts["bob"]
    args = {"to": bob.address, "denom": dc.denom, "amount": 1}
    return [
        Tx.create(alice, dc.chain_id, i, "bank", "transfer", args) for i in range(start, start + n)
    ]


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# --- the subscriber process -----------------------------------------------------------


class StoreChain:
    """The chain handle of the subscriber process: reads the node's SQLite store (WAL)."""

    def __init__(self, chain_id: str, path: Path) -> None:
        self.chain_id = chain_id
        self.store = SQLiteBlockStore(path)

    async def latest_height(self) -> int:
        return self.store.latest_height()

    async def get_block(self, height: int) -> Block | None:
        return self.store.get_block(height)

    async def get_validators(self, height: int) -> ValidatorSet | None:
        return self.store.get_validators(height)


async def subscriber_role(args: argparse.Namespace) -> None:
    dc = devnet(args.chain)
    opts = MqttOptions("127.0.0.1", args.port, tcp_nodelay=not args.no_nodelay)
    handle: Any = StoreChain(args.chain, Path(args.store))
    trusted = TrustedState.from_genesis(dc.genesis)
    async with MqttBus(opts) as bus:
        await bus.wait_connected(10)
        async with ChainSubscriber(bus, handle, trusted=trusted) as sub:
            print(json.dumps({"ready": True}), flush=True)
            seen: dict[int, float] = {}
            async for vb in sub:
                t = time.perf_counter()
                if not vb.filled:
                    seen[vb.height] = t
                if vb.height >= args.upto:
                    break
            stats = sub.stats
    print(
        json.dumps(
            {
                "verified_at": seen,
                "filled": stats.filled,
                "rejected": sum(stats.rejected.values()),
                "events": stats.verified,
            }
        ),
        flush=True,
    )


class Remote:
    """The subscriber process, seen from the publishing side."""

    def __init__(self, port: int, chain: str, store: Path, upto: int, nodelay: bool) -> None:
        cmd = [sys.executable, __file__, "--role", "subscriber", "--port", str(port)]
        cmd += ["--chain", chain, "--store", str(store), "--upto", str(upto)]
        if not nodelay:
            cmd.append("--no-nodelay")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("the subscriber process did not start")

    def result(self, timeout: float = 120) -> Mapping[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["verified_at"] = {int(k): v for k, v in result["verified_at"].items()}
        return result


# --- the publishing side --------------------------------------------------------------


class Replay:
    """Committed blocks handed to the publisher as the node's live subscription would."""

    def __init__(self, node: Node, blocks: list[Block]) -> None:
        self.node, self.blocks = node, blocks
        self.chain_id = node.chain_id
        self.height = 0  # nothing to catch up from the store: every block comes "live"

    def subscribe(self, maxsize: int = 4096) -> Subscription:
        sub = Subscription(len(self.blocks) + 1)
        for b in self.blocks:
            sub._push(b)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()

    def get_block(self, height: int) -> Block | None:
        return self.node.get_block(height)

    def get_validators(self, height: int) -> ValidatorSet | None:
        return self.node.get_validators(height)


async def throughput(port: int, blocks: int, txs: int, data: Path) -> dict[str, Any]:
    dc = devnet("bench-tput")
    path = data / "tput.sqlite3"
    node = Node.open(dc.genesis, base_modules, dc.validator_keys, SQLiteBlockStore(path))
    nonce = 0
    produced = []
    for _ in range(blocks):  # commit the blocks first, without a clock
        for tx in transfers(dc, nonce, txs):
            node.submit_nowait(tx).add_done_callback(lambda f: f.exception())
        nonce += txs
        produced.append(node.produce_block())
    remote = Remote(port, dc.chain_id, path, blocks, True)
    await asyncio.to_thread(remote.wait_ready)
    async with MqttBus(MqttOptions("127.0.0.1", port, will=status_will(dc.chain_id))) as bus:
        await bus.wait_connected(10)
        t0 = time.perf_counter()
        async with Publisher(Replay(node, produced), bus, from_height=1, status_every=10**9) as pub:
            result = await asyncio.to_thread(remote.result)
    await node.stop()
    elapsed = max(result["verified_at"].values()) - t0
    return {
        "bus_msgs_per_s": round(2 * blocks / elapsed),
        "blocks_per_s": round(blocks / elapsed),
        "events_per_s": round(blocks * txs / elapsed),
        "published_msgs": pub.messages,
        "fills": result["filled"],
        "rejected": result["rejected"],
    }


async def latency(
    port: int, seconds: float, interval: float, txs: int, data: Path, nodelay: bool, tag: str
) -> dict[str, Any]:
    dc = devnet(f"bench-{tag}")
    path = data / f"{tag}.sqlite3"
    node = Node.open(
        dc.genesis,
        base_modules,
        dc.validator_keys,
        SQLiteBlockStore(path),
        block_interval=interval,
    )
    committed: dict[int, float] = {}

    def stamp(block: Block) -> None:
        committed[block.height] = time.perf_counter()

    node.on_commit.append(stamp)  # every block, whichever production path made it
    upto = int(seconds / interval)
    node.produce_block()  # height 1 exists before the subscriber opens the store
    remote = Remote(port, dc.chain_id, path, upto, nodelay)
    await asyncio.to_thread(remote.wait_ready)
    opts = MqttOptions("127.0.0.1", port, tcp_nodelay=nodelay, will=status_will(dc.chain_id))
    async with MqttBus(opts) as bus:
        await bus.wait_connected(10)
        async with node, Publisher(node, bus, from_height=1):
            nonce = 0

            async def feed() -> None:
                nonlocal nonce
                while True:
                    for tx in transfers(dc, nonce, txs):
                        node.submit_nowait(tx).add_done_callback(lambda f: f.exception())
                    nonce += txs
                    await asyncio.sleep(interval)

            feeder = asyncio.create_task(feed())
            try:
                result = await asyncio.to_thread(remote.result)
            finally:
                feeder.cancel()
    lat = [
        (t - committed[h]) * 1000
        for h, t in sorted(result["verified_at"].items())
        if h in committed and h > 5  # skip connection warm-up
    ]
    return {
        "p50_ms": round(percentile(lat, 0.50), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "max_ms": round(max(lat), 3),
        "blocks": len(lat),
        "fills": result["filled"],
        "rejected": result["rejected"],
    }


async def round_trip(port: int, nodelay: bool, n: int) -> float:
    """p50 of one QoS 1 publish → receipt on another connection, one message at a time."""
    opts = MqttOptions("127.0.0.1", port, tcp_nodelay=nodelay)
    topic = f"interlock-bench/rtt/{os.getpid()}"
    async with MqttBus(opts) as pub, MqttBus(opts) as sub:
        await pub.wait_connected(10)
        await sub.wait_connected(10)
        async with sub.subscribe(topic) as messages:
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                await pub.publish(topic, str(i).encode())
                await messages.__anext__()
                times.append((time.perf_counter() - t0) * 1000)
    return round(percentile(times, 0.5), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=3000, help="blocks sent for throughput")
    ap.add_argument("--txs", type=int, default=10, help="transfers (events) per block")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    ap.add_argument("--interval", type=float, default=0.02, help="block interval, s")
    ap.add_argument("--no-nagle", action="store_true", help="skip the untuned-broker run")
    ap.add_argument(
        "--role", default="main", choices=["main", "subscriber"], help=argparse.SUPPRESS
    )
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--chain", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--upto", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-nodelay", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "subscriber":
        asyncio.run(subscriber_role(args))
        return

    tuned = Broker(CONF.read_text())
    version = tuned.version()
    try:
        with tempfile.TemporaryDirectory() as d:
            tput = asyncio.run(throughput(tuned.port, args.blocks, args.txs, Path(d)))
            print(f"throughput: {tput}")
            lat = asyncio.run(
                latency(tuned.port, args.seconds, args.interval, args.txs, Path(d), True, "lat")
            )
            print(f"latency, configs/mosquitto.conf + TCP_NODELAY: {lat}")
            rtt = asyncio.run(round_trip(tuned.port, True, 200))
            print(f"one QoS 1 round trip, p50 ms: {rtt}")
    finally:
        tuned.close()
    nagle = None
    if not args.no_nagle:
        plain = Broker(DEFAULTS_CONF)
        try:
            with tempfile.TemporaryDirectory() as d:
                secs = min(args.seconds, 5.0)
                nagle = asyncio.run(
                    latency(plain.port, secs, args.interval, args.txs, Path(d), False, "nagle")
                )
                print(f"latency, mosquitto defaults, no TCP_NODELAY: {nagle}")
                nagle["rtt_p50_ms"] = asyncio.run(round_trip(plain.port, False, 30))
                print(f"one QoS 1 round trip, p50 ms: {nagle['rtt_p50_ms']}")
        finally:
            plain.close()
    print(
        json.dumps(
            {
                "bus_msgs_per_s": tput["bus_msgs_per_s"],
                "blocks_per_s": tput["blocks_per_s"],
                "events_per_s": tput["events_per_s"],
                "commit_to_subscriber_p50_ms": lat["p50_ms"],
                "commit_to_subscriber_p99_ms": lat["p99_ms"],
                "target_p99_ms": 20,
                "latency_blocks": lat["blocks"],
                "block_interval_ms": round(args.interval * 1000),
                "events_per_block": args.txs,
                "qos": 1,
                "publish_window": 50,
                "verified": "every commit signature and event proof, in a separate process",
                "fills": tput["fills"] + lat["fills"],
                "rejected": tput["rejected"] + lat["rejected"],
                "broker": {
                    "mosquitto": version,
                    "config": "configs/mosquitto.conf",
                    "set_tcp_nodelay": True,
                    "max_queued_messages": 100000,
                },
                "client_tcp_nodelay": True,
                "qos1_round_trip_p50_ms": rtt,
                "nagle_untuned": None
                if nagle is None
                else {
                    "broker_config": "mosquitto defaults (no set_tcp_nodelay)",
                    "client_tcp_nodelay": False,
                    "commit_to_subscriber_p50_ms": nagle["p50_ms"],
                    "commit_to_subscriber_p99_ms": nagle["p99_ms"],
                    "qos1_round_trip_p50_ms": nagle["rtt_p50_ms"],
                },
                "rpc": "bench/rpc.py",
            }
        )
    )


if __name__ == "__main__":
    main()
