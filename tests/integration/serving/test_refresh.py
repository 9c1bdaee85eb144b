"""A refresh keeps what has not moved: the served week's ranking is built again only when its recommendations
or the outlets changed (real Delta tables written with delta-rs, a real MLflow registry, no server)."""

from __future__ import annotations

from datetime import date, timedelta

from lakehouse.policy import load_ml_config
from lakehouse.serving import serve_flow
from lakehouse.serving.snapshot import outlet_rows
from tests.conftest import use_home
from tests.integration.serving import small_world
from tests.integration.serving.small_world import MODEL, OUTLETS, PRODUCTS

WEEK = date(2024, 3, 4)
NEXT = WEEK + timedelta(weeks=1)


def test_a_refresh_ranks_the_week_again_only_when_its_recommendations_or_outlets_changed(tmp_path, monkeypatch):
    settings = use_home(monkeypatch, tmp_path / "home")
    small_world.write_world(settings, WEEK)
    small_world.register_versions(settings, tmp_path, 1).set_registered_model_alias(MODEL, "champion", "1")
    config = load_ml_config()
    first = serve_flow.load(settings, config, None)
    assert first is not None and serve_flow.load(settings, config, first) is None  # nothing moved

    small_world.write_lift_weeks(settings, [WEEK - timedelta(weeks=2)])  # only gold_lift moves
    second = serve_flow.load(settings, config, first)
    assert second is not None and second.versions.lift == (first.versions.lift or 0) + 1
    assert second.ranked is first.ranked and second.by_outlet is first.by_outlet
    assert len(second.lift) == len(first.lift) + 1

    small_world.write_week(settings, NEXT, "1")  # a new week
    third = serve_flow.load(settings, config, second)
    assert third is not None and third.week == NEXT and third.ranked is not second.ranked
    assert {r["week_start"] for r in outlet_rows(third, "outlet-1") or []} == {NEXT}

    small_world.write_week(settings, NEXT, "1", {"outlet-9": "digital"})  # the same week, one more outlet
    fourth = serve_flow.load(settings, config, third)
    assert fourth is not None and fourth.ranked is not third.ranked
    assert fourth.ranked.num_rows == (len(OUTLETS) + 1) * len(PRODUCTS) and outlet_rows(fourth, "outlet-9")
