"""The API's response bodies (its OpenAPI schema): the contracts' columns the service serves, and errors."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """Every error: the status again, its name, and what went wrong in words (422s add the fields at fault)."""

    status: int
    error: str
    message: str
    details: list[dict] | None = None


class Recommendation(BaseModel):
    """One outlet x product's action for the week (gold_recommendations; the contract describes each column)."""

    outlet_id: str
    product_id: str
    week_start: date
    brand: str | None
    channel: str | None = Field(description="The outlet's channel (silver_outlets).")
    action: str
    price_change: float
    planned_unit_price: float
    unit_price: float
    planned_units: float
    predicted_units: float
    lift_units: float
    lift_pct: float | None
    lift_pct_low: float | None
    lift_pct_high: float | None
    net_lift_units: float | None
    net_lift_units_low: float | None
    net_lift_units_high: float | None
    incremental_margin: float | None
    margin_basis: str
    reason: str
    explanation: str | None
    runner_up: str | None
    runner_up_reason: str | None
    in_holdout: bool
    model_version: str


class OutletRecommendations(BaseModel):
    outlet_id: str
    week: date
    items: list[Recommendation] = Field(description="Largest net lift first.")


class RecommendationPage(BaseModel):
    week: date
    total: int = Field(description="Rows matching the filters (at most `top`).")
    offset: int
    limit: int
    next: str | None = Field(description="The next page's path and query (pinned to this week), or null.")
    items: list[Recommendation] = Field(description="Largest net lift first; ties by outlet, then product.")


class Effect(BaseModel):
    """One effect of the champion's (gold_effects): an estimate with its interval, or why there is none."""

    method: str
    brand: str
    segment: str
    effect: str
    estimate: float | None
    std_error: float | None
    ci_low: float | None
    ci_high: float | None
    lift_pct: float | None
    lift_pct_low: float | None
    lift_pct_high: float | None
    confidence: float
    rows: int
    treated_share: float | None
    status: str
    identified_by: str


class Effects(BaseModel):
    model_name: str
    model_version: str
    items: list[Effect]


class Lift(BaseModel):
    """A measured week's lift, treated vs holdout outlets (gold_lift), beside what was promised."""

    week_start: date
    experiment: str
    brand: str
    method: str
    treated_outlets: int
    holdout_outlets: int
    treated_mean: float
    holdout_mean: float
    theta: float
    lift_units: float | None
    ci_low: float | None
    ci_high: float | None
    lift_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    mde_units: float | None
    mde_pct: float | None
    predicted_lift_units: float | None
    predicted_low: float | None
    predicted_high: float | None
    promise_kept: bool | None
    confidence: float
    pre_weeks: int
    model_version: str


class Lifts(BaseModel):
    items: list[Lift] = Field(description="By week, experiment, brand.")


class ChampionModel(BaseModel):
    name: str
    version: str
    run_id: str
    registered_at: datetime
    served_week: date = Field(description="The scored week the service holds.")
    loaded_at: datetime = Field(description="When the service read the tables and the registry.")


class Status(BaseModel):
    status: str
    week: date | None = None
    champion: str | None = None
