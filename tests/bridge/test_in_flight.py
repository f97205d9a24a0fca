"""``bridge/in_flight``: the nonces of a path's transfers whose sent record is still kept,
in bounded pages; what a new relayer reads to find where its work begins."""

from __future__ import annotations

import pytest

from bridge.localnet import LocalNet
from chains.errors import InvalidArgument
from tests.bridge.conftest import A, B, addr


def _lock(net: LocalNet, amount: int) -> int:
    args = {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": addr(net, B, "bob")}
    r = net.call(A, "alice", "bridge", "lock", args)
    assert r.ok, r.error
    return int(r.events[-1].attributes["nonce"])


def _all_pages(net: LocalNet, limit: int) -> tuple[list[int], int]:
    nonces: list[int] = []
    args: dict[str, object] = {"remote_chain": B, "limit": limit}
    pages = 0
    while True:
        page = net[A].chain.query("bridge", "in_flight", args)
        assert isinstance(page, dict)
        pages += 1
        assert len(page["nonces"]) <= limit
        nonces.extend(page["nonces"])
        if page["next"] is None:
            return nonces, pages
        args = {**args, "after": page["next"]}


def test_in_flight_lists_every_kept_record_once_across_pages(net: LocalNet) -> None:
    assert net[A].chain.query("bridge", "in_flight", {"remote_chain": B}) == {
        "nonces": [],
        "next": None,
    }
    sent = [_lock(net, amount) for amount in range(1, 24)]  # nonces 1..23: "10" < "9"
    for limit in (1, 4, 7, 23, 1000):
        got, pages = _all_pages(net, limit)
        assert sorted(got) == sent
        assert pages >= len(sent) // limit
    net.relay(A, B)
    net.relay(B, A)  # acknowledged: pruned
    assert _all_pages(net, 5)[0] == []
    later = _lock(net, 5)
    assert _all_pages(net, 5)[0] == [later]


@pytest.mark.parametrize(
    "args",
    [
        {"remote_chain": B, "limit": 0},
        {"remote_chain": B, "limit": 1001},
        {"remote_chain": B, "after": 0},
        {"remote_chain": B, "after": "9"},
        {"remote_chain": "not a chain"},
    ],
)
def test_in_flight_refuses_bad_arguments_in_one_line(
    net: LocalNet, args: dict[str, object]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        net[A].chain.query("bridge", "in_flight", args)
    assert "\n" not in str(err.value)
