"""End-to-end relayer benchmark: proven lock -> mint transfers per second across processes.

    python bench/e2e.py [--rate 2500] [--seconds 20] [--interval 0.5]

Runs what an operator runs, each as its own process: Mosquitto (``configs/mosquitto.conf``
on a free port), ``interlock chain start`` for chain-a and chain-b (SQLite stores, RPC,
publishers on the broker), ``interlock path create`` and ``interlock start`` (the relayer
daemon, relaying ``chain-a -> chain-b`` transfers). Bridge ``lock`` transactions from many
sender accounts (funded in genesis) are signed and encoded *before* the clock starts, then
submitted to chain-a's RPC (``POST /txs?wait=false``) at a steady ``--rate``, every
``--tick`` seconds whatever is due. Once every lock is minted on chain-b (or a deadline
passes), both chains' blocks are read back over RPC:

* ``transfers_per_s``: locks committed on chain-a in the steady window (after
  ``--warmup`` s, up to the last lock's block) whose mint committed on chain-b, per second
  of that window; ``mints_per_s`` counts chain-b's mint blocks in the same window instead;
* ``latency_p50_ms`` / ``latency_p99_ms`` / ``latency_max_ms``: chain-b's block time of
  each mint minus chain-a's block time of its lock (both chains run on this machine's
  clock), over the window's transfers;
* ``block_interval_ms``: the chains' configured interval, and ``src_block_interval_ms``
  the mean measured one of chain-a over the window (a chain that cannot keep its interval
  under load shows it here);
* ``cpu_ms_per_s``: CPU milliseconds per wall second of each process over the window
  (relayer, chain-a, chain-b with their signature workers, mosquitto, this client), and
  ``cpu_us_per_transfer``: the same per transfer: where the two cores go;
* ``skip_sig_ratio``: ``bench/lightclient.py``'s figure (a light client catching up 10,000
  heights of a chain whose validator set churns by 1/4 at a time: signatures the skipping
  planner checked / those sequential updates check; goal at most 0.05). ``--no-lightclient``
  leaves it out (it takes ~20 s).

Goal (issue 8): at least 2,500 transfers/s with ``latency_p99_ms`` within two block
intervals. The machine is shared: ``load_avg_1m`` and ``ed25519_verify_per_s_now`` say how
busy it was. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from rpc import cpu_seconds, free_port, verify_rate  # bench/rpc.py: the same yardsticks

from chains.crypto import PrivateKey
from chains.types import Tx

ROOT = Path(__file__).resolve().parent.parent
SEED = "interlock-devnet"
A, B = "chain-a", "chain-b"
DENOM = "usd"
STARTUP = 90.0
MAX_POST = 4000
"""Most locks per request (~600 B each: within the RPC's 8 MiB body limit)."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


# --- processes ---------------------------------------------------------------------------


class Procs:
    """Every process the bench starts; all are stopped at the end, by their own pid."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("wb") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = p
        return p

    def check(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.tmp / f"{name}.log").read_text()[-3000:]
                raise SystemExit(f"{name} exited with {p.returncode}:\n{tail}")

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def mosquitto_binary() -> str:
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if p and os.access(p, os.X_OK):
            return p
    raise SystemExit("mosquitto not found (apt-get install mosquitto)")


def start_broker(procs: Procs) -> str:
    port = free_port()
    text = (ROOT / "configs" / "mosquitto.conf").read_text()
    if os.geteuid() == 0:
        text += "\nuser root\n"  # as root mosquitto would switch to user 'mosquitto'
    conf = procs.tmp / "mosquitto.conf"
    conf.write_text(f"{text}\nlistener {port} 127.0.0.1\n")
    procs.start("mosquitto", [mosquitto_binary(), "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        procs.check()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"mqtt://127.0.0.1:{port}"
        time.sleep(0.05)
    raise SystemExit("mosquitto did not listen")


def sender_names(n: int) -> list[str]:
    return [f"sender{i}" for i in range(n)]


def chain_toml(cid: str, tmp: Path, port: int, bus: str, args: argparse.Namespace) -> Path:
    names = ", ".join(f'"{n}"' for n in ["alice", "bob", "relayer", *sender_names(args.senders)])
    path = tmp / f"{cid}.toml"
    path.write_text(
        f'chain_id = "{cid}"\ndata_dir = "{tmp / cid}"\nseed = "{SEED}"\n'
        f"block_interval = {args.interval}\nmax_block_txs = 50000\nmempool_capacity = 500000\n"
        f"[rpc]\nport = {port}\nmax_batch = 50000\n"
        f'[bus]\nurl = "{bus}"\n'
        f'[genesis]\ndenom = "{DENOM}"\naccounts = [{names}]\n'
    )
    return path


def relayer_toml(
    tmp: Path, urls: dict[str, str], bus: str, api_port: int, args: argparse.Namespace
) -> Path:
    chains = "".join(
        f'\n[[chains]]\nid = "{cid}"\nrpc = ["{url}"]\nkey = "devnet:relayer"\n'
        f"block_interval = {args.interval}\n"
        for cid, url in urls.items()
    )
    paths = f'\n[[paths]]\nsrc = "{A}"\ndst = "{B}"\nrelay = ["transfers"]\n'
    if args.full:  # what configs/relayer.toml runs: both directions and swaps
        paths = (
            f'\n[[paths]]\nsrc = "{A}"\ndst = "{B}"\nrelay = ["transfers", "swaps"]\n'
            f'\n[[paths]]\nsrc = "{B}"\ndst = "{A}"\nrelay = ["transfers"]\n'
        )
    path = tmp / "relayer.toml"
    path.write_text(
        f'[relayer]\ndata_dir = "{tmp / "relayer"}"\nbus_url = "{bus}"\n'
        f"batch_blocks = {args.batch_blocks}\n[api]\nport = {api_port}\n{chains}{paths}"
    )
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "interlock.cli", *args]


# --- the run -----------------------------------------------------------------------------


def presign(args: argparse.Namespace) -> list[bytes]:
    """Every lock, encoded; senders interleaved, each sender's nonces in order."""
    keys = [PrivateKey.derive(SEED, n) for n in sender_names(args.senders)]
    total = round(args.rate * args.seconds)
    recipient = PrivateKey.derive(SEED, "bob").address
    out: list[bytes] = []
    for i in range(total):
        k = keys[i % len(keys)]
        lock = {"denom": DENOM, "amount": 1, "dest_chain": B, "recipient": recipient}
        tx = Tx.create(k, A, i // len(keys), "bridge", "lock", lock)
        out.append(orjson.dumps(tx.to_json()))
    return out


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as r:
        if r.status != 200:
            raise SystemExit(f"{url}: {r.status} {(await r.text())[:300]}")
        return orjson.loads(await r.read())


async def wait_height(http: aiohttp.ClientSession, url: str, procs: Procs, at_least: int) -> int:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        procs.check()
        try:
            async with http.get(url + "/healthz") as r:
                if r.status == 200 and (h := (await r.json())["height"]) >= at_least:
                    return int(h)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not reach height {at_least}")


def profile(
    args: argparse.Namespace, pids: dict[str, int], tmp: Path
) -> list[subprocess.Popen[bytes]]:
    """``--profile DIR``: py-spy records each Python process (and its signature worker)
    for the submission, as collapsed stacks (``DIR/<name>.txt``, one line per stack and
    its sample count)."""
    if not args.profile:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    out = []
    for name, pid in pids.items():
        if name == "mosquitto":
            continue
        cmd = [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
        cmd += ["--duration", str(round(args.seconds)), "--nonblocking", "--rate", "200"]
        cmd += ["--output", str(args.profile / f"{name}.txt")]
        log = (tmp / f"py-spy-{name}.log").open("wb")
        out.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    return out


async def caught_up(http: aiohttp.ClientSession, api: str, src: str, procs: Procs) -> None:
    """Until the daemon's worker has processed chain-a up to its current height: the
    catch-up from genesis at start is not what is measured."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        procs.check()
        try:
            height = (await get_json(http, src + "/healthz"))["height"]
            work = (await get_json(http, api + "/status"))["work"]
            if work and all(
                w["state"] == "running" and w["source_height"] >= height - 1 for w in work
            ):
                return
        except (aiohttp.ClientError, SystemExit):
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the relayer did not catch up with chain-a")


async def submit(
    http: aiohttp.ClientSession, url: str, bodies: list[bytes], rate: float, tick: float
) -> tuple[float, float, int]:
    """POST the locks at ``rate``: every ``tick`` all that are due, as one batch, in order.
    Returns (start, end) wall times and the number refused at admission."""
    refused = 0
    sent = 0
    t0 = time.monotonic()
    w0 = time.time()
    while sent < len(bodies):
        due = min(len(bodies), int(rate * (time.monotonic() - t0)) + 1, sent + MAX_POST)
        if due > sent:
            body = b'{"txs":[' + b",".join(bodies[sent:due]) + b"]}"
            async with http.post(
                url + "/txs?wait=false", data=body, headers={"Content-Type": "application/json"}
            ) as r:
                answer = orjson.loads(await r.read())
                if r.status != 200:
                    raise SystemExit(f"submit: {r.status} {str(answer)[:300]}")
            refused += sum(1 for x in answer["results"] if "error" in x)
            sent = due
        next_at = t0 + (sent / rate) + tick
        await asyncio.sleep(max(0.0, min(tick, next_at - time.monotonic())))
    return w0, time.time(), refused


async def read_events(
    http: aiohttp.ClientSession, url: str, first: int, last: int, kind: str
) -> dict[int, int]:
    """nonce -> block time (ms) of every ``bridge.<kind>`` event of the path A->B in
    heights first..last."""
    out: dict[int, int] = {}
    for h in range(first, last + 1):
        block = (await get_json(http, f"{url}/blocks/{h}"))["block"]
        t = int(block["header"]["time"])
        for ev in block["events"]:
            if ev["type"] == f"bridge.{kind}":
                a = ev["attributes"]
                # a lock names both ends; a mint only the source
                if a.get("src_chain") == A and a.get("dst_chain", B) == B:
                    out[int(a["nonce"])] = t
    return out


async def block_times(http: aiohttp.ClientSession, url: str, first: int, last: int) -> list[int]:
    return [
        int((await get_json(http, f"{url}/headers/{h}"))["header"]["time"])
        for h in range(first, last + 1)
    ]


async def run(args: argparse.Namespace, tmp: Path, procs: Procs) -> dict[str, Any]:
    bus = start_broker(procs)
    ports = {A: free_port(), B: free_port()}
    urls = {cid: f"http://127.0.0.1:{p}" for cid, p in ports.items()}
    for cid in (A, B):
        procs.start(
            cid, cli("chain", "start", "--config", str(chain_toml(cid, tmp, ports[cid], bus, args)))
        )
    api = f"http://127.0.0.1:{(api_port := free_port())}"
    rcfg = relayer_toml(tmp, urls, bus, api_port, args)

    t = time.perf_counter()
    bodies = presign(args)
    sign_s = time.perf_counter() - t

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        for cid in (A, B):
            await wait_height(http, urls[cid], procs, 1)
        deadline = time.monotonic() + STARTUP
        while True:
            r = await asyncio.to_thread(
                subprocess.run,
                cli("path", "create", "--config", str(rcfg), "--src", A, "--dst", B),
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"path create failed: {r.stderr}")
            await asyncio.sleep(0.3)
        procs.start("relayer", cli("start", "--config", str(rcfg)))
        await caught_up(http, api, urls[A], procs)
        first_a = await wait_height(http, urls[A], procs, 1) + 1
        first_b = await wait_height(http, urls[B], procs, 1)

        pids = {name: p.pid for name, p in procs.procs.items()}
        spies = profile(args, pids, tmp)
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        own0 = time.process_time()
        w0, w1, refused = await submit(http, urls[A], bodies, args.rate, args.tick)
        cpu1 = {n: cpu_seconds(p) for n, p in pids.items()}
        cpu1["client"], cpu0["client"] = (time.process_time(), 0.0), (own0, 0.0)
        submit_s = w1 - w0
        for spy in spies:
            spy.wait()

        # until the last lock is minted (every lock of this run has a nonce 1..total)
        total = len(bodies)
        deadline = time.monotonic() + args.drain
        delivered_all = False
        while time.monotonic() < deadline:
            procs.check()
            async with http.post(
                urls[B] + "/query/bridge/received", json={"remote_chain": A, "nonce": total}
            ) as r:
                if r.status == 200 and (await r.json())["result"] is not None:
                    delivered_all = True
                    break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2 * args.interval)
        last_a = (await get_json(http, urls[A] + "/healthz"))["height"]
        last_b = (await get_json(http, urls[B] + "/healthz"))["height"]
        locks = await read_events(http, urls[A], first_a, last_a, "locked")
        mints = await read_events(http, urls[B], first_b, last_b, "minted")
        a_times = await block_times(http, urls[A], first_a, last_a)

    if not locks:
        raise SystemExit("no lock committed")
    start_ms = min(locks.values()) + args.warmup * 1000
    end_ms = max(locks.values())
    window = [n for n, t in locks.items() if start_ms <= t <= end_ms]
    window_s = max(1e-9, (end_ms - start_ms) / 1000)
    done = [n for n in window if n in mints]
    lat = sorted(mints[n] - locks[n] for n in done)
    mints_in_window = sum(1 for t in mints.values() if start_ms <= t <= end_ms)
    in_window = [t for t in a_times if start_ms <= t <= end_ms]
    intervals = [b - a for a, b in itertools.pairwise(in_window)]
    # per process: (own, children) CPU seconds during the submission
    cpu = {n: (cpu1[n][0] - cpu0[n][0], cpu1[n][1] - cpu0[n][1]) for n in cpu1}
    us = {n: (own + kids) / total * 1e6 for n, (own, kids) in cpu.items()}
    # What the CPU alone allows: all the work spread over the machine's cores, and each
    # process's event loop (one thread: at most one core, whatever the machine has).
    cores = os.cpu_count() or 1
    machine_bound = cores * 1e6 / sum(us.values())
    loop_bound = {n: total / own for n, (own, _) in cpu.items() if own > 0}
    busiest = min(loop_bound, key=loop_bound.__getitem__)
    return {
        "bench": "e2e",
        "transfers_per_s": round(len(done) / window_s),
        "latency_p50_ms": round(percentile(lat, 0.5)),
        "latency_p99_ms": round(percentile(lat, 0.99)),
        "latency_max_ms": round(lat[-1]) if lat else None,
        "block_interval_ms": round(args.interval * 1000),
        "src_block_interval_ms": round(sum(intervals) / len(intervals)) if intervals else None,
        "skip_sig_ratio": None,
        "offered_per_s": args.rate,
        "mints_per_s": round(mints_in_window / window_s),
        "window_s": round(window_s, 2),
        "locks": total,
        "locks_committed": len(locks),
        "refused_at_admission": refused,
        "minted": len(mints),
        "all_delivered": delivered_all,
        "submit_s": round(submit_s, 2),
        "cpu_ms_per_s": {n: round(sum(c) / submit_s * 1000) for n, c in cpu.items()},
        "cpu_us_per_transfer": {n: round(v) for n, v in us.items()},
        "worker_cpu_us_per_transfer": {
            n: round(kids / total * 1e6) for n, (_, kids) in cpu.items() if kids
        },
        "cpu_bound_transfers_per_s": round(min(machine_bound, loop_bound[busiest])),
        "cpu_bound_by": "cores" if machine_bound < loop_bound[busiest] else f"{busiest} loop",
        "senders": args.senders,
        "batch_blocks": args.batch_blocks,
        "full_config": args.full,
        "cores": cores,
        "client_sign_s": round(sign_s, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=2500, help="locks per second offered")
    p.add_argument("--seconds", type=float, default=20, help="seconds of submission")
    p.add_argument("--interval", type=float, default=0.5, help="block interval of both chains, s")
    p.add_argument("--senders", type=int, default=200, help="lock sender accounts")
    p.add_argument("--tick", type=float, default=0.05, help="seconds between submissions")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds left out of the window")
    p.add_argument("--drain", type=float, default=60.0, help="most seconds to wait for mints")
    p.add_argument("--batch-blocks", type=int, default=64, help="relayer.batch_blocks")
    p.add_argument("--full", action="store_true", help="relay both ways and swaps too")
    p.add_argument("--no-lightclient", action="store_true", help="skip skip_sig_ratio")
    p.add_argument("--profile", type=Path, default=None, help="py-spy stacks into this dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    args = p.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.senders < 1:
        raise SystemExit("--rate, --seconds and --senders must be positive")

    skip: dict[str, object] = {}
    if not args.no_lightclient:
        import lightclient  # bench/lightclient.py

        skip = lightclient.main()

    tmp = Path(tempfile.mkdtemp(prefix="interlock-bench-e2e-"))
    procs = Procs(tmp)
    try:
        result = asyncio.run(run(args, tmp, procs))
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["skip_sig_ratio"] = skip.get("skip_sig_ratio")
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["ed25519_verify_per_s_now"] = round(verify_rate())
    if args.keep:
        result["dir"] = str(tmp)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
