"""The API's response bodies (its OpenAPI schema): the contracts' columns the service serves, and errors."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, model_validator


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


class WhatIfRequest(BaseModel):
    """An outlet x product of the served week and a proposal; a field left out stays as planned."""

    model_config = {"extra": "forbid"}

    outlet_id: str = Field(min_length=1)
    product_id: str = Field(min_length=1, description="The product, as the recommendations name it.")
    week: date | None = Field(None, description="Any day of the served week (default: that week).")
    unit_price: float | None = Field(None, gt=0, description="Proposed price per unit.")
    price_change: float | None = Field(
        None, gt=-1, description="Or a relative price change (-0.1 = 10% cut); not both."
    )
    deal: bool | None = None
    feature: bool | None = Field(None, description="A feature ad.")
    display: bool | None = None

    @model_validator(mode="after")
    def one_price(self) -> WhatIfRequest:
        if self.unit_price is not None and self.price_change is not None:
            raise ValueError("give unit_price or price_change, not both")
        return self


class WhatIfInterval(BaseModel):
    """The lift of the champion's causal effects for the proposal, with its interval (as recommendations)."""

    basis: str = Field(description="effects: gold_effects (double ML, delta method), as in gold_recommendations.")
    available: bool
    reason: str | None = Field(None, description="Why there is no interval (the effects do not cover it).")
    confidence: float | None = None
    lift_pct: float | None = Field(None, description="The effects' lift in percent (their point estimate).")
    lift_pct_low: float | None = None
    lift_pct_high: float | None = None
    lift_units_low: float | None = Field(None, description="planned_units x (exp(low log lift) - 1).")
    lift_units_high: float | None = None
    explanation: str | None = None


class WhatIfAnswer(BaseModel):
    outlet_id: str
    product_id: str
    brand: str | None
    week: date
    model_version: str
    planned_unit_price: float
    unit_price: float
    is_on_deal: bool
    is_featured: bool
    has_display: bool
    planned_units: float = Field(description="The champion's forecast as planned (equals the batch forecast).")
    predicted_units: float = Field(description="The champion's forecast under the proposal.")
    lift_units: float = Field(description="predicted_units - planned_units.")
    lift_pct: float | None = Field(description="lift_units in percent of planned_units (null when it is 0).")
    interval: WhatIfInterval
