"""One submitter per chain: it owns the relayer's key and nonce sequence on that chain.

Every worker that writes to a chain goes through its submitter, so nonces never race
(as Hermes's chain runtime does). A batch of calls becomes signed transactions with
consecutive nonces, sent in ``submit_batch`` requests of at most :data:`REQUEST_TXS`,
admitted in order and waited for until committed.
A ``BadNonce`` (another process used the key, or a restart lost the count) makes the
submitter read the chain's pending nonce again and re-sign what was refused, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chains.crypto import PrivateKey
from chains.encoding import JSONValue, sign_bytes
from chains.errors import BadNonce, InterlockError
from chains.handle import ChainHandle
from chains.types import Receipt, Tx
from relayer.metrics import Metrics

__all__ = ["Call", "Submitter"]

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


class Submitter:
    """Signs and sends batches of calls on one chain, one batch at a time."""

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
        """Send ``calls`` in order; one receipt or typed error per call.

        Raises only when the chain could not be reached (nothing is known of the batch:
        the caller re-checks the destination before sending again)."""
        if not calls:
            return []
        async with self._lock:
            try:
                return await self._submit(calls)
            except BaseException:
                self._nonce = None  # unknown what was admitted: ask the chain next time
                raise

    async def _submit(self, calls: Sequence[Call]) -> list[Receipt | InterlockError]:
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
                    results[i] = r
                    if not r.ok:
                        self.metrics.tx_failures.labels(self.chain.chain_id, r.code).inc()
                elif isinstance(r, BadNonce) and attempt == 0:
                    retry.append(i)
                elif isinstance(r, InterlockError):
                    code = getattr(r, "code", type(r).__name__)
                    self.metrics.tx_failures.labels(self.chain.chain_id, str(code)).inc()
                    results[i] = r
                else:  # an admitted hash without a receipt cannot happen with wait=True
                    results[i] = InterlockError(f"no receipt for {calls[i].method}")
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
