"""The HTTP servers' header deadline and connection cap come from the chain and relayer
TOML files, validated there (one line with its key path), and the running server keeps
to what the file says."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chains.errors import ConfigError
from chains.node import Node, SQLiteBlockStore
from chains.service.rpc import RpcServer
from interlock.config import parse_chain_config
from relayer.config import parse_relayer_config, validate_relayer_config
from tests.service.test_httpserver import is_closed_by_server

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _chain_file(**rpc: Any) -> dict[str, Any]:
    data = tomllib.loads((CONFIGS / "chain-a.toml").read_text())
    data = copy.deepcopy(data)
    data["rpc"].update(rpc)
    return data


def _relayer_file(**api: Any) -> dict[str, Any]:
    data = tomllib.loads((CONFIGS / "relayer.toml").read_text())
    data = copy.deepcopy(data)
    data.setdefault("api", {}).update(api)
    return data


def test_the_files_set_both_limits_and_default_to_the_servers_defaults() -> None:
    rpc = parse_chain_config(_chain_file(header_timeout=2.5, max_connections=64)).chain.rpc
    assert rpc is not None
    assert (rpc.limits.header_timeout, rpc.limits.max_connections) == (2.5, 64)
    default = parse_chain_config(_chain_file()).chain.rpc
    assert default is not None
    assert (default.limits.header_timeout, default.limits.max_connections) == (10.0, 1024)
    api = parse_relayer_config(_relayer_file(header_timeout=3, max_connections=32)).api_limits
    assert (api.header_timeout, api.max_connections) == (3, 32)
    assert parse_relayer_config(_relayer_file()).api_limits.max_connections == 256


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("header_timeout", 0, "greater than 0"),
        ("header_timeout", -1, "greater than 0"),
        ("header_timeout", 301, "less than or equal to 300"),
        ("header_timeout", "10s", "number"),
        ("max_connections", 7, "greater than or equal to 8"),
        ("max_connections", 10.5, "integer"),
        ("max_connections", True, "integer"),
    ],
)
def test_bad_limits_are_one_line_naming_the_key(key: str, value: Any, expect: str) -> None:
    with pytest.raises(ConfigError) as chain_err:
        parse_chain_config(_chain_file(**{key: value}), "chain.toml")
    msg = str(chain_err.value)
    assert msg.startswith(f"chain.toml: rpc.{key}: ")
    assert expect in msg
    assert "\n" not in msg
    errors = validate_relayer_config(_relayer_file(**{key: value}))
    assert len(errors) == 1
    assert errors[0].startswith(f"api.{key}: ")
    assert expect in errors[0]


async def test_the_running_rpc_server_keeps_to_the_files_limits(tmp_path: Path) -> None:
    cfg = parse_chain_config(_chain_file(port=0, header_timeout=0.3, max_connections=8)).chain
    assert cfg.rpc is not None
    store = SQLiteBlockStore(tmp_path / "chain-a.sqlite3")
    node = Node.open(cfg.genesis, cfg.build_modules, cfg.validator_keys, store)
    async with node, RpcServer(node, port=0, limits=cfg.rpc.limits) as server:
        conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(12)]
        for _, w in conns:
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        # the default deadline is 10 s: closed well within 5 s means 0.3 s was applied
        closed = await asyncio.gather(*(is_closed_by_server(r, 5) for r, _ in conns))
        for _, w in conns:
            w.close()
        assert all(closed)
        assert server.stats.refused >= 12 - 8  # the cap of 8, not 1,024
        assert server.stats.header_timeouts >= 1
