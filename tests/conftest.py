"""Broker fixtures: the broker-backed tests talk to a real Mosquitto, never a mock.

* ``mqtt_url`` (session): ``$MQTT_URL`` if set; else a ``mosquitto`` of our own on a free
  port with ``configs/mosquitto.conf``; else ``mqtt://127.0.0.1:1883`` if something
  listens there. With no broker at all the test fails when ``CI=true`` and is skipped
  loudly otherwise.
* ``own_mosquitto`` (function): a private ``mosquitto`` process the test may ``stop()``
  and ``start()`` again on the same port (broker outage tests). Needs the binary.

Tests that use either fixture are marked ``broker`` automatically.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.module import Module
from chains.node import Node, SQLiteBlockStore
from chains.types import Tx

ROOT = Path(__file__).resolve().parents[1]
BROKER_CONF = ROOT / "configs" / "mosquitto.conf"
BROKER_FIXTURES = {"mqtt_url", "own_mosquitto"}


@pytest.fixture(autouse=True)
def _interlock_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test, and every command it runs as a subprocess, has a fresh
    ``$INTERLOCK_HOME``: keystores, swap stores and the trust files of verified reads
    never land in the runner's home, and never carry from one test to the next (a trust
    file of one test's chain-a would name the next test's chain-a a chain started over).
    A test that sets its own home overrides this one."""
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path_factory.mktemp("home")))


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(p, os.X_OK):
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Mosquitto:
    """A mosquitto process owned by the caller; ``stop()``/``start()`` keep the port.

    ``base_conf`` is the broker config to run with (default: configs/mosquitto.conf);
    a ``listener <port> 127.0.0.1`` line, then ``listener_conf`` (per-listener options such
    as TLS files), are appended in a temporary copy.
    """

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        base_conf: str | None = None,
        listener_conf: str = "",
    ):
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="interlock-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        text = BROKER_CONF.read_text() if base_conf is None else base_conf
        if os.geteuid() == 0:
            text += "\nuser root\n"  # as root mosquitto would switch to user 'mosquitto'
        self.conf.write_text(f"{text}\nlistener {self.port} 127.0.0.1\n{listener_conf}\n")
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, wait: float = 10.0) -> Mosquitto:
        if self.proc is not None and self.proc.poll() is None:
            return self
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            if is_listening("127.0.0.1", self.port, 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {wait} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def no_broker(reason: str) -> None:
    msg = f"NO MQTT BROKER: {reason} (set MQTT_URL, install mosquitto, or run one on :1883)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a real MQTT broker for this test session (see module docstring)."""
    env = os.environ.get("MQTT_URL")
    if env:
        yield env
        return
    binary = mosquitto_binary()
    if binary is not None:
        broker = Mosquitto(binary).start()
        try:
            yield broker.url
        finally:
            broker.close()
        return
    if is_listening("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    no_broker("no $MQTT_URL, no mosquitto binary, nothing on 127.0.0.1:1883")


@pytest.fixture
def own_mosquitto() -> Iterator[Mosquitto]:
    """A private mosquitto (configs/mosquitto.conf) the test may stop and restart."""
    binary = mosquitto_binary()
    if binary is None:
        no_broker("this test stops and restarts its own broker and needs the mosquitto binary")
        raise AssertionError("unreachable")
    broker = Mosquitto(binary).start()
    try:
        yield broker
    finally:
        broker.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


# --- chains for publisher/subscriber tests ---------------------------------------------


def devnet_chain(chain_id: str = "chain-a", seed: str = "bus-tests") -> DevnetChain:
    [dc] = build_devnet([chain_id], seed=seed)
    return dc


def open_node(dc: DevnetChain, data_dir: Path, *, interval: float = 0.02) -> Node:
    """A node on SQLite in ``data_dir``; ``async with`` it to produce blocks."""
    store = SQLiteBlockStore(data_dir / f"{dc.chain_id}.sqlite3")

    def modules() -> list[Module]:
        return base_modules(dc.genesis.consensus)

    return Node.open(dc.genesis, modules, dc.validator_keys, store, block_interval=interval)


def transfer(dc: DevnetChain, nonce: int, amount: int = 1, sender: str = "alice") -> Tx:
    to = dc.accounts["bob"].address
    return Tx.create(
        dc.accounts[sender],
        dc.chain_id,
        nonce,
        "bank",
        "transfer",
        {"to": to, "denom": dc.denom, "amount": amount},
    )
