"""One error vocabulary: every error class of every package has its own stable snake_case
``code`` (the RPC answers it, clients rebuild the typed error from it). Before, only some
classes set one and the rest inherited their base's: every bridge refusal answered
``bridge_error``, and the RPC guessed some codes from class-name suffixes."""

from __future__ import annotations

import importlib
import pkgutil
import re

import bridge
import chains
import htlc
import interlock
import relayer
from chains.errors import InterlockError, compute_code


def _all_error_classes() -> list[type[InterlockError]]:
    for pkg in (chains, bridge, htlc, interlock, relayer):
        for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(m.name)
    out: list[type[InterlockError]] = []
    stack: list[type[InterlockError]] = [InterlockError]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


def test_every_error_class_has_its_own_unique_snake_case_code() -> None:
    classes = _all_error_classes()
    assert len(classes) > 100
    by_code: dict[str, str] = {}
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        assert "code" in cls.__dict__, f"{name} inherits its code"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.code), name
        assert by_code.setdefault(cls.code, name) == name, f"{name} reuses {cls.code}"


def test_codes_are_the_class_names_in_snake_case_unless_set() -> None:
    from bridge.errors import RateLimited
    from chains.errors import ClientFrozen, TxRejected
    from htlc.errors import HTLCError

    assert RateLimited.code == "rate_limited"  # was bridge_error, inherited
    assert ClientFrozen.code == "client_frozen"
    assert HTLCError.code == "htlc_error"
    assert TxRejected.code == "rejected"  # set in the class: kept
    assert compute_code("ABCError") == "abc_error"
    assert compute_code("Error2X") == "error2_x"
