"""Two nodes of one chain as peers, for the reorganisation tests (PoW and PoS): ``a`` is
the node under test, ``b`` a peer that seals a competing branch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chains.devnet import DevnetChain
from chains.node import Node
from chains.types import Tx
from tests.conftest import open_node


def two_nodes(dc: DevnetChain, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Two nodes from ``dc``'s genesis, each on its own SQLite store (a fixture's body)."""
    a, b = open_node(dc, tmp_path / "a"), open_node(dc, tmp_path / "b")
    yield a, b
    a.store.close()
    b.store.close()


def pay(dc: DevnetChain, nonce: int, to: str, amount: int = 1) -> Tx:
    """alice pays ``to`` with her ``nonce``."""
    args = {"to": dc.accounts[to].address, "denom": dc.denom, "amount": amount}
    return Tx.create(dc.accounts["alice"], dc.chain_id, nonce, "bank", "transfer", args)


async def share(a: Node, b: Node, upto: int) -> None:
    """``b`` takes ``a``'s blocks up to ``upto`` (as a peer would)."""
    for h in range(b.height + 1, upto + 1):
        block = a.get_block(h)
        assert block is not None
        assert await b.submit_block(block) == "best"


def balance(node: Node, dc: DevnetChain, who: str) -> object:
    return node.chain.query(
        "bank", "balance", {"address": dc.accounts[who].address, "denom": dc.denom}
    )
