"""Builders shared by the chains tests: devnet chains driven block by block with a fake
clock, signed transfers, and header updates for light clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from chains.chain import BlockResult, Chain
from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, build_devnet
from chains.lightclient import HeaderUpdate
from chains.types import Header, Tx, ValidatorSet

BLOCK_MS = 1_000


def transfer(
    key: PrivateKey, chain_id: str, nonce: int, to: str, amount: int, denom: str = "usd"
) -> Tx:
    return Tx.create(
        key, chain_id, nonce, "bank", "transfer", {"to": to, "denom": denom, "amount": amount}
    )


class Driver:
    """A devnet chain produced block by block, one second apart, signed by every key it
    knows (the chain keeps only the current set's)."""

    def __init__(self, dc: DevnetChain, extra_keys: Sequence[PrivateKey] = ()) -> None:
        self.dc = dc
        self.chain: Chain = dc.build()
        self.keys: list[PrivateKey] = [*dc.validator_keys, *extra_keys]
        self.results: dict[int, BlockResult] = {}

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    def key(self, name: str) -> PrivateKey:
        return self.dc.accounts[name]

    def nonce(self, name: str) -> int:
        return self.chain.next_nonce(self.key(name).address)

    def tx(self, name: str, module: str, method: str, args: dict[str, object]) -> Tx:
        return Tx.create(self.key(name), self.chain_id, self.nonce(name), module, method, args)

    def produce(self, txs: Iterable[Tx] = (), time: int | None = None) -> BlockResult:
        t = self.chain.last_time + BLOCK_MS if time is None else time
        res = self.chain.produce_block(list(txs), t, self.keys)
        self.results[res.block.height] = res
        return res

    def run(self, name: str, module: str, method: str, args: dict[str, object]) -> BlockResult:
        """One transaction in its own block."""
        return self.produce([self.tx(name, module, method, args)])

    def update(self, height: int, trusted_height: int) -> HeaderUpdate:
        """The header at ``height`` as an update from ``trusted_height``."""
        res = self.results[height]
        trusted_vals = self.next_validators(trusted_height)
        return HeaderUpdate(
            res.block.header, res.block.commit, res.validators, trusted_height, trusted_vals
        )

    def next_validators(self, height: int) -> ValidatorSet:
        """The set named by ``next_validators_hash`` of the header at ``height``."""
        nxt = self.results.get(height + 1)
        if nxt is not None:
            return nxt.validators
        return self.chain.validators


def devnet(*chain_ids: str, **kw: object) -> list[DevnetChain]:
    return build_devnet(chain_ids or ("chain-a", "chain-b"), **kw)  # type: ignore[arg-type]


def forged_update(
    update: HeaderUpdate, keys: Sequence[PrivateKey], **changes: object
) -> HeaderUpdate:
    """The same height with different header contents, signed by ``keys``: a fork."""
    header: Header = dataclasses.replace(update.header, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(update, header=header, commit=sign_commit(header, keys))
