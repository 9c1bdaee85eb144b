"""The serving flavour: a fitted Spark pipeline's own stages, run on a pandas frame without a Spark session.

`stages_of` reads what each fitted stage does from its parameters (a SQL transformer's statement, a string
indexer's labels, xgboost's feature columns and booster) into a plain description; `run_stages` applies
it to pandas rows in the pipeline's order. Nothing here knows a feature: a stage this module cannot read
is an error when the flavour is built (`UnsupportedStage`), so the flavour never guesses. The parity
check at registration (`lakehouse.ml.parity`) proves it scores as the Spark model does.

The SQL transformers' statements use a handful of Spark SQL forms (`SELECT *, <expr> AS <name>, ... FROM
__THIS__` with CAST .. AS DOUBLE, try_divide, LN, EXP, COALESCE, GREATEST, + - * and number literals);
`sql_columns` parses them and `evaluate` gives them Spark's meaning on float64 columns (null = NaN):
LN of a number <= 0 and a division by zero are null, COALESCE takes the first non-null, GREATEST skips nulls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STAGES_FILE, BOOSTER_FILE = "stages.json", "booster.ubj"
_TOKEN = re.compile(r"\s*(?:(\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)|(\w+)|(\S))")


class UnsupportedStage(ValueError):
    """A fitted stage the serving flavour cannot run (so the model gets no serving flavour)."""


def _tokens(sql: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(sql.rstrip()):
        match = _TOKEN.match(sql, pos)
        if match is None:
            raise UnsupportedStage(f"cannot read SQL near {sql[pos:]!r}")
        tokens.append(match.group(match.lastindex or 0))
        pos = match.end()
    return tokens


class _Parser:
    """Expressions as nested lists: ["num", 1.0], ["col", name], ["cast", expr], ["call", name, args], [op, a, b]."""

    def __init__(self, sql: str) -> None:
        self.tokens, self.pos = _tokens(sql), 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise UnsupportedStage(f"expected {expected or 'more'} at {' '.join(self.tokens[self.pos :])!r}")
        self.pos += 1
        return token

    def expression(self) -> list:
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            left = [op, left, self.term()]
        return left

    def term(self) -> list:
        left = self.atom()
        while self.peek() == "*":
            left = [self.take(), left, self.atom()]
        return left

    def atom(self) -> list:
        token = self.take()
        if token == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if token == "-":  # a negative literal, e.g. the missing-value sentinel
            return ["-", ["num", 0.0], self.atom()]
        if token[0].isdigit():
            return ["num", float(token)]
        if self.peek() != "(":
            return ["col", token]
        self.take("(")
        if token.upper() == "CAST":
            inner = self.expression()
            self.take("AS")
            self.take("DOUBLE")
            self.take(")")
            return ["cast", inner]
        args = [self.expression()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.expression())
        self.take(")")
        if token.upper() not in _FUNCTIONS:
            raise UnsupportedStage(f"SQL function {token} is not supported by the serving flavour")
        return ["call", token.upper(), args]


@lru_cache(maxsize=64)  # a served model's few statements, parsed once rather than per request
def sql_columns(statement: str) -> tuple[tuple[str, list], ...]:
    """The (name, expression) pairs a `SELECT *, <expr> AS <name>, ... FROM __THIS__` statement adds."""
    parser = _Parser(statement)
    parser.take("SELECT")
    parser.take("*")
    columns = []
    while parser.peek() == ",":
        parser.take(",")
        expression = parser.expression()
        parser.take("AS")
        columns.append((parser.take(), expression))
    parser.take("FROM")
    parser.take("__THIS__")
    if parser.peek() is not None:
        raise UnsupportedStage(f"unexpected {parser.peek()!r} after FROM __THIS__ in {statement!r}")
    return tuple(columns)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.nan, a / np.where(b == 0, 1.0, b))


def _ln(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


def _coalesce(*args: np.ndarray) -> np.ndarray:
    out = args[0]
    for arg in args[1:]:
        out = np.where(np.isnan(out), arg, out)
    return out


def _greatest(*args: np.ndarray) -> np.ndarray:
    out = args[0]
    for arg in args[1:]:
        out = np.fmax(out, arg)
    return out


_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "TRY_DIVIDE": _divide,
    "LN": _ln,
    "EXP": np.exp,
    "COALESCE": _coalesce,
    "GREATEST": _greatest,
}
_OPERATORS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
}


def as_float(values: Any) -> np.ndarray:
    """A column as float64, null as NaN (booleans 1.0 / 0.0: Spark's CAST .. AS DOUBLE)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values  # a stage's output
    if isinstance(values, np.ndarray) and values.dtype.kind in "biu":
        return values.astype("float64")
    if isinstance(values, pd.Series) and values.dtype.kind in "biuf":
        return values.to_numpy(dtype="float64", na_value=np.nan)  # what to_numeric would give, without its checks
    return pd.to_numeric(values, errors="raise").astype("float64").to_numpy(na_value=np.nan)


def evaluate(expression: list, frame: Any) -> np.ndarray:
    """One parsed expression over the frame's rows (a DataFrame, or `Columns`), as float64 (NaN for null)."""
    kind = expression[0]
    if kind == "num":
        return np.full(len(frame), expression[1])
    if kind == "col":
        return as_float(frame[expression[1]])
    if kind == "cast":
        return evaluate(expression[1], frame)
    if kind == "call":
        return _FUNCTIONS[expression[1]](*(evaluate(arg, frame) for arg in expression[2]))
    return _OPERATORS[kind](evaluate(expression[1], frame), evaluate(expression[2], frame))


def stages_of(model: Any) -> tuple[list[dict], Any]:
    """The fitted pipeline's stages as data, and its xgboost booster (UnsupportedStage for any other stage)."""
    stages: list[dict] = []
    booster = None
    for stage in model.stages:
        kind = type(stage).__name__
        if kind == "SQLTransformer":
            statement = stage.getStatement()
            sql_columns(statement)  # readable, or no flavour
            stages.append({"kind": "sql", "statement": statement})
        elif kind == "StringIndexerModel":
            inputs = stage.getInputCols() if stage.isSet("inputCols") else [stage.getInputCol()]
            outputs = stage.getOutputCols() if stage.isSet("outputCols") else [stage.getOutputCol()]
            if stage.getHandleInvalid() != "keep":
                raise UnsupportedStage(f"StringIndexer handleInvalid={stage.getHandleInvalid()} (only keep)")
            stages.append({"kind": "index", "inputs": inputs, "outputs": outputs, "labels": stage.labelsArray})
        elif hasattr(stage, "get_booster") and booster is None:
            features = stage.getOrDefault("features_cols")
            if not features:
                raise UnsupportedStage("xgboost model without features_cols (one vector column)")
            booster = stage.get_booster()
            stages.append(
                {
                    "kind": "xgboost",
                    "features": list(features),
                    "output": stage.getOrDefault("predictionCol"),
                    "missing": stage.getOrDefault("missing"),
                }
            )
        else:
            raise UnsupportedStage(f"{kind} has no serving implementation")
    if booster is None:
        raise UnsupportedStage("the pipeline has no xgboost model")
    return stages, booster


def save(stages: list[dict], booster: Any, folder: Path) -> dict[str, str]:
    """Write the stages and the booster under `folder`; the artifact paths for the pyfunc model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAGES_FILE).write_text(json.dumps(stages, indent=1))
    booster.save_model(str(folder / BOOSTER_FILE))
    return {"stages": str(folder / STAGES_FILE), "booster": str(folder / BOOSTER_FILE)}


def load_regressor(path: str, missing: float) -> Any:
    """The booster as the sklearn regressor xgboost.spark predicts with (same `missing`)."""
    import xgboost

    # One thread: a served request predicts two rows, and on a busy machine starting and joining OpenMP's threads
    # cost more than the trees (19 ms against under 1 ms per what-if, bench/RESULTS.md); the predictions are the same.
    regressor = xgboost.XGBRegressor(missing=missing, n_jobs=1)
    regressor.load_model(path)
    return regressor


class Columns:
    """The rows' columns and the stages' outputs by name: the stages add arrays here rather than each copy a frame,
    and a numeric or boolean input column is read as float64 once, however many expressions read it.

    The rows are a pandas frame (what the pyfunc is given) or a mapping of column name to a numpy array per
    column (what the service builds for a what-if's two rows, without pandas' cost per column)."""

    def __init__(self, rows: Mapping[str, Any]) -> None:
        self.rows, self.added, self.floats = rows, dict[str, np.ndarray](), dict[str, np.ndarray]()
        self.length = len(rows) if isinstance(rows, pd.DataFrame) else len(next(iter(rows.values()), ()))

    def __getitem__(self, name: str) -> Any:
        if name in self.added:
            return self.added[name]
        column = self.rows[name]
        if column.dtype.kind not in "biuf":
            return column  # strings for the indexer (and object columns, converted where read)
        if name not in self.floats:
            self.floats[name] = as_float(column)
        return self.floats[name]

    def __len__(self) -> int:
        return self.length


def _indices(values: Any, labels: list[str]) -> np.ndarray:
    """A string indexer's output: each value's position in the fitted labels, unseen values and nulls the next."""
    index = {label: float(i) for i, label in enumerate(labels)}
    return np.fromiter((index.get(v, float(len(index))) for v in values), dtype="float64", count=len(values))


def stage_outputs(stages: list[dict], regressor: Any, rows: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every stage's output columns for the rows, as float64 arrays, computed in the pipeline's order."""
    frame = Columns(rows)
    for stage in stages:
        if stage["kind"] == "sql":
            frame.added.update(
                {name: evaluate(expression, frame) for name, expression in sql_columns(stage["statement"])}
            )
        elif stage["kind"] == "index":
            for column, output, labels in zip(stage["inputs"], stage["outputs"], stage["labels"], strict=True):
                frame.added[output] = _indices(frame[column], labels)
        else:
            features = np.column_stack([as_float(frame[c]) for c in stage["features"]])
            frame.added[stage["output"]] = regressor.predict(features, validate_features=False).astype("float64")
    return frame.added


def run_stages(stages: list[dict], regressor: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with every stage's output columns added, in the pipeline's order."""
    return rows.assign(**stage_outputs(stages, regressor, rows))


def json_stages(path: str) -> list[dict]:
    """The stages `save` wrote."""
    return json.loads(Path(path).read_text())


def output_column(stages: list[dict]) -> str:
    """The pipeline's output: the last column its last stage adds (`prediction`, predicted units)."""
    last = stages[-1]
    if last["kind"] == "sql":
        return sql_columns(last["statement"])[-1][0]
    return last["outputs"][-1] if last["kind"] == "index" else last["output"]


def predict(stages: list[dict], regressor: Any, rows: pd.DataFrame) -> pd.Series:
    """The pipeline's output column for the rows, in their order."""
    output = output_column(stages)
    return pd.Series(stage_outputs(stages, regressor, rows)[output], index=rows.index, name=output)


def predict_columns(stages: list[dict], regressor: Any, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """`predict` on rows given as one numpy array per column (a few rows: no frame to build)."""
    return stage_outputs(stages, regressor, columns)[output_column(stages)]
