"""Where a party's trust in a chain comes from, and the HTLC facts proven on it.

A command that acts on what a chain says of a counterparty's lock (``swap audit``, the
offer drivers, the daemon's makers) reads the chain through a
:class:`~chains.service.verified.VerifiedReader`. Its trust anchor is, in this order:

1. **the chain's genesis**, when the chain is named by a chain or devnet file
   (``--config configs/chain-a.toml``): the file determines the genesis (validators,
   engine), so the chain's block 1 must follow it and every later header verifies from
   its validator set (or its work, or its stake); the strongest anchor;
2. **a pinned header**, ``--trust CHAIN:HEIGHT:HASH`` (Tendermint's ``--trusted-height``
   / ``--trusted-hash``), learnt from a source the user trusts;
3. **the trust file** ``$INTERLOCK_HOME/trust/CHAIN.json``: the newest header verified
   before (from any anchor), with the engine recorded when the chain was first trusted;
4. **trust on first use**: with none of these, the endpoint's final header now is
   pinned and recorded in the trust file (as ssh's ``known_hosts``), with a loud line.
   An endpoint that lies from the very first use is believed about that header; every
   later answer must verify from it.

Whatever the anchor, the highest header verified is written back to the trust file, so
the next run starts there (the cache). A trust file that does not parse is refused
(one line, :class:`TrustFileDamaged`): it is the user's to remove.

:func:`prove_lock` proves a lock's state with the event that made it (``htlc.locked``,
``htlc.claimed``, ``htlc.refunded``), found in the chain's event index by ``lock_id``
and proven against a verified header; :class:`ProvenLocks` is that for the swap driver.

Errors::

    CommandError (interlock.errors)
    ├── TrustFileDamaged     a trust file that does not parse
    ├── BadTrustFlag         a --trust that is not CHAIN:HEIGHT:HASH
    └── UnprovenLock         no proven event of the chain shows the lock as it is claimed
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chains.chain import Genesis
from chains.engine import ChainConsensus, get_finality_depth
from chains.errors import EncodingError, InvalidConsensusParams
from chains.service.verified import (
    AnchorMismatch,
    Checkpoint,
    HeaderNotFinal,
    ProvenEvent,
    TrustAnchor,
    VerifiableChain,
    VerifiedReader,
)
from htlc.types import Lock, LockStatus, lock_from_event
from interlock.errors import CommandError

__all__ = [
    "BadTrustFlag",
    "ProvenLocks",
    "TrustFileDamaged",
    "UnprovenLock",
    "is_verifiable",
    "open_prover",
    "open_reader",
    "parse_trust_flag",
    "prove_lock",
    "trust_path",
]

TRUST_VERSION = 1
_EVENT_OF = {
    LockStatus.LOCKED: "htlc.locked",
    LockStatus.CLAIMED: "htlc.claimed",
    LockStatus.REFUNDED: "htlc.refunded",
}


class TrustFileDamaged(CommandError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"trust file {path} is damaged ({reason[:120]}); remove it to start over")


class BadTrustFlag(CommandError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"bad --trust {text[:100]!r}: expected CHAIN:HEIGHT:HASH (64 hex digits)")


class UnprovenLock(CommandError):
    """What an endpoint says of a lock, and no proven event of the chain shows."""

    def __init__(self, chain_id: str, lock_id: str, reason: str) -> None:
        self.chain_id, self.lock_id, self.reason = chain_id, lock_id, reason
        super().__init__(f"{chain_id}: lock {lock_id[:16]}... is not proven: {reason[:300]}")


def parse_trust_flag(text: str) -> tuple[str, int, bytes]:
    """``chain-a:120:ABCD...`` -> ``("chain-a", 120, bytes)``."""
    m = re.fullmatch(r"([A-Za-z0-9._-]{1,64}):([0-9]{1,12}):([0-9a-fA-F]{64})", text.strip())
    if m is None or int(m.group(2)) < 1:
        raise BadTrustFlag(text)
    return m.group(1), int(m.group(2)), bytes.fromhex(m.group(3))


def trust_path(trust_dir: Path, chain_id: str) -> Path:
    return trust_dir / f"{chain_id}.json"


@dataclass(frozen=True, slots=True)
class _Stored:
    """A trust file's contents."""

    anchor: str
    """``TrustAnchor.key`` of the anchor the checkpoint was verified from."""
    source: str
    """Its ``source``, for messages."""
    consensus: ChainConsensus
    """The engine (recorded at first trust, or the genesis's)."""
    checkpoint: Checkpoint
    """The newest header verified."""
    first: bytes
    """The hash of block 1 when it was verified (from a genesis); else empty."""


def _load(path: Path, chain_id: str) -> _Stored | None:
    """The trust file, or None without one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        d = orjson.loads(raw)
        if d["version"] != TRUST_VERSION or d["chain_id"] != chain_id:
            raise ValueError(f"not a version {TRUST_VERSION} trust file of {chain_id}")
        consensus = ChainConsensus.from_json(d["consensus"])
        cp = Checkpoint.from_json(d["checkpoint"])
        if cp.state.chain_id != chain_id or cp.height < 1:
            raise ValueError("the checkpoint is of another chain or no header")
        first = bytes.fromhex(d.get("first", ""))
        return _Stored(str(d["anchor"]), str(d["source"])[:300], consensus, cp, first)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TrustFileDamaged(path, str(exc)) from None
    except (EncodingError, InvalidConsensusParams) as exc:
        raise TrustFileDamaged(path, str(exc)) from None


def _save(path: Path, anchor: TrustAnchor, consensus: ChainConsensus, cp: Checkpoint,
          first: bytes) -> None:  # fmt: skip
    """Write atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "first": first.hex(),
        "version": TRUST_VERSION,
        "chain_id": cp.state.chain_id,
        "anchor": anchor.key,
        "source": anchor.source,
        "consensus": consensus.to_json(),
        "checkpoint": cp.to_json(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two processes may race
    tmp.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


async def open_reader(
    chain: VerifiableChain,
    trust_dir: Path,
    *,
    genesis: Genesis | None = None,
    genesis_source: str = "",
    pinned: tuple[int, bytes] | None = None,
    say: Callable[[str], None] | None = None,
    consensus_of: Callable[[], Awaitable[ChainConsensus]] | None = None,
) -> VerifiedReader:
    """A verified reader of ``chain`` with the anchor the module docstring orders.

    ``consensus_of``: an awaitable factory of the endpoint's engine (``get_consensus``),
    asked only when nothing the user trusts names it (first use, or a pinned header on
    a chain never trusted before); ``say``: where the first-use warning goes."""
    cid = chain.chain_id
    path = trust_path(trust_dir, cid)
    stored = _load(path, cid)
    checkpoint: Checkpoint | None = None
    first = b""
    if genesis is not None:
        anchor = TrustAnchor.of_genesis(genesis, f"the genesis of {genesis_source}")
        # a checkpoint verified before is used only if it came from this same genesis and
        # chain: a devnet restarted from its file has the genesis and other blocks
        if stored is not None and stored.anchor == anchor.key and stored.first:
            one = await chain.get_header(1)
            if one is not None and one.hash == stored.first:
                checkpoint, first = stored.checkpoint, stored.first
    elif pinned is not None:
        consensus = stored.consensus if stored else await _engine(chain, consensus_of)
        anchor = TrustAnchor(
            cid, "--trust", height=pinned[0], header_hash=pinned[1], consensus=consensus
        )
        if stored is not None and stored.anchor == anchor.key:
            checkpoint = stored.checkpoint
    elif stored is not None:
        consensus, checkpoint = stored.consensus, stored.checkpoint
        anchor = TrustAnchor(
            cid,
            stored.source,
            height=checkpoint.height,
            header_hash=checkpoint.state.header_hash,
            consensus=consensus,
        )
    else:
        consensus = await _engine(chain, consensus_of)
        depth = get_finality_depth(consensus.engine)
        latest = await chain.latest_height()
        if latest - depth < 1:  # nothing final to pin yet
            raise HeaderNotFinal(cid, 1, latest, depth)
        header = await chain.get_header(latest - depth)
        if header is None or header.chain_id != cid:
            raise AnchorMismatch(cid, "a first header to trust", "the endpoint serves none")
        source = f"first use of {cid} (recorded in {path})"
        anchor = TrustAnchor(
            cid, source, height=header.height, header_hash=header.hash, consensus=consensus
        )
        if say is not None:
            say(
                f"WARNING: {cid}: no trust anchor given; trusting the endpoint's header "
                f"{header.height} ({header.hash.hex()[:16]}...) from now on, recorded in "
                f"{path}. Give the chain's file with --config (its genesis), or "
                f"--trust {cid}:HEIGHT:HASH, to verify from a source you trust."
            )
    engine = anchor.engine

    def persist(cp: Checkpoint) -> None:
        one = reader.known_hash(1) if genesis is not None else None
        with contextlib.suppress(OSError):  # a cache: a read-only home costs re-verifying
            _save(path, anchor, engine, cp, one or first)

    reader = VerifiedReader(chain, anchor, checkpoint=checkpoint, on_checkpoint=persist)
    return reader


async def _engine(
    chain: VerifiableChain, consensus_of: Callable[[], Awaitable[ChainConsensus]] | None
) -> ChainConsensus:
    """The endpoint's word on the engine, at first trust only (None: BFT)."""
    return ChainConsensus(None, 0) if consensus_of is None else await consensus_of()


async def prove_lock(reader: VerifiedReader, lock: Lock) -> ProvenEvent:
    """The proven event that shows ``lock`` as it is (its every term and its status; a
    claim with its preimage), found by ``lock_id`` in the chain's index; raises
    :class:`UnprovenLock` (or the reader's ``Unverified`` error for a lie it caught)."""
    cid, lid = reader.chain_id, lock.lock_id.hex()
    if lock.terms.chain_id != cid:
        raise UnprovenLock(lock.terms.chain_id, lid, f"the reader is of {cid}")
    kind = _EVENT_OF[lock.status]
    found = await reader.find_proven([kind], ("lock_id", lid), limit=2)
    for p in found:
        try:
            seen = lock_from_event(cid, p.event)
        except EncodingError:
            continue
        if (
            seen is not None
            and seen.terms == lock.terms
            and seen.status is lock.status
            and (lock.preimage is None or seen.preimage == lock.preimage)
        ):
            return p
    raise UnprovenLock(cid, lid, f"no proven {kind} event with these terms")


def is_verifiable(handle: object) -> bool:
    """Whether a chain handle serves what a verified reader needs (``HttpChain`` does;
    the in-process handle, over a node in this very process, need not)."""
    needs = ("get_header", "get_commit", "get_validators", "get_event_proof", "search_events")
    return all(callable(getattr(handle, name, None)) for name in needs)


async def open_prover(
    handles: Sequence[Any], trust_dir: Path, say: Callable[[str], None]
) -> ProvenLocks | None:
    """Verified readers of ``handles``' chains with the trust file or first use as
    anchor (what the daemon's makers have: a relayer config names no genesis); None
    when a handle cannot serve them (in-process chains: believed)."""
    if not all(is_verifiable(h) for h in handles):
        return None
    readers = {}
    for h in handles:
        readers[h.chain_id] = await open_reader(h, trust_dir, say=say, consensus_of=h.get_consensus)
    return ProvenLocks(readers)


class ProvenLocks:
    """What the swap driver asks (``htlc.driver.LockProver``): prove a lock's state on
    whichever of ``readers``' chains it is."""

    def __init__(self, readers: Mapping[str, VerifiedReader]) -> None:
        self.readers = dict(readers)

    async def prove_lock(self, lock: Lock) -> None:
        reader = self.readers.get(lock.terms.chain_id)
        if reader is None:
            raise UnprovenLock(lock.terms.chain_id, lock.lock_id.hex(), "no verified reader")
        await prove_lock(reader, lock)
