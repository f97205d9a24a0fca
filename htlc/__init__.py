"""HTLC atomic swaps: the on-chain contract and the swap engine.

* :mod:`htlc.module` — the ``htlc`` chain module (lock / claim / refund).
* :mod:`htlc.types` — lock terms, deterministic lock ids, lock views from events.
* :mod:`htlc.swap` — terms, safety rules, the per-party state machine and the
  decred/atomicswap-style utilities. Pure.
* :mod:`htlc.store` — the swap store protocol and its in-memory twin (SQLite:
  ``interlock.swap_store``).
* :mod:`htlc.driver` — the thin async driver that runs a party's swaps on two chains.
* :mod:`htlc.errors` — the error tree.
"""
