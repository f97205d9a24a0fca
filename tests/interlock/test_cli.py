"""``run_chains`` in this process (the subprocess tests are in test_processes.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from chains.node import Node
from chains.service.datadir import DataDirLock, DataDirLocked
from chains.service.rpc import RpcServer
from interlock.cli import main
from interlock.cmd_devnet import run_chains
from interlock.config import parse_devnet_config
from interlock.errors import ChainFailed


async def test_a_console_that_falls_behind_does_not_stop_the_chain(tmp_path: Path) -> None:
    """The head printer is a convenience: when it falls a subscription's worth of blocks
    behind it skips ahead, instead of its SubscriptionLagged failing the task group and
    taking the node, its RPC and its publisher down with it."""
    cfg = parse_devnet_config({"block_interval": 3600, "chains": [{"chain_id": "chain-a"}]})
    stop = asyncio.Event()
    nodes: list[Node] = []

    def ready(ns: Sequence[Node], _: Sequence[RpcServer]) -> None:
        nodes.extend(ns)

    async def burst() -> None:
        while not nodes or len(nodes[0]._subs) < 2:  # noqa: ASYNC110 (the printer and publisher)
            await asyncio.sleep(0.01)
        for _ in range(4200):  # no await in between: the printer cannot keep up
            nodes[0].produce_block()
        await asyncio.sleep(0.2)
        stop.set()

    thresholds = gc.get_threshold()
    try:
        task = asyncio.create_task(burst())
        await asyncio.wait_for(
            run_chains(cfg.chains, tmp_path, "memory://", stop=stop, on_ready=ready), 120
        )
        await task
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert nodes[0].height == 4200


# --- refused at start, and a node that fails ---------------------------------------------

CHAIN_A = Path(__file__).resolve().parents[2] / "configs" / "chain-a.toml"


def chain_start(data_dir: Path, bus_url: str, *extra: str) -> list[str]:
    return [
        "chain",
        "start",
        "--config",
        str(CHAIN_A),
        "--data-dir",
        str(data_dir),
        "--rpc-port",
        "0",
        "--bus-url",
        bus_url,
        "--interval",
        "0.05",
        *extra,
    ]


def test_the_ready_line_hides_the_bus_password(
    tmp_path: Path, mqtt_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9: ``bus mqtt://alice:s3cretpw@...`` was printed in clear."""
    url = mqtt_url.replace("mqtt://", "mqtt://alice:s3cretpw@", 1)
    assert main(chain_start(tmp_path / "data", url, "--blocks", "2")) == 0
    out, err = capsys.readouterr()
    assert "s3cretpw" not in out + err
    assert "bus mqtt://alice:***@" in out


def test_an_mqtts_url_whose_ca_file_is_missing_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9: it was accepted, and the node retried the handshake forever."""
    url = f"mqtts://relayer:pw@127.0.0.1:8883?ca={tmp_path / 'nope.pem'}"
    assert main(chain_start(tmp_path / "data", url)) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert "ca file" in err
    assert "does not exist" in err
    assert ":pw@" not in err
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_second_process_on_the_same_data_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9: two processes opened one store; one failed at its next block. The lock is
    an flock: another holder in this process counts as another process."""
    data = tmp_path / "data"
    with DataDirLock(data, "chain-a.lock"):
        assert main(chain_start(data, "memory://", "--blocks", "1")) == 2
        _, err = capsys.readouterr()
        assert "another interlock process" in err
        assert len(err.strip().splitlines()) == 1
        assert not (data / "chain-a.sqlite3").exists()
    assert main(chain_start(data, "memory://", "--blocks", "1")) == 0  # free again


def test_the_data_dir_lock_names_its_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(DataDirLocked) as info:
        DataDirLock(tmp_path).acquire()
    assert info.value.holder == str(os.getpid())
    with DataDirLock(tmp_path) as again:  # released on exit
        assert again.held


async def test_a_node_that_fails_stop_ends_the_process_with_an_error(tmp_path: Path) -> None:
    """Issue 9: a node that stopped producing kept its process up (and /healthz said 200:
    see tests/service/test_httpserver.py). Now run_chains stops everything and raises
    ChainFailed, which ``main`` turns into exit status 1 for a supervisor to restart."""
    cfg = parse_devnet_config({"block_interval": 0.02, "chains": [{"chain_id": "chain-a"}]})
    stop = asyncio.Event()

    def ready(nodes: Sequence[Node], _: Sequence[RpcServer]) -> None:
        def broken(*args: object) -> None:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: blocks.height")

        nodes[0].store.save_block = broken  # type: ignore[method-assign]

    with pytest.raises(ChainFailed) as info:
        await asyncio.wait_for(
            run_chains(cfg.chains, tmp_path, "memory://", stop=stop, on_ready=ready), 60
        )
    assert info.value.chain_ids == ("chain-a",)
    assert "UNIQUE" not in str(info.value)  # the log has it; the one line does not
