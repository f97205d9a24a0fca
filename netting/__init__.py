"""Multilateral netting by secure multi-party computation.

Banks that owe each other many amounts learn only the net positions to settle: each
deals verifiable secret shares of its obligations (:mod:`netting.sharing`), the round's
state machine runs in :mod:`netting.protocol` (pure), and :mod:`netting.shell` carries it
over the bus.
"""
