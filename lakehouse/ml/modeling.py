"""Model pipelines: the same Spark ML pipeline trains, evaluates, is logged to MLflow and scores.

A pipeline takes raw gold feature columns and ends with `predicted_units` (units, never negative), so
whoever loads it from the registry needs no feature code of their own. The estimator is configuration:
`xgboost.spark` (distributed XGBoost) or Spark MLlib's GBTRegressor.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import UsageError
from lakehouse.ml.model_inputs import CATEGORICAL_FEATURES, KEYS, LABEL, NUMERIC_FEATURES, PROMO_FEATURES

PREDICTION = "predicted_units"
# The pipeline's own output column; MLflow's Spark flavour (pyfunc, spark_udf) returns the column named so.
MODEL_OUTPUT = "prediction"
LOG_LABEL = "log_units"
# MLlib trees do not take missing values; they get a value no feature reaches.
MISSING_SENTINEL = -1e9


def with_log_label(df: DataFrame) -> DataFrame:
    """The training target: log(1 + units); multiplicative drivers become additive."""
    return df.withColumn(LOG_LABEL, F.log1p(F.col(LABEL).cast("double")))


def usable_numeric(train_df: DataFrame, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """Numeric features present in the data with at least one value (one aggregation)."""
    present = [c for c in candidates if c in train_df.columns]
    counts = train_df.agg(*[F.count(c).alias(c) for c in present]).first()
    assert counts is not None
    return tuple(c for c in present if counts[c] > 0)


# Derived in the pipeline (so a what-if price change moves them too): the price against the product's own
# recent price at the outlet, which is what makes a temporary discount visible to the model.
DERIVED = {
    "price_vs_recent": "try_divide(unit_price, price_mean_4w)",
    "log_price_vs_recent": "LN(try_divide(unit_price, price_mean_4w))",
}


def _vector_columns(numeric: tuple[str, ...], estimator: str) -> tuple[SQLTransformer, list[str]]:
    """Cast booleans to doubles, derive relative prices (and fill missing values for MLlib) in one SQL stage."""
    sources = {**{c: f"CAST({c} AS DOUBLE)" for c in (*PROMO_FEATURES, *numeric)}, **DERIVED}
    fill = estimator == "mllib_gbt"
    exprs = [f"COALESCE({e}, {MISSING_SENTINEL}) AS f_{c}" if fill else f"{e} AS f_{c}" for c, e in sources.items()]
    stage = SQLTransformer(statement=f"SELECT *, {', '.join(exprs)} FROM __THIS__")
    return stage, [f"f_{c}" for c in sources]


def feature_names(numeric: tuple[str, ...]) -> list[str]:
    """The model's features, in order (for feature importance)."""
    return [*PROMO_FEATURES, *numeric, *DERIVED, *CATEGORICAL_FEATURES]


def feature_columns(numeric: tuple[str, ...]) -> list[str]:
    """The pipeline's numeric columns the estimator reads, in the order of `feature_names`."""
    return [*(f"f_{c}" for c in (*PROMO_FEATURES, *numeric, *DERIVED)), *(f"f_{c}_code" for c in CATEGORICAL_FEATURES)]


def monotone_constraints(monotone: dict[str, int], numeric: tuple[str, ...]) -> str:
    """xgboost's constraint string, one sign per feature in `feature_names` order (0: unconstrained).

    A key that is no model feature is an error; one the run dropped (no values) is skipped.
    """
    known = {*PROMO_FEATURES, *NUMERIC_FEATURES, *DERIVED, *CATEGORICAL_FEATURES}
    unknown = sorted(set(monotone) - known)
    if unknown:
        raise UsageError(f"training.monotone names no model feature: {', '.join(unknown)}")
    return "(" + ",".join(str(int(monotone.get(name, 0))) for name in feature_names(numeric)) + ")"


def _estimator_stages(name: str, params: dict[str, Any], num_workers: int, inputs: list[str]) -> list[Any]:
    """The estimator on the feature columns (MLlib needs them assembled into one vector first)."""
    if name == "xgboost":
        from xgboost.spark import SparkXGBRegressor  # imported here: it pulls in xgboost and sklearn

        # xgboost.spark logs every fit and every predicted partition at INFO; its workers take the
        # driver's level for this logger.
        logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)

        # The feature columns as they are, not one vector: its pandas UDF then gets plain float columns
        # through Arrow instead of an array object per row (measured: scoring 800k rows 13.2 s -> see
        # bench/RESULTS.md).
        xgb = SparkXGBRegressor(
            features_col=inputs,
            label_col=LOG_LABEL,
            prediction_col="log_prediction",
            num_workers=num_workers,
            missing=float("nan"),
            verbose=False,
            **params,
        )
        return [xgb]
    assembler = VectorAssembler(inputCols=inputs, outputCol="features", handleInvalid="keep")
    gbt = GBTRegressor(featuresCol="features", labelCol=LOG_LABEL, predictionCol="log_prediction", **params)
    return [assembler, gbt]


def build_pipeline(
    estimator: str,
    params: dict[str, Any],
    numeric: tuple[str, ...],
    num_workers: int,
    monotone: dict[str, int] | None = None,
) -> Pipeline:
    """Raw gold columns -> numeric feature columns (`feature_columns`) -> estimator -> `predicted_units`.

    `monotone` (feature -> -1, 0, 1) constrains xgboost's response to those features.
    """
    if monotone and estimator == "xgboost":
        params = {**params, "monotone_constraints": monotone_constraints(monotone, numeric)}
    cast_stage, vector_inputs = _vector_columns(numeric, estimator)
    indexer = StringIndexer(
        inputCols=list(CATEGORICAL_FEATURES),
        outputCols=[f"f_{c}_idx" for c in CATEGORICAL_FEATURES],
        handleInvalid="keep",
        stringOrderType="alphabetAsc",  # stable indices whatever the row order
    )
    # Category indices as plain numbers: without the indexer's nominal metadata, MLlib trees do not
    # need maxBins >= the number of products (and xgboost never reads that metadata).
    codes = SQLTransformer(
        statement="SELECT *, "
        + ", ".join(f"CAST(f_{c}_idx AS DOUBLE) AS f_{c}_code" for c in CATEGORICAL_FEATURES)
        + " FROM __THIS__"
    )
    inputs = [*vector_inputs, *[f"f_{c}_code" for c in CATEGORICAL_FEATURES]]
    assert inputs == feature_columns(numeric)
    stages = [cast_stage, indexer, codes, *_estimator_stages(estimator, params, num_workers, inputs), _to_units(1.0)]
    return Pipeline(stages=stages)


def _to_units(smearing: float) -> SQLTransformer:
    return SQLTransformer(
        statement=f"SELECT *, GREATEST(EXP(log_prediction) * {smearing!r} - 1.0, 0.0) AS {MODEL_OUTPUT} FROM __THIS__"
    )


def fit(pipeline: Pipeline, train_df: DataFrame) -> PipelineModel:
    """Fit, then correct the back-transformation from log units with Duan's smearing factor.

    exp(predicted log units) estimates the median, not the mean: with log residuals of spread s it
    under-forecasts units by about exp(s^2 / 2) (-10% bias on Dominick's). The factor is the mean of
    exp(residual) over the training rows (Duan 1983), so the forecast's units sum to what sold.
    """
    labelled = _in_stable_order(pipeline, with_log_label(train_df))
    model = pipeline.fit(labelled)
    residual = F.exp(F.col(LOG_LABEL) - F.col("log_prediction"))
    (smearing,) = model.transform(labelled).agg(F.avg(residual)).collect()[0]
    return PipelineModel(stages=[*model.stages[:-1], _to_units(float(smearing))])


def _in_stable_order(pipeline: Pipeline, df: DataFrame) -> DataFrame:
    """For xgboost.spark: the rows in `num_workers` partitions by key, each sorted, so a fit sees the same rows
    in the same order on any master. Otherwise it repartitions them itself, in the order the shuffle blocks
    arrive, which differs between a cluster and local mode; with row subsampling the models then differ."""
    workers = [s.getOrDefault("num_workers") for s in pipeline.getStages() if s.hasParam("num_workers")]
    if not workers:
        return df
    keys = [c for c in KEYS if c in df.columns]
    return df.repartition(workers[0], *keys).sortWithinPartitions(*keys)


def predict(model: PipelineModel, df: DataFrame) -> DataFrame:
    """The input rows plus `predicted_units` (the pipeline's working columns are dropped)."""
    return model.transform(df).select(*df.columns, F.col(MODEL_OUTPUT).alias(PREDICTION))


def feature_importance(model: PipelineModel, numeric: tuple[str, ...]) -> dict[str, float]:
    """Gain-based importance by feature name, normalised to sum to 1."""
    fitted: Any = model.stages[-2]  # the estimator's model, before the units stage
    names = feature_names(numeric)
    if hasattr(fitted, "get_booster"):
        raw = fitted.get_booster().get_score(importance_type="total_gain")
        by_column = dict(zip(feature_columns(numeric), names, strict=True))
        # Keys are the column names when xgboost knows them, else f<position>.
        scores = {by_column.get(k) or names[int(k[1:])]: float(v) for k, v in raw.items()}
    else:
        scores = {name: float(v) for name, v in zip(names, fitted.featureImportances.toArray(), strict=True)}
    total = sum(scores.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in scores.items()), key=lambda kv: -kv[1]))


# Baselines: what a forecaster would try first. The main model must beat them on the holdout.


def with_naive_predictions(df: DataFrame, fallback: float) -> DataFrame:
    """`pred_last_week` (units a week earlier) and `pred_last_year` (52 weeks earlier), each falling
    back to the 4-week mean and then to the training mean when the history is missing."""
    recent = F.coalesce(F.col("units_mean_4w"), F.lit(fallback))
    return df.withColumn("pred_last_week", F.coalesce(F.col("units_lag_1"), recent)).withColumn(
        "pred_last_year", F.coalesce(F.col("units_lag_52"), F.col("units_lag_1"), recent)
    )


def build_elasticity_pipeline() -> Pipeline:
    """Log-log demand: log(1+units) ~ log price + promotions + log recent level + product fixed effects."""
    prep = SQLTransformer(
        statement="SELECT *, CAST(is_on_deal AS DOUBLE) AS e_deal, CAST(is_featured AS DOUBLE) AS e_feature, "
        "CAST(has_display AS DOUBLE) AS e_display, LN(1 + COALESCE(units_mean_4w, units_lag_1, 0)) AS e_level "
        "FROM __THIS__"
    )
    indexer = StringIndexer(inputCol="product_id", outputCol="e_product_idx", handleInvalid="keep")
    onehot = OneHotEncoder(inputCol="e_product_idx", outputCol="e_product_vec", handleInvalid="keep")
    assembler = VectorAssembler(
        inputCols=["log_price", "e_deal", "e_feature", "e_display", "e_level", "e_product_vec"],
        outputCol="e_features",
    )
    regression = LinearRegression(
        featuresCol="e_features", labelCol=LOG_LABEL, predictionCol="e_log_prediction", regParam=1e-4
    )
    to_units = SQLTransformer(
        statement="SELECT *, GREATEST(EXP(e_log_prediction) - 1.0, 0.0) AS pred_elasticity FROM __THIS__"
    )
    return Pipeline(stages=[prep, indexer, onehot, assembler, regression, to_units])


def elasticity_coefficients(model: PipelineModel) -> dict[str, float]:
    """The log-log model's own-price elasticity and promotion coefficients (log scale)."""
    regression: Any = model.stages[-2]  # the regression, before the units stage
    coef = regression.coefficients.toArray()
    return {
        "price_elasticity": float(coef[0]),
        "deal": float(coef[1]),
        "feature": float(coef[2]),
        "display": float(coef[3]),
    }
