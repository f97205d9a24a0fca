"""What a relayer submits to a PoW or PoS light client: a pure planner.

A BFT client takes one signed header (``chains.lcplan`` plans the skipping steps). A PoW
client (``chains.powclient``) takes runs of linked headers from a header it already
stores, and follows whichever branch has the most work; so a relayer must

1. find the fork point: the highest height at which the client's best chain and the
   source's best chain agree, searching down from the lower tip to the client's final
   height (the client never replaces a final header, so agreement below it is implied);
2. submit the source's headers above it, in runs of at most
   ``MAX_HEADERS_PER_UPDATE`` (each run one ``update_pow_client`` transaction, in order).

Proofs: an event at height ``h`` can be proven once the client's final height (returned
by the ``lightclient/client`` query, ``final_height``; also its ``latest_height``)
reaches ``h``; until then the client answers ``NotFinal``, a ``ConsensusStateNotFound``.

The client's best chain is read with the ``lightclient/pow_best`` query (heights to
hashes, at most ``MAX_POW_BEST_QUERY`` heights per query).

A PoS client (``chains.posclient``) takes the same runs (``update_pos_client``), with the
stake tables they name: :func:`plan_stake_tables` gives each distinct table once, in
the order the run first names it (the client ignores the ones it holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chains.errors import InvalidPlan
from chains.posclient import MAX_TABLES_PER_UPDATE
from chains.powclient import MAX_HEADERS_PER_UPDATE
from chains.types import Header, ValidatorSet

__all__ = ["find_fork_height", "is_provable", "plan_pow_headers", "plan_stake_tables"]


def find_fork_height(
    best_height: int,
    final_height: int,
    client_hash_at: Mapping[int, bytes],
    source: Mapping[int, Header],
    source_height: int,
) -> int:
    """The highest height where the client's best chain (``client_hash_at``, heights to
    hashes for ``[final_height, best_height]``) and the source's (``source``, heights to
    headers) agree. Raises :class:`InvalidPlan` if they agree nowhere at or above the
    client's final height: the source reorganised below what the client holds final, so
    nothing can be submitted (an alarm, not a retry)."""
    for h in range(min(best_height, source_height), final_height - 1, -1):
        header = source.get(h)
        if header is None:
            raise InvalidPlan(f"the source header at height {h} is needed")
        if client_hash_at.get(h) == header.hash:
            return h
    raise InvalidPlan(
        f"the source's chain departs from the client's below its final height {final_height}"
    )


def plan_pow_headers(
    best_height: int,
    final_height: int,
    client_hash_at: Mapping[int, bytes],
    source: Mapping[int, Header],
    source_height: int,
    max_per_update: int = MAX_HEADERS_PER_UPDATE,
) -> list[list[Header]]:
    """The runs of source headers to submit, in order (empty: the client is current)."""
    if not 0 < max_per_update <= MAX_HEADERS_PER_UPDATE:
        raise InvalidPlan(f"max_per_update must be in 1..{MAX_HEADERS_PER_UPDATE}")
    fork = find_fork_height(best_height, final_height, client_hash_at, source, source_height)
    runs: list[list[Header]] = []
    for start in range(fork + 1, source_height + 1, max_per_update):
        run = []
        for h in range(start, min(start + max_per_update, source_height + 1)):
            header = source.get(h)
            if header is None:
                raise InvalidPlan(f"the source header at height {h} is needed")
            run.append(header)
        runs.append(run)
    return runs


def is_provable(final_height: int, height: int) -> bool:
    """True iff an event at ``height`` can be proven to a client final up to
    ``final_height``."""
    return 0 < height <= final_height


def plan_stake_tables(
    run: Sequence[Header], table_at: Mapping[int, ValidatorSet]
) -> list[ValidatorSet]:
    """The stake tables a run of PoS headers names (``table_at``: height to the table
    that judged it, what the source's node serves), each once. Raises
    :class:`InvalidPlan` if one is missing or the run needs more than an update carries
    (a run spans at most ``MAX_TABLES_PER_UPDATE`` epochs: shorten it)."""
    out: dict[bytes, ValidatorSet] = {}
    for h in run:
        if h.validators_hash in out:
            continue
        table = table_at.get(h.height)
        if table is None or table.hash != h.validators_hash:
            raise InvalidPlan(f"the stake table of height {h.height} is needed")
        out[h.validators_hash] = table
    if len(out) > MAX_TABLES_PER_UPDATE:
        raise InvalidPlan(f"the run names more than {MAX_TABLES_PER_UPDATE} stake tables")
    return list(out.values())
