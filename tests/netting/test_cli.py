"""``interlock netting``: a demo in process, and three banks as three processes over MQTT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from chains.crypto import PrivateKey
from interlock.cli import main
from interlock.cmd_netting import settle_in_process
from netting.errors import BadObligations
from netting.plan import plan_settlement
from netting.protocol import compute_plain_netting


def test_demo_prints_positions_gross_net_and_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netting", "demo", "--banks", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(out["positions"]) == 0
    assert out["net"] == sum(p for p in out["positions"] if p > 0)
    assert out["gross"] >= out["net"]
    assert [list(t) for t in out["plan"]] == [
        [t.payer, t.payee, t.amount] for t in plan_settlement(out["positions"])
    ]


def run_argv(parties: str, owes: str = "0,1,2") -> list[str]:
    return [
        *("netting", "run", "--bus-url", "memory://", "--round-id", "r", "--start", "0"),
        *("--parties", parties, "--key", "devnet:a", "--owes", owes),
    ]


GOOD_PARTIES = ",".join(PrivateKey.derive("x", str(i)).public_key.hex() for i in range(3))


@pytest.mark.parametrize(
    "argv",
    [
        ["netting", "demo", "--banks", "2"],
        run_argv("zz,yy,xx"),  # not hex
        run_argv(",".join(["00" * 32] * 3)),  # one key three times
        run_argv(GOOD_PARTIES, owes="0,1,x"),
        run_argv(GOOD_PARTIES, owes="0,-1,2"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interlock: error:")
    assert len(err.splitlines()) == 1


def test_three_banks_as_three_processes_over_mosquitto(mqtt_url: str) -> None:
    book = [[0, 70, 20], [50, 0, 40], [10, 30, 0]]
    seed = "cli-netting"
    parties = ",".join(PrivateKey.derive(seed, f"bank{i}").public_key.hex() for i in range(3))
    round_id = f"cli-{uuid.uuid4().hex[:8]}"
    # messages are retained: a process that imports slowly (a loaded machine) may join
    # after the start, before the share deadline; with everyone in, no deadline is waited
    start = time.time() + 3
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock.cli",
                "netting",
                "run",
                "--bus-url",
                mqtt_url,
                "--round-id",
                round_id,
                "--start",
                str(start),
                "--phase-s",
                "30",
                "--parties",
                parties,
                "--key",
                f"devnet:bank{i}",
                "--seed",
                seed,
                "--owes",
                ",".join(map(str, book[i])),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for i in range(3)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for i, o in enumerate(outs):
        assert o["me"] == i
        assert tuple(o["positions"]) == compute_plain_netting(book)
        assert o["gross"] == 220
        assert o["net"] == 30
        assert o["plan"] == [[0, 2, 20], [0, 1, 10]]


def test_demo_settles_the_plan_across_two_chains(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["netting", "demo", "--banks", "5", "--settle", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["settled"] is True
    assert len(out["legs"]) == len(out["plan"])


def test_settlement_moves_each_bank_by_its_position_through_every_kind_of_leg() -> None:
    # banks 0, 2 hold usd on chain-a; 1, 3 hold chain-a/usd on chain-b
    legs = settle_in_process((-10, 7, -4, 7))
    assert {str(leg.kind) for leg in legs} == {"lock"}  # every payer on chain-a, payee on b
    assert sum(leg.transfer.amount for leg in legs) == 14
    legs = settle_in_process((5, -3, 0, -2))  # 1 -> 0 burn, 3 -> 0 burn
    assert {str(leg.kind) for leg in legs} == {"burn"}
    with pytest.raises(BadObligations):
        settle_in_process((5, -3, 0, 0))
