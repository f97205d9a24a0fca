"""The Grafana dashboard reads only series the daemon exports, and shows every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from relayer.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "configs" / "grafana" / "interlock-relayer.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> set[str]:
    """The series names ``/metrics`` renders, from the daemon's own registry."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def used() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\binterlock_[a-z_]+", e)}


def test_every_series_the_dashboard_uses_is_exported() -> None:
    missing = used() - exported()
    assert not missing, f"the dashboard reads series the daemon does not export: {missing}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported()}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used()}
    assert families - shown == set()


def test_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${datasource}"
        grid = p["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        assert all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"])
