"""What the RPC's signature-checking worker processes run.

Kept apart from ``chains.service.rpc`` so that a spawned worker imports only the crypto seam
(~0.06 s) instead of the whole server stack (~0.5 s, paid by the first large batch).
"""

from __future__ import annotations

import os
import threading
import time

from chains.crypto import verify

__all__ = ["die_with", "first_bad", "ready"]


def first_bad(items: list[tuple[bytes, bytes, bytes]]) -> int | None:
    """Index of the first (public key, message, signature) that does not verify.

    Runs in a worker process: a thread would not do, since every verify hands the GIL
    back to a busy event loop and waits up to a switch interval to get it again."""
    for i, (pk, msg, sig) in enumerate(items):
        if not verify(pk, msg, sig):
            return i
    return None


def ready() -> bool:
    """A no-op job: submitting it at server start spawns the worker before any batch."""
    return True


def die_with(parent: int) -> None:
    """Worker initializer: exit when the server is gone, even after its ``kill -9``
    (a worker blocked on its queue would otherwise outlive it, and so would the
    multiprocessing resource tracker it keeps open)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
