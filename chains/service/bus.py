"""The message bus: publish bytes to topics, subscribe to topic filters.

One :class:`Bus` protocol, two implementations (STYLE §8):

* :class:`MemoryBus`, the embedded default: one process, no broker, the same semantics
  (MQTT wildcards ``+`` and ``#``, retained messages, ``$share/<group>/`` shared
  subscriptions where one member of each group gets each message).
* :class:`MqttBus`, MQTT 5 through ``aiomqtt`` 2.x: TCP_NODELAY on the client socket
  (without it every QoS 1 exchange waits ~44 ms for Nagle; see configs/mosquitto.conf for
  the broker half), reconnection with jittered exponential backoff and re-subscription,
  shared subscriptions, username/password, TLS, and a last will on a retained status topic.

The bus is an untrusted transport. It may drop, delay, duplicate and reorder; strangers
can publish on it. Nothing here interprets payloads: :mod:`chains.service.wire` parses them and
:mod:`chains.service.subscriber` verifies them.

Errors::

    InterlockError
    └── BusError                 the bus cannot do what was asked
        ├── BadBusUrl            open_bus() got a URL it cannot use
        ├── BadTopic             a topic or topic filter that MQTT would refuse
        ├── BusClosed            the bus was closed (publish/subscribe after close)
        ├── BusUnavailable       no broker connection within the time asked for
        └── SubscriptionRefused  the broker's SUBACK refused a filter (reason code >= 0x80)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chains.errors import InterlockError
from chains.service.retry import Backoff
from chains.tasks import consume, stop_within

__all__ = [
    "BadBusUrl",
    "BadTopic",
    "Bus",
    "BusClosed",
    "BusError",
    "BusMessage",
    "BusSubscription",
    "BusUnavailable",
    "LastWill",
    "MemoryBus",
    "MqttBus",
    "MqttOptions",
    "SubscriptionRefused",
    "open_bus",
    "parse_bus_url",
    "redact_url",
    "split_shared",
    "topic_matches",
    "validate_bus_url",
    "validate_filter",
    "validate_topic",
]

log = logging.getLogger("interlock.bus")

MAX_TOPIC_BYTES = 65535
DEFAULT_MAX_QUEUED = 100_000
DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Payload bytes one subscription holds unread before it drops: the count bound alone
let 60 messages of 4 MiB (anyone may publish them) take 257 MiB."""
DEFAULT_MAX_PACKET = 4 * 1024 * 1024 + MAX_TOPIC_BYTES + 1024
"""Largest packet the broker may send us: a 4 MiB payload (the wire limit), the longest
topic and the MQTT 5 header and properties."""


# --- errors ---------------------------------------------------------------------------


class BusError(InterlockError):
    """The bus cannot do what was asked."""


class BadBusUrl(BusError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"bad bus URL {url!r}: {reason}")


class BadTopic(BusError):
    def __init__(self, topic: str, reason: str) -> None:
        self.topic, self.reason = topic, reason
        super().__init__(f"bad topic {topic!r:.80}: {reason}")


class BusClosed(BusError):
    def __init__(self) -> None:
        super().__init__("the bus is closed")


class BusUnavailable(BusError):
    def __init__(self, where: str, waited: float) -> None:
        self.where, self.waited = where, waited
        super().__init__(f"no connection to the broker at {where} within {waited:g} s")


class SubscriptionRefused(BusError):
    """The broker answered a SUBSCRIBE with a failure reason code (MQTT 5 §3.9.3), e.g.
    0x87 not authorized, 0x8F topic filter invalid, 0x9E shared subscriptions not
    supported: the filter receives nothing."""

    def __init__(self, topic_filter: str, code: int, reason: str) -> None:
        # reason_code, not code: ``code`` is the error vocabulary's (subscription_refused)
        self.topic_filter, self.reason_code, self.reason = topic_filter, code, reason
        super().__init__(
            f"broker refused subscription to {topic_filter!r:.80}: {reason} (0x{code:02X})"
        )


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One message as a subscriber receives it."""

    topic: str
    """The topic it was published to (never a filter)."""
    payload: bytes
    """Untrusted bytes."""
    retain: bool
    """True when delivered from the broker's retained store (on subscribing)."""


@dataclass(frozen=True, slots=True)
class LastWill:
    """A retained status topic: ``online`` on each connect, ``offline`` when gone.

    The broker publishes ``offline`` for us if the connection dies (the MQTT will);
    a clean close publishes it explicitly, since a will only fires on an unclean end,
    unless the owner of the topic published a status of its own since the last connect
    (a publisher's ``offline`` with its last height must stay: a reader tells a clean
    stop from a crash by it).
    """

    topic: str
    """The retained status topic."""
    online: bytes
    """Published (retained, QoS 1) after every successful connect."""
    offline: bytes
    """The will, and what a clean close publishes."""


# --- topics ---------------------------------------------------------------------------


def validate_topic(topic: str) -> None:
    """Check a topic to publish to: non-empty UTF-8, no wildcards, no NUL."""
    if not isinstance(topic, str) or not topic:
        raise BadTopic(str(topic), "empty")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise BadTopic(topic, "longer than 65535 bytes")
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise BadTopic(topic, "a topic to publish to has no wildcards or NUL")


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """``$share/<group>/<filter>`` → ``(group, filter)``; other filters → ``(None, f)``."""
    if not topic_filter.startswith("$share/"):
        return None, topic_filter
    parts = topic_filter.split("/", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise BadTopic(topic_filter, "expected $share/<group>/<filter>")
    group = parts[1]
    if "+" in group or "#" in group:
        raise BadTopic(topic_filter, "a share group name has no wildcards")
    return group, parts[2]


def validate_filter(topic_filter: str) -> None:
    """Check a topic filter: ``+`` fills a whole level, ``#`` only as the last level."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise BadTopic(str(topic_filter), "empty")
    if len(topic_filter.encode()) > MAX_TOPIC_BYTES or "\x00" in topic_filter:
        raise BadTopic(topic_filter, "too long or contains NUL")
    _, f = split_shared(topic_filter)
    levels = f.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise BadTopic(topic_filter, "'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise BadTopic(topic_filter, "'+' must be a whole level")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a (non-shared) filter against a topic.

    Wildcards in the first level never match topics that start with ``$`` (MQTT §4.7.2).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    fl = topic_filter.split("/")
    tl = topic.split("/")
    for i, f in enumerate(fl):
        if f == "#":
            return True
        if i >= len(tl):
            return False
        if f != "+" and f != tl[i]:
            return False
    return len(fl) == len(tl)


# --- the protocol ---------------------------------------------------------------------


class _Owner(Protocol):
    async def _add(self, sub: BusSubscription) -> None: ...

    async def _remove(self, sub: BusSubscription) -> None: ...


class BusSubscription:
    """Messages matching one topic filter: an async iterator and an async context manager.

    Entering (or the first ``__anext__``) subscribes; on an MQTT bus that is connected it
    returns after the broker's SUBACK, so a message published afterwards is received.
    Messages that arrive while ``maxsize`` messages or ``max_bytes`` payload bytes are
    queued are dropped and counted in ``dropped`` (as Mosquitto does): gaps are the
    subscriber's to detect and fill.
    """

    def __init__(
        self,
        owner: _Owner,
        topic_filter: str,
        qos: int,
        maxsize: int,
        max_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ) -> None:
        validate_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise BusError(f"QoS must be 0, 1 or 2, got {qos!r}")
        self.topic_filter = topic_filter
        """The filter as given, ``$share/...`` included."""
        self.group, self.match_filter = split_shared(topic_filter)
        self.qos = qos
        self.dropped = 0
        """Messages dropped because the queue was full."""
        self.max_bytes = max_bytes
        """Most payload bytes queued unread."""
        self.queued_bytes = 0
        """Payload bytes queued unread now."""
        self._owner = owner
        self._queue: asyncio.Queue[BusMessage | None] = asyncio.Queue(maxsize)
        self._started = False
        self._closed = False
        self._error: BusError | None = None

    async def start(self) -> None:
        if not self._started and not self._closed:
            self._started = True
            await self._owner._add(self)

    async def aclose(self) -> None:
        """Unsubscribe; iteration ends after the messages already queued."""
        if self._closed:
            return
        self._end()
        if self._started:
            await self._owner._remove(self)

    def _deliver(self, msg: BusMessage) -> None:
        if self._closed:
            return
        size = len(msg.payload)
        if self.queued_bytes + size > self.max_bytes:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self.queued_bytes += size

    def _fail(self, error: BusError) -> None:
        """End the subscription; iteration raises ``error`` after the queued messages."""
        if not self._closed:
            self._error = error
        self._end()

    def _end(self) -> None:
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def qsize(self) -> int:
        return self._queue.qsize()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BusMessage:
        await self.start()
        if self._closed and self._queue.empty():
            raise self._error or StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise self._error or StopAsyncIteration
        self.queued_bytes -= len(item.payload)
        return item


class Bus(Protocol):
    """Publish and subscribe; ``async with bus:`` opens it, exit closes it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Deliver at ``qos`` (QoS 1: at least once; returns after the broker's PUBACK).

        ``retain`` with an empty payload clears the retained message of ``topic``.
        """

    def subscribe(self, topic_filter: str, qos: int = 1) -> BusSubscription:
        """A subscription to ``topic_filter`` (``+``, ``#``, ``$share/<group>/...``)."""


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise BusError(f"QoS must be 0, 1 or 2, got {qos!r}")


# --- in memory ------------------------------------------------------------------------


class MemoryBus:
    """A bus inside one process with MQTT's matching, retain and shared semantics.

    Live messages arrive with ``retain=False`` and retained ones (on subscribing) with
    ``retain=True``, as from a broker; shared subscriptions get no retained messages
    (MQTT 5 §4.8.2). Delivery to a full subscriber queue drops, like Mosquitto.
    """

    def __init__(
        self,
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ) -> None:
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self._subs: list[BusSubscription] = []
        self._retained: dict[str, bytes] = {}
        self._next_member: dict[tuple[str, str], int] = {}
        self._closed = False
        self.published = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        for sub in self._subs:
            sub._end()
        self._subs.clear()

    def subscribe(self, topic_filter: str, qos: int = 1) -> BusSubscription:
        if self._closed:
            raise BusClosed()
        return BusSubscription(self, topic_filter, qos, self.max_queued, self.max_queued_bytes)

    async def _add(self, sub: BusSubscription) -> None:
        if self._closed:
            sub._end()
            return
        self._subs.append(sub)
        if sub.group is None:
            for topic, payload in self._retained.items():
                if topic_matches(sub.match_filter, topic):
                    sub._deliver(BusMessage(topic, payload, True))

    async def _remove(self, sub: BusSubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self._closed:
            raise BusClosed()
        validate_topic(topic)
        _check_qos(qos)
        payload = bytes(payload)
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
        msg = BusMessage(topic, payload, False)
        groups: dict[tuple[str, str], list[BusSubscription]] = {}
        for sub in self._subs:
            if not topic_matches(sub.match_filter, topic):
                continue
            if sub.group is None:
                sub._deliver(msg)
            else:
                groups.setdefault((sub.group, sub.match_filter), []).append(sub)
        for key, members in groups.items():
            n = self._next_member.get(key, 0)
            members[n % len(members)]._deliver(msg)
            self._next_member[key] = n + 1
        self.published += 1
        await asyncio.sleep(0)  # a publish is a suspension point on every bus


# --- MQTT -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """How to reach and use an MQTT 5 broker."""

    host: str
    """Broker host name or address."""
    port: int = 1883
    """Broker port (8883 is the TLS convention)."""
    tls: bool = False
    """Use TLS (``mqtts://``)."""
    ca_file: str | None = None
    """CA bundle to verify the broker with (default: the system's)."""
    cert_file: str | None = None
    """Client certificate for mutual TLS."""
    key_file: str | None = None
    """Client key for mutual TLS."""
    tls_insecure: bool = False
    """Skip the broker host name check (test brokers only)."""
    username: str | None = None
    """MQTT username."""
    password: str | None = field(default=None, repr=False)
    """MQTT password (never logged)."""
    client_id: str | None = None
    """Client identifier; a random one by default. Kept across reconnects."""
    keepalive: int = 30
    """Seconds between pings; a dead broker is noticed within 1.5× this."""
    tcp_nodelay: bool = True
    """Disable Nagle on the client socket (see MEASURED: 44 ms per QoS 1 otherwise)."""
    max_inflight: int = 50
    """Publishes awaiting PUBACK at once (about 50 is fastest with aiomqtt)."""
    publish_timeout: float = 10.0
    """Give up on one PUBACK after this long and publish again (at least once)."""
    backoff: Backoff = field(default_factory=Backoff)
    """Delays between reconnection attempts."""
    will: LastWill | None = None
    """Retained status topic with a last will."""
    max_queued: int = DEFAULT_MAX_QUEUED
    """Per-subscription queue, in messages; overflow is dropped and counted."""
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    """Per-subscription queue, in payload bytes; overflow is dropped and counted."""
    max_packet: int = DEFAULT_MAX_PACKET
    """MQTT 5 Maximum Packet Size sent in CONNECT: the broker drops bigger messages for us
    (anyone may publish; a 100 MB payload must not reach our memory to be refused)."""

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class MqttBus:
    """A :class:`Bus` over an MQTT 5 broker (see module docstring).

    ``async with MqttBus(opts) as bus`` starts a connection task that keeps the bus
    connected until closed; it does not wait for the broker (use :meth:`wait_connected`).
    ``publish`` waits for a connection, then for the PUBACK; a publish in flight when the
    connection drops is sent again on the next one (QoS 1 is at least once anyway).
    """

    def __init__(self, options: MqttOptions) -> None:
        if options.max_inflight < 1:
            raise BusError("max_inflight must be >= 1")
        self.options = options
        self.client_id = options.client_id or f"interlock-{os.urandom(6).hex()}"
        self.connects = 0
        """Successful connections so far (the first and every reconnection)."""
        self.published = 0
        self._window = asyncio.Semaphore(options.max_inflight)
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._filters: dict[str, list[BusSubscription]] = {}
        self._ids: dict[str, int] = {}
        self._by_id: dict[int, str] = {}
        self._id_seq = itertools.count(1)
        self._rr: dict[str, int] = {}
        self._status_owned = False  # a retained status was published on the will topic

    # --- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt:{self.options.where}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    async def wait_connected(self, seconds: float) -> None:
        """Return once connected; :class:`BusUnavailable` after ``seconds``."""
        try:
            await asyncio.wait_for(self._wait_client(), seconds)
        except TimeoutError:
            raise BusUnavailable(self.options.where, seconds) from None

    async def close(self, seconds: float = 5.0) -> None:
        """Publish the ``offline`` status, disconnect, end subscriptions. Bounded wait."""
        if self._closing:
            return
        client, will = self._client, self.options.will
        if client is not None and will is not None and not self._status_owned:
            # Never cancel a publish (MEASURED: it can hang on 3.11), which wait_for would
            # do on timeout: wait for it, bounded, and leave it to end by its own timeout.
            offline = client.publish(will.topic, will.offline, qos=1, retain=True, timeout=seconds)
            await stop_within(offline, seconds, cancel=False)
        self._closing = True
        self._changed.set()
        task, self._task = self._task, None
        if task is not None:
            # The run task waits on incoming messages, rarely on a publish (the online
            # status at connect). asyncio.wait bounds the wait even if the cancel is lost,
            # where 3.11's wait_for would cancel again and wait without a bound.
            task.cancel()
            if not await stop_within(task, seconds, cancel=False):
                log.warning(
                    "bus %s: connection task did not end within %g s", self.options.where, seconds
                )
        for subs in self._filters.values():
            for sub in subs:
                sub._end()
        self._filters.clear()

    def _is_closing(self) -> bool:
        return self._closing

    def _make_client(self) -> aiomqtt.Client:
        o = self.options
        tls = None
        if o.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=o.ca_file, certfile=o.cert_file, keyfile=o.key_file
            )
        will = None
        if o.will is not None:
            will = aiomqtt.Will(o.will.topic, o.will.offline, qos=1, retain=True)
        sockopts = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if o.tcp_nodelay else []
        connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect.MaximumPacketSize = o.max_packet
        client = aiomqtt.Client(
            o.host,
            o.port,
            username=o.username,
            password=o.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=o.keepalive,
            timeout=o.publish_timeout,
            max_inflight_messages=o.max_inflight,
            tls_params=tls,
            tls_insecure=o.tls_insecure if o.tls else None,
            socket_options=sockopts,
            properties=connect,
        )
        client.pending_calls_threshold = o.max_inflight + 16  # our window bounds it already
        return client

    async def _run(self) -> None:
        delays: Iterator[float] = self.options.backoff.delays()
        failures = 0
        while not self._closing:
            client = self._make_client()
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                async with client:
                    self._client, self._lost = client, lost
                    self.connects += 1
                    if failures or self.connects > 1:
                        log.info("bus connected to %s", self.options.where)
                    failures = 0
                    delays = self.options.backoff.delays()
                    await self._on_connect(client)
                    self._changed.set()
                    self._changed.clear()
                    async for m in client.messages:
                        self._dispatch(m)
            except aiomqtt.MqttError as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "bus %s: %s; reconnecting", self.options.where, exc)
            finally:
                self._client, self._lost = None, None
                if not lost.done():
                    lost.set_result(None)
            if self._is_closing():
                break
            await asyncio.sleep(next(delays))

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        will = self.options.will
        if will is not None:
            await client.publish(will.topic, will.online, qos=1, retain=True)
            self._status_owned = False  # the marker replaced the owner's last status
        for f in list(self._filters):
            try:
                await self._mqtt_subscribe(client, f)
            except SubscriptionRefused as exc:
                # refused now (e.g. the ACL changed): end it rather than leave it dead
                log.error("bus %s: %s", self.options.where, exc)
                for sub in self._filters.pop(f, []):
                    sub._fail(exc)

    async def _mqtt_subscribe(self, client: aiomqtt.Client, topic_filter: str) -> None:
        sid = self._ids.get(topic_filter)
        if sid is None:
            sid = next(self._id_seq)
            self._ids[topic_filter] = sid
            self._by_id[sid] = topic_filter
        props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        props.SubscriptionIdentifier = sid
        qos = max((s.qos for s in self._filters.get(topic_filter, [])), default=1)
        granted = await client.subscribe(topic_filter, qos=qos, properties=props)
        for rc in granted:  # one per filter; a failure is >= 0x80 (MQTT 3.1.1: 0x80 only)
            code = rc if isinstance(rc, int) else rc.value
            if code >= 0x80:
                reason = "refused" if isinstance(rc, int) else str(rc)
                raise SubscriptionRefused(topic_filter, code, reason)

    def _dispatch(self, m: aiomqtt.Message) -> None:
        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
        msg = BusMessage(m.topic.value, payload, bool(m.retain))
        ids = getattr(m.properties, "SubscriptionIdentifier", None) if m.properties else None
        if ids:
            filters = [self._by_id[i] for i in ids if i in self._by_id]
        else:  # a broker without subscription identifiers: match locally
            filters = [
                f
                for f, subs in self._filters.items()
                if subs and topic_matches(subs[0].match_filter, msg.topic)
            ]
        for f in filters:
            subs = self._filters.get(f)
            if not subs:
                continue
            if subs[0].group is None:
                for sub in subs:
                    sub._deliver(msg)
            else:  # one member of the group per message, also among our own members
                n = self._rr.get(f, 0)
                subs[n % len(subs)]._deliver(msg)
                self._rr[f] = n + 1

    # --- subscriptions ------------------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int = 1) -> BusSubscription:
        if self._closing:
            raise BusClosed()
        o = self.options
        return BusSubscription(self, topic_filter, qos, o.max_queued, o.max_queued_bytes)

    async def _add(self, sub: BusSubscription) -> None:
        if self._closing:
            sub._end()
            return
        subs = self._filters.setdefault(sub.topic_filter, [])
        subs.append(sub)
        client = self._client
        if client is not None and len(subs) == 1:
            # Connected: wait for the SUBACK. Otherwise the next connect subscribes.
            try:
                await self._mqtt_subscribe(client, sub.topic_filter)
            except SubscriptionRefused as exc:
                # others may have joined the filter meanwhile: none of them gets anything
                for other in self._filters.pop(sub.topic_filter, []):
                    if other is not sub:
                        other._fail(exc)
                sub._end()
                raise  # to the caller entering the subscription
            except aiomqtt.MqttError:
                pass  # connection lost: the next connect subscribes

    async def _remove(self, sub: BusSubscription) -> None:
        subs = self._filters.get(sub.topic_filter)
        if subs is None or sub not in subs:
            return
        subs.remove(sub)
        if subs:
            return
        del self._filters[sub.topic_filter]
        client = self._client
        if client is not None:
            await stop_within(client.unsubscribe(sub.topic_filter), 5)

    # --- publishing ---------------------------------------------------------------------
    async def _wait_client(self) -> tuple[aiomqtt.Client, asyncio.Future[None]]:
        while True:
            if self._closing:
                raise BusClosed()
            client, lost = self._client, self._lost
            if client is not None and lost is not None and not lost.done():
                return client, lost
            await self._changed.wait()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        validate_topic(topic)
        _check_qos(qos)
        async with self._window:
            while True:
                client, lost = await self._wait_client()
                task = asyncio.ensure_future(
                    client.publish(
                        topic,
                        payload,
                        qos=qos,
                        retain=retain,
                        timeout=self.options.publish_timeout,
                    )
                )
                try:
                    done, _ = await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not task.done():
                        # Never cancel a task inside aiomqtt's publish (it can hang on 3.11,
                        # see MEASURED); it ends by itself within publish_timeout.
                        task.add_done_callback(consume)
                if task in done:
                    exc = task.exception()
                    if exc is None:
                        self.published += 1
                        will = self.options.will
                        if retain and will is not None and topic == will.topic:
                            self._status_owned = True
                        return
                    if not isinstance(exc, aiomqtt.MqttError):
                        raise exc
                    log.debug("publish to %s failed (%s); retrying", topic, exc)
                    if not lost.done():
                        await asyncio.sleep(0.01)
                # the connection was lost with this message in flight: send it again


# --- URLs -----------------------------------------------------------------------------

_QUERY_KEYS = {"client_id", "keepalive", "ca", "cert", "key", "insecure", "nodelay", "inflight"}


def redact_url(url: str) -> str:
    """``url`` with the password of ``user:password@`` shown as ``***``. Never raises: it
    must also hide the password of a URL that ``urlsplit`` refuses (``mqtt://u:p@[::1``)."""
    start = url.find("//")
    if start < 0:
        return url
    start += 2
    end = min([i for i in (url.find(c, start) for c in "/?#") if i >= 0], default=len(url))
    netloc = url[start:end]
    at = netloc.rfind("@")
    colon = netloc.find(":", 0, at)
    if at < 0 or colon < 0:
        return url
    return f"{url[:start]}{netloc[:colon]}:***{netloc[at:]}{url[end:]}"


def _flag(url: str, key: str, value: str) -> bool:
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise BadBusUrl(url, f"{key} must be 0 or 1, got {value!r}")


def parse_bus_url(url: str) -> MqttOptions | None:
    """``memory://`` → ``None``; ``mqtt[s]://[user[:pass]@]host[:port][?opt=...]`` → options.

    Query options: ``client_id``, ``keepalive`` (s), ``inflight`` (publish window),
    ``nodelay`` (0/1), and for ``mqtts`` ``ca``, ``cert``, ``key`` (file paths) and
    ``insecure`` (0/1: skip the host name check). Raises :class:`BadBusUrl`.
    """
    if not isinstance(url, str) or not url.strip():
        raise BadBusUrl(str(url), "empty")
    shown = redact_url(url)
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise BadBusUrl(shown, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/") or parts.query:
            raise BadBusUrl(shown, "memory:// takes no host, path or options")
        return None
    if scheme not in ("mqtt", "mqtts"):
        raise BadBusUrl(shown, "expected memory://, mqtt://host[:port] or mqtts://host[:port]")
    if not parts.hostname:
        raise BadBusUrl(shown, "missing broker host")
    try:
        port = parts.port
    except ValueError:
        raise BadBusUrl(shown, "port must be an integer in 1..65535") from None
    if port == 0:
        raise BadBusUrl(shown, "port must be an integer in 1..65535")
    if parts.path not in ("", "/") or parts.fragment:
        raise BadBusUrl(shown, "an MQTT URL has no path; the topics are fixed")
    tls = scheme == "mqtts"
    opts: dict[str, Any] = {}
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise BadBusUrl(shown, "malformed query string") from None
    for key, value in query:
        if key not in _QUERY_KEYS:
            raise BadBusUrl(
                shown, f"unknown option {key!r} (known: {', '.join(sorted(_QUERY_KEYS))})"
            )
        if key in ("ca", "cert", "key", "insecure") and not tls:
            raise BadBusUrl(shown, f"option {key!r} needs mqtts://")
        if key == "client_id":
            if not value or len(value) > 64:
                raise BadBusUrl(shown, "client_id must be 1..64 characters")
            opts["client_id"] = value
        elif key in ("keepalive", "inflight"):
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                raise BadBusUrl(shown, f"{key} must be an integer in 1..65535")
            opts["keepalive" if key == "keepalive" else "max_inflight"] = int(value)
        elif key in ("ca", "cert", "key"):
            opts[{"ca": "ca_file", "cert": "cert_file", "key": "key_file"}[key]] = value
        elif key == "insecure":
            opts["tls_insecure"] = _flag(shown, key, value)
        elif key == "nodelay":
            opts["tcp_nodelay"] = _flag(shown, key, value)
    return MqttOptions(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        **opts,
    )


def validate_bus_url(url: str) -> MqttOptions | None:
    """:func:`parse_bus_url`, and the TLS files it names exist and are readable.

    An ``mqtts`` URL whose ``ca=`` file is missing would otherwise be accepted, and the
    bus would retry the TLS handshake forever: refuse it at start, in one line.
    """
    opts = parse_bus_url(url)
    if opts is None:
        return None
    for key, path in (("ca", opts.ca_file), ("cert", opts.cert_file), ("key", opts.key_file)):
        if path is None:
            continue
        if not os.path.isfile(path):
            raise BadBusUrl(redact_url(url), f"{key} file {path!r} does not exist")
        if not os.access(path, os.R_OK):
            raise BadBusUrl(redact_url(url), f"{key} file {path!r} is not readable")
    return opts


def open_bus(
    url: str,
    *,
    will: LastWill | None = None,
    client_id: str | None = None,
    backoff: Backoff | None = None,
) -> MemoryBus | MqttBus:
    """A bus from a URL (see :func:`validate_bus_url`); use it as ``async with``.

    ``will`` sets the retained status topic of an MQTT bus (ignored in memory, where
    nothing outlives the process).
    """
    opts = validate_bus_url(url)
    if opts is None:
        return MemoryBus()
    changes: dict[str, Any] = {"will": will}
    if client_id is not None:
        changes["client_id"] = client_id
    if backoff is not None:
        changes["backoff"] = backoff
    return MqttBus(replace(opts, **changes))
