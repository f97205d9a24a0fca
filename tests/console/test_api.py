"""The console's routes on the daemon's API, in process: the files and their security
headers, nothing else served, the event stream's snapshot and its cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from chains.crypto import PrivateKey
from relayer import api
from relayer.config import parse_relayer_config
from relayer.console import serve
from relayer.daemon import Daemon

A, B = "chain-a", "chain-b"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[object, object]]:
    settings = parse_relayer_config(
        {
            "relayer": {"data_dir": str(tmp_path)},
            "api": {"port": 0},
            "chains": [
                # nothing listens on port 1: both chains are probed and found unreachable
                {"id": A, "rpc": ["http://u:pw@127.0.0.1:1"], "key": "devnet:relayer"},
                {"id": B, "rpc": ["http://127.0.0.1:1"], "key": "devnet:relayer"},
            ],
            "paths": [{"src": A, "dst": B, "relay": ["transfers"]}],
        }
    )
    key = PrivateKey.derive("interlock-devnet", "relayer")
    daemon = Daemon(settings, {A: key, B: key})
    async with TestClient(TestServer(api.build_app(daemon))) as c:
        yield c


async def test_the_page_and_its_files_carry_a_strict_csp(
    client: TestClient[object, object],
) -> None:
    for path, kind in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ]:
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == kind
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self';" in csp
        assert "unsafe" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = await (await client.get("/")).text()
    assert "<script>" not in page  # no inline script: the CSP would refuse it


@pytest.mark.parametrize(
    "path",
    ["/console/index.html", "/console/serve.py", "/console/..%2fserve.py", "/console/", "/x"],
)
async def test_nothing_else_is_served(client: TestClient[object, object], path: str) -> None:
    r = await client.get(path)
    assert r.status == 404
    assert "error" in orjson.loads(await r.read())


async def test_the_stream_opens_with_a_snapshot_and_shows_no_credentials(
    client: TestClient[object, object],
) -> None:
    r = await client.get("/events")
    assert r.status == 200
    assert r.content_type == "text/event-stream"
    assert await r.content.readline() == b"event: snapshot\n"
    data = (await r.content.readline()).removeprefix(b"data: ")
    snap = orjson.loads(data)
    assert [w["name"] for w in snap["status"]["work"]] == []
    assert snap["items"] == []
    assert "chart" in snap
    assert snap["status"]["chains"][A]["rpc"] == ["http://127.0.0.1:1"]
    # then status events, with the chains as probed (port 1: unreachable)
    while True:
        line = await r.content.readline()
        if line.startswith(b"data: ") and b'"chains":[{' in line:
            status = orjson.loads(line.removeprefix(b"data: "))
            break
    assert {c["id"]: c["reachable"] for c in status["chains"]} == {A: False, B: False}
    assert b"pw" not in orjson.dumps(status["chains"])
    r.close()


async def test_streams_are_capped(
    client: TestClient[object, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "MAX_STREAMS", 1)
    first = await client.get("/events")
    assert first.status == 200
    second = await client.get("/events")
    assert second.status == 503
    assert orjson.loads(await second.read())["error"]["code"] == "busy"
    first.close()


@pytest.mark.parametrize(
    "query",
    ["", "?tx=", "?tx=zz", "?tx=" + "AB" * 32, "?tx=" + "ab" * 33, f"?tx={'ab' * 32}&x=1", "?x=1"],
)
async def test_a_lookup_refuses_what_is_not_a_tx_hash(
    client: TestClient[object, object], query: str
) -> None:
    r = await client.get("/lookup" + query)
    assert r.status == 400
    error = orjson.loads(await r.read())["error"]
    assert error["code"] == "bad_request"
    assert "64 lowercase hex digits" in error["message"]
    assert "\n" not in error["message"]


async def test_a_lookup_of_a_tx_no_chain_knows_finds_nothing(
    client: TestClient[object, object],
) -> None:
    r = await client.get("/lookup?tx=" + "ab" * 32)
    assert r.status == 200
    assert orjson.loads(await r.read()) == {"tx": "ab" * 32, "ids": []}
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
