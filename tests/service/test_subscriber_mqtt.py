"""A stranger on a real broker: hostile payloads on a live chain's topics change nothing.

Blocks are produced by hand so that the forged header is for exactly the next height.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.handle import InProcessChain
from chains.service.bus import MqttBus, MqttOptions, parse_bus_url
from chains.service.publisher import Publisher
from chains.service.retry import Backoff
from chains.service.subscriber import ChainSubscriber, TrustedState
from chains.service.wire import (
    MAX_PAYLOAD_BYTES,
    encode_events,
    encode_header,
    events_topic,
    headers_topic,
)
from chains.types import Block, ValidatorSet
from tests.conftest import devnet_chain, open_node, transfer


def opts(url: str) -> MqttOptions:
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=Backoff(initial=0.05, maximum=0.5))


async def until(cond: Callable[[], bool], within: float = 20) -> None:
    async def go() -> None:
        while not cond():  # noqa: ASYNC110 (a test polls state other tasks own)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(go(), within)


async def test_hostile_payloads_from_a_stranger_change_nothing(
    mqtt_url: str, tmp_path: Path
) -> None:
    dc = devnet_chain("chain-hostile")
    node = open_node(dc, tmp_path)  # not started: blocks are produced by hand
    h_topic, e_topic = headers_topic(dc.chain_id), events_topic(dc.chain_id)
    nonce = 0

    def produce(n: int) -> None:
        nonlocal nonce
        for _ in range(n):
            for _ in range(2):
                node.submit_nowait(transfer(dc, nonce))
                nonce += 1
            node.produce_block()

    async with (
        MqttBus(opts(mqtt_url)) as pub_bus,
        MqttBus(opts(mqtt_url)) as sub_bus,
        MqttBus(opts(mqtt_url)) as stranger,
    ):
        for b in (pub_bus, sub_bus, stranger):
            await b.wait_connected(10)
        trusted = TrustedState.from_genesis(dc.genesis)
        async with (
            ChainSubscriber(sub_bus, InProcessChain(node), trusted=trusted) as sub,
            Publisher(node, pub_bus, from_height=1),
        ):
            heights: list[int] = []

            async def consume() -> None:
                async for vb in sub:
                    heights.append(vb.height)

            consumer = asyncio.create_task(consume())
            produce(3)
            await until(lambda: heights[-1:] == [3])

            # The stranger forges height 4 (a made-up validator set that signs it) and
            # its events, and throws garbage at both topics.
            last = node.get_block(3)
            assert last is not None
            strangers = [PrivateKey.derive("stranger", str(i)) for i in range(4)]
            fake_set = ValidatorSet.of([(k.public_key, 10) for k in strangers])
            fh = dataclasses.replace(
                last.header, height=4, prev_hash=last.header.hash, validators_hash=fake_set.hash
            )
            fake = Block(fh, sign_commit(fh, strangers), (), (), last.events)
            hostile = [
                (h_topic, b"\x00garbage\xff"),
                (h_topic, b'{"v":1,"kind":"header","header":{'),
                (h_topic, b'{"v":7,"kind":"header"}'),
                (e_topic, b"x" * (MAX_PAYLOAD_BYTES + 1)),  # arrives, refused unparsed
                (h_topic, encode_header(fake, fake_set)),
                *((e_topic, p) for p in encode_events(fake)),
            ]
            received = sub.stats.received
            # never delivered: the broker drops it for a client whose CONNECT set a
            # Maximum Packet Size (else it would count as a second PayloadTooLarge)
            await stranger.publish(e_topic, b"x" * (10 * 1024 * 1024))
            for topic, payload in hostile:
                await stranger.publish(topic, payload)
            await until(lambda: sub.stats.received >= received + len(hostile))
            assert sub.trusted == TrustedState.after(last.header)  # nothing moved

            produce(3)
            await until(lambda: heights[-1:] == [6])
            consumer.cancel()
    await node.stop()
    assert heights == [1, 2, 3, 4, 5, 6]
    assert dict(sub.stats.rejected) == {
        "MalformedPayload": 2,
        "UnsupportedVersion": 1,
        "PayloadTooLarge": 1,
        "UntrustedHeader": 1,
        "BadEventProof": 1,  # the forged events, checked once the real header 4 verified
    }
