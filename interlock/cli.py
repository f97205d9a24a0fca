"""The ``interlock`` command line: the parser (every command's arguments are in
:mod:`interlock.commands`) and ``main``, which runs the command given and turns an error
a user can cause into one line on stderr.

Exit status: what the command returns (0 when it returns nothing); 2 for bad flags or any
:class:`~chains.errors.InterlockError` (bad config, a port in use, a refused command:
nothing is changed by it); 1 when a chain of this process stopped producing blocks
(:class:`~interlock.errors.ChainFailed`); 130 on Ctrl-C.

This module and :mod:`interlock.commands` import nothing heavy: a command's own module,
with aiohttp, pydantic, the relayer or zk as it needs them, is imported only when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from chains.errors import InterlockError
from interlock.commands import register_commands, resolve_run
from interlock.errors import ChainFailed

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``interlock: error: ...``), exit 2,
    and that takes options only as spelled: argparse's abbreviations read
    ``keys import alice --devnet alice`` as ``--devnet-seed alice`` and imported an
    unfunded key without a word. Every subcommand's parser is of this class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"interlock: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="interlock", description="Cross-chain bridge and relayer: chains, devnets.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    register_commands(sub)
    return p


def _first_interlock_error(group: BaseExceptionGroup[BaseException]) -> InterlockError | None:
    for exc in group.exceptions:
        if isinstance(exc, InterlockError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_interlock_error(exc)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # a service logs its work (INFO); the user's commands only what went wrong (WARNING)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(args, "log_level", logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return int(resolve_run(args.run)(args) or 0)
    except ChainFailed as exc:
        print(f"interlock: error: {exc}", file=sys.stderr)
        return 1
    except InterlockError as exc:
        print(f"interlock: error: {exc}", file=sys.stderr)
        return 2
    except ExceptionGroup as group:  # a task of the TaskGroup failed
        first = _first_interlock_error(group)
        if first is None:
            raise
        print(f"interlock: error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
