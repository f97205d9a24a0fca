"""The console's feed: pure bookkeeping of what the workers saw, bounded, never moving a
finished transfer back, keeping nothing secret; and the chart's rates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bridge.relay import Packet
from chains.pow import PowParams
from chains.types import Event, EventProof
from relayer.feed import (
    ChainProbe,
    Feed,
    FeedError,
    MetricSample,
    compute_chart,
    get_item_key,
    parse_probe,
    public_url,
    sample_metrics,
)
from relayer.metrics import Metrics

A, B = "chain-a", "chain-b"
ROOT = bytes(range(32))


def header(height: int) -> Any:
    # the feed reads a header's height and event root only
    return SimpleNamespace(height=height, event_root=ROOT)


def packet(action: str, nonce: int, height: int = 7, **attrs: Any) -> Packet:
    kind = {"mint": "locked", "release": "burned", "refund": "expired"}[action]
    body = {
        "src_chain": A,
        "dst_chain": B,
        "nonce": nonce,
        "sender": "alice",
        "recipient": "bob",
        "denom": "usd",
        "amount": 5,
        "timeout_height": 0,
        **attrs,
    }
    return Packet(action, nonce, EventProof(A, height, 2, 3, Event(f"bridge.{kind}", body), ()))


TX = "cd" * 32


def test_a_transfer_moves_locked_header_relayed_minted() -> None:
    feed = Feed()
    p, other = packet("mint", 1), packet("mint", 2, height=8)
    feed.record_packets("w", [p, other], now=1.0, headers={7: header(7)}, todo=[p, other])
    # the client update for height 7 committed at 2.5, the mint seen committed at 3.0;
    # height 8 needed no update (the client had it)
    delivered = {("mint", 1): TX, ("mint", 2): TX}
    feed.record_packets("w", [p, other], now=3.0, relayed={7: 2.5}, delivered=delivered)
    items = {i["id"]: i for i in feed.items()}
    item = items["transfer:chain-a->chain-b#1"]
    assert item["state"] == "minted"
    assert item["history"] == [
        {"state": "locked", "t": 1.0},
        {"state": "header relayed", "t": 2.5},
        {"state": "minted", "t": 3.0},
    ]
    assert item["mint_tx"] == TX
    assert [h["state"] for h in items["transfer:chain-a->chain-b#2"]["history"]] == [
        "locked",
        "minted",
    ]
    assert item["locked_proof"] == {
        "chain": A,
        "height": 7,
        "index": 2,
        "event": "bridge.locked",
        "root": ROOT.hex(),
    }


def test_already_delivered_packets_show_final_and_refused_ones_say_why() -> None:
    feed = Feed()
    done, refused = packet("mint", 1), packet("refund", 2)
    feed.record_packets("w", [done, refused], now=1.0, todo=[refused])
    feed.record_packets("w", [refused], now=2.0, delivered={}, error="rate\nlimited")
    items = {i["id"]: i for i in feed.items()}
    assert items["transfer:chain-a->chain-b#1"]["state"] == "minted"
    assert items["transfer:chain-a->chain-b#2"]["state"] == "refused"
    assert items["transfer:chain-a->chain-b#2"]["error"] == "rate limited"


def test_a_finished_transfer_never_moves_back() -> None:
    feed = Feed()
    p = packet("mint", 1)
    feed.record_packets("w", [p], now=1.0, delivered={("mint", 1): TX})
    seq = feed.seq
    feed.record_packets("w", [p], now=2.0, todo=[p])  # a batch redone after a restart
    assert feed.items()[0]["state"] == "minted"
    assert feed.seq == seq


def test_a_compliance_refusal_shows_its_rule_until_the_refund() -> None:
    feed = Feed()
    p = packet("mint", 3)
    feed.record_packets("w", [p], now=1.0, todo=[p])
    feed.record_packets("w", [p], now=2.0, delivered={("mint", 3): TX}, refusals={3: "sanctions"})
    assert feed.items()[0]["state"] == "refused: sanctions"
    # the destination's expiry record comes back on the other path: still the refusal ...
    back = packet("refund", 3)
    feed.record_packets("w2", [back], now=3.0, todo=[back])
    assert feed.items()[0]["state"] == "refused: sanctions"
    # ... until the source refunded
    feed.record_packets("w2", [back], now=4.0, delivered={("refund", 3): "ef" * 32})
    [item] = feed.items()
    assert [h["state"] for h in item["history"]] == ["locked", "refused: sanctions", "refunded"]
    assert item["expired_proof"]["event"] == "bridge.expired"  # type: ignore[index]
    assert (item["mint_tx"], item["refund_tx"]) == (TX, "ef" * 32)


def test_a_batch_over_the_bound_keeps_its_latest_and_wakes_listeners_once() -> None:
    feed = Feed(max_items=10)
    woken: list[int] = []
    feed.listeners.append(lambda: woken.append(feed.seq))
    batch = [packet("mint", n) for n in range(1, 101)]
    feed.record_packets("w", batch, now=1.0, todo=batch)
    assert [i["nonce"] for i in feed.items()] == list(range(100, 90, -1))
    assert len(woken) == 1
    feed.record_packets("w", batch, now=2.0, todo=batch)  # nothing new: nobody woken
    assert len(woken) == 1


def test_packets_without_a_nonce_are_not_transfers() -> None:
    feed = Feed()
    feed.record_packets("w", [packet("mint", 0)], now=1.0)
    assert feed.items() == []


def test_hostile_attributes_are_cut_to_short_scalars() -> None:
    feed = Feed()
    p = packet("mint", 1, sender="x" * 10_000, denom={"nested": ["deep"]})
    feed.record_packets("w", [p], now=1.0)
    item = feed.items()[0]
    assert isinstance(item["sender"], str)
    assert len(item["sender"]) <= 128
    assert isinstance(item["denom"], str)


def test_bounded_and_a_reader_that_fell_behind_gets_none() -> None:
    feed = Feed(max_items=3)
    for n in range(1, 6):
        feed.record_packets("w", [packet("mint", n)], now=float(n))
    assert [i["nonce"] for i in feed.items()] == [5, 4, 3]
    assert [i["nonce"] for i in feed.changes_since(3) or []] == [4, 5]
    assert feed.changes_since(feed.seq) == []
    many = Feed()
    for n in range(1, 5000):
        many.record_packets("w", [packet("mint", n)], now=float(n))
    assert many.changes_since(0) is None


def test_swap_legs_by_hashlock_and_the_preimage_is_never_kept() -> None:
    feed = Feed()
    terms = {"hashlock": "ab" * 32, "sender": "alice", "receiver": "bob", "amount": 100}
    locked = Event("htlc.locked", {**terms, "lock_id": "l1", "denom": "usd"})
    feed.record_htlc(A, header(3), [locked], 1.0)
    locked_b = Event("htlc.locked", {**terms, "lock_id": "l2", "denom": "eur", "sender": "bob"})
    feed.record_htlc(B, header(4), [Event("bank.transfer", {}), locked_b], 2.0)
    assert feed.items()[0]["state"] == "locked"
    claimed = Event("htlc.claimed", {**terms, "lock_id": "l2", "preimage": "ff" * 32})
    feed.record_htlc(B, header(5), [claimed], 3.0)
    item = feed.items()[0]
    assert item["state"] == "secret revealed"
    assert item["secret"] == f"public on {B}"
    assert item["legs"][B]["index"] == 0  # type: ignore[index]
    assert "ff" * 32 not in str(item)
    feed.record_htlc(A, header(6), [Event("htlc.claimed", {**terms, "lock_id": "l1"})], 4.0)
    assert feed.items()[0]["state"] == "claimed"


POW = PowParams(2**250, 2**255, 2000, 10, 4, 6, 60_000).to_json()


def status(height: int = 12, **extra: Any) -> dict[str, Any]:
    return {"chain_id": A, "height": height, "consensus": None, "block_interval": 0.5, **extra}


def test_probes_record_reachability_engine_and_balances_without_credentials() -> None:
    feed = Feed()
    bft = parse_probe(status(12), {"usd": 10, "chain-b/eur": 3})
    feed.record_probe(A, "http://user:secret@10.0.0.1:26657/rpc?key=k", now=1.0, probe=bft)
    feed.record_probe(A, "http://10.0.0.2:26657", now=1.0, error="ConnectionRefused")
    feed.record_probe(B, "http://10.0.0.3:26657", now=1.0, error="TimeoutError")
    [a, b] = feed.chain_view()
    assert a["reachable"] is True
    assert (a["height"], a["engine"], a["block_interval"]) == (12, "bft", 0.5)
    assert a["balances"] == {"chain-b/eur": 3, "usd": 10}
    assert b["reachable"] is False
    assert b["height"] is None
    assert "secret" not in str(a)
    assert public_url("http://u:p@h:1/x?y#z") == "http://h:1/x"
    # a proof-of-work chain aims at its engine's interval
    pow_probe = parse_probe(status(3, consensus=POW), {})
    assert (pow_probe.engine, pow_probe.block_interval) == ("pow", 2.0)


@pytest.mark.parametrize(
    ("answer", "balances"),
    [
        ([], {}),
        (status(-1), {}),
        (status(True), {}),  # type: ignore[arg-type]
        (status(consensus={"engine": "proof-of-luck"}), {}),
        (status(), []),
        (status(), {"usd": -5}),
        (status(), {"usd": "many"}),
    ],
)
def test_a_malformed_chain_answer_is_refused(answer: Any, balances: Any) -> None:
    with pytest.raises(FeedError):
        parse_probe(answer, balances)


@pytest.mark.parametrize(
    ("chain_id", "endpoint", "height"),
    [("", "http://x", 1), ("a" * 200, "http://x", 1), (A, "http://x", -1), (A, "x" * 3000, 1)],
)
def test_bad_probe_records_are_refused_and_change_nothing(
    chain_id: str, endpoint: str, height: int
) -> None:
    feed = Feed()
    with pytest.raises(FeedError):
        feed.record_probe(chain_id, endpoint, now=1.0, probe=ChainProbe(height, "bft", 1.0, {}))
    assert feed.chains == {}


@pytest.mark.parametrize(
    ("chain_id", "event", "key"),
    [
        (A, Event("bridge.locked", {"src_chain": A, "dst_chain": B, "nonce": 4}), "#4"),
        (B, Event("bridge.minted", {"src_chain": A, "nonce": 4}), "#4"),
        (B, Event("bridge.refused", {"src_chain": A, "nonce": 4, "rule": "x"}), "#4"),
        (A, Event("bridge.refunded", {"dst_chain": B, "nonce": 4}), "#4"),
        (A, Event("bridge.acknowledged", {"dst_chain": B, "nonce": 4}), "#4"),
        (A, Event("bridge.locked", {"src_chain": A, "dst_chain": B, "nonce": 0}), None),
        (A, Event("bridge.path_registered", {"nonce": 4}), None),
        (A, Event("bank.transfer", {"nonce": 4}), None),
        (A, Event("htlc.claimed", {"hashlock": "ab"}), "swap:ab"),
        (A, Event("htlc.claimed", {"hashlock": "a" * 200}), None),
    ],
)
def test_every_event_of_a_transfer_on_either_chain_names_it(
    chain_id: str, event: Event, key: str | None
) -> None:
    got = get_item_key(event, chain_id)
    if key is None or key.startswith("swap:"):
        assert got == key
    else:
        assert got == f"transfer:{A}->{B}{key}"


def test_chart_rates_and_a_counter_reset_is_skipped() -> None:
    samples = [
        MetricSample(0.0, 0, 0.0, 0),
        MetricSample(2.0, 4, 2.0, 4),
        MetricSample(4.0, 4, 2.0, 4),
        MetricSample(6.0, 0, 0.0, 0),  # a restart: counters start again
    ]
    points = compute_chart(samples)
    assert [(p.t, p.throughput, p.latency) for p in points] == [(2.0, 2.0, 0.5), (4.0, 0.0, None)]


def test_samples_come_from_the_metrics_registry_and_must_move_forward() -> None:
    m = Metrics()
    m.packets.labels("w", "mint").inc(3)
    m.swap_actions.labels("s", "claim").inc()
    m.latency.labels("w").observe(0.5)
    s = sample_metrics(m, 10.0)
    assert (s.relayed, s.latency_sum, s.latency_count) == (4, 0.5, 1)
    feed = Feed()
    feed.record_sample(s)
    with pytest.raises(FeedError):
        feed.record_sample(MetricSample(10.0, 5, 0, 0))
    assert len(feed.samples) == 1
    with pytest.raises(FeedError):
        Feed(max_items=0)
