"""Leftovers of the first wave: one path's queue cannot starve another's, a remote module
name cannot contain a dot, and every status write goes through the transition table."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import bridge.module
from bridge.localnet import LocalNet
from bridge.module import BridgeModule
from bridge.transfer import Status
from chains.devnet import base_modules
from chains.errors import InvalidArgument
from chains.module import Module
from tests.bridge.conftest import A, B, C, addr, make_net, refused

QUEUE = {"delay_threshold": 500, "delay": 3}


def lock(net: LocalNet, src: str, dst: str, denom: str, amount: int) -> None:
    args = {"denom": denom, "amount": amount, "dest_chain": dst, "recipient": addr(net, dst, "bob")}
    r = net.call(src, "alice", "bridge", "lock", args)
    assert r.ok, r.error


def test_one_path_filling_its_queue_does_not_starve_another_path() -> None:
    def small_queue() -> Sequence[Module]:
        return [*base_modules(), BridgeModule(queue_capacity=1)]

    net = LocalNet((A, B, C), modules_by_chain={B: small_queue})
    slow = {**QUEUE, "delay": 1_000}  # nothing leaves the queue during the test
    net.connect(A, B, **slow)
    net.connect(C, B, **slow)
    lock(net, A, B, "usd", 600)
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.queued"]
    lock(net, A, B, "usd", 600)
    (r,) = net.relay(A, B)[-1:]
    assert r.code == "QueueFull"  # A's share of B's queue is full...
    lock(net, C, B, "gbp", 600)
    (r,) = net.relay(C, B)[-1:]
    assert r.ok, r.error  # ...and C's large transfer still waits in line
    assert [e.type for e in r.events] == ["bridge.queued"]


@pytest.mark.parametrize("name", ["bridge.x", "bank.transfer", "Bridge", "", "a/b"])
def test_a_remote_module_name_is_a_module_name(name: str) -> None:
    """Event types are ``<module>.<name>``: with a dotted remote module ``x.y`` the bridge
    would accept module ``x``'s event ``y.locked`` as a transfer."""
    net = make_net()
    args = {"remote_chain": A, "remote_module": name}
    refused(net, B, "gov", "bridge", "update_path", args, InvalidArgument)


def test_every_status_write_goes_through_the_transition_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moves: list[tuple[Status, Status]] = []
    real = bridge.module.next_status

    def recording(current: Status, target: Status) -> Status:
        moves.append((current, target))
        return real(current, target)

    monkeypatch.setattr(bridge.module, "next_status", recording)
    net = make_net(limits=QUEUE)
    lock(net, A, B, "usd", 100)  # delivered at once
    lock(net, A, B, "usd", 600)  # queued, delivered by end_block
    net.relay(A, B)
    net.advance(B, 5)
    deadline = net.client_height(B, A) + 2
    args = {"denom": "usd", "amount": 5, "dest_chain": B, "recipient": addr(net, B, "bob")}
    assert net.call(A, "alice", "bridge", "lock", {**args, "timeout_height": deadline}).ok
    net.advance(B, 3)
    net.relay(A, B)  # expired on B
    net.relay(B, A)  # refunded on A
    assert set(moves) == {
        (Status.SENT, Status.DELIVERED),
        (Status.SENT, Status.QUEUED),
        (Status.QUEUED, Status.DELIVERED),
        (Status.SENT, Status.EXPIRED),
        (Status.EXPIRED, Status.REFUNDED),
    }
