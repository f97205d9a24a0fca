"""The node's JSON RPC server (aiohttp): one per chain, bound to 127.0.0.1 by default.

Everything is JSON; every input is untrusted. Path and query parameters and request
envelopes are pydantic models; a transaction object goes through the core's own hostile
decoder (``Tx.from_json``, the same one every other edge uses), and both become core types
before anything else looks at them. A refused request changes nothing.

=======  ==================================  ===================================================
method   path                                answer
=======  ==================================  ===================================================
GET      /healthz                            ``{"ok": true, "chain_id", "height"}`` (503 stopping
                                             or stopped producing blocks)
GET      /status                             chain id, height, latest hash/time, genesis hash,
                                             validators hash, mempool size
POST     /tx[?wait=false]                    body: a signed tx object. ``{"tx_hash", "receipt"}``
                                             once committed; ``wait=false``: 202 ``{"tx_hash"}``
POST     /txs[?wait=false]                   body: ``{"txs": [tx, ...]}`` (1..max_batch).
                                             ``{"results": [{"tx_hash", "receipt"|"error"}]}``
POST     /blocks                             body: ``{"block"}`` mined by a peer (proof of work
                                         only): ``{"outcome": best|side|duplicate, "height"}``
GET      /tx/{hash}                          ``{"receipt"}`` of a committed tx
GET      /blocks/{height|latest}             ``{"block"}``: header, commit, txs, receipts, events
GET      /headers/{height|latest}            ``{"header", "hash"}``
GET      /commits/{height|latest}            ``{"commit"}``
GET      /validators/{height|latest}         ``{"validators", "hash"}``: the set that signed it
GET      /events/{height}/{index}            ``{"proof"}``: the event and its RFC 6962 audit path
GET      /events?type=T[,T..][&attr=NAME:VALUE] ``{"events": [{"height", "index", "event"}],
         [&limit=N][&before=H[.I]]           "next"}``: indexed events, newest first
                                             (:mod:`chains.service.eventindex`)
GET      /accounts/{address}                 ``{"address", "nonce", "pending_nonce", "balances"}``
GET      /accounts/{address}/nonce           ``{"nonce", "pending_nonce"}``
GET      /accounts/{address}/balances        ``{"balances"}``
GET      /query/{module}/{path}?k=v          ``{"result"}`` of a module query (string args)
POST     /query/{module}/{path}              same, args as a JSON object body (typed args)
=======  ==================================  ===================================================

Errors are ``{"error": {"code": "<snake_case>", "message": "<one line>"}}`` with a 4xx for
anything the caller can fix: malformed JSON (``malformed_json``), a body over the limit
(413 ``too_large``), a body that stalls (408 ``timeout``), a wrong content type (415),
bad parameters (``bad_request``, also a query parameter given twice), an
unknown height / tx / event (404), and refused transactions with the refusal's own code
(``wrong_chain``, ``invalid_signature``, ``bad_nonce``, ``duplicate_tx`` 409,
``mempool_full`` 429; ``details`` carries the error's values). A batch is refused whole
(nothing admitted) when any item is malformed, for another chain or forged; after that
each item is admitted in order and reports its own refusal. 5xx answers say ``internal``
and never carry a traceback (it goes to the log).

Throughput: a batch's signatures are checked in a worker process (:class:`SignatureChecker`)
while the event loop decodes the next batch and produces blocks; a thread would not do,
since each ed25519 check hands the GIL back to a busy loop and waits to get it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import TracebackType
from typing import Annotated, Any, TypeVar

import orjson
from aiohttp import web
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from chains.chain import is_signature_valid
from chains.encoding import MAX_INT, check_value
from chains.engine import ChainConsensus
from chains.errors import (
    ConfigError,
    DuplicateTx,
    EncodingError,
    InterlockError,
    InvalidSignature,
    LightClientError,
    MempoolFull,
    StoreError,
    TxError,
    UnknownModule,
    WrongChain,
)
from chains.node import Node, SQLiteBlockStore
from chains.service.eventindex import BadEventQuery, EventIndex, EventQuery, parse_cursor
from chains.service.httpserver import HardenedRunner, ServerLimits, ServerStats
from chains.service.sigworker import die_with, first_bad, ready
from chains.tasks import stop_within
from chains.types import MAX_TX_BYTES, Block, Tx

__all__ = ["ApiError", "RpcLimits", "RpcServer", "SignatureChecker", "make_app"]

log = logging.getLogger("interlock.rpc")

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class RpcLimits:
    """What one request may ask of the server."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body (a batch); bigger gets 413 before it is parsed."""
    max_tx_bytes: int = MAX_TX_BYTES + 4096
    """Largest body of ``POST /tx`` (one transaction)."""
    max_batch: int = 10_000
    """Most transactions in one ``POST /txs``."""
    commit_timeout: float = 30.0
    """How long ``wait=true`` waits for the commit before answering 504."""
    body_timeout: float = 10.0
    """How long a request body may take to arrive before 408 (a stalled client must not
    hold a handler and its connection forever)."""
    verify_processes: int = field(default_factory=lambda: 1 if (os.cpu_count() or 1) > 1 else 0)
    """Worker processes that check batch signatures off the event loop (0: inline)."""
    header_timeout: float = 10.0
    """How long a request's line and headers may take to arrive before the connection is
    closed (slowloris; see :mod:`chains.service.httpserver`)."""
    max_connections: int = 1024
    """Open connections at most, further capped by the descriptor limit; more are closed
    at once."""


class ApiError(Exception):
    """A request refused with an HTTP status and a one-line message."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        self.status, self.code, self.message = status, code, _one_line(message)
        self.details = dict(details or {})
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _one_line(msg: str, limit: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _details(exc: BaseException) -> dict[str, Any]:
    """The error's own values (``BadNonce.expected``...), JSON scalars only."""
    return {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_") and isinstance(v, str | int | bool) and k != "code"
    }


def tx_error(exc: TxError) -> ApiError:
    """A refused transaction as an API error that keeps its code and values."""
    status = 400
    if isinstance(exc, MempoolFull):
        status = 429
    elif isinstance(exc, DuplicateTx):
        status = 409
    return ApiError(status, exc.code, str(exc), _details(exc))


def query_error(exc: InterlockError) -> ApiError:
    if isinstance(exc, UnknownModule):
        return ApiError(404, exc.code, str(exc), _details(exc))
    if isinstance(exc, LightClientError) and type(exc).__name__.endswith("NotFound"):
        return ApiError(404, "not_found", str(exc), _details(exc))
    code = getattr(exc, "code", None) or _snake(type(exc).__name__)
    return ApiError(400, str(code), str(exc), _details(exc))


def _ok(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def _error_response(err: ApiError) -> web.Response:
    return _ok(err.body(), err.status)


# --- parameters (pydantic at the edge) ----------------------------------------------


_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})")


def _decimal(v: object) -> int:
    """A path or query integer: plain decimal digits, no sign, spaces or underscores."""
    if not isinstance(v, str) or not _DECIMAL.fullmatch(v) or int(v) > MAX_INT:
        raise ValueError(f"expected a decimal integer in [0, {MAX_INT}]")
    return int(v)


_Decimal = Annotated[int, BeforeValidator(_decimal)]
_HeightRef = Annotated[str, StringConstraints(pattern=r"^(latest|0|[1-9][0-9]{0,18})$")]
_Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_Address = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
_Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
_QueryPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmitParams(_Params):
    wait: bool = True
    """Wait for the commit (default) or answer with the hash once admitted."""


class HeightParams(_Params):
    height: _HeightRef


class EventParams(_Params):
    height: _Decimal
    index: _Decimal


class EventSearchParams(_Params):
    """``GET /events``: the strings of the query; :func:`_event_query` converts them."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=800)]
    attr: Annotated[str, StringConstraints(min_length=3, max_length=200)] | None = None
    limit: _Decimal | None = None
    before: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


def _event_query(p: EventSearchParams) -> EventQuery:
    attr = None
    if p.attr is not None:
        name, sep, value = p.attr.partition(":")
        if not sep:
            raise BadEventQuery("attr", "expected NAME:VALUE")
        attr = (name, value)
    q = EventQuery(
        types=tuple(p.type.split(",")),
        attr=attr,
        limit=20 if p.limit is None else p.limit,
        before=None if p.before is None else parse_cursor(p.before),
    )
    return q


class HashParams(_Params):
    hash: _Hash


class AddressParams(_Params):
    address: _Address


class QueryTarget(_Params):
    module: _Name
    path: _QueryPath


class BatchBody(_Params):
    txs: list[Any] = Field(min_length=1)


class NoParams(_Params):
    pass


_M = TypeVar("_M", bound=BaseModel)


def _validation_message(exc: ValidationError, what: str) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or what
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown parameter"
    elif e["type"] == "string_pattern_mismatch":
        msg = "malformed value"
    elif e["type"] == "missing":
        msg = "missing"
    inp = e.get("input")
    shown = f" (got {str(inp)[:40]!r})" if isinstance(inp, str | int) else ""
    return f"{what} {loc}: {msg}{shown}"


def _parse(model: type[_M], data: Mapping[str, Any], what: str) -> _M:
    if len(data) != len(set(data)):  # a query string's MultiDict counts a repeated key twice
        raise ApiError(400, "bad_request", f"{what}: a parameter is given twice")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ApiError(400, "bad_request", _validation_message(exc, what)) from None


async def _read_json(request: web.Request, limit: int, seconds: float) -> Any:
    if request.content_type != JSON:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type {JSON}, got {request.content_type}",
        )
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"request body over {limit} bytes")
    try:
        async with asyncio.timeout(seconds):
            body = await request.read()  # client_max_size bounds a chunked body too
    except TimeoutError:
        raise ApiError(408, "timeout", f"request body not received within {seconds:g}s") from None
    if len(body) > limit:
        raise ApiError(413, "too_large", f"request body over {limit} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not JSON: {exc}") from None


def _decode_tx(obj: Any, chain_id: str, what: str = "tx") -> Tx:
    try:
        tx = Tx.from_json(obj)
    except EncodingError as exc:
        raise ApiError(400, "malformed_tx", f"{what}: {exc}") from None
    if tx.chain_id != chain_id:
        err = tx_error(WrongChain(chain_id, tx.chain_id))
        raise ApiError(err.status, err.code, f"{what}: {err.message}", err.details)
    return tx


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


# --- handlers -------------------------------------------------------------------------

NODE: web.AppKey[Node] = web.AppKey("node", Node)
LIMITS: web.AppKey[RpcLimits] = web.AppKey("limits", RpcLimits)
STOPPING: web.AppKey[list[bool]] = web.AppKey("stopping", list)


class SignatureChecker:
    """Checks the signatures of a batch in worker processes, inline when there are none,
    the batch is small, or the pool broke (the node must keep serving either way)."""

    INLINE_BELOW = 32

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor | None:
        if self.processes > 0 and self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # never fork a running event loop
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=ctx, initializer=die_with, initargs=(os.getpid(),)
            )
        return self._pool

    async def first_bad(self, txs: list[Tx]) -> int | None:
        pool = self._get_pool() if len(txs) >= self.INLINE_BELOW else None
        if pool is not None:
            items = [(tx.sender, tx.sign_bytes(), tx.signature) for tx in txs]
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, first_bad, items)
            except BrokenProcessPool:
                log.warning("signature worker pool broke; verifying inline from now on")
                self.processes, self._pool = 0, None
        for i, tx in enumerate(txs):
            if not is_signature_valid(tx):
                return i
        return None

    def warm(self) -> None:
        """Spawn the worker now, so the first large batch does not wait for it."""
        pool = self._get_pool()
        if pool is not None:
            pool.submit(ready).add_done_callback(lambda f: f.exception())

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _Handlers:
    def __init__(
        self,
        node: Node,
        limits: RpcLimits,
        stopping: list[bool],
        verifier: SignatureChecker,
        index: EventIndex | None = None,
    ) -> None:
        self.node = node
        self.index = index
        self.limits = limits
        self.stopping = stopping
        self.verifier = verifier

    # -- helpers
    def _height(self, ref: str) -> int:
        latest = self.node.height
        h = latest if ref == "latest" else int(ref)
        if h > MAX_INT:
            raise ApiError(400, "bad_request", f"height must be at most {MAX_INT}")
        if not 1 <= h <= latest:
            raise ApiError(404, "unknown_height", f"no block at height {h}; latest is {latest}")
        return h

    def _block(self, request: web.Request) -> Block:
        p = _parse(HeightParams, request.match_info, "path")
        h = self._height(p.height)
        block = self.node.get_block(h)
        if block is None:
            raise ApiError(404, "unknown_height", f"no block at height {h}")
        return block

    def _no_query(self, request: web.Request) -> None:
        _parse(NoParams, request.query, "query")

    def _unavailable(self) -> None:
        if self.node.failure is not None:  # its text is for the node's log, not for callers
            raise ApiError(503, "unavailable", "node stopped producing blocks")
        if self.stopping[0]:
            raise ApiError(503, "unavailable", "node is shutting down")

    def _store_error(self) -> ApiError:
        """A StoreError from the node: it stopped (a fail-stop or a shutdown). Its text may
        carry internals (SQLite's), so the answer says only which."""
        if self.node.failure is not None:
            return ApiError(503, "unavailable", "node stopped producing blocks")
        return ApiError(503, "unavailable", "node is shutting down")

    async def _await_receipt(
        self, fut: asyncio.Future[Any], tx_hash: bytes, deadline: float | None = None
    ) -> Any:
        """The receipt, once committed; 504 past ``deadline`` (loop time; default: the
        commit timeout from now). A batch shares one deadline."""
        loop = asyncio.get_running_loop()
        left = self.limits.commit_timeout if deadline is None else deadline - loop.time()
        if not await stop_within(fut, max(left, 0), cancel=False):
            raise ApiError(
                504,
                "timeout",
                f"tx {tx_hash.hex()} not committed within {self.limits.commit_timeout:g}s; "
                "poll /tx/<hash>",
            )
        return fut.result()

    def _admit(self, tx: Tx, *, signature_checked: bool = False) -> asyncio.Future[Any]:
        try:
            fut = self.node.submit_nowait(tx, signature_checked=signature_checked)
            # nobody awaits a wait=false submission: its failure is the receipt's business
            fut.add_done_callback(_retrieve)
            return fut
        except TxError as exc:
            raise tx_error(exc) from None
        except StoreError:  # stopping
            raise self._store_error() from None

    # -- health
    async def healthz(self, request: web.Request) -> web.Response:
        self._no_query(request)
        self._unavailable()
        return _ok({"ok": True, "chain_id": self.node.chain_id, "height": self.node.height})

    async def status(self, request: web.Request) -> web.Response:
        self._no_query(request)
        chain = self.node.chain
        last = chain.last_header
        return _ok(
            {
                "chain_id": chain.chain_id,
                "height": chain.height,
                "latest_hash": None if last is None else last.hash.hex(),
                "latest_time": chain.last_time,
                "genesis_hash": chain.genesis_hash.hex(),
                **ChainConsensus(chain.genesis.consensus, chain.genesis.time).to_json(),
                "validators_hash": chain.validators.hash.hex(),
                "mempool": len(self.node.mempool),
                "block_interval": self.node.block_interval,
                "stopping": self.stopping[0],
            }
        )

    # -- writes
    async def submit(self, request: web.Request) -> web.Response:
        params = _parse(SubmitParams, request.query, "query")
        self._unavailable()
        obj = await _read_json(request, self.limits.max_tx_bytes, self.limits.body_timeout)
        tx = _decode_tx(obj, self.node.chain_id)
        fut = self._admit(tx)
        if not params.wait:
            return _ok({"tx_hash": tx.hash.hex()}, 202)
        try:
            receipt = await self._await_receipt(fut, tx.hash)
        except TxError as exc:  # dropped at execution (e.g. a nonce raced)
            raise tx_error(exc) from None
        except StoreError:
            raise self._store_error() from None
        return _ok({"tx_hash": tx.hash.hex(), "receipt": receipt.to_json()})

    async def submit_block(self, request: web.Request) -> web.Response:
        """A peer's block (proof-of-work and proof-of-stake chains): ``{"block": block}``."""
        _parse(NoParams, request.query, "query")
        self._unavailable()
        obj = await _read_json(request, self.limits.max_body_bytes, self.limits.body_timeout)
        if not isinstance(obj, dict) or set(obj) != {"block"}:
            raise ApiError(400, "bad_request", 'body: expected {"block": {...}}')
        try:
            block = Block.from_json(obj["block"])
            outcome = await self.node.submit_block(block)
        except InterlockError as exc:
            raise query_error(exc) from None
        return _ok({"outcome": outcome, "height": self.node.height})

    async def submit_batch(self, request: web.Request) -> web.Response:
        params = _parse(SubmitParams, request.query, "query")
        self._unavailable()
        obj = await _read_json(request, self.limits.max_body_bytes, self.limits.body_timeout)
        if not isinstance(obj, dict):
            raise ApiError(400, "bad_request", 'body: expected {"txs": [...]}')
        body = _parse(BatchBody, obj, "body")
        if len(body.txs) > self.limits.max_batch:
            raise ApiError(
                400, "bad_request", f"body txs: at most {self.limits.max_batch} per batch"
            )
        cid = self.node.chain_id
        # decode and verify all first: a malformed, foreign or forged item refuses the batch
        # before any is admitted. Signatures are checked in a worker process, so the event
        # loop keeps decoding, answering and producing blocks meanwhile.
        txs = [_decode_tx(t, cid, f"txs[{i}]") for i, t in enumerate(body.txs)]
        bad = await self.verifier.first_bad(txs)
        if bad is not None:
            err = tx_error(InvalidSignature())
            raise ApiError(err.status, err.code, f"txs[{bad}]: {err.message}", err.details)
        self._unavailable()
        results: list[dict[str, Any]] = []
        futs: list[tuple[int, Tx, asyncio.Future[Any]]] = []
        for tx in txs:
            h = tx.hash.hex()
            try:
                futs.append((len(results), tx, self._admit(tx, signature_checked=True)))
                results.append({"tx_hash": h})
            except ApiError as err:
                if err.status == 503:
                    raise
                results.append({"tx_hash": h, "error": err.body()["error"]})
        if params.wait:
            deadline = asyncio.get_running_loop().time() + self.limits.commit_timeout
            for i, tx, fut in futs:
                try:
                    receipt = await self._await_receipt(fut, tx.hash, deadline)
                    results[i]["receipt"] = receipt.to_json()
                except TxError as exc:
                    results[i]["error"] = tx_error(exc).body()["error"]
                except StoreError:
                    results[i]["error"] = self._store_error().body()["error"]
                except ApiError as err:
                    results[i]["error"] = err.body()["error"]
        return _ok({"results": results})

    # -- reads
    async def receipt(self, request: web.Request) -> web.Response:
        self._no_query(request)
        p = _parse(HashParams, request.match_info, "path")
        r = self.node.get_receipt(bytes.fromhex(p.hash))
        if r is None:
            raise ApiError(404, "unknown_tx", f"no committed transaction {p.hash}")
        return _ok({"receipt": r.to_json()})

    async def block(self, request: web.Request) -> web.Response:
        self._no_query(request)
        return _ok({"block": self._block(request).to_json()})

    async def header(self, request: web.Request) -> web.Response:
        self._no_query(request)
        h = self._block(request).header
        return _ok({"header": h.to_json(), "hash": h.hash.hex()})

    async def commit(self, request: web.Request) -> web.Response:
        self._no_query(request)
        return _ok({"commit": self._block(request).commit.to_json()})

    async def validators(self, request: web.Request) -> web.Response:
        self._no_query(request)
        p = _parse(HeightParams, request.match_info, "path")
        h = self._height(p.height)
        vals = self.node.get_validators(h)
        if vals is None:
            raise ApiError(404, "unknown_height", f"no block at height {h}")
        return _ok({"height": h, "validators": vals.to_json(), "hash": vals.hash.hex()})

    async def event(self, request: web.Request) -> web.Response:
        self._no_query(request)
        p = _parse(EventParams, request.match_info, "path")
        block = self.node.get_block(self._height(str(p.height)))
        if block is None:
            raise ApiError(404, "unknown_height", f"no block at height {p.height}")
        if p.index >= len(block.events):
            raise ApiError(
                404,
                "unknown_event",
                f"block {p.height} has {len(block.events)} events; no index {p.index}",
            )
        return _ok({"proof": block.prove_event(p.index).to_json()})

    async def search_events(self, request: web.Request) -> web.Response:
        params = _parse(EventSearchParams, request.query, "query")
        try:
            q = _event_query(params)
            store = self.node.store
            if self.index is None or not isinstance(store, SQLiteBlockStore):
                raise ApiError(404, "index_disabled", "this node keeps no event index")
            found = self.index.search(store.reader, q)
        except BadEventQuery as exc:  # bad_request, or not_indexed for a type left out
            raise ApiError(400, exc.code, f"query {exc}") from None
        frag = getattr(orjson, "Fragment", None)
        events = [
            {
                "height": e.height,
                "index": e.index,
                # the committed bytes as they are (canonical JSON of the event)
                "event": frag(e.leaf) if frag is not None else orjson.loads(e.leaf),
            }
            for e in found
        ]
        more = len(found) == q.limit
        return _ok({"events": events, "next": found[-1].cursor if more else None})

    def _balances(self, addr: str) -> Any:
        try:
            return self.node.chain.query("bank", "balances", {"address": addr})
        except UnknownModule:
            return {}

    async def account(self, request: web.Request) -> web.Response:
        self._no_query(request)
        addr = _parse(AddressParams, request.match_info, "path").address
        return _ok(
            {
                "address": addr,
                "nonce": self.node.chain.next_nonce(addr),
                "pending_nonce": self.node.mempool.next_nonce(addr),
                "balances": self._balances(addr),
            }
        )

    async def nonce(self, request: web.Request) -> web.Response:
        self._no_query(request)
        addr = _parse(AddressParams, request.match_info, "path").address
        return _ok(
            {
                "address": addr,
                "nonce": self.node.chain.next_nonce(addr),
                "pending_nonce": self.node.mempool.next_nonce(addr),
            }
        )

    async def balances(self, request: web.Request) -> web.Response:
        self._no_query(request)
        addr = _parse(AddressParams, request.match_info, "path").address
        return _ok({"address": addr, "balances": self._balances(addr)})

    async def query(self, request: web.Request) -> web.Response:
        target = _parse(QueryTarget, request.match_info, "path")
        if request.method == "POST":
            _parse(NoParams, request.query, "query")
            obj = await _read_json(request, self.limits.max_tx_bytes, self.limits.body_timeout)
            if not isinstance(obj, dict):
                raise ApiError(400, "bad_request", "body: expected a JSON object of arguments")
            args: dict[str, Any] = obj
        else:
            if len(request.query) != len(set(request.query)):
                raise ApiError(400, "bad_request", "query: a parameter is given twice")
            args = {k: _parse_str_arg(k, v) for k, v in request.query.items()}
        try:
            check_value(args, "args")
        except EncodingError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        try:
            result = self.node.chain.query(target.module, target.path, args)
        except InterlockError as exc:
            raise query_error(exc) from None
        return _ok({"result": result})


def _parse_str_arg(key: str, value: str) -> str:
    if len(value) > 4096 or len(key) > 128:
        raise ApiError(400, "bad_request", f"query {key[:40]}: too long")
    return value


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turns every failure into the JSON error shape; 5xx never carries a traceback."""
    try:
        return await handler(request)
    except ApiError as err:
        return _error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
        }.get(exc.status, "bad_request" if exc.status < 500 else "internal")
        msg = {
            404: f"no endpoint {request.path[:80]}",
            405: f"{request.method} is not allowed on {request.path[:80]}",
            413: f"request body over {request.app[LIMITS].max_body_bytes} bytes",
        }.get(exc.status, exc.reason)
        return _error_response(ApiError(exc.status, code, msg))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path[:80])
        return _error_response(ApiError(500, "internal", "internal error (see the node's log)"))


def make_app(
    node: Node, limits: RpcLimits | None = None, index: EventIndex | None = None
) -> web.Application:
    """The RPC application for ``node`` (routes as in the module docstring); ``index``:
    the event index its store writes (default: the store's own, if it is one;
    ``GET /events`` answers 404 ``index_disabled`` without one)."""
    limits = limits or RpcLimits()
    if index is None and isinstance(node.store, SQLiteBlockStore):
        found = node.store.indexer
        index = found if isinstance(found, EventIndex) else None
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[_errors])
    app[NODE] = node
    app[LIMITS] = limits
    app[STOPPING] = [False]
    verifier = SignatureChecker(limits.verify_processes)

    async def close_verifier(app: web.Application) -> AsyncIterator[None]:
        verifier.warm()
        yield
        verifier.close()

    app.cleanup_ctx.append(close_verifier)
    h = _Handlers(node, limits, app[STOPPING], verifier, index)
    r = app.router
    r.add_get("/healthz", h.healthz)
    r.add_get("/status", h.status)
    r.add_post("/tx", h.submit)
    r.add_post("/txs", h.submit_batch)
    r.add_post("/blocks", h.submit_block)
    r.add_get("/tx/{hash}", h.receipt)
    r.add_get("/blocks/{height}", h.block)
    r.add_get("/headers/{height}", h.header)
    r.add_get("/commits/{height}", h.commit)
    r.add_get("/validators/{height}", h.validators)
    r.add_get("/events", h.search_events)
    r.add_get("/events/{height}/{index}", h.event)
    r.add_get("/accounts/{address}", h.account)
    r.add_get("/accounts/{address}/nonce", h.nonce)
    r.add_get("/accounts/{address}/balances", h.balances)
    r.add_get("/query/{module}/{path}", h.query)
    r.add_post("/query/{module}/{path}", h.query)
    return app


class RpcServer:
    """``async with RpcServer(node, host, port)``: serve ``node``'s RPC until exit.

    ``port=0`` binds a free port (see :attr:`port`). Exit stops listening, lets in-flight
    requests finish for at most ``shutdown_timeout`` seconds, then closes. Connections are
    guarded by :class:`~chains.service.httpserver.HardenedRunner` (header deadline,
    connection cap, protocol errors as JSON); :attr:`stats` counts what it refused.
    """

    def __init__(
        self,
        node: Node,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: RpcLimits | None = None,
        shutdown_timeout: float = 5.0,
        index: EventIndex | None = None,
    ) -> None:
        self.node = node
        self.host = host
        self.app = make_app(node, limits, index)
        limits = limits or RpcLimits()
        self._runner = HardenedRunner(
            self.app,
            limits=ServerLimits(limits.header_timeout, limits.max_connections),
            access_log=None,
            shutdown_timeout=shutdown_timeout,
            handle_signals=False,
        )
        self._requested_port = port
        self.port = port

    @property
    def stats(self) -> ServerStats:
        return self._runner.stats

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}"
            ) from None
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def begin_shutdown(self) -> None:
        """Answer 503 to new work from now on (health checks fail first)."""
        self.app[STOPPING][0] = True

    async def stop(self) -> None:
        self.begin_shutdown()
        with contextlib.suppress(Exception):
            await self._runner.cleanup()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
