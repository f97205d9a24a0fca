"""``interlock keys``: in-process through ``main`` for the cheap cases, one subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from interlock.cli import main
from interlock.keys import Keystore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path))
    monkeypatch.setenv("INTERLOCK_SCRYPT_N", "16")  # tests only: cheap keys
    monkeypatch.setenv("INTERLOCK_PASSPHRASE", "pw")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_show_delete(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "add", "alice", "--json")
    assert code == 0
    added = json.loads(out)
    assert set(added) == {"name", "address", "public_key"}
    code, out, _ = run(capsys, "keys", "list", "--json")
    assert code == 0
    assert json.loads(out)["keys"] == [added]
    code, out, _ = run(capsys, "keys", "show", "alice")
    assert code == 0
    assert added["address"] in out
    assert Keystore(home).load("alice", "pw").address == added["address"]
    code, out, _ = run(capsys, "keys", "delete", "alice", "--yes")
    assert code == 0
    assert Keystore(home).list() == []


def test_import_devnet_account(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "import", "a", "--devnet-seed", "s", "--account", "alice")
    assert code == 0
    assert PrivateKey.derive("s", "alice").address in out


def test_import_hex_secret_from_stdin(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = PrivateKey.derive("x")
    monkeypatch.setattr("sys.stdin", io.StringIO(key.seed.hex() + "\n"))
    code, out, _ = run(capsys, "keys", "import", "k")
    assert code == 0
    assert key.address in out
    assert key.seed.hex() not in out


@pytest.mark.parametrize("stdin", ["", "11\n", "zz" * 32 + "\n", "ab" * 33 + "\n"])
def test_import_refuses_bad_secret(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code, _, err = run(capsys, "keys", "import", "k")
    assert code == 2
    assert err.count("\n") == 1
    assert "64 hex digits" in err
    assert Keystore(home).list() == []


def test_add_refuses_existing_and_keeps_it(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "keys", "add", "alice")
    before = (home / "keys" / "alice.json").read_bytes()
    code, _, err = run(capsys, "keys", "add", "alice")
    assert code == 2
    assert "already exists" in err
    assert (home / "keys" / "alice.json").read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "show", "nobody"], "no key 'nobody'"),
        (["keys", "show", "../etc"], "bad key name"),
        (["keys", "add", "devnet:alice"], "bad key name"),
        (["keys", "delete", "nobody", "--yes"], "no key 'nobody'"),
        (["keys", "delete", "devnet:alice", "--yes"], "nothing to delete"),
        (["keys", "import", "k", "--account", "x"], "--account only goes with --devnet-seed"),
    ],
)
def test_hostile_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_delete_without_yes_off_a_terminal_deletes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "keys", "add", "alice")
    code, _, err = run(capsys, "keys", "delete", "alice")
    assert code == 2
    assert "--yes" in err
    assert [k.name for k in Keystore(home).list()] == ["alice"]


def test_list_reports_damaged_files(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "keys", "add", "alice")
    (home / "keys" / "broken.json").write_text("{")
    code, out, err = run(capsys, "keys", "list")
    assert code == 1
    assert "alice" in out
    assert "broken.json" in err


def test_no_passphrase_anywhere(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERLOCK_PASSPHRASE")
    code, _, err = run(capsys, "keys", "add", "alice")
    assert code == 2
    assert "INTERLOCK_PASSPHRASE" in err
    assert not (home / "keys" / "alice.json").exists()


def test_as_a_subprocess(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "INTERLOCK_HOME": str(tmp_path),
        "INTERLOCK_SCRYPT_N": "16",
        "INTERLOCK_PASSPHRASE": "pw",
    }
    cli = [sys.executable, "-m", "interlock.cli", "keys"]
    add = subprocess.run([*cli, "add", "alice"], env=env, capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    wrong = {**env, "INTERLOCK_PASSPHRASE": "nope"}
    show = subprocess.run([*cli, "show", "alice"], env=wrong, capture_output=True, text=True)
    assert show.returncode == 0  # show needs no passphrase
    assert Keystore(tmp_path).show("alice").address in show.stdout


def test_show_a_devnet_key_derives_it_from_the_seed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    want = PrivateKey.derive("interlock-devnet", "alice")
    code, out, _ = run(capsys, "keys", "show", "devnet:alice", "--json")
    assert code == 0
    assert json.loads(out) == {
        "name": "devnet:alice",
        "address": want.address,
        "public_key": want.public_key.hex(),
    }
    code, out, _ = run(capsys, "keys", "show", "devnet:alice", "--seed", "elsewhere", "--json")
    assert json.loads(out)["address"] == PrivateKey.derive("elsewhere", "alice").address
    code, out, err = run(capsys, "keys", "show", "devnet:")
    assert code == 2
    assert err.count("\n") == 1, err
    assert "NAME" in err
    assert not (home / "keys").exists() or not any((home / "keys").iterdir())
