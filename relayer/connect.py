"""Connecting two chains for the bridge: a light client of each on the other, and a path.

Hermes's ``create client`` plus the governance step this project's bridge needs: on the
destination, a light client of the source created (by anyone: the relayer's key) from the
source's latest signed header (a proof-of-work source: a PoW client from its last final
header; a proof-of-stake source: a PoS client from its last final header and the stake
table that header names as next), then a bridge path naming that client, registered by the
destination's governance key. Idempotent: a destination that has a path from the source
already is left as it is. The daemon reads clients and paths back from the chains.
"""

from __future__ import annotations

from chains.crypto import PrivateKey
from chains.encoding import JSONValue
from chains.engine import ChainConsensus
from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.lightclient import HeaderUpdate
from chains.pos import PosParams
from chains.pow import PowParams, get_anchor_height
from chains.types import Tx

__all__ = ["MAX_CLOCK_DRIFT_MS", "TRUSTING_PERIOD_MS", "connect"]

TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000
MAX_CLOCK_DRIFT_MS = 10_000


async def _send(
    chain: ChainHandle, key: PrivateKey, module: str, method: str, args: dict[str, JSONValue]
) -> str:
    nonce = await chain.pending_nonce(key.address)
    receipt = await chain.submit(Tx.create(key, chain.chain_id, nonce, module, method, args))
    if not receipt.ok:
        raise InterlockError(
            f"{chain.chain_id}: {module}.{method} failed: {receipt.code}: {receipt.error}"
        )
    return str(receipt.events[0].attributes.get("client_id", "")) if receipt.events else ""


async def _final_height(src: ChainHandle, depth: int) -> int:
    """The source's last final height: a PoW or PoS client's checkpoint (trusted as a
    BFT client's first header is)."""
    height = await src.latest_height() - depth
    if height < 1:
        raise InterlockError(f"{src.chain_id} has no final block yet (height {height})")
    return height


async def _pos_client_args(
    src: ChainHandle, params: PosParams
) -> tuple[str, dict[str, JSONValue], int]:
    """A PoS client starts from the source's last final header and the stake table it
    names as next (the table that judges the header above it)."""
    height = await _final_height(src, params.finality_depth)
    checkpoint, table = await src.get_header(height), await src.get_validators(height + 1)
    if checkpoint is None or table is None:
        raise InterlockError(f"{src.chain_id} has no header at {height} or table at {height + 1}")
    if table.hash != checkpoint.next_validators_hash:
        raise InterlockError(f"{src.chain_id}: the table at {height + 1} is not the one named")
    args: dict[str, JSONValue] = {
        "params": params.to_json(),
        "checkpoint": checkpoint.to_json(),
        "table": table.to_json(),
    }
    return "create_pos_client", args, height


async def _pow_client_args(
    src: ChainHandle, params: PowParams, consensus: ChainConsensus
) -> tuple[str, dict[str, JSONValue], int]:
    """A PoW client starts from the source's last final header, with its retarget
    window's anchor time."""
    height = await _final_height(src, params.finality_depth)
    checkpoint = await src.get_header(height)
    at = get_anchor_height(params, height)
    anchor = await src.get_header(at) if at else None
    if checkpoint is None or (at and anchor is None):
        raise InterlockError(f"{src.chain_id} has no header at {height} or {at}")
    args: dict[str, JSONValue] = {
        "params": params.to_json(),
        "checkpoint": checkpoint.to_json(),
        "anchor_time": consensus.genesis_time if anchor is None else anchor.time,
    }
    return "create_pow_client", args, height


async def connect(
    src: ChainHandle, dst: ChainHandle, relayer: PrivateKey, authority: PrivateKey
) -> str:
    try:
        path = await dst.query("bridge", "path", {"remote_chain": src.chain_id})
    except InterlockError:
        path = None
    if isinstance(path, dict):
        return f"{dst.chain_id}: path from {src.chain_id} exists (client {path.get('client_id')})"
    consensus = await src.get_consensus()
    if isinstance(consensus.engine, PowParams):
        method, args, height = await _pow_client_args(src, consensus.engine, consensus)
    elif isinstance(consensus.engine, PosParams):
        method, args, height = await _pos_client_args(src, consensus.engine)
    else:
        height = await src.latest_height()
        block, vals = await src.get_block(height), await src.get_validators(height)
        if block is None or vals is None:
            raise InterlockError(f"{src.chain_id} has no block at {height}")
        update = HeaderUpdate(block.header, block.commit, vals, height, None)
        method, args = (
            "create_client",
            {
                "update": update.to_json(),
                "trusting_period": TRUSTING_PERIOD_MS,
                "max_clock_drift": MAX_CLOCK_DRIFT_MS,
            },
        )
    client_id = await _send(dst, relayer, "lightclient", method, args)
    await _send(
        dst,
        authority,
        "bridge",
        "register_path",
        {"remote_chain": src.chain_id, "client_id": client_id},
    )
    return (
        f"{dst.chain_id}: client {client_id} of {src.chain_id} at height {height}; path registered"
    )
