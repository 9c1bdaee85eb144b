"""The pages' chart geometry: round ticks around zero, bars from zero either way, gaps where a week has no figure."""

from __future__ import annotations

from datetime import date, timedelta

from lakehouse.serving.charts import LABEL_WIDTH, Series, interval_bars, nice_ticks, week_chart


def test_ticks_are_round_numbers_covering_the_range():
    assert nice_ticks(0.0, 13.1) == [0.0, 5.0, 10.0, 15.0]
    assert nice_ticks(-0.2, 0.45) == [-0.2, 0.0, 0.2, 0.4, 0.6]
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_bars_start_at_zero_on_either_side_and_show_their_interval_when_known():
    chart = interval_bars(
        [("P1 deal", 10.0, 8.0, 12.0), ("P2 price_cut", -5.0, None, None), ("P3 none", None, None, None)]
    )
    gain, loss, unknown = chart.bars
    assert chart.ticks[0][1] == "-5.00" and chart.ticks[-1][1] == "15.00"
    assert gain.x == chart.zero_x and gain.width > 0 and gain.low_x < gain.x + gain.width < gain.high_x
    assert loss.x + loss.width == chart.zero_x and loss.x >= LABEL_WIDTH and loss.low_x is None
    assert unknown.width == 0 and unknown.text == "-"
    assert gain.text == "10.00 [8.00, 12.00]" and [b.y for b in chart.bars] == sorted(b.y for b in chart.bars)


def test_a_week_without_a_figure_has_no_point_and_thresholds_join_the_weeks_that_have_one():
    weeks = [date(2024, 1, 1) + timedelta(weeks=k) for k in range(3)]
    chart = week_chart(weeks, [Series("drift", [0.1, None, 0.5], statuses=["ok", "ok", "fail"])], [[0.3, 0.3, None]])
    (name, points), (line,) = chart.series[0], chart.limits
    assert name == "drift" and [p.status for p in points] == ["ok", "fail"]
    assert points[0].y > points[1].y  # larger is higher up
    assert len(line.split()) == 2 and points[1].text == "2024-01-15 drift: 0.50"
    assert [text for _, text in chart.weeks] == ["2024-01-01", "2024-01-08", "2024-01-15"]
