"""``HttpChain``: the :class:`~chains.handle.ChainHandle` of a chain in another process.

It talks to one chain's RPC server (``chains.service.rpc``) through one or more endpoints (several
nodes of the same chain, or one node behind several addresses):

* **Reads are retried** with jittered exponential backoff (:class:`chains.service.retry.Backoff`)
  and fail over to the next endpoint on a connection error, a timeout or a 5xx; the
  endpoint that last answered is tried first next time.
* **Writes are not retried** (a submission that timed out may or may not have been
  admitted). They fail over only when the request provably changed nothing: the connection
  could not be opened, or the server answered ``503 unavailable`` before admitting.
* Everything a server sends is decoded with the core's hostile decoders, and a block or
  header of another chain is refused: a misconfigured endpoint cannot feed us a foreign
  chain.
* A refused transaction raises the same typed error the in-process handle raises
  (``BadNonce``, ``WrongChain``, ...), rebuilt from the error's ``code`` and ``details``.

Errors::

    InterlockError
    └── RpcError                  the server refused a request (status, code, message)
        └── RpcUnavailable        no endpoint answered within the retry budget
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from chains.encoding import JSONValue
from chains.engine import ChainConsensus
from chains.errors import (
    EncodingError,
    InterlockError,
    InvalidConsensusParams,
    TxError,
    TxRejected,
)
from chains.handle import ChainHandle
from chains.service.retry import Backoff
from chains.types import Block, Commit, Event, EventProof, Header, Receipt, Tx, ValidatorSet

__all__ = ["HttpChain", "RemoteTxRejected", "RpcError", "RpcUnavailable"]

log = logging.getLogger("interlock.rpc_client")

_T = TypeVar("_T")

DEFAULT_RETRY = Backoff(initial=0.05, maximum=2.0, attempts=6)


class RpcError(InterlockError):
    """A request the server refused, or a response that does not decode."""

    def __init__(self, endpoint: str, status: int, code: str, message: str) -> None:
        self.endpoint, self.status, self.code, self.message = endpoint, status, code, message
        super().__init__(f"{endpoint}: {status} {code}: {message}")


class RpcUnavailable(RpcError):
    """No endpoint answered (connection errors, timeouts, 5xx) within the retry budget."""

    def __init__(self, chain_id: str, tried: int, last: str) -> None:
        super().__init__(
            chain_id, 0, "unavailable", f"no endpoint answered ({tried} tries): {last}"
        )


class RemoteTxRejected(TxRejected):
    """A refusal whose code this client does not know (a newer server)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _error_classes() -> dict[str, type[InterlockError]]:
    """Every TxError subclass by its ``code`` (including module errors imported so far)."""
    out: dict[str, type[InterlockError]] = {}
    stack: list[type[InterlockError]] = [TxError]
    while stack:
        cls = stack.pop()
        code = cls.__dict__.get("code")
        if isinstance(code, str):
            out.setdefault(code, cls)
        stack.extend(cls.__subclasses__())
    return out


def _rebuild(code: str, message: str, details: Mapping[str, Any]) -> InterlockError | None:
    """The typed error a server reported, if this side knows the class."""
    cls = _error_classes().get(code)
    if cls is None:
        return None
    try:
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: details[k] for k in params if k != "self" and k in details}
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError):
        return None


class HttpChain:
    """A :class:`~chains.handle.ChainHandle` over HTTP. ``async with`` owns its session."""

    def __init__(
        self,
        chain_id: str,
        endpoints: Sequence[str],
        *,
        timeout: float = 10.0,
        commit_timeout: float = 60.0,
        retry: Backoff = DEFAULT_RETRY,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("HttpChain needs at least one endpoint")
        self._chain_id = chain_id
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.timeout = timeout
        self.commit_timeout = commit_timeout
        self.retry = retry
        self._session = session
        self._own_session = session is None
        self._preferred = 0

    # --- lifecycle --------------------------------------------------------------------
    @classmethod
    async def connect(cls, endpoints: Sequence[str], **options: Any) -> HttpChain:
        """A handle whose chain id is read from the first endpoint that answers."""
        probe = cls("?", endpoints, **options)
        try:
            status = await probe.status()
        finally:
            await probe.close()
        chain_id = status.get("chain_id")
        if not isinstance(chain_id, str):
            raise RpcError(probe.endpoints[0], 200, "malformed_response", "status has no chain_id")
        return cls(chain_id, endpoints, **options)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64), raise_for_status=False
            )
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> HttpChain:
        self._get_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def chain_id(self) -> str:
        return self._chain_id

    # --- transport ----------------------------------------------------------------------
    def _order(self) -> Iterator[int]:
        n = len(self.endpoints)
        return ((self._preferred + k) % n for k in range(n))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        idempotent: bool,
        request_timeout: float | None = None,
        ok_404: bool = False,
    ) -> dict[str, Any] | None:
        """One request with failover (and, when ``idempotent``, retries).

        Returns the decoded JSON object, or ``None`` for a 404 when ``ok_404`` (an unknown
        height or hash). Raises the server's typed error, :class:`RpcError` or
        :class:`RpcUnavailable`.
        """
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        client_timeout = aiohttp.ClientTimeout(total=request_timeout or self.timeout)
        session = self._get_session()
        delays = self.retry.delays()
        tries = 0
        last = "no attempt"
        while True:
            for i in self._order():
                url = self.endpoints[i] + path
                tries += 1
                try:
                    async with session.request(
                        method, url, data=data, headers=headers, timeout=client_timeout
                    ) as resp:
                        status = resp.status
                        raw = await resp.read()
                except aiohttp.ClientConnectorError as exc:
                    last = f"{self.endpoints[i]}: cannot connect ({exc.os_error})"
                    continue  # never reached a server: safe even for writes
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{self.endpoints[i]}: {type(exc).__name__} {exc}".strip()
                    if not idempotent:
                        raise RpcUnavailable(self._chain_id, tries, last) from None
                    continue
                obj = self._decode(self.endpoints[i], status, raw)
                if status >= 500 or status == 429:
                    err = obj.get("error") if isinstance(obj, dict) else None
                    code = err.get("code") if isinstance(err, dict) else None
                    last = f"{self.endpoints[i]}: {status} {code}"
                    if idempotent or code == "unavailable":
                        continue  # ``unavailable`` is answered before anything is admitted
                    self._raise(self.endpoints[i], status, obj)
                self._preferred = i
                if status == 404 and ok_404 and self._code(obj) != "not_found":
                    return None
                if status >= 400:
                    self._raise(self.endpoints[i], status, obj)
                return obj
            delay = next(delays, None)
            if delay is None:
                raise RpcUnavailable(self._chain_id, tries, last)
            log.debug("%s: retrying in %.3fs after %s", self._chain_id, delay, last)
            await asyncio.sleep(delay)

    @staticmethod
    def _code(obj: dict[str, Any]) -> str | None:
        err = obj.get("error")
        return err.get("code") if isinstance(err, dict) else None

    @staticmethod
    def _decode(endpoint: str, status: int, raw: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RpcError(endpoint, status, "malformed_response", "not JSON") from None
        if not isinstance(obj, dict):
            raise RpcError(endpoint, status, "malformed_response", "not a JSON object")
        return obj

    @staticmethod
    def _raise(endpoint: str, status: int, obj: dict[str, Any]) -> None:
        err = obj.get("error")
        if not isinstance(err, dict):
            raise RpcError(endpoint, status, "malformed_response", "error without a body")
        code = str(err.get("code", "unknown"))[:64]
        message = str(err.get("message", ""))[:300]
        details = err.get("details")
        typed = _rebuild(code, message, details if isinstance(details, dict) else {})
        if typed is not None:
            raise typed
        cls = _error_classes().get(code)
        if 400 <= status < 500 and cls is not None and issubclass(cls, TxRejected):
            raise RemoteTxRejected(code, message)
        raise RpcError(endpoint, status, code, message)

    def _field(self, obj: dict[str, Any] | None, key: str) -> Any:
        if obj is None or key not in obj:
            raise RpcError(self._chain_id, 200, "malformed_response", f"no {key!r} in answer")
        return obj[key]

    def _check_chain(self, chain_id: str, what: str) -> None:
        if chain_id != self._chain_id:
            raise RpcError(self._chain_id, 200, "wrong_chain", f"{what} is of chain {chain_id!r}")

    async def _get(self, path: str, *, ok_404: bool = False) -> dict[str, Any] | None:
        return await self._call("GET", path, idempotent=True, ok_404=ok_404)

    # --- reads --------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        obj = await self._get("/status")
        if obj is None:  # unreachable: a 404 without ok_404 raises
            raise RpcError(self._chain_id, 404, "not_found", "no /status")
        return obj

    async def latest_height(self) -> int:
        status = await self.status()
        self._check_chain(status.get("chain_id", "?"), "the endpoint")
        h = status.get("height")
        if not isinstance(h, int) or isinstance(h, bool) or h < 0:
            raise RpcError(self._chain_id, 200, "malformed_response", "status without a height")
        return h

    async def get_consensus(self) -> ChainConsensus:
        status = await self.status()
        self._check_chain(status.get("chain_id", "?"), "the endpoint")
        try:
            return ChainConsensus.from_json(status)
        except InvalidConsensusParams as exc:
            raise RpcError(self._chain_id, 200, "malformed_response", str(exc)) from None

    async def _get_decoded(self, path: str, key: str, decode: Callable[[Any], _T]) -> _T | None:
        """GET ``path`` and decode its ``key``; None when the node answers 404."""
        obj = await self._get(path, ok_404=True)
        return None if obj is None else self._decoded(decode, self._field(obj, key))

    async def get_block(self, height: int) -> Block | None:
        if height < 1:
            return None  # as in process: there is no block below 1
        block = await self._get_decoded(f"/blocks/{int(height)}", "block", Block.from_json)
        if block is not None:
            self._check_chain(block.header.chain_id, f"block {height}")
        return block

    async def get_header(self, height: int) -> Header | None:
        if height < 1:
            return None
        header = await self._get_decoded(f"/headers/{int(height)}", "header", Header.from_json)
        if header is not None:
            self._check_chain(header.chain_id, f"header {height}")
        return header

    async def get_commit(self, height: int) -> Commit | None:
        """The commit of the block at ``height`` (``GET /commits/{height}``): what a
        light client needs besides the header, without the block's transactions."""
        if height < 1:
            return None
        commit = await self._get_decoded(f"/commits/{int(height)}", "commit", Commit.from_json)
        if commit is not None and commit.height != height:
            raise RpcError(self._chain_id, 200, "malformed_response", f"commit for {commit.height}")
        return commit

    async def get_validators(self, height: int) -> ValidatorSet | None:
        if height < 1:
            return None
        path = f"/validators/{int(height)}"
        return await self._get_decoded(path, "validators", ValidatorSet.from_json)

    async def get_event_proof(self, height: int, index: int) -> EventProof | None:
        if height < 1 or index < 0:
            return None
        path = f"/events/{int(height)}/{int(index)}"
        proof = await self._get_decoded(path, "proof", EventProof.from_json)
        if proof is not None:
            self._check_chain(proof.chain_id, "event proof")
        return proof

    async def search_events(
        self,
        types: Sequence[str],
        attr: tuple[str, str] | None = None,
        *,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[int, int, Event]], str | None]:
        """One page of ``GET /events`` (the chain's event index), newest first: each
        event with its height and index, and the cursor of the next page (None: no
        more). Unproven: check each with :meth:`get_event_proof` before trusting it."""
        query: dict[str, str] = {"type": ",".join(types), "limit": str(int(limit))}
        if attr is not None:
            query["attr"] = f"{attr[0]}:{attr[1]}"
        if before is not None:
            query["before"] = before
        obj = await self._get(f"/events?{urlencode(query)}")
        found, nxt = self._field(obj, "events"), self._field(obj, "next")
        if (
            not isinstance(found, list)
            or len(found) > limit
            or not (nxt is None or (isinstance(nxt, str) and len(nxt) <= 40))
        ):
            raise RpcError(self._chain_id, 200, "malformed_response", "bad event page")
        out = []
        for item in found:
            if not isinstance(item, dict):
                raise RpcError(self._chain_id, 200, "malformed_response", "bad event page")
            h, i = item.get("height"), item.get("index")
            if not (isinstance(h, int) and isinstance(i, int) and h >= 1 and i >= 0):
                raise RpcError(self._chain_id, 200, "malformed_response", "bad event position")
            out.append((h, i, self._decoded(Event.from_json, item.get("event"))))
        return out, nxt

    async def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        return await self._get_decoded(f"/tx/{tx_hash.hex()}", "receipt", Receipt.from_json)

    async def _nonce(self, address: str, key: str) -> int:
        obj = await self._get(f"/accounts/{quote(address, safe='')}/nonce")
        n = self._field(obj, key)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise RpcError(self._chain_id, 200, "malformed_response", "nonce is not an integer")
        return n

    async def next_nonce(self, address: str) -> int:
        """The next nonce in committed state (as :class:`InProcessChain` answers)."""
        return await self._nonce(address, "nonce")

    async def pending_nonce(self, address: str) -> int:
        """The next nonce counting transactions waiting in the node's mempool."""
        return await self._nonce(address, "pending_nonce")

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
        obj = await self._call(
            "POST",
            f"/query/{quote(module, safe='')}/{quote(path, safe='')}",
            body=dict(args),
            idempotent=True,  # a query changes nothing
        )
        return self._field(obj, "result")

    # --- writes -------------------------------------------------------------------------
    async def submit(self, tx: Tx) -> Receipt:
        """Submit and wait for the receipt in a committed block (raises TxRejected)."""
        obj = await self._call(
            "POST", "/tx", body=tx.to_json(), idempotent=False, request_timeout=self.commit_timeout
        )
        return self._decoded(Receipt.from_json, self._field(obj, "receipt"))

    async def submit_nowait(self, tx: Tx) -> bytes:
        """Submit; return the hash once admitted to the mempool (raises TxRejected)."""
        await self._call("POST", "/tx?wait=false", body=tx.to_json(), idempotent=False)
        return tx.hash

    async def submit_block(self, block: Block) -> str:
        """Offer a block mined elsewhere (a proof-of-work chain's ``POST /blocks``, as a
        peer would): ``best``, ``side`` or ``duplicate``; a refusal raises the server's
        error (:class:`RpcError` with its code, e.g. ``fork_below_finality``)."""
        obj = await self._call("POST", "/blocks", body={"block": block.to_json()}, idempotent=False)
        outcome = self._field(obj, "outcome")
        if outcome not in ("best", "side", "duplicate"):
            raise RpcError(self._chain_id, 200, "malformed_response", "unknown block outcome")
        return str(outcome)

    async def submit_batch(
        self, txs: Sequence[Tx], *, wait: bool = False
    ) -> list[Receipt | bytes | InterlockError]:
        """Submit many in one request; one result per tx, in order.

        A result is the receipt (``wait=True``) or the hash (``wait=False``) of an admitted
        transaction, or the typed error that refused it.
        """
        path = "/txs" if wait else "/txs?wait=false"
        obj = await self._call(
            "POST",
            path,
            body={"txs": [t.to_json() for t in txs]},
            idempotent=False,
            request_timeout=self.commit_timeout if wait else self.timeout,
        )
        results = self._field(obj, "results")
        if not isinstance(results, list) or len(results) != len(txs):
            raise RpcError(self._chain_id, 200, "malformed_response", "results do not match")
        out: list[Receipt | bytes | InterlockError] = []
        for tx, r in zip(txs, results, strict=True):
            if not isinstance(r, dict):
                raise RpcError(self._chain_id, 200, "malformed_response", "result not an object")
            if "error" in r:
                try:
                    self._raise(self._chain_id, 400, r)
                except (TxError, RpcError) as exc:
                    out.append(exc)
                continue
            if wait:
                out.append(self._decoded(Receipt.from_json, self._field(r, "receipt")))
            else:
                out.append(tx.hash)
        return out

    def _decoded(self, decode: Callable[[Any], _T], value: Any) -> _T:
        try:
            return decode(value)
        except EncodingError as exc:
            raise RpcError(self._chain_id, 200, "malformed_response", str(exc)) from None


def _is_a_chain_handle(chain: HttpChain) -> ChainHandle:
    return chain  # mypy checks that HttpChain satisfies the ChainHandle protocol
