"""Shared fixtures: connected in-process chains and a way to see a refusal's typed error.

A transaction in a block turns a refusal into a receipt (``code`` = error class name);
:func:`refused` instead runs one call directly against the chain's state, as the next
block would, so a test can ``pytest.raises`` the specific error and check that the state
root did not move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pytest

from bridge.localnet import BLOCK_MS, LocalNet
from bridge.module import BridgeModule
from chains.devnet import base_modules
from chains.errors import InterlockError
from chains.module import BlockInfo, Module, TxContext
from chains.types import Event

E = TypeVar("E", bound=InterlockError)

A, B, C = "chain-a", "chain-b", "chain-c"


class RogueBridge(BridgeModule):
    """A source chain's bridge with a bug or a backdoor: ``emit_raw`` emits any
    ``bridge.<name>`` event. Its events are genuinely committed and provable, so they
    test what the destination accepts from a proven, registered, but faulty remote."""

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        if method == "emit_raw":
            ctx.emit(str(args["name"]), dict(args["attributes"]))
            return
        super().deliver(ctx, method, args)


def rogue_modules() -> Sequence[Module]:
    return [*base_modules(), RogueBridge()]


def make_net(
    chains: Sequence[str] = (A, B), links: Sequence[tuple[str, str]] = ((A, B),), **kw: Any
) -> LocalNet:
    limits = kw.pop("limits", {})
    net = LocalNet(chains, **kw)
    for a, b in links:
        net.connect(a, b, **limits)
    return net


@pytest.fixture
def net() -> LocalNet:
    return make_net()


def addr(net: LocalNet, chain: str, name: str) -> str:
    return net.key(chain, name).address


def refused(
    net: LocalNet,
    chain: str,
    sender: str,
    module: str,
    method: str,
    args: Mapping[str, Any],
    error: type[E],
) -> E:
    """Run one call as the next block would and expect ``error``; the state is unchanged."""
    side = net[chain]
    c = side.chain
    if sender in side.spec.accounts:
        sender = side.spec.accounts[sender].address
    root = c.state.root()
    info = BlockInfo(c.chain_id, c.height + 1, net.time + BLOCK_MS, c.genesis.authority)
    ctx = TxContext(info, c.state, sender, module)
    c.state.begin()
    try:
        with pytest.raises(error) as caught:
            c.modules[module].deliver(ctx, method, args)
    finally:
        c.state.rollback()
    assert c.state.root() == root, "a refused call changed state"
    return caught.value


def events_of(net: LocalNet, chain: str, type_: str) -> list[Event]:
    return [e for b in net[chain].blocks.values() for e in b.events if e.type == type_]
