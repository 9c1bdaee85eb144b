"""A week's rows are written only when they changed: a re-run for the same period adds no Delta version."""

from __future__ import annotations

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import rows_to_df
from lakehouse.io import delta_io
from lakehouse.io.catalog import CONSERVATION
from tests.unit.contracts.test_shape import ROW


def test_write_if_changed_writes_a_new_version_only_for_new_rows(spark, settings):
    contract = load_contract(CONSERVATION.contract)
    week = "week_start = '2026-01-05'"
    first = rows_to_df(spark, contract, [ROW])
    assert delta_io.write_if_changed(first, CONSERVATION, settings, week)
    version = delta_io.version(spark, CONSERVATION, settings)
    assert not delta_io.write_if_changed(first, CONSERVATION, settings, week)
    other_source = rows_to_df(spark, contract, [{**ROW, "source": "b2"}])
    assert not delta_io.write_if_changed(other_source, CONSERVATION, settings, week, ignore=("source",))
    assert delta_io.version(spark, CONSERVATION, settings) == version
    assert delta_io.write_if_changed(other_source, CONSERVATION, settings, week)
    assert delta_io.version(spark, CONSERVATION, settings) == version + 1
    assert [r.source for r in delta_io.read(spark, CONSERVATION, settings).collect()] == ["b2"]
