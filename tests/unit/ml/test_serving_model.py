"""The serving flavour's reading of the pipeline's SQL stages: Spark's own answers on the same rows, nulls and edges."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pyspark.ml.feature import SQLTransformer

from lakehouse.ml import modeling, serving_model
from lakehouse.ml.model_inputs import NUMERIC_FEATURES

ROWS = [  # unit_price, price_mean_4w, is_on_deal, log_prediction
    (2.0, 2.5, True, 1.3),
    (2.0, None, False, 0.0),  # no recent price: the ratios are null
    (2.0, 0.0, False, -3.0),  # a zero mean: try_divide is null, and the units clip at 0
    (None, 1.0, None, 2.0),
    (-1.0, 2.0, True, 0.5),  # LN of a negative ratio is null
]
COLUMNS = ["unit_price", "price_mean_4w", "is_on_deal", "log_prediction"]


def _statement(stage: str) -> str:
    """A statement of the pipeline's (built in the test: a SQLTransformer needs the Spark session)."""
    if stage == "units":
        return modeling._to_units(1.0123456789012345).getStatement()
    numeric = tuple(c for c in NUMERIC_FEATURES if c in ("unit_price", "price_mean_4w"))
    return modeling._vector_columns(numeric, stage)[0].getStatement()


@pytest.mark.parametrize("stage", ["xgboost", "mllib_gbt", "units"])
def test_every_column_a_pipeline_statement_adds_is_what_spark_computes(spark, stage):
    statement = _statement(stage)
    df = spark.createDataFrame(
        ROWS, "unit_price double, price_mean_4w double, is_on_deal boolean, log_prediction double"
    ).selectExpr("*", "is_on_deal AS is_featured", "is_on_deal AS has_display")
    frame = pd.DataFrame([r.asDict() for r in df.collect()])
    expected = SQLTransformer(statement=statement).transform(df)  # the pipeline's stage itself
    columns = serving_model.sql_columns(statement)
    assert columns and all(name in expected.columns for name, _ in columns)
    spark_rows = expected.collect()
    for name, expression in columns:
        ours = serving_model.evaluate(expression, frame)
        theirs = [r[name] for r in spark_rows]
        for a, b in zip(ours, theirs, strict=True):
            assert (math.isnan(a) and b is None) or a == pytest.approx(b, rel=1e-15), (name, a, b)


def test_a_statement_it_cannot_read_is_refused_rather_than_guessed():
    with pytest.raises(serving_model.UnsupportedStage, match="SQL function SQRT"):
        serving_model.sql_columns("SELECT *, SQRT(units) AS f_units FROM __THIS__")
    with pytest.raises(serving_model.UnsupportedStage):
        serving_model.sql_columns("SELECT *, units AS f_units FROM __THIS__ WHERE units > 0")


def test_string_indices_follow_the_fitted_labels_and_unseen_or_null_values_get_the_extra_index():
    stages = [{"kind": "index", "inputs": ["brand"], "outputs": ["f_brand_idx"], "labels": [["a", "b"]]}]
    frame = serving_model.run_stages(stages, None, pd.DataFrame({"brand": ["b", "a", "new", None]}))
    assert frame["f_brand_idx"].tolist() == [1.0, 0.0, 2.0, 2.0]
