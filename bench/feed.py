"""The console's feed as a transfer worker drives it under load.

    python bench/feed.py [batches] [packets_per_batch]

Each batch is what the worker hands :class:`relayer.feed.Feed` for one batch of source
blocks: every packet seen (none delivered yet), then the outcome (headers relayed and
every packet delivered). ``packets_per_batch`` defaults to 1,250: 2,500 transfers/s at
two batches a second. The last line is one JSON object with the CPU per packet the
workers' recording costs (``feed_us_per_packet``, what the relayer pays per transfer
with no console open) and what one open console stream adds (``stream_us_per_packet``:
a ``changes_since`` read after each batch).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.relay import Packet
from chains.types import Event, EventProof
from relayer.feed import Feed

A, B = "chain-a", "chain-b"


def packets(first: int, n: int, height: int) -> list[Packet]:
    out = []
    for i in range(n):
        nonce = first + i
        body = {
            "src_chain": A,
            "dst_chain": B,
            "nonce": nonce,
            "sender": f"{nonce % 200:040x}",
            "recipient": f"{nonce % 97:040x}",
            "denom": "usd",
            "amount": 5,
            "timeout_height": 0,
        }
        proof = EventProof(A, height, i, n, Event("bridge.locked", body), ())
        out.append(Packet("mint", nonce, proof))
    return out


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 1250
    feed = Feed()
    woken = [0]
    feed.listeners.append(lambda: woken.__setitem__(0, woken[0] + 1))
    work = [packets(1 + b * per, per, b + 1) for b in range(batches)]
    seen = 0
    cpu = reader = 0.0
    for b, batch in enumerate(work):
        height = b + 1
        headers = {height: SimpleNamespace(height=height, event_root=bytes(32), time=0)}
        delivered = {(p.action, p.nonce): f"{p.nonce:064x}" for p in batch}
        t0 = time.process_time()
        feed.record_packets("transfer:a->b", batch, now=b, headers=headers, todo=batch)  # type: ignore[arg-type]
        feed.record_packets(
            "transfer:a->b",
            batch,
            now=b + 0.5,
            headers=headers,  # type: ignore[arg-type]
            relayed={height: b + 0.4},
            delivered=delivered,
        )
        t1 = time.process_time()
        changed = feed.changes_since(seen)
        seen = feed.seq
        cpu += t1 - t0
        reader += time.process_time() - t1
        assert changed is None or len(changed) <= feed.max_items
    total = batches * per
    print(
        json.dumps(
            {
                "packets": total,
                "feed_us_per_packet": round(cpu / total * 1e6, 2),
                "stream_us_per_packet": round(reader / total * 1e6, 2),
                "listener_wakes": woken[0],
            }
        )
    )


if __name__ == "__main__":
    main()
