"""One submitter per chain: it owns the relayer's key and nonce sequence on that chain.

Every worker that writes to a chain goes through its submitter, so nonces never race
(as Hermes's chain runtime does). A batch of calls becomes signed transactions with
consecutive nonces, sent in ``submit_batch`` requests of at most :data:`REQUEST_TXS`,
admitted in order.

:meth:`Submitter.send` returns once the chain *admitted* a batch (its pending nonce
reached the batch's last nonce; the chain's mempool takes a sender's transactions into
blocks in nonce order), and :meth:`Sent.results` waits for the commit. So the next batch
may be signed and sent while the last one waits for its block, and it still executes
after it: a header update sent before the packets that need it is committed before them.
Only the admission is serialised, under the submitter's lock.
A ``BadNonce`` (another process used the key, or a restart lost the count) makes the
submitter read the chain's pending nonce again and re-sign what was refused, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chains.crypto import PrivateKey
from chains.encoding import JSONValue, sign_bytes
from chains.errors import BadNonce, InterlockError
from chains.handle import ChainHandle
from chains.types import Receipt, Tx
from relayer.metrics import Metrics

__all__ = ["Call", "Sent", "Submitter"]

log = logging.getLogger("interlock.relayer.submitter")

REQUEST_TXS = 96
"""Most transactions per ``submit_batch`` request. Each is at most ``MAX_TX_BYTES``
(64 KiB) and a chain's RPC refuses a body over 8 MiB (``RpcLimits.max_body_bytes``) with
413 before reading it: a backlog of full transactions in one request was refused, and
retried whole, forever. Requests go one after another, in nonce order."""


@dataclass(frozen=True, slots=True)
class Call:
    """One module call to make as a transaction."""

    module: str
    """The module."""
    method: str
    """Its method."""
    args: dict[str, JSONValue]
    """Its arguments, built by the relayer from decoded, validated values."""


def _sign(key: PrivateKey, chain_id: str, nonce: int, call: Call) -> Tx:
    # The args are built from kernel values (proofs, headers): canonical by construction,
    # so Tx.create's client-side walk of them is skipped. The chain's checks are unchanged.
    body = {
        "chain_id": chain_id,
        "sender": key.public_key.hex(),
        "nonce": nonce,
        "module": call.module,
        "method": call.method,
        "args": call.args,
    }
    sig = key.sign(sign_bytes("tx", body))
    return Tx(chain_id, key.public_key, nonce, call.module, call.method, call.args, sig)


class Sent:
    """A batch the chain admitted (or answered): :meth:`results` waits for its receipts."""

    def __init__(
        self,
        submitter: Submitter,
        calls: Sequence[Call],
        requests: Sequence[asyncio.Future[list[Receipt | bytes | InterlockError]]] = (),
        results: list[Receipt | InterlockError] | None = None,
    ) -> None:
        self._submitter = submitter
        self._calls = calls
        self._requests = list(requests)
        self._results = results
        for r in self._requests:
            r.add_done_callback(_retrieve)  # an abandoned batch must not log "never retrieved"

    def done(self) -> bool:
        """True when the receipts are in (``results`` returns at once)."""
        return self._results is not None or all(r.done() for r in self._requests)

    async def wait(self) -> None:
        """Return once :meth:`done` (never raises)."""
        if self._requests:
            await asyncio.wait(self._requests)

    async def results(self) -> list[Receipt | InterlockError]:
        """One receipt or typed error per call, in order, once committed.

        Raises only when the chain could not be reached (nothing is known of the batch:
        the caller re-checks the destination before sending again)."""
        if self._results is None:
            got: list[Receipt | bytes | InterlockError] = []
            try:
                for r in self._requests:
                    got.extend(await r)
            except BaseException:
                self._submitter._nonce = None  # unknown what was admitted
                raise
            self._results = [
                self._submitter._outcome(call, r) for call, r in zip(self._calls, got, strict=True)
            ]
        return self._results


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class Submitter:
    """Signs and sends batches of calls on one chain, admitting one batch at a time."""

    def __init__(self, chain: ChainHandle, key: PrivateKey, metrics: Metrics) -> None:
        self.chain = chain
        self.key = key
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._nonce: int | None = None
        self.sent = 0
        """Transactions sent (admitted or not), for the status page."""

    @property
    def address(self) -> str:
        return self.key.address

    async def submit(self, calls: Sequence[Call]) -> list[Receipt | InterlockError]:
        """Send ``calls`` in order and wait for the commit; one receipt or typed error per
        call. Raises only when the chain could not be reached."""
        return await (await self.send(calls)).results()

    async def send(self, calls: Sequence[Call]) -> Sent:
        """Sign ``calls`` with the next nonces and send them; return once the chain
        admitted every one (so a next batch's nonces follow them) or answered.

        Raises only when the chain could not be reached."""
        if not calls:
            return Sent(self, calls, results=[])
        async with self._lock:
            try:
                return await self._send(calls)
            except BaseException:
                self._nonce = None  # unknown what was admitted: ask the chain next time
                raise

    async def _send(self, calls: Sequence[Call]) -> Sent:
        if self._nonce is None:
            self._nonce = await self.chain.pending_nonce(self.address)
        first = self._nonce
        txs = [_sign(self.key, self.chain.chain_id, first + n, c) for n, c in enumerate(calls)]
        self.sent += len(txs)
        requests: list[asyncio.Future[list[Receipt | bytes | InterlockError]]] = []
        for k in range(0, len(txs), REQUEST_TXS):
            chunk = txs[k : k + REQUEST_TXS]
            request = asyncio.ensure_future(self.chain.submit_batch(chunk, wait=True))
            requests.append(request)
            if not await self._admitted(request, first + k + len(chunk)):
                break  # answered before every one was admitted: some were refused
        else:
            self._nonce = first + len(txs)
            return Sent(self, calls, requests)
        # Some were refused at admission (the usual cause: a nonce another process used).
        # Wait for the answers here, still in turn, and send again what was not admitted.
        got: list[Receipt | bytes | InterlockError] = []
        for answer_of in requests:
            got.extend(await answer_of)
        self._nonce = None  # refused ones left a gap: re-read the chain's count
        results: dict[int, Receipt | InterlockError] = {}
        redo: list[int] = []
        for i, answer in enumerate(got):
            if isinstance(answer, BadNonce):
                redo.append(i)
            else:
                results[i] = self._outcome(calls[i], answer)
        redo.extend(range(len(got), len(calls)))  # never sent
        if redo:
            log.info(
                "%s: %d transactions refused for their nonce or not sent; re-signing",
                self.chain.chain_id,
                len(redo),
            )
            again = await self._submit_in_turn([calls[i] for i in redo])
            results.update(zip(redo, again, strict=True))
        return Sent(self, calls, results=[results[i] for i in range(len(calls))])

    async def _admitted(
        self, request: asyncio.Future[list[Receipt | bytes | InterlockError]], last: int
    ) -> bool:
        """Wait until the chain's pending nonce passed ``last - 1`` (every transaction of
        ``request`` admitted) or the request was answered; True when all were admitted.
        A few small reads while the chain checks the signatures (milliseconds)."""
        delay = 0.002
        while not request.done():
            await asyncio.wait([request], timeout=delay)
            if request.done():
                break
            if await self.chain.pending_nonce(self.address) >= last:
                return True
            delay = min(delay * 2, 0.05)
        return all(isinstance(r, Receipt) for r in request.result())

    def _outcome(self, call: Call, r: Receipt | bytes | InterlockError) -> Receipt | InterlockError:
        if isinstance(r, Receipt):
            if not r.ok:
                self.metrics.tx_failures.labels(self.chain.chain_id, r.code).inc()
            return r
        if isinstance(r, InterlockError):
            if isinstance(r, BadNonce):
                self._nonce = None  # admitted, then refused for its nonce: re-read the count
            code = getattr(r, "code", type(r).__name__)
            self.metrics.tx_failures.labels(self.chain.chain_id, str(code)).inc()
            return r
        # an admitted hash without a receipt cannot happen with wait=True
        return InterlockError(f"no receipt for {call.method}")

    async def _submit_in_turn(self, calls: Sequence[Call]) -> list[Receipt | InterlockError]:
        """Send ``calls`` one request after another, each waited for until committed, and
        re-sign once what is refused for its nonce (the path after a refusal)."""
        results: list[Receipt | InterlockError | None] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            if self._nonce is None:
                self._nonce = await self.chain.pending_nonce(self.address)
            first = self._nonce
            txs = [
                _sign(self.key, self.chain.chain_id, first + n, calls[i])
                for n, i in enumerate(todo)
            ]
            self.sent += len(txs)
            got: list[Receipt | bytes | InterlockError] = []
            for k in range(0, len(txs), REQUEST_TXS):
                got.extend(await self.chain.submit_batch(txs[k : k + REQUEST_TXS], wait=True))
            retry: list[int] = []
            admitted = 0
            for i, r in zip(todo, got, strict=True):
                if isinstance(r, Receipt):
                    admitted += 1
                if isinstance(r, BadNonce) and attempt == 0:
                    retry.append(i)
                else:
                    results[i] = self._outcome(calls[i], r)
            if admitted == len(todo):
                self._nonce = first + admitted
                break
            self._nonce = None  # refused ones left a gap: re-read the chain's count
            if not retry:
                break
            log.info(
                "%s: %d transactions refused for their nonce; re-signing",
                self.chain.chain_id,
                len(retry),
            )
            todo = retry
        for i in todo:
            if results[i] is None:
                self.metrics.tx_failures.labels(self.chain.chain_id, "bad_nonce").inc()
                results[i] = InterlockError(f"{calls[i].method}: nonce refused twice")
        return [r for r in results if r is not None]
