"""An action's expected lift from the estimated effects (gold_effects), with its interval.

The effects are log-linear (`lakehouse.ml.effects`): an action that changes the log price by `d` and
switches on promotions F changes log units by

    L = own_price * d + sum of the effects in F,

and its interval comes from the delta method with the covariances of the estimates (one regression per
brand and segment): var(L) = d^2 var(own) + 2 d sum cov(own, f) + sum over f, g of cov(f, g). Lift in
percent is 100 (exp(L) - 1), in units the as-planned forecast times exp(L) - 1; the interval maps the
same way. It carries the effects' uncertainty, not the forecast's.

Each outlet takes the narrowest segment it belongs to (fewest rows) whose regression estimated every
effect the action needs, else no offer. Net of the rival brands at the same outlet (their cross-price
elasticities to this brand's price, times their planned units) and of next week's post-promotion dip.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse.policy import Action

ALL = "ALL"
OWN_PRICE = "own_price"
DIP = "post_promotion_dip"
CROSS_PREFIX = "cross_price:"
FLAGS = (("deal", "deal"), ("feature", "feature"), ("display", "display"))  # (Action field, effect name)
ESTIMATED = "estimated"


@dataclass(frozen=True)
class Estimate:
    value: float
    variance: float
    low: float
    high: float
    covariances: Mapping[str, float]


@dataclass(frozen=True)
class Terms:
    """What an action does to an item's log units: L = own * d + flags; var(L) = v2 d^2 + v1 d + v0."""

    segment: str
    own: float
    flags: float
    v2: float
    v1: float
    v0: float
    dip: float
    dip_variance: float
    text: str


@dataclass
class EffectBook:
    """The double-ML effects of one model version: brand -> segment -> effect -> estimate."""

    model_version: str
    estimates: dict[str, dict[str, dict[str, Estimate]]] = field(default_factory=dict)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    splits: dict[str, float | None] = field(default_factory=dict)  # segment column -> median (None: categorical)
    values: dict[str, set[str]] = field(default_factory=dict)  # segment column -> its segments
    # (brand, promotion state) -> the back-test's realised lift in percent: (mean, low, high), from gold_backtest
    realised: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)

    def with_backtest(self, backtest_rows: Iterable[Mapping[str, Any]]) -> EffectBook:
        """The book with the back-test's realised lifts per brand and promotion (cells with an interval)."""
        for r in backtest_rows:
            if r["brand"] != ALL and r["action"] != ALL and r.get("realised_pct_high") is not None:
                self.realised[r["brand"], r["action"]] = (
                    r["realised_pct"],
                    r["realised_pct_low"],
                    r["realised_pct_high"],
                )
        return self

    def realised_text(self, brand: str, state: str) -> str | None:
        got = self.realised.get((brand, state))
        if got is None:
            return None
        return f"the back-test realised {got[0]:+.1f}% [{got[1]:+.1f}%, {got[2]:+.1f}%] for {brand} {state}"

    @classmethod
    def of(cls, model_version: str, effect_rows: Iterable[Mapping[str, Any]]) -> EffectBook:
        book = cls(model_version)
        for r in effect_rows:
            if r["method"] != "dml":
                continue
            book.rows[r["brand"], r["segment"]] = int(r["rows"])
            if r["segment"] != ALL:
                column = r["segment"].split("=")[0].split(":")[0]
                book.values.setdefault(column, set()).add(r["segment"])
                book.splits[column] = r.get("segment_split")
            if r["status"] == ESTIMATED and r["estimate"] is not None:
                estimate = Estimate(
                    float(r["estimate"]),
                    float(r["std_error"]) ** 2,
                    float(r["ci_low"]),
                    float(r["ci_high"]),
                    dict(r.get("covariances") or {}),
                )
                book.estimates.setdefault(r["brand"], {}).setdefault(r["segment"], {})[r["effect"]] = estimate
        return book

    def segment_keys(self) -> list[tuple[str, ...]]:
        """Every combination of segments an outlet can belong to (a column may be missing: null attribute)."""
        options = [[None, *sorted(self.values[c])] for c in sorted(self.values)]
        return [(ALL, *[s for s in combo if s]) for combo in itertools.product(*options)]

    def _narrowest(self, brand: str, segments: tuple[str, ...], needed: list[str]) -> str | None:
        """The outlet's segment with the fewest rows whose regression estimated every needed effect."""
        have = self.estimates.get(brand, {})
        fits = [s for s in segments if s in have and all(e in have[s] for e in needed)]
        return min(fits, key=lambda s: (self.rows.get((brand, s), 0), s)) if fits else None

    def terms(self, brand: str, segments: tuple[str, ...], action: Action, price_moves: bool) -> Terms | str:
        """The action's terms for the brand at an outlet in `segments`, or why it cannot be offered."""
        flags = [effect for attr, effect in FLAGS if getattr(action, attr)]
        needed = [*([OWN_PRICE] if price_moves else []), *flags]
        if not needed:
            return "changes nothing"
        if not self.rows:
            return f"no effects estimated for model version {self.model_version}: run `lakehouse effects`"
        segment = self._narrowest(brand, segments, needed)
        if segment is None:
            missing = [e for e in needed if not any(e in self.estimates.get(brand, {}).get(s, {}) for s in segments)]
            what = ", ".join(missing) if missing else " and ".join(needed) + " in one segment"
            return f"no estimated effect of {what} for {brand}: unsupported in the training data"
        got = self.estimates[brand][segment]
        own = got[OWN_PRICE] if price_moves else None

        def cov(a: str, b: str) -> float:
            return got[a].variance if a == b else got[a].covariances.get(b, 0.0)

        dip = got.get(DIP) if (action.deal or action.feature) else None
        parts = [f"{e.replace('_', ' ')} {got[e].value:+.2f} [{got[e].low:+.2f}, {got[e].high:+.2f}]" for e in needed]
        return Terms(
            segment=segment,
            own=own.value if own else 0.0,
            flags=float(sum(got[f].value for f in flags)),
            v2=own.variance if own else 0.0,
            v1=2.0 * sum(cov(OWN_PRICE, f) for f in flags) if own else 0.0,
            v0=float(sum(cov(f, g) for f in flags for g in flags)),
            dip=dip.value if dip else 0.0,
            dip_variance=dip.variance if dip else 0.0,
            text="; ".join(parts) + f" (double ML, {segment}, model version {self.model_version})",
        )

    def cross(self, rival: str, segments: tuple[str, ...], brand: str) -> Estimate | None:
        """The rival's elasticity to `brand`'s price at an outlet in `segments` (narrowest estimated)."""
        effect = CROSS_PREFIX + brand
        segment = self._narrowest(rival, segments, [effect])
        return self.estimates[rival][segment][effect] if segment else None


def lift(terms: Terms, d: float, z: float) -> tuple[float, float, float]:
    """(L, low, high) in log units for a log price change `d` (a plain-Python twin of the Spark columns)."""
    log_lift = terms.own * d + terms.flags
    sd = math.sqrt(max(terms.v2 * d * d + terms.v1 * d + terms.v0, 0.0))
    return log_lift, log_lift - z * sd, log_lift + z * sd
