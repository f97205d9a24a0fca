"""``interlock netting run --round FILE --settle``: the round file, the hostile cases that
need no chain, and the journal's at-most-once rule against a real chain process."""

from __future__ import annotations

import calendar
import io
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chains.crypto import PrivateKey
from chains.errors import ConfigError
from chains.types import Tx
from interlock.cli import main
from interlock.netting_round import parse_round_file
from interlock.netting_settle import SettlementJournal, compute_leg_call, pay_leg, reconcile_tx
from netting.plan import Leg, LegKind, Transfer
from tests.conftest import Mosquitto, free_port
from tests.e2e.harness import A, balance, chain, network, send
from tests.netting.helpers import round_toml

SEED = "interlock-devnet"
ALICE, BOB, CAROL, DAVE = (PrivateKey.derive(SEED, n) for n in ("alice", "bob", "carol", "dave"))
PARTIES = [("bank-a", ALICE, "chain-a"), ("bank-b", BOB, "chain-b"), ("bank-c", CAROL, "chain-a")]


def _data(**change: Any) -> dict[str, Any]:
    data = tomllib.loads(round_toml("eod-1", 1_800_000_000.0, PARTIES))
    data.update(change)
    return data


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("INTERLOCK_RPC", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path


# --- the round file ---------------------------------------------------------------------


def test_round_file_names_parties_chains_and_the_asset() -> None:
    rf = parse_round_file(_data())
    assert [p.name for p in rf.parties] == ["bank-a", "bank-b", "bank-c"]
    assert rf.parties[1].address == BOB.address
    assert rf.chains == ("chain-a", "chain-b")
    assert (rf.denom_on("chain-a"), rf.denom_on("chain-b")) == ("usd", "chain-a/usd")
    assert rf.threshold == 1
    assert rf.spec.round_id == f"eod-1-{rf.digest[:12]}"
    assert rf.index_of(CAROL.public_key) == 2
    assert rf.index_of(DAVE.public_key) is None


def test_the_digest_binds_everything_the_banks_must_agree_on() -> None:
    base = parse_round_file(_data()).digest
    same = _data()
    same["start"] = int(same["start"])  # written differently, the same time
    assert parse_round_file(same).digest == base
    moved = [("bank-a", ALICE, "chain-a"), ("bank-b", BOB, "chain-a"), ("bank-c", CAROL, "chain-a")]
    other = tomllib.loads(round_toml("eod-1", 1_800_000_000.0, moved))
    assert parse_round_file(other).digest != base
    assert parse_round_file(_data(phase_s=11)).digest != base
    assert parse_round_file(_data(asset={"chain": "chain-a", "denom": "eur"})).digest != base


def test_start_may_be_a_datetime_with_a_zone() -> None:
    text = round_toml("eod-1", 0, PARTIES).replace("start = 0", "start = 2027-01-15T08:00:00+01:00")
    assert parse_round_file(tomllib.loads(text)).start == calendar.timegm((2027, 1, 15, 7, 0, 0))


BAD_FILES = [
    (_data(asset={"chain": "chain-a"}), "asset.denom: missing"),
    (_data(phase_s=0), "phase_s: expected a number greater than 0"),
    (_data(id="Bad Id"), "id: "),
    (_data(id="x" * 49), "id: "),
    (_data(threshold=2), "threshold: at most 1"),
    (_data(colour="blue"), "colour: unknown key"),
    (_data(parties=_data()["parties"][:2]), "parties: "),
]


def _party(i: int, **change: str) -> dict[str, Any]:
    data = _data()
    data["parties"][i] = {**data["parties"][i], **change}
    return data


BAD_FILES += [
    (_party(1, key="zz" * 32), "parties[1].key: "),
    (_party(1, key=ALICE.public_key.hex()), "key"),
    (_party(2, name="bank-a"), "name 'bank-a' appears twice"),
    (_party(0, chain="chain a"), "parties[0].chain: "),
    (_party(2, chain="chain-c"), "at most one is routable"),
    (_party(0, extra="x"), "parties[0].extra: unknown key"),
]


@pytest.mark.parametrize(("data", "says"), BAD_FILES)
def test_a_bad_round_file_is_one_line_with_its_key_path(data: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_round_file(data, "round.toml")
    text = str(info.value)
    assert text.startswith("round.toml: ")
    assert says in text
    assert "\n" not in text


def test_a_naive_start_time_is_refused() -> None:
    text = round_toml("eod-1", 0, PARTIES).replace("start = 0", "start = 2027-01-15T08:00:00")
    with pytest.raises(ConfigError, match="time zone"):
        parse_round_file(tomllib.loads(text), "round.toml")


# --- hostile input at the command line, before any chain or bus -------------------------


def _round_file(tmp: Path, parties: list[tuple[str, PrivateKey, str]] = PARTIES) -> Path:
    path = tmp / "round.toml"
    path.write_text(round_toml("eod-1", 1_800_000_000.0, parties))
    return path


def _argv(path: Path, *extra: str, key: str = "devnet:alice", owes: str = "0,5,5") -> list[str]:
    return [
        *("netting", "run", "--bus-url", "memory://", "--round", str(path)),
        *("--key", key, "--owes", owes, *extra),
    ]


@pytest.mark.parametrize(
    ("extra", "key", "owes", "says"),
    [
        ((), "devnet:dave", "0,5,5", "not among the round file's parties"),
        ((), "devnet:alice", "bank-b=5,bank-z=1", "no party 'bank-z'"),
        ((), "devnet:alice", "bank-b=5,bank-b=1", "bank-b given twice"),
        ((), "devnet:alice", "0,5", "2 amounts for the round file's 3 parties"),
        ((), "devnet:alice", "3,5,5", "owes itself nothing"),
        ((), "devnet:alice", "0,-5,5", "obligation"),
        (("--round-id", "x"), "devnet:alice", "0,5,5", "--round-id: the round file gives it"),
        (("--wait",), "devnet:alice", "0,5,5", "--wait follows a settlement"),
        (("--settle", "--wait-timeout", "0s"), "devnet:alice", "0,5,5", "bad duration"),
    ],
)
def test_hostile_arguments_are_one_line_and_exit_2(
    quiet: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    key: str,
    owes: str,
    says: str,
) -> None:
    assert main(_argv(_round_file(quiet), *extra, key=key, owes=owes)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interlock: error:")
    assert says in err
    assert len(err.splitlines()) == 1
    assert not (quiet / "home" / "netting").exists()  # no journal: nothing begun


def test_settle_without_a_round_file_is_refused(
    quiet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parties = ",".join(k.public_key.hex() for k in (ALICE, BOB, CAROL))
    argv = [
        *("netting", "run", "--bus-url", "memory://", "--round-id", "r", "--start", "0"),
        *("--parties", parties, "--key", "devnet:alice", "--owes", "0,1,1", "--settle"),
    ]
    assert main(argv) == 2
    assert "--settle needs --round FILE" in capsys.readouterr().err


def test_an_unreachable_chain_is_one_line_before_the_round(
    quiet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    argv = _argv(_round_file(quiet), "--settle", "--rpc", dead)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interlock: error:")
    assert "127.0.0.1" in err
    assert len(err.splitlines()) == 1
    assert not (quiet / "home" / "netting").exists()


def test_a_chain_nobody_names_is_one_line(quiet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(_round_file(quiet), "--settle")) == 2
    err = capsys.readouterr().err.strip()
    assert "chain-a" in err
    assert len(err.splitlines()) == 1


# --- at most once, against a real chain process -------------------------------------------


@pytest.mark.slow
@pytest.mark.broker
async def test_a_leg_is_paid_at_most_once_whatever_the_journal_holds(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    rf = parse_round_file(_data())
    leg = Leg(LegKind.TRANSFER, A, A, Transfer(0, 2, 7))  # bank-a pays bank-c 7 on chain-a
    module, method, args = compute_leg_call(leg, rf)
    assert (module, method, args) == (
        "bank",
        "transfer",
        {"to": CAROL.address, "denom": "usd", "amount": 7},
    )
    journal = SettlementJournal(tmp_path / "journal.sqlite")
    rid, me = rf.bus_round_id, ALICE.public_key
    with network(own_mosquitto, tmp_path) as net:
        async with chain(net, A) as a:
            chains = {A: a}
            start = await balance(a, CAROL.address, "usd")
            # a crash after the journal write, before the submission: the same bytes go out
            nonce = await a.pending_nonce(ALICE.address)
            signed = Tx.create(ALICE, A, nonce, module, method, args)
            journal.put_leg(rid, me, 0, signed)
            paid = await pay_leg(chains, ALICE, journal, rf, 0, leg, time.monotonic() + 60)
            assert paid.resumed
            assert paid.receipt.tx_hash == signed.hash
            assert await balance(a, CAROL.address, "usd") == start + 7
            # a re-run after the payment: found on chain, nothing sent
            again = await pay_leg(chains, ALICE, journal, rf, 0, leg, time.monotonic() + 60)
            assert again.resumed
            assert again.receipt.tx_hash == signed.hash
            assert await a.next_nonce(ALICE.address) == nonce + 1
            assert await balance(a, CAROL.address, "usd") == start + 7
            # a journaled leg whose nonce went to another transaction is never included:
            # signed anew, paid once
            stale = Tx.create(ALICE, A, nonce + 1, module, method, args)
            journal.put_leg(rid, me, 1, stale)
            r = await send(
                a, ALICE, "bank", "transfer", {"to": DAVE.address, "denom": "usd", "amount": 1}
            )
            assert r.ok
            assert await reconcile_tx(a, stale, time.monotonic() + 60) is None
            fresh = await pay_leg(chains, ALICE, journal, rf, 1, leg, time.monotonic() + 60)
            assert not fresh.resumed
            assert fresh.receipt.tx_hash != stale.hash
            journaled = journal.get_leg(rid, me, 1)
            assert journaled is not None
            assert journaled.hash == fresh.receipt.tx_hash
            assert await balance(a, CAROL.address, "usd") == start + 14
            assert await a.get_receipt(stale.hash) is None
    journal.close()
