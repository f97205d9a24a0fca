"""A stranger on a real broker: hostile payloads on a live chain's topics change nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from pathlib import Path

import orjson

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.types import Block, ValidatorSet
from relayer.bus import MqttBus, MqttOptions, parse_bus_url
from relayer.handle import InProcessChain
from relayer.publisher import Publisher
from relayer.retry import Backoff
from relayer.subscriber import ChainSubscriber, TrustedState
from relayer.wire import encode_events, encode_header, events_topic, headers_topic
from tests.relayer.conftest import devnet_chain, open_node, transfer


def opts(url: str) -> MqttOptions:
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=Backoff(initial=0.05, maximum=0.5))


async def test_hostile_payloads_from_a_stranger_change_nothing(
    mqtt_url: str, tmp_path: Path
) -> None:
    dc = devnet_chain("chain-hostile")
    node = open_node(dc, tmp_path, interval=0.03)
    h_topic, e_topic = headers_topic(dc.chain_id), events_topic(dc.chain_id)
    async with (
        MqttBus(opts(mqtt_url)) as pub_bus,
        MqttBus(opts(mqtt_url)) as sub_bus,
        MqttBus(opts(mqtt_url)) as stranger,
    ):
        for b in (pub_bus, sub_bus, stranger):
            await b.wait_connected(10)
        trusted = TrustedState.from_genesis(dc.genesis)
        async with (
            node,
            ChainSubscriber(sub_bus, InProcessChain(node), trusted=trusted) as sub,
            Publisher(node, pub_bus, from_height=1),
        ):
            for i in range(5):
                await node.submit(transfer(dc, i))
            # Forge the next heights: a stranger's validator set, and altered events.
            strangers = [PrivateKey.derive("stranger", str(i)) for i in range(4)]
            fake_set = ValidatorSet.of([(k.public_key, 10) for k in strangers])
            real = node.get_block(node.height)
            assert real is not None
            hostile: list[tuple[str, bytes]] = [
                (h_topic, b"\x00garbage\xff"),
                (h_topic, b'{"v":1,"kind":"header","header":{'),
                (h_topic, b'{"v":7,"kind":"header"}'),
                (e_topic, b"x" * (10 * 1024 * 1024)),
            ]
            for ahead in range(1, 6):
                fh = dataclasses.replace(
                    real.header, height=real.height + ahead, validators_hash=fake_set.hash
                )
                fake = Block(fh, sign_commit(fh, strangers), (), (), real.events)
                hostile.append((h_topic, encode_header(fake, fake_set)))
                [ev] = encode_events(fake)
                obj = orjson.loads(ev)
                hostile.append((e_topic, orjson.dumps(obj)))
            for topic, payload in hostile:
                await stranger.publish(topic, payload)
            for i in range(5, 10):
                await node.submit(transfer(dc, i))
            target = node.height + 3

            async def until_target() -> list[int]:
                out = []
                async for vb in sub:
                    out.append(vb.height)
                    if vb.height >= target:
                        return out
                return out

            heights = await asyncio.wait_for(until_target(), 60)
    assert heights == list(range(1, target + 1))
    assert sub.stats.rejected["MalformedPayload"] == 2
    assert sub.stats.rejected["UnsupportedVersion"] == 1
    assert sub.stats.rejected["PayloadTooLarge"] == 1
    assert sub.stats.rejected["UntrustedHeader"] >= 1  # the forged heads the chain reached
    assert sub.trusted is not None
    assert sub.trusted.height == target
