"""The command-line grammar (:mod:`interlock.commands`): every command names a function
that exists, and the parser and the light commands load none of the heavy packages."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.cli import build_parser
from interlock.commands import resolve_run

HEAVY = ("aiohttp", "aiomqtt", "pydantic", "prometheus_client", "relayer", "rich", "zk")
"""Packages a command imports only when it runs (each costs tens to hundreds of ms)."""

_LOADED = """
import json, sys
{setup}
print(json.dumps(sorted({{m.partition(".")[0] for m in sys.modules}})))
"""


def loaded_after(setup: str, home: Path) -> set[str]:
    """The top-level packages a fresh interpreter holds after running ``setup``."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "INTERLOCK_HOME": str(home)},
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def leaves(p: argparse.ArgumentParser, path: str = "interlock") -> Iterator[tuple[str, Any]]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, p
    for a in subs:
        for name, child in a.choices.items():
            yield from leaves(child, f"{path} {name}")


def test_the_parser_loads_no_heavy_package(tmp_path: Path) -> None:
    got = loaded_after("import interlock.cli; interlock.cli.build_parser()", tmp_path)
    assert "interlock" in got  # the probe sees what was imported
    assert got.isdisjoint(HEAVY), sorted(got & set(HEAVY))


def test_help_loads_no_heavy_package(tmp_path: Path) -> None:
    setup = (
        "import contextlib, io\n"
        "from interlock.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert loaded_after(setup, tmp_path).isdisjoint(HEAVY)


def test_keys_list_loads_no_heavy_package(tmp_path: Path) -> None:
    setup = "from interlock.cli import main\nassert main(['keys', 'list']) == 0"
    got = loaded_after(setup, tmp_path)
    assert "cryptography" in got  # the keystore did run
    assert got.isdisjoint(HEAVY), sorted(got & set(HEAVY))


def test_the_relayer_is_loaded_when_its_command_runs(tmp_path: Path) -> None:
    """The other side of the lazy imports: the command's module comes in at dispatch."""
    setup = (
        "from interlock.cli import main\n"
        f"assert main(['config', 'validate', {str(tmp_path / 'none.toml')!r}]) == 2"
    )
    assert "relayer" in loaded_after(setup, tmp_path)


COMMANDS = list(leaves(build_parser()))


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["keys", "list"], "WARNING"),  # a user's command prints what happened
        (["-v", "keys", "list"], "DEBUG"),
        (["config", "validate", "missing.toml"], "INFO"),  # the services log their work
    ],
)
def test_services_log_their_work_and_the_users_commands_only_what_went_wrong(
    argv: list[str], level: str, tmp_path: Path
) -> None:
    setup = (
        "import logging\n"
        "from interlock.cli import main\n"
        f"main({argv!r})\n"
        "print(logging.getLevelName(logging.getLogger().level))"
    )
    out = subprocess.run(
        [sys.executable, "-c", setup],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "INTERLOCK_HOME": str(tmp_path)},
    )
    assert out.stdout.splitlines()[-1] == level


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_command_names_a_function_that_exists(
    path: str, parser: argparse.ArgumentParser
) -> None:
    target = parser.get_default("run")
    assert isinstance(target, str), f"{path} has no run"
    assert callable(resolve_run(target)), f"{path}: {target}"


def test_options_are_taken_only_as_spelled(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse's abbreviations read "--devnet alice" as "--devnet-seed alice"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["keys", "import", "alice", "--devnet", "alice"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unrecognized arguments: --devnet alice" in err
