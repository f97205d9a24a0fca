"""The pure transfer logic: packets, denom traces, the transfer state machine, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import MalformedPacket, RateLimited
from bridge.transfer import (
    DEFAULT_LIMITS,
    PACKET_KEYS,
    Limits,
    Packet,
    Status,
    compute_flow,
    compute_refund_flow,
    compute_returning_denom,
    compute_wrapped_denom,
    is_chain_id,
    is_conserved,
    next_status,
)

PACKET = Packet("chain-a", "chain-b", 1, "a" * 40, "b" * 40, "usd", 5, 100)


def test_packet_round_trips_through_its_attributes() -> None:
    assert Packet.from_attributes(PACKET.to_json()) == PACKET
    assert set(PACKET.to_json()) == PACKET_KEYS
    assert len(PACKET.hash) == 32


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("src_chain", ""),
        ("src_chain", "chain/a"),
        ("dst_chain", 5),
        ("nonce", 0),
        ("nonce", True),
        ("amount", 0),
        ("amount", 2**63),
        ("amount", 1.5),
        ("timeout_height", -1),
        ("sender", "A" * 40),
        ("recipient", "b" * 39),
        ("recipient", "b" * 40 + "\n"),
        ("denom", "1usd"),
        ("denom", "u"),
    ],
)
def test_malformed_packet_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(MalformedPacket) as err:
        Packet.from_attributes({**PACKET.to_json(), field: value})
    assert err.value.field == field


def test_packet_keys_are_exact() -> None:
    with pytest.raises(MalformedPacket):
        Packet.from_attributes({**PACKET.to_json(), "memo": "x"})
    attrs = PACKET.to_json()
    del attrs["timeout_height"]
    with pytest.raises(MalformedPacket):
        Packet.from_attributes(attrs)


def test_chain_ids_never_contain_a_slash() -> None:
    assert is_chain_id("chain-a")
    assert is_chain_id("a" * 64)
    for bad in ("", "a" * 65, "1chain", "chain/a", "chain a", "chain-a\n", None, 7):
        assert not is_chain_id(bad)


@given(
    src=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    own=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    base=st.from_regex(r"[a-z][a-z0-9/]{1,20}", fullmatch=True),
)
def test_denom_trace_round_trip(src: str, own: str, base: str) -> None:
    """Wrapping on arrival and unwrapping on return are inverse, and distinct sources
    never share a wrapped name (one-to-one)."""
    wrapped = compute_wrapped_denom(own, base)  # our asset as the remote names it
    assert compute_returning_denom(own, wrapped) == base
    if src != own:
        assert compute_wrapped_denom(src, base) != wrapped
        assert compute_returning_denom(src, wrapped) is None or wrapped.startswith(src + "/")


def test_returning_denom_needs_our_prefix() -> None:
    assert compute_returning_denom("chain-a", "chain-a/usd") == "usd"
    assert compute_returning_denom("chain-a", "chain-b/chain-a/usd") is None
    assert compute_returning_denom("chain-a", "chain-ab/usd") is None
    assert compute_returning_denom("chain-a", "chain-a/") is None


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ([Status.DELIVERED], True),
        ([Status.QUEUED, Status.DELIVERED], True),
        ([Status.EXPIRED, Status.REFUNDED], True),
        ([Status.DELIVERED, Status.REFUNDED], False),
        ([Status.EXPIRED, Status.DELIVERED], False),
        ([Status.QUEUED, Status.EXPIRED, Status.REFUNDED], True),  # governance cancel
        ([Status.QUEUED, Status.EXPIRED, Status.DELIVERED], False),
        ([Status.QUEUED, Status.DELIVERED, Status.EXPIRED], False),
        ([Status.QUEUED, Status.SENT, Status.DELIVERED], True),  # governance drop, then real
        ([Status.DELIVERED, Status.SENT], False),
        ([Status.EXPIRED, Status.SENT], False),
        ([Status.REFUNDED], False),
        ([Status.EXPIRED, Status.REFUNDED, Status.REFUNDED], False),
    ],
)
def test_a_transfer_ends_delivered_xor_refunded(path: list[Status], ok: bool) -> None:
    def walk() -> Status:
        s = Status.SENT
        for target in path:
            s = next_status(s, target)
        return s

    if ok:
        assert walk() == path[-1]
    else:
        with pytest.raises(ValueError, match="cannot go"):
            walk()


def _used(rec: object, height: int, limits: Limits) -> int:
    """What the record says left in the ``window`` heights ending at ``height``."""
    try:
        compute_flow(rec, height, limits, limits.cap + 1)  # type: ignore[arg-type]
    except RateLimited as err:
        return err.used
    raise AssertionError("a flow above the cap passed")


def test_flow_caps_any_window_of_consecutive_heights() -> None:
    limits = Limits(cap=100, window=10, delay_threshold=0, delay=0)
    rec = compute_flow(None, 5, limits, 60)
    rec = compute_flow(rec, 9, limits, 40)
    assert _used(rec, 9, limits) == 100
    with pytest.raises(RateLimited) as err:
        compute_flow(rec, 9, limits, 1, remote_chain="chain-a", denom="usd")
    assert (err.value.used, err.value.amount, err.value.cap) == (100, 1, 100)
    # a fixed window reset at height 10 and let another 100 through at once (2x the cap
    # in 6 heights); the sliding window waits until the outflow at 5 is 10 heights old
    with pytest.raises(RateLimited):
        compute_flow(rec, 10, limits, 100)
    assert _used(rec, 14, limits) == 100
    assert _used(rec, 15, limits) == 40
    rec = compute_flow(rec, 15, limits, 60)
    assert _used(rec, 19, limits) == 60
    assert _used(rec, 25, limits) == 0


def test_a_fixed_window_record_of_earlier_versions_is_read_strictly() -> None:
    limits = Limits(cap=100, window=10, delay_threshold=0, delay=0)
    assert _used([0, 70], 9, limits) == 70  # window 0 = heights 0..9
    assert _used([0, 70], 18, limits) == 70
    assert _used([0, 70], 19, limits) == 0


def test_a_changed_window_rebuckets_the_record_strictly() -> None:
    rec = compute_flow(None, 40, Limits(100, 64, 0, 0), 50)  # buckets of 4 heights
    assert _used(rec, 44, Limits(100, 5, 0, 0)) == 50  # its bucket ends at 43
    assert _used(rec, 48, Limits(100, 5, 0, 0)) == 0


def test_a_refund_above_a_lowered_cap_passes_alone_in_its_window() -> None:
    """The cap was lowered to 100 after a lock of 150: the refund passes only as the
    window's first outflow, and then fills the window."""
    limits = Limits(cap=100, window=10, delay_threshold=0, delay=0)
    rec = compute_refund_flow(None, 5, limits, 150)
    assert _used(rec, 5, limits) == 150
    assert _used(compute_refund_flow(rec, 15, limits, 150), 15, limits) == 150  # a new window
    with pytest.raises(RateLimited) as err:
        compute_refund_flow(rec, 9, limits, 1, remote_chain="chain-a", denom="usd")
    assert (err.value.used, err.value.amount, err.value.cap) == (150, 1, 100)
    one = compute_flow(None, 9, limits, 1)
    with pytest.raises(RateLimited) as err:
        compute_refund_flow(one, 9, limits, 150)  # not alone: waits for an empty window
    assert (err.value.used, err.value.amount) == (1, 150)
    # within the cap, a refund is an ordinary outflow
    sixty = compute_flow(None, 9, limits, 60)
    assert _used(compute_refund_flow(sixty, 9, limits, 40), 9, limits) == 100
    with pytest.raises(RateLimited):
        compute_refund_flow(sixty, 9, limits, 41)


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 50)), max_size=40),
    st.integers(1, 40),
)
def test_flow_never_exceeds_the_cap_in_any_window(
    steps: list[tuple[int, int]], window: int
) -> None:
    limits = Limits(cap=120, window=window, delay_threshold=0, delay=0)
    rec = None
    height = 0
    out: list[tuple[int, int]] = []
    for dh, amount in steps:
        height += dh % 5
        try:
            rec = compute_flow(rec, height, limits, amount)  # type: ignore[arg-type]
        except RateLimited:
            continue
        out.append((height, amount))
    for end in range(height + 1):
        assert sum(a for h, a in out if end - window < h <= end) <= 120


def test_delay_threshold() -> None:
    assert not DEFAULT_LIMITS.is_delayed(10**18)
    limits = Limits(cap=100, window=10, delay_threshold=50, delay=3)
    assert limits.is_delayed(50)
    assert not limits.is_delayed(49)
    assert Limits.from_json(limits.to_json()) == limits


def test_conservation_predicate() -> None:
    assert is_conserved(10, 7, 3)
    assert not is_conserved(10, 8, 3)
    assert not is_conserved(-1, -1, 0)
