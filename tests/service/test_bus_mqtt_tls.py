"""mqtts:// with a CA file, and username/password, against our own TLS Mosquitto."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chains.service.bus import BusUnavailable, MqttBus, MqttOptions, parse_bus_url
from chains.service.retry import Backoff
from tests.conftest import Mosquitto, mosquitto_binary, no_broker

pytestmark = pytest.mark.broker


@dataclass
class TlsBroker:
    broker: Mosquitto
    ca: Path

    @property
    def port(self) -> int:
        return self.broker.port


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey, ca: bool,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    binary = mosquitto_binary()
    passwd = shutil.which("mosquitto_passwd")
    if binary is None or passwd is None:
        no_broker("TLS/auth tests need the mosquitto and mosquitto_passwd binaries")
        raise AssertionError("unreachable")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("interlock test CA", ca_key, None, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = _cert("localhost", srv_key, ca_cert.subject, ca_key, ca=False)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(_pem_key(srv_key))
    pwfile = tmp_path / "passwords"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "relayer", "s3cret"], check=True)
    os.chmod(pwfile, 0o600)
    base = (
        f"set_tcp_nodelay true\npersistence false\nallow_anonymous false\npassword_file {pwfile}\n"
    )
    listener = (
        f"cafile {ca}\ncertfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}\n"
    )
    broker = Mosquitto(binary, base_conf=base, listener_conf=listener).start()
    try:
        yield TlsBroker(broker, ca)
    finally:
        broker.close()


def opts(url: str) -> MqttOptions:
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=Backoff(initial=0.05, maximum=0.2))


async def test_mqtts_with_a_ca_file_and_a_password_carries_messages(tls_broker: TlsBroker) -> None:
    url = f"mqtts://relayer:s3cret@127.0.0.1:{tls_broker.port}?ca={tls_broker.ca}"
    async with MqttBus(opts(url)) as bus:
        await bus.wait_connected(10)
        async with bus.subscribe("secure/#") as sub:
            await bus.publish("secure/hello", b"over TLS")
            msg = await sub.__anext__()
            assert (msg.topic, msg.payload) == ("secure/hello", b"over TLS")


@pytest.mark.parametrize(
    "url",
    [
        "mqtts://relayer:wrong@127.0.0.1:{port}?ca={ca}",  # bad password
        "mqtts://127.0.0.1:{port}?ca={ca}",  # anonymous
        "mqtts://relayer:s3cret@127.0.0.1:{port}",  # broker's CA not trusted
        "mqtt://relayer:s3cret@127.0.0.1:{port}",  # plain TCP to a TLS listener
    ],
)
async def test_refused_connections_raise_bus_unavailable_and_keep_retrying(
    tls_broker: TlsBroker, url: str
) -> None:
    bus = MqttBus(opts(url.format(port=tls_broker.port, ca=tls_broker.ca)))
    async with bus:
        with pytest.raises(BusUnavailable):
            await bus.wait_connected(1.5)
        assert not bus.is_connected
        assert bus.connects == 0
