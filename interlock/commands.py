"""The user's commands (keys, queries, transfers, manual swaps, compliance governance,
private payments), each group in its own module; ``interlock.cli`` registers them all
through :func:`register_user_commands`.

Each command sets ``run``: a function of the parsed arguments returning the exit status.
It raises an :class:`~chains.errors.InterlockError` for anything the user can fix, which
``interlock.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from interlock import (
    cmd_compliance,
    cmd_keys,
    cmd_netting,
    cmd_private,
    cmd_query,
    cmd_swap,
    cmd_transfer,
)

__all__ = ["register_user_commands"]


def register_user_commands(sub: argparse._SubParsersAction[Any]) -> None:
    cmd_keys.register(sub)
    cmd_netting.register(sub)
    cmd_query.register(sub)
    cmd_transfer.register(sub)
    cmd_swap.register(sub)
    cmd_compliance.register(sub)
    cmd_private.register(sub)
