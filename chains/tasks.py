"""The one bounded stop: wait for something to end, for at most a given time.

An I/O helper of the node and of the chain's services (the pure kernel never awaits).
Shutting down (the node's production task, the bus's connection task and its last
status, an unsubscribe, the publisher, a subscription, a receipt the RPC waits for) must
never hang the process, and must not
cancel what is unsafe to cancel: MEASURED: cancelling a task inside aiomqtt's
``publish`` can hang on 3.11, and 3.11's ``asyncio.wait_for`` cancels again and waits
*without a bound* when a cancel is lost. :func:`stop_within` therefore waits with
``asyncio.wait`` (bounded even then), cancels only when asked and only after the first
wait ran out, and bounds the wait for the cancel too. The outcome is consumed, so a task
left behind never logs "exception was never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["consume", "stop_within"]


def consume(fut: asyncio.Future[Any]) -> None:
    """A done callback that marks ``fut``'s exception as retrieved."""
    if not fut.cancelled():
        fut.exception()


async def stop_within(aw: Awaitable[Any], seconds: float, *, cancel: bool = True) -> bool:
    """Wait at most ``seconds`` for ``aw`` (a coroutine or a task) to end; if it has
    not, cancel it when ``cancel`` (and wait at most ``seconds`` more for that), else
    leave it running. Returns whether it ended. Its result or exception is for the
    caller to read from the task, if it kept one; here it is only consumed."""
    fut = asyncio.ensure_future(aw)
    fut.add_done_callback(consume)
    done, _ = await asyncio.wait({fut}, timeout=seconds)
    if done or not cancel:
        return bool(done)
    fut.cancel()
    done, _ = await asyncio.wait({fut}, timeout=seconds)
    return bool(done)
