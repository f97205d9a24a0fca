"""RPC benchmark: transactions per second submitted through a chain's JSON RPC.

A real ``interlock chain start`` process serves the RPC (node, SQLite store, memory bus:
the server side is exactly what runs in production); this process is the client. The
transactions are signed and their request bodies encoded *before* the clock starts, so the
figures are the server's: HTTP parsing, JSON decoding, ``Tx.from_json`` (hostile decoder:
canonical re-encoding, SHA-256, address), mempool admission with the ed25519 signature
check, and the answer, all while the node keeps producing blocks on the same core.

* ``single_tx_per_s``: one transaction per ``POST /tx?wait=false``, ``--concurrency``
  requests in flight (one sender per worker, so nonces arrive in order).
* ``batched_tx_per_s``: ``POST /txs?wait=false`` with ``--batch`` transactions each, a few
  batches in flight. Admission rate (hash returned = checked and queued).
* ``batched_committed_tx_per_s``: from the first batch to the block that commits the last
  of those transactions (every one must commit ok).
* ``batched_tx_per_server_loop_cpu_s``, ``server_*_cpu_us_per_tx``: the server's CPU per
  batched transaction, event loop (decode, admit, produce, publish, answer) and signature
  worker apart. On a shared machine wall-clock rates measure the neighbours too; these
  do not, and ``ed25519_verify_per_s_now`` says how fast the machine was at the time.

Run: ``python bench/rpc.py [--txs N] [--batch N] [--single N]``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson

from chains.crypto import PrivateKey, verify
from chains.types import Tx

ROOT = Path(__file__).resolve().parent.parent
SEED = "interlock-bench"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of a process and of its live children (Linux /proc):
    the server's event loop, and its signature-checking worker."""

    def of(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    return of(pid), sum(of(c) for c in children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, data_dir: Path, port: int, accounts: int, interval: float) -> None:
    names = ", ".join(f'"bench{i}"' for i in range(accounts))
    path.write_text(
        f"""chain_id = "bench"
data_dir = "{data_dir}"
seed = "{SEED}"
block_interval = {interval}
max_block_txs = 20000
mempool_capacity = 200000
[rpc]
port = {port}
max_batch = 10000
[bus]
url = "memory://"
[genesis]
denom = "usd"
accounts = [{names}]
"""
    )


def sign_all(keys: list[PrivateKey], per_key: int, start_nonce: int) -> list[list[Tx]]:
    to = keys[0].address
    return [
        [
            Tx.create(k, "bench", n, "bank", "transfer", {"to": to, "denom": "usd", "amount": 1})
            for n in range(start_nonce, start_nonce + per_key)
        ]
        for k in keys
    ]


def verify_rate(n: int = 3000) -> float:
    """ed25519 verifies per second in this process right now: a yardstick of how busy
    the machine is (MEASURED.md: 26.4k/s on an idle one)."""
    key = PrivateKey.derive(SEED, "yardstick")
    msgs = [b"m%d" % i for i in range(n)]
    sigs = [key.sign(m) for m in msgs]
    t = time.perf_counter()
    for m, sig in zip(msgs, sigs, strict=True):
        verify(key.public_key, m, sig)
    return n / (time.perf_counter() - t)


async def wait_ready(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the chain process exited")
        try:
            async with http.get(url + "/healthz") as r:
                if r.status == 200 and (await r.json())["height"] >= 1:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the chain process did not become healthy")


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> dict[str, object]:
    """POST with retry on 429 (mempool full: back-pressure, counted in the time)."""
    while True:
        async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            data = orjson.loads(await r.read())
            if r.status == 429:
                await asyncio.sleep(0.05)
                continue
            if r.status >= 300:
                raise SystemExit(f"{url}: {r.status} {data}")
            return data  # type: ignore[no-any-return]


async def bench(
    args: argparse.Namespace, port: int, proc: subprocess.Popen[bytes]
) -> dict[str, object]:
    url = f"http://127.0.0.1:{port}"
    keys = [PrivateKey.derive(SEED, f"bench{i}") for i in range(args.accounts)]

    t0 = time.perf_counter()
    single_per_key = max(1, args.single // args.accounts)
    single = sign_all(keys, single_per_key, 0)
    batched_per_key = max(1, args.txs // args.accounts)
    batched = sign_all(keys, batched_per_key, single_per_key)
    sign_s = time.perf_counter() - t0
    single_bodies = [[orjson.dumps(t.to_json()) for t in txs] for txs in single]
    batches: list[list[bytes]] = []  # per key: its batches, in nonce order
    for txs in batched:
        chunks = [txs[i : i + args.batch] for i in range(0, len(txs), args.batch)]
        batches.append([orjson.dumps({"txs": [t.to_json() for t in c]}) for c in chunks])
    n_single = sum(len(b) for b in single_bodies)
    n_batched = sum(len(t) for t in batched)

    conn = aiohttp.TCPConnector(limit=args.concurrency + 8)
    async with aiohttp.ClientSession(connector=conn) as http:
        await wait_ready(http, url, proc)

        async def single_worker(bodies: list[bytes]) -> None:
            for b in bodies:
                await post(http, url + "/tx?wait=false", b)

        t = time.perf_counter()
        for i in range(0, len(single_bodies), args.concurrency):
            group = single_bodies[i : i + args.concurrency]
            await asyncio.gather(*(single_worker(b) for b in group))
        single_s = time.perf_counter() - t

        # let the single-tx run commit first, so the batched run starts clean
        await wait_committed(http, url, keys, single_per_key)

        async def batch_worker(key_batches: list[bytes]) -> None:
            for b in key_batches:
                await post(http, url + "/txs?wait=false", b)

        cpu0 = cpu_seconds(proc.pid)
        t = time.perf_counter()
        for i in range(0, len(batches), args.inflight):
            await asyncio.gather(*(batch_worker(b) for b in batches[i : i + args.inflight]))
        batched_s = time.perf_counter() - t
        await wait_committed(http, url, keys, single_per_key + batched_per_key)
        committed_s = time.perf_counter() - t
        cpu2 = cpu_seconds(proc.pid)
        async with http.get(url + "/status") as r:
            status = await r.json()
    return {
        "bench": "rpc",
        "single_tx_per_s": round(n_single / single_s),
        "batched_tx_per_s": round(n_batched / batched_s),
        "batched_committed_tx_per_s": round(n_batched / committed_s),
        "batched_tx_per_server_loop_cpu_s": round(n_batched / (cpu2[0] - cpu0[0])),
        "server_loop_cpu_us_per_tx": round((cpu2[0] - cpu0[0]) / n_batched * 1e6, 1),
        "server_verify_cpu_us_per_tx": round((cpu2[1] - cpu0[1]) / n_batched * 1e6, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "ed25519_verify_per_s_now": round(verify_rate()),
        "single_txs": n_single,
        "single_concurrency": args.concurrency,
        "batched_txs": n_batched,
        "batch_size": args.batch,
        "batches_in_flight": args.inflight,
        "accounts": args.accounts,
        "block_interval_s": args.interval,
        "final_height": status["height"],
        "client_sign_s": round(sign_s, 2),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


async def wait_committed(
    http: aiohttp.ClientSession, url: str, keys: list[PrivateKey], nonce: int
) -> None:
    """Until every account's committed nonce reached ``nonce`` (all its txs ok or failed)."""
    deadline = time.monotonic() + 300
    pending = list(keys)
    while pending and time.monotonic() < deadline:
        async with http.get(f"{url}/accounts/{pending[-1].address}/nonce") as r:
            if (await r.json())["nonce"] >= nonce:
                pending.pop()
                continue
        await asyncio.sleep(0.02)
    if pending:
        raise SystemExit("transactions did not commit within 300 s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--txs", type=int, default=40_000, help="batched transactions")
    p.add_argument("--single", type=int, default=4_000, help="single-request transactions")
    p.add_argument("--batch", type=int, default=1_000, help="transactions per batch request")
    p.add_argument("--inflight", type=int, default=4, help="batch requests in flight")
    p.add_argument("--concurrency", type=int, default=32, help="single requests in flight")
    p.add_argument("--accounts", type=int, default=32, help="sending accounts")
    p.add_argument("--interval", type=float, default=0.5, help="block interval, s")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="interlock-bench-rpc-"))
    port = free_port()
    cfg = tmp / "bench.toml"
    write_config(cfg, tmp / "data", port, args.accounts, args.interval)
    with (tmp / "chain.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interlock.cli", "chain", "start", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=ROOT,
        )
        try:
            result = asyncio.run(bench(args, port, proc))
        finally:
            proc.terminate()
            rc = proc.wait(60)
    result["server_exit_code"] = rc
    print(json.dumps(result))


if __name__ == "__main__":
    main()
