"""A broker that refuses a subscription (SUBACK reason code >= 0x80), against our own
Mosquitto with a password and an ACL that denies a topic (dynamic-security plugin)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chains.service.bus import MqttBus, MqttOptions, SubscriptionRefused, parse_bus_url
from chains.service.retry import Backoff
from tests.conftest import Mosquitto, mosquitto_binary, no_broker

DYNSEC_PLUGINS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


def write_acl(path: Path, *, allow_secret: bool) -> None:
    """Give the one user ``relayer`` a role that may subscribe to ``open/#`` (and to
    ``secret/#`` if asked); the default ACL refuses every other subscription."""
    config = json.loads(path.read_text())
    allowed = ["open/#", "secret/#"] if allow_secret else ["open/#"]
    acls: list[dict[str, object]] = [
        {"acltype": "publishClientSend", "topic": "#", "allow": True},
        {"acltype": "publishClientReceive", "topic": "#", "allow": True},
        {"acltype": "unsubscribePattern", "topic": "#", "allow": True},
    ]
    acls += [{"acltype": "subscribePattern", "topic": t, "allow": True} for t in allowed]
    for role in config["roles"]:
        role["acls"] = acls
    config["defaultACLAccess"]["subscribe"] = False
    path.write_text(json.dumps(config))


class AclBroker:
    def __init__(self, broker: Mosquitto, acl: Path) -> None:
        self.broker, self.acl = broker, acl

    @property
    def url(self) -> str:
        return f"mqtt://relayer:s3cret@127.0.0.1:{self.broker.port}"

    def restart(self, *, allow_secret: bool) -> None:
        self.broker.stop()
        write_acl(self.acl, allow_secret=allow_secret)
        self.broker.start()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[AclBroker]:
    """Mosquitto 2.0's ``acl_file`` grants every SUBSCRIBE (it filters at delivery, so the
    SUBACK never fails); its dynamic-security plugin refuses one with 0x87."""
    binary = mosquitto_binary()
    ctrl = shutil.which("mosquitto_ctrl")
    plugin = next((p for p in DYNSEC_PLUGINS if Path(p).exists()), None)
    if binary is None or ctrl is None or plugin is None:
        no_broker("ACL tests need mosquitto, mosquitto_ctrl and the dynamic-security plugin")
        raise AssertionError("unreachable")
    acl = tmp_path / "dynsec.json"
    subprocess.run(
        [ctrl, "dynsec", "init", str(acl), "relayer", "s3cret"], check=True, capture_output=True
    )
    write_acl(acl, allow_secret=False)
    base = (
        "set_tcp_nodelay true\npersistence false\nallow_anonymous false\n"
        f"plugin {plugin}\nplugin_opt_config_file {acl}\n"
    )
    broker = Mosquitto(binary, base_conf=base).start()
    try:
        yield AclBroker(broker, acl)
    finally:
        broker.close()


def opts(url: str) -> MqttOptions:
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=Backoff(initial=0.05, maximum=0.2))


async def test_a_refused_subscription_raises_a_typed_error(acl_broker: AclBroker) -> None:
    async with MqttBus(opts(acl_broker.url)) as bus:
        await bus.wait_connected(10)
        sub = bus.subscribe("secret/#")
        with pytest.raises(SubscriptionRefused) as info:
            await sub.__aenter__()
        assert info.value.topic_filter == "secret/#"
        assert info.value.reason_code == 0x87
        assert "secret/#" in str(info.value)
        assert "\n" not in str(info.value)
        with pytest.raises(StopAsyncIteration):  # ended, not silently dead
            await sub.__anext__()
        async with bus.subscribe("open/#") as ok:  # the bus and other filters go on
            await bus.publish("open/x", b"hello")
            msg = await asyncio.wait_for(ok.__anext__(), 10)
            assert msg.payload == b"hello"


async def test_a_subscription_refused_on_resubscribe_ends_with_the_error(
    acl_broker: AclBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Allowed at first; after a reconnect the broker's ACL denies it: the iterator stops
    with the typed error (and an error is logged) instead of waiting forever."""
    acl_broker.restart(allow_secret=True)
    async with MqttBus(opts(acl_broker.url)) as bus:
        await bus.wait_connected(10)
        async with bus.subscribe("secret/#") as sub, bus.subscribe("open/#") as ok:
            await bus.publish("secret/a", b"first")
            assert (await asyncio.wait_for(sub.__anext__(), 10)).payload == b"first"
            connects = bus.connects
            acl_broker.restart(allow_secret=False)
            with pytest.raises(SubscriptionRefused) as info:
                await asyncio.wait_for(sub.__anext__(), 10)
            assert info.value.reason_code == 0x87
            assert bus.connects > connects
            assert any(
                "secret/#" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records
            )
            await bus.publish("open/b", b"still here")  # the other filter was resubscribed
            assert (await asyncio.wait_for(ok.__anext__(), 10)).payload == b"still here"
