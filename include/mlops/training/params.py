"""What decides a model besides the data: :class:`TrainParams`, the :class:`Window`, the as-of date."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops.params import parse_bool, parse_ds

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Hyperparameters a candidate may set (the XGBoost ``train`` parameter names).
#: Turns ``train_model``'s human approval step on by default (off in the embedded profile, on in
#: the scale-out one); a run's ``require_approval`` param overrides it.
REQUIRE_APPROVAL_ENV = "MLOPS_REQUIRE_APPROVAL"


def require_approval_default() -> bool:
    """``MLOPS_REQUIRE_APPROVAL`` as a boolean (unset: false; "maybe" is an error naming it)."""
    import os

    return parse_bool(os.environ.get(REQUIRE_APPROVAL_ENV) or "false", REQUIRE_APPROVAL_ENV)


HYPERPARAMETERS: tuple[str, ...] = (
    "max_depth",
    "learning_rate",
    "min_child_weight",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
)


@dataclass(frozen=True)
class TrainParams:
    """Everything that decides a model besides the data (keys of ``mlops.airflow.params.TRAIN_PARAMS``)."""

    window_days: int = 120
    holdout_days: int = 14
    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.1
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    n_candidates: int = 4
    seed: int = 42
    promotion_margin: float = 0.002
    dry_run: bool = False
    #: A human approves (or rejects) the promotion the gate decided, before any alias moves.
    require_approval: bool = dataclasses.field(default_factory=require_approval_default)
    #: XGBoost threads: part of the model's identity (float sums are ordered by thread).
    nthread: int = 2
    max_bin: int = 256
    # Training-set validation thresholds.
    min_rows: int = 2000
    min_holdout_rows: int = 500
    min_positive_rate: float = 0.05
    max_positive_rate: float = 0.60
    max_null_rate: float = 0.95
    #: A day whose rows average more null features than this has no feature tables (a day without
    #: them measured ~0.81 on 2013; the first day of the lake, with no history yet, 0.46).
    max_day_null_rate: float = 0.6
    max_missing_days: int = 0

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
    ) -> TrainParams:
        """Build from Airflow params / JSON, ignoring unknown keys and ``None`` values.

        ``defaults`` (a model spec's ``Estimator.defaults``) stand in for keys ``values`` lacks.
        Booleans read as :func:`mlops.params.parse_bool` reads them (``"maybe"`` is an error).
        """
        values = {**dict(defaults or {}), **{k: v for k, v in dict(values or {}).items() if v is not None}}
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = values.get(f.name)
            if value is None:
                continue
            kind = type(getattr(defaults, f.name))
            kwargs[f.name] = parse_bool(value, f.name) if kind is bool else kind(value)
        params = cls(**kwargs)
        params.check()
        return params

    def check(self) -> None:
        if self.holdout_days * 2 >= self.window_days:
            raise ValueError(
                f"window_days={self.window_days} must exceed twice holdout_days={self.holdout_days}: "
                "the window holds the search's training days, its validation days and the holdout"
            )
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates={self.n_candidates}: need at least 1")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def base_hyperparameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HYPERPARAMETERS}

    def data_key(self) -> str:
        """Short hash of what decides the training *set* (not the model)."""
        payload = json.dumps({"window_days": self.window_days, "holdout_days": self.holdout_days})
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Window:
    """Local days ``[start, end)``; the holdout is ``[holdout_start, end)``; search validates on
    ``[valid_start, holdout_start)`` after fitting on ``[start, valid_start)``."""

    as_of: date
    start: date
    valid_start: date
    holdout_start: date
    end: date

    @classmethod
    def of(cls, as_of: date | datetime | str, params: TrainParams) -> Window:
        day = as_of_date(as_of)
        return cls(
            as_of=day,
            start=day - timedelta(days=params.window_days),
            valid_start=day - timedelta(days=2 * params.holdout_days),
            holdout_start=day - timedelta(days=params.holdout_days),
            end=day,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, str]) -> Window:
        """The inverse of :meth:`as_dict`."""
        return cls(**{f.name: date.fromisoformat(values[f.name]) for f in dataclasses.fields(cls)})

    def days(self) -> list[str]:
        n = (self.end - self.start).days
        return [(self.start + timedelta(days=i)).isoformat() for i in range(n)]

    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in dataclasses.asdict(self).items()}


def as_of_date(value: date | datetime | str) -> date:
    """The as-of *date*: a datetime is floored to its UTC date; ``YYYY-MM-DD`` or ISO strings parse."""
    if isinstance(value, str):
        value = (
            datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else parse_ds(value, "as_of")
        )
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    return value


def resolve_as_of(
    param_as_of: str | None,
    event_timestamps: Sequence[datetime],
    data_interval_end: datetime | None,
    run_after: datetime | None,
) -> tuple[date, str]:
    """The as-of date of a run and where it came from.

    An explicit ``as_of`` param wins; an asset-triggered run uses its (latest) retrain request's
    time; scheduled, backfill and manual runs use the data interval end; else the run's
    ``run_after``.
    """
    if param_as_of:
        return as_of_date(param_as_of), "param"
    if event_timestamps:
        return as_of_date(max(event_timestamps)), "retrain_request"
    if data_interval_end is not None:
        return as_of_date(data_interval_end), "data_interval_end"
    if run_after is not None:
        return as_of_date(run_after), "run_after"
    raise ValueError("cannot tell the as-of date: no as_of param, request event, data interval or run_after")
