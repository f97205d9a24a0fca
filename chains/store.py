"""The block store protocol and its in-memory twin (the SQLite one is in ``chains.node``,
the only module here that does I/O).

A store persists, atomically per block: the block, the validator set that signed it, and
the state entries the block changed. Restarting on the same store yields the same height
and state root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chains.chain import Genesis
from chains.types import Block, Receipt, ValidatorSet

__all__ = ["BlockStore", "MemoryBlockStore"]


class BlockStore(Protocol):
    def load_genesis(self) -> Genesis | None: ...

    def save_genesis(self, genesis: Genesis, state: Mapping[str, Any]) -> None: ...

    def save_block(
        self, block: Block, validators: ValidatorSet, changes: Mapping[str, Any]
    ) -> None: ...

    def latest_height(self) -> int: ...

    def get_block(self, height: int) -> Block | None: ...

    def get_validators(self, height: int) -> ValidatorSet | None: ...

    def get_receipt(self, tx_hash: bytes) -> Receipt | None: ...

    def load_state(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class MemoryBlockStore:
    """Keeps everything in dicts; for tests and throwaway devnets."""

    def __init__(self) -> None:
        self._genesis: Genesis | None = None
        self._blocks: dict[int, Block] = {}
        self._vals: dict[int, ValidatorSet] = {}
        self._receipts: dict[bytes, Receipt] = {}
        self._state: dict[str, Any] = {}

    def load_genesis(self) -> Genesis | None:
        return self._genesis

    def save_genesis(self, genesis: Genesis, state: Mapping[str, Any]) -> None:
        self._genesis = genesis
        self._state = {k: v for k, v in state.items() if v is not None}

    def save_block(
        self, block: Block, validators: ValidatorSet, changes: Mapping[str, Any]
    ) -> None:
        self._blocks[block.height] = block
        self._vals[block.height] = validators
        for r in block.receipts:
            self._receipts[r.tx_hash] = r
        for k, v in changes.items():
            if v is None:
                self._state.pop(k, None)
            else:
                self._state[k] = v

    def latest_height(self) -> int:
        return max(self._blocks, default=0)

    def get_block(self, height: int) -> Block | None:
        return self._blocks.get(height)

    def get_validators(self, height: int) -> ValidatorSet | None:
        return self._vals.get(height)

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        return self._receipts.get(tx_hash)

    def load_state(self) -> dict[str, Any]:
        return dict(self._state)

    def close(self) -> None:
        return None
