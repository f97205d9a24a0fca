"""docs/wire.md is a contract: its Python, run verbatim, checks what a real broker carries.

The checking code comes out of the doc (the ```python block that starts with
``# wire-check``) and may use only the standard library and PyNaCl. Payloads come from
``mosquitto_sub -v`` (or, without that binary, a bare paho client), exactly as the doc
tells a third party to read them.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import queue
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from nacl.exceptions import BadSignatureError

from chains.devnet import build_devnet
from chains.encoding import canonical
from chains.service.bus import DEFAULT_MAX_PACKET, MqttBus, parse_bus_url
from chains.service.publisher import Publisher
from chains.service.retry import Backoff
from chains.types import Tx
from tests.conftest import ROOT, devnet_chain, open_node, transfer

DOC = ROOT / "docs" / "wire.md"
ALLOWED_IMPORTS = {"hashlib", "json", "nacl.signing"}

PEOPLE = ("alice", "bob", "carol", "dave")
"""The worked example's accounts, as the doc names them."""


def doc_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = [b for b in blocks if b.startswith("# wire-check")]
    assert len(code) == 1, "docs/wire.md must hold exactly one '# wire-check' block"
    return code[0]


def doc_example(name: str) -> dict[str, Any]:
    m = re.search(rf"<!-- example: {name} -->\s*```json\n(.*?)```", DOC.read_text(), re.S)
    assert m is not None, f"docs/wire.md has no '{name}' example"
    obj: dict[str, Any] = json.loads(m.group(1))
    return obj


def checker() -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "wire_doc"}
    exec(compile(doc_code(), str(DOC), "exec"), ns)
    return ns


def test_the_doc_code_needs_only_the_standard_library_and_pynacl() -> None:
    tree = ast.parse(doc_code())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= ALLOWED_IMPORTS


def test_the_worked_example_checks_out_by_the_doc() -> None:
    ns = checker()
    header_msg, events_msg = doc_example("header"), doc_example("events")
    header = ns["check_header"](header_msg)
    events = ns["check_events"](events_msg, header)
    assert [e["event"]["attributes"]["amount"] for e in events] == [250, 251]
    # The example's claims about its trusted start hold for the devnet it names.
    [dc] = build_devnet(["chain-a"], validators=4, genesis_time=1_790_000_000_000, accounts=PEOPLE)
    assert header["prev_hash"] == dc.genesis.hash.hex()
    genesis_set = ns["merkle_root"]([ns["canonical"](v) for v in dc.genesis.validators.to_json()])
    assert header["validators_hash"] == genesis_set.hex()
    leaf1 = ns["sha256"](b"\x00" + ns["canonical"](events[1]["event"]))
    assert events[0]["proof"] == [leaf1.hex()]


def test_the_worked_example_states_its_genesis_and_transactions_exactly() -> None:
    """Issue 9: no documented configuration reproduced the example's prev_hash, and the
    transactions, tx_hash, tx_root and the genesis hash were not defined anywhere."""
    ns = checker()
    text = DOC.read_text()
    header = ns["check_header"](doc_example("header"))
    genesis = doc_example("genesis")
    assert ns["genesis_hash"](genesis).hex() == header["prev_hash"]
    assert f"Its hash is `{header['prev_hash']}`" in text
    [dc] = build_devnet(["chain-a"], genesis_time=1_790_000_000_000, accounts=PEOPLE)
    assert genesis == dc.genesis.to_json()  # the Python the doc names makes exactly it
    genesis_set = ns["merkle_root"]([ns["canonical"](v) for v in genesis["validators"]])
    assert genesis_set.hex() == header["validators_hash"]
    txs = ns["check_txs"](doc_example("txs"), header)
    for tx in txs:
        assert ns["tx_hash"](tx) in text
        assert Tx.from_json(tx).hash.hex() == ns["tx_hash"](tx)
    alice = ns["address"](txs[0]["sender"])
    assert alice == dc.accounts["alice"].address
    assert f"`{alice}` (alice)" in text


def test_the_doc_code_agrees_with_the_chain_on_transactions_and_escaping() -> None:
    ns = checker()
    [dc] = build_devnet(["chain-a"])
    tricky = {"note": 'a "quoted" \\ back\\slash / and ~'}
    assert ns["canonical"](tricky) == canonical(tricky)
    assert b'\\"quoted\\"' in canonical(tricky)
    tx = Tx.create(dc.accounts["alice"], "chain-a", 7, "bank", "memo", tricky)
    assert ns["check_tx"](tx.to_json()) == tx.hash.hex()
    forged = {**tx.to_json(), "nonce": 8}
    with pytest.raises(BadSignatureError):
        ns["check_tx"](forged)
    with pytest.raises(ns["Rejected"]):
        ns["check_tx"]({**tx.to_json(), "fee": 1})


def test_the_max_packet_size_is_one_number() -> None:
    """Issue 9: the prose said 4 MiB + 65 KiB, the mosquitto_sub example one byte less."""
    text = DOC.read_text()
    assert f"**{DEFAULT_MAX_PACKET:,}**" in text
    assert f"maximum-packet-size {DEFAULT_MAX_PACKET}`" in text
    assert "65 KiB" not in text


def test_the_doc_code_rejects_tampering() -> None:
    ns = checker()
    rejected = (ns["Rejected"], BadSignatureError)

    def tampered(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        obj = doc_example(name)
        change(obj)
        return obj

    def flip_sig(o: dict[str, Any]) -> None:
        s = o["commit"]["signatures"][0]["signature"]
        o["commit"]["signatures"][0]["signature"] = ("1" if s[0] == "0" else "0") + s[1:]

    def drop_sigs(o: dict[str, Any]) -> None:
        o["commit"]["signatures"] = o["commit"]["signatures"][:2]  # 20 of 40: not > 2/3

    def alter_header(o: dict[str, Any]) -> None:
        o["header"]["state_root"] = "00" * 32

    def alter_power(o: dict[str, Any]) -> None:
        o["validators"][0]["power"] = 1000

    for change in (flip_sig, drop_sigs, alter_header, alter_power):
        with pytest.raises(rejected):
            ns["check_header"](tampered("header", change))

    header = ns["check_header"](doc_example("header"))

    def alter_event(o: dict[str, Any]) -> None:
        o["events"][0]["event"]["attributes"]["amount"] = 1_000_000

    def alter_index(o: dict[str, Any]) -> None:
        o["events"][0]["index"] = 1

    def wrong_count(o: dict[str, Any]) -> None:
        o["event_count"] = 3

    for change in (alter_event, alter_index, wrong_count):
        with pytest.raises(rejected):
            ns["check_events"](tampered("events", change), header)


# --- from a real broker ---------------------------------------------------------------


class Reader:
    """``mosquitto_sub -v`` lines (or a paho client's messages) as (topic, payload)."""

    def __init__(self, url: str, topic_filter: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.filter = topic_filter
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._proc: asyncio.subprocess.Process | None = None
        self._paho: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        binary = shutil.which("mosquitto_sub")
        if binary is not None:
            self._proc = await asyncio.create_subprocess_exec(
                binary, "-h", self.host, "-p", str(self.port), "-t", self.filter, "-v",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            self._task = asyncio.create_task(self._read())
            return
        import paho.mqtt.client as mqtt  # no mosquitto-clients: a bare MQTT client

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: self.lines.put((m.topic, m.payload.decode()))
        client.connect(self.host, self.port)
        client.subscribe(self.filter, qos=1)
        client.loop_start()
        self._paho = client

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async for raw in self._proc.stdout:
            topic, payload = raw.decode().rstrip("\n").split(" ", 1)
            self.lines.put((topic, payload))

    async def get(self, within: float = 20) -> tuple[str, str]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                return self.lines.get_nowait()
            except queue.Empty:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("no message from the broker") from None
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            await asyncio.wait_for(self._proc.wait(), 5)
        if self._task is not None:
            self._task.cancel()
        if self._paho is not None:
            self._paho.loop_stop()
            self._paho.disconnect()


async def test_payloads_from_a_real_broker_check_out_by_the_doc(
    mqtt_url: str, tmp_path: Path
) -> None:
    ns = checker()
    chain_id = f"doc-{os.getpid()}-{os.urandom(3).hex()}"
    dc = devnet_chain(chain_id)
    node = open_node(dc, tmp_path, interval=0.02)
    opts = parse_bus_url(mqtt_url)
    assert opts is not None
    reader = Reader(mqtt_url, f"interlock/v1/chains/{chain_id}/#")
    await reader.start()
    try:
        async with MqttBus(replace(opts, backoff=Backoff(initial=0.05))) as bus:
            await bus.wait_connected(10)
            probe = f"interlock/v1/chains/{chain_id}/probe"
            while True:  # wait until the reader's subscription is live
                await bus.publish(probe, b"probe")
                try:
                    topic, _ = await reader.get(within=0.5)
                    break
                except TimeoutError:
                    continue
            async with node, Publisher(node, bus, from_height=1) as pub:
                await asyncio.gather(*(node.submit(transfer(dc, i)) for i in range(10)))
                top = node.height + 1
                await node.wait_for_height(top)
                await pub.wait_published(top)
                txs = {h: b.to_json()["txs"] for h in range(1, top + 1) if (b := node.get_block(h))}
            msgs: list[tuple[str, dict[str, Any]]] = []
            need = {("headers", h) for h in range(1, top + 1)} | {
                ("events", h) for h in range(1, top + 1)
            }
            while need:
                topic, payload = await reader.get()
                if topic == probe:
                    continue
                msg = json.loads(payload)
                msgs.append((topic, msg))
                kind = topic.rsplit("/", 1)[1]
                if kind == "headers":
                    need.discard((kind, msg["header"]["height"]))
                elif kind == "events":
                    need.discard((kind, msg["height"]))
    finally:
        await reader.stop()

    # Follow the doc: trust the genesis set, check each header, follow, prove each event.
    genesis_vals = [ns["canonical"](v) for v in dc.genesis.validators.to_json()]
    trusted_next = ns["merkle_root"](genesis_vals).hex()
    headers: dict[int, dict[str, Any]] = {}
    for topic, msg in msgs:
        if topic.endswith("/headers") and msg["header"]["height"] not in headers:
            header = ns["check_header"](msg)
            headers[header["height"]] = header
    assert sorted(headers) == list(range(1, top + 1))
    assert headers[1]["validators_hash"] == trusted_next
    assert headers[1]["prev_hash"] == dc.genesis.hash.hex()
    for h in range(2, top + 1):
        ns["check_follows"](headers[h - 1], headers[h])
    events = {}
    for topic, msg in msgs:
        if topic.endswith("/events"):
            for item in ns["check_events"](msg, headers[msg["height"]]):
                events[(msg["height"], item["index"])] = item["event"]
    assert len(events) == 10
    assert sorted(txs) == sorted(headers)
    for h, header in headers.items():  # the transactions, from the chain, by the doc
        ns["check_txs"](txs[h], header)
    assert {e["type"] for e in events.values()} == {"bank.transfer"}
    statuses = [m for t, m in msgs if t.endswith("/status")]
    assert statuses
    assert statuses[0]["state"] == "online"
